"""Trainer overhead: tuneforge's LoRA loop against a bare accelerate loop, one process.

Both train LoRA (rank 4, UNet attention) on the tiny SD-1.5-shaped model and the tiny dataset
for the same number of steps (batch 2, 64 px, fp32 on CPU, one thread), with the same
optimizer, schedule and per-step work (VAE encode, noise, text encode, UNet, MSE, clip,
step). Runs alternate (bare, tuneforge, bare, ...); each step is timed from the start of its
data loading to the end of its optimizer step (tuneforge's own per-step `images_per_s`), and
the medians over all steps are compared, which resists bursts of load from other processes.
The last line is `ratio=<tuneforge / bare>`.

    .venv/bin/python benchmarks/trainer_overhead.py --quick     # < 50 s
    .venv/bin/python benchmarks/trainer_overhead.py --steps 60 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

RANK = 4
LR = 1e-4
BATCH = 2
RESOLUTION = 64
TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def bare_accelerate_loop(
    model_dir: Path, dataset_dir: Path, steps: int, out_dir: Path
) -> list[float]:
    """The loop a diffusers example script would run; returns seconds of each step."""
    from _bare_loop import load_frozen_parts
    from accelerate import Accelerator
    from diffusers import StableDiffusionPipeline
    from diffusers.optimization import get_scheduler
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(0)
    accelerator = Accelerator(cpu=True)
    tokenizer, text_encoder, vae, unet, noise_scheduler = load_frozen_parts(model_dir)
    unet.add_adapter(
        LoraConfig(r=RANK, lora_alpha=RANK, init_lora_weights="gaussian", target_modules=TARGETS)
    )
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=1e-2)
    lr_scheduler = get_scheduler("constant", optimizer=optimizer, num_training_steps=steps)
    unet, optimizer = accelerator.prepare(unet, optimizer)

    images = sorted((dataset_dir / "instance").glob("*.png"))
    captions = [p.with_suffix(".txt").read_text().strip() for p in images]

    def load(path: Path) -> torch.Tensor:
        image = Image.open(path).convert("RGB")
        scale = RESOLUTION / min(image.size)
        size = (round(image.width * scale), round(image.height * scale))
        image = image.resize(size, Image.Resampling.BILINEAR)
        left, top = (size[0] - RESOLUTION) // 2, (size[1] - RESOLUTION) // 2
        image = image.crop((left, top, left + RESOLUTION, top + RESOLUTION))
        array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
        return torch.from_numpy(array).permute(2, 0, 1)

    order = random.Random(0)
    durations = []
    for _ in range(steps):
        started = time.perf_counter()
        picks = order.sample(range(len(images)), BATCH)
        pixels = torch.stack([load(images[i]) for i in picks])
        ids = tokenizer(
            [captions[i] for i in picks],
            padding="max_length",
            truncation=True,
            max_length=77,
            return_tensors="pt",
        ).input_ids
        with torch.no_grad():
            latents = vae.encode(pixels).latent_dist.sample() * vae.config.scaling_factor
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (BATCH,))
        noisy = noise_scheduler.add_noise(latents, noise, timesteps)
        with torch.no_grad():
            hidden = text_encoder(ids, return_dict=False)[0]
        prediction = unet(noisy, timesteps, hidden, return_dict=False)[0]
        loss = torch.nn.functional.mse_loss(prediction, noise)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(params, 1.0)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        durations.append(time.perf_counter() - started)
    layers = convert_state_dict_to_diffusers(
        get_peft_model_state_dict(accelerator.unwrap_model(unet))
    )
    StableDiffusionPipeline.save_lora_weights(str(out_dir), unet_lora_layers=layers)
    return durations


def tuneforge_loop(model_dir: Path, dataset_dir: Path, steps: int, out_dir: Path) -> list[float]:
    """tuneforge's per-worker loop (world size 1); seconds of each step from its progress lines.

    Each step is timed by the loop itself (its `images_per_s`), so loading the model before
    the first step is not counted."""
    import contextlib
    import io

    from _tuneforge_job import lora_bench_job

    from tuneforge.contract import parse_progress_line
    from tuneforge_trainer.context import LocalContext
    from tuneforge_trainer.loop import train_worker
    from tuneforge_trainer.plan import WorkerPlan, job_uid

    job = lora_bench_job(
        "bench", model_dir, dataset_dir, resolution=RESOLUTION, steps=steps, batch_size=BATCH,
        learning_rate=LR, rank=RANK, cpus=1, mixedPrecision="no",
    )  # fmt: skip
    plan = WorkerPlan(
        job=job.to_manifest(),
        job_uid=job_uid(job),
        model_uri=str(model_dir),
        dataset_uri=str(dataset_dir),
        cache_dir=str(out_dir / "cache"),
    )
    lines = io.StringIO()
    with contextlib.redirect_stdout(lines):
        train_worker(plan, LocalContext(out_dir / "checkpoints"))
    progress = [parse_progress_line(line) for line in lines.getvalue().splitlines()]
    return [BATCH / p.images_per_s for p in progress if p is not None and p.images_per_s]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="15 steps, 2 repeats (< 50 s)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    steps, repeats = (15, 2) if args.quick else (args.steps, args.repeats)
    torch.set_num_threads(1)
    from tuneforge.assets.cache import cached_tiny_dataset, cached_tiny_model

    model_dir, dataset_dir = Path(cached_tiny_model(seed=0)), Path(cached_tiny_dataset())
    bare: list[list[float]] = []
    ours: list[list[float]] = []
    with tempfile.TemporaryDirectory(prefix="tf-bench-") as tmp:
        for repeat in range(repeats):
            bare.append(
                bare_accelerate_loop(model_dir, dataset_dir, steps, Path(tmp) / f"bare{repeat}")
            )
            ours.append(tuneforge_loop(model_dir, dataset_dir, steps, Path(tmp) / f"tf{repeat}"))
            print(
                f"repeat {repeat}: bare={statistics.median(bare[-1]) * 1000:.1f} ms/step "
                f"tuneforge={statistics.median(ours[-1]) * 1000:.1f} ms/step"
            )
    bare_s = statistics.median(t for run in bare for t in run)
    ours_s = statistics.median(t for run in ours for t in run)
    print(
        f"steps={steps} repeats={repeats} bare_ms={bare_s * 1000:.1f} "
        f"tuneforge_ms={ours_s * 1000:.1f}"
    )
    print(f"ratio={ours_s / bare_s:.3f}")


if __name__ == "__main__":
    main()
