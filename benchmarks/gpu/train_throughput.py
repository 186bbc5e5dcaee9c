"""Training images/s at real size on one GPU: TuneForge's worker loop vs a bare diffusers+peft loop.

Both sides train a rank-16 LoRA on the UNet attention of the same SD 1.5 folder
(`tuneforge assets sd15-random`) on the same 512 px images (`tuneforge assets tiny-dataset
--resolution 512`), batch `--batch`, one process (world size 1; FSDP2 and DeepSpeed run on
a one-member NCCL group). Both are timed from the outside in the same way: every step
prints a line, and the rate is the images between the first and the last step line divided
by the wall time between them (the first step, with its kernel warm-up, is not counted; the
steps in between include progress, logging and checkpoints).

    python benchmarks/gpu/train_throughput.py --model DIR --data DIR --config ddp-bf16

Configs: `bare-bf16` (the baseline), `ddp-fp16`, `ddp-bf16`, `fsdp-bf16`, `deepspeed-bf16`.
Last line: `config=<name> images_per_s=<x>`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

RANK = 16
LR = 1e-4
PROMPT = "a photo of sks toy"
TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
CONFIGS = ("bare-bf16", "ddp-fp16", "ddp-bf16", "fsdp-bf16", "deepspeed-bf16")


class StepClock(io.TextIOBase):
    """A stdout stand-in that notes the wall time of every line it is given."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.times: list[float] = []
        self._echo = sys.__stdout__

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if self.marker in line:
                self.times.append(time.perf_counter())
        if self._echo is not None:
            self._echo.write(text)
        return len(text)


def images_per_s(times: list[float], batch: int) -> float:
    """Images between the first and the last step line per second of wall time."""
    if len(times) < 3:
        raise RuntimeError(f"too few step lines to time ({len(times)})")
    return (len(times) - 1) * batch / (times[-1] - times[0])


def bare_loop(model_dir: Path, data_dir: Path, steps: int, batch: int, size: int) -> None:
    """The loop of diffusers' train_text_to_image_lora example, bf16 autocast; prints `step N`."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from peft import LoraConfig
    from transformers import CLIPTextModel, CLIPTokenizer

    device = torch.device("cuda")
    tokenizer = CLIPTokenizer.from_pretrained(str(model_dir / "tokenizer"), model_max_length=77)
    text_encoder = CLIPTextModel.from_pretrained(str(model_dir), subfolder="text_encoder")
    vae = AutoencoderKL.from_pretrained(str(model_dir), subfolder="vae")
    unet = UNet2DConditionModel.from_pretrained(str(model_dir), subfolder="unet")
    scheduler = DDPMScheduler.from_pretrained(str(model_dir), subfolder="scheduler")
    for module in (text_encoder, vae, unet):
        module.requires_grad_(False)
        module.to(device)
    unet.add_adapter(LoraConfig(r=RANK, lora_alpha=RANK, target_modules=TARGETS))
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=1e-2)
    paths = sorted((data_dir / "instance").glob("*.png"))
    ids = tokenizer(
        [PROMPT] * batch, padding="max_length", max_length=77, return_tensors="pt"
    ).input_ids.to(device)
    for step in range(1, steps + 1):
        picks = [paths[(step * batch + i) % len(paths)] for i in range(batch)]
        pixels = torch.stack(
            [
                torch.from_numpy(
                    np.asarray(Image.open(p).convert("RGB").resize((size, size)), np.float32)
                    / 127.5
                    - 1.0
                ).permute(2, 0, 1)
                for p in picks
            ]
        ).to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            with torch.no_grad():
                latents = vae.encode(pixels).latent_dist.sample() * vae.config.scaling_factor
                hidden = text_encoder(ids, return_dict=False)[0]
            noise = torch.randn_like(latents)
            timesteps = torch.randint(0, 1000, (batch,), device=device)
            noisy = scheduler.add_noise(latents, noise, timesteps)
            prediction = unet(noisy, timesteps, hidden, return_dict=False)[0]
        loss = torch.nn.functional.mse_loss(prediction.float(), noise.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        print(f"step {step} loss {float(loss):.4f}")


def _one_member_group() -> None:
    """A world-size-1 NCCL group (FSDP2 and DeepSpeed need a process group)."""
    import torch.distributed as dist

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ.update(
        {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "WORLD_SIZE": "1"}
    )
    os.environ["LOCAL_RANK"] = "0"
    dist.init_process_group("nccl", rank=0, world_size=1)


def tuneforge_loop(
    model_dir: Path, data_dir: Path, steps: int, batch: int, size: int, config: str
) -> None:
    """TuneForge's worker loop on `cuda:0` with `config`'s strategy and precision."""
    from tuneforge.api import load_job
    from tuneforge_trainer.context import LocalContext
    from tuneforge_trainer.loop import train_worker
    from tuneforge_trainer.plan import WorkerPlan, job_uid
    from tuneforge_trainer.strategies import World

    strategy, precision = config.split("-")
    if strategy in ("fsdp", "deepspeed"):
        _one_member_group()
    job = load_job(
        {
            "apiVersion": "tuneforge.io/v1alpha1",
            "kind": "FineTuneJob",
            "metadata": {"name": f"gpu-{config}", "namespace": "default"},
            "spec": {
                "method": "lora",
                "baseModel": {"uri": str(model_dir)},
                "dataset": {"uri": str(data_dir), "instancePrompt": PROMPT, "resolution": size},
                "training": {
                    "maxSteps": steps,
                    "batchSize": batch,
                    "learningRate": LR,
                    "checkpointEverySteps": steps,
                    "mixedPrecision": precision,
                },
                "lora": {"rank": RANK, "alpha": RANK},
                "resources": {"workers": 1, "gpusPerWorker": 1, "strategy": strategy},
                "output": {"registeredModel": "gpu-bench"},
            },
        }
    )
    with tempfile.TemporaryDirectory(prefix="tf-gpu-train-") as tmp:
        plan = WorkerPlan(
            job=job.to_manifest(),
            job_uid=job_uid(job),
            model_uri=str(model_dir),
            dataset_uri=str(data_dir),
            cache_dir=str(Path(tmp) / "cache"),
        )
        context = LocalContext(Path(tmp) / "checkpoints")
        context.world = World(device=torch.device("cuda", 0))
        train_worker(plan, context)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="SD 1.5 diffusers folder")
    parser.add_argument("--data", type=Path, required=True, help="dataset with instance/")
    parser.add_argument("--config", choices=CONFIGS, required=True)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("train_throughput.py needs a CUDA device")
    marker = "step " if args.config.startswith("bare") else "tuneforge-progress"
    clock = StepClock(marker)
    with contextlib.redirect_stdout(clock):
        if args.config.startswith("bare"):
            bare_loop(args.model, args.data, args.steps, args.batch, args.size)
        else:
            tuneforge_loop(args.model, args.data, args.steps, args.batch, args.size, args.config)
    rate = images_per_s(clock.times, args.batch)
    print(f"config={args.config} images_per_s={rate:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
