"""SD 1.5 at its real size (random weights, CPU): training step and adapter switch costs.

1. Step. A rank-16 LoRA on the UNet's attention (256 px, batch 1, bf16 autocast, gradient
   checkpointing, AdamW, clip 1.0) on the same real-size random model, two ways, each in its
   own process, one after the other: TuneForge's worker loop (`train_worker`, world size 1,
   MLflow tracking in a local SQLite store, a checkpoint and the adapter export at the last
   step) and a bare diffusers+peft loop doing the same per-step work (VAE encode, text
   encode, noise, UNet, MSE, backward, clip, step) that prints a line per step and saves
   the LoRA weights and optimizer state at the end. Both are timed from the outside, the same
   way: from the moment the first step's line reaches this process to the moment the
   process says its loop function returned, divided by the remaining steps.
2. Switch. The serving engine on the same model (one LoRA slot of rank 16, one staged
   adapter in host memory) cycles through three rank-16 adapters, so every switch stages
   the adapter from its folder (safetensors read, peft-to-slot conversion, checks) and
   copies it into the slot; each `engine.switch` call is timed from the outside. The
   baseline moves the same bytes plainly: read the same file with safetensors and `copy_`
   each tensor into a preallocated tensor of its shape. Medians, alternated.

The model is built once by `tuneforge assets sd15-random` into the assets cache (shared
with the real-size test tier). Last line:
`step_ratio=<tuneforge / bare> swap_vs_copy=<switch / copy> peak_rss_gb=<largest process>`
(targets <= 1.03 and <= 3). No Ray starts; the private namespace is still the safe place:

    scripts/netns-run .venv/bin/python benchmarks/realsize.py --quick    # ~7 min on 2 cores
    scripts/netns-run .venv/bin/python benchmarks/realsize.py --steps 6 --repeats 2
    .venv/bin/python benchmarks/realsize.py --quick --tiny    # the same on the tiny model
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

RANK = 16
RESOLUTION = 256
LR = 1e-4
TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
STEP_LINE = "bench-step "
DONE_LINE = "bench-loop-returned"
GB = 1024**3


def sd15_random_folder() -> Path:
    """The seed-0 real-size random model in the assets cache, built on first use."""
    from tuneforge.assets.sd15 import CONFIG_VERSION
    from tuneforge.assets.sd15_random import SD15_RANDOM_MARKER
    from tuneforge.settings import Settings

    cache = Settings().assets_cache_dir()
    folder = cache / f"sd15-random-v{CONFIG_VERSION}-seed0"
    single_file = cache / f"sd15-random-v{CONFIG_VERSION}-seed0.safetensors"
    if not ((folder / SD15_RANDOM_MARKER).is_file() and single_file.is_file()):
        tuneforge = str(Path(sys.executable).parent / "tuneforge")
        command = [tuneforge, "assets", "sd15-random", str(folder), "--single-file"]
        subprocess.run([*command, str(single_file), "--seed", "0", "--force"], check=True)
    return folder


# ---------------------------------------------------------------- the two training loops


def bare_loop(model_dir: Path, dataset_dir: Path, steps: int, out: Path, bf16: bool) -> None:
    """What a diffusers example script runs, reduced to the same per-step work."""
    import random

    import numpy as np
    import torch
    from _bare_loop import load_frozen_parts
    from diffusers import StableDiffusionPipeline
    from diffusers.optimization import get_scheduler
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from PIL import Image
    from safetensors.torch import save_file

    torch.manual_seed(0)
    tokenizer, text_encoder, vae, unet, noise_scheduler = load_frozen_parts(model_dir)
    unet.add_adapter(
        LoraConfig(r=RANK, lora_alpha=RANK, init_lora_weights="gaussian", target_modules=TARGETS)
    )
    unet.enable_gradient_checkpointing()
    unet.train()
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=1e-2)
    lr_scheduler = get_scheduler("constant", optimizer=optimizer, num_training_steps=steps)
    images = sorted((dataset_dir / "instance").glob("*.png"))
    captions = [p.with_suffix(".txt").read_text().strip() for p in images]
    order = random.Random(0)
    for step in range(1, steps + 1):
        pick = order.randrange(len(images))
        image = Image.open(images[pick]).convert("RGB").resize((RESOLUTION, RESOLUTION))
        array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
        pixels = torch.from_numpy(array).permute(2, 0, 1)[None]
        ids = tokenizer(
            [captions[pick]], padding="max_length", truncation=True, max_length=77,
            return_tensors="pt",
        ).input_ids  # fmt: skip
        with torch.no_grad():
            latents = vae.encode(pixels).latent_dist.sample() * vae.config.scaling_factor
            # the text encoder in the job's precision, as diffusers' examples cast it to
            # weight_dtype (and as TuneForge runs it, under the step's autocast)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                hidden = text_encoder(ids, return_dict=False)[0]
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (1,))
        noisy = noise_scheduler.add_noise(latents, noise, timesteps)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            prediction = unet(noisy, timesteps, hidden, return_dict=False)[0]
        loss = torch.nn.functional.mse_loss(prediction.float(), noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        print(f"{STEP_LINE}{step} loss={loss.item():.4f}", flush=True)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(str(out), unet_lora_layers=layers)
    moments = {
        f"{index}.{name}": value
        for index, state in optimizer.state_dict()["state"].items()
        for name, value in state.items()
        if torch.is_tensor(value) and value.dim() > 0
    }
    save_file(moments, str(out / "optimizer.safetensors"))


def tuneforge_loop(model_dir: Path, dataset_dir: Path, steps: int, out: Path, bf16: bool) -> None:
    """TuneForge's worker loop, world size 1, tracked in a local MLflow store."""
    from _tuneforge_job import lora_bench_job

    from tuneforge.settings import Settings
    from tuneforge_trainer.context import LocalContext
    from tuneforge_trainer.loop import train_worker
    from tuneforge_trainer.plan import WorkerPlan, job_uid
    from tuneforge_trainer.tracking import find_or_create_run

    job = lora_bench_job(
        "realsize-bench", model_dir, dataset_dir, resolution=RESOLUTION, steps=steps,
        batch_size=1, learning_rate=LR, rank=RANK, cpus=2,
        mixedPrecision="bf16" if bf16 else "no", gradientCheckpointing=True,
    )  # fmt: skip
    uid = job_uid(job)
    tracking_uri = f"sqlite:///{out / 'mlflow.db'}"
    settings = Settings(home=out / "home", mlflow_tracking_uri=tracking_uri)
    plan = WorkerPlan(
        job=job.to_manifest(),
        job_uid=uid,
        model_uri=str(model_dir),
        dataset_uri=str(dataset_dir),
        cache_dir=str(out / "cache"),
        tracking_uri=tracking_uri,
        run_id=find_or_create_run(tracking_uri, job, uid, settings),
        threads=int(os.environ["OMP_NUM_THREADS"]),
    )
    train_worker(plan, LocalContext(out / "checkpoints"), settings)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux `/proc`; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_side(
    side: str, args: argparse.Namespace, model_dir: Path, dataset: Path
) -> tuple[float, float]:
    """Wall and CPU seconds per step of `side`, from its first step line to its loop's return.

    The wall time is the benchmark's figure; the CPU time (the child's user + system time over
    the same window) is a cross-check that load from other processes inflates far less.
    """
    from tuneforge.contract import parse_progress_line

    with tempfile.TemporaryDirectory(prefix=f"realsize-{side}-") as out:
        command = [sys.executable, __file__, "--side", side, "--steps", str(args.steps)]
        command += ["--model", str(model_dir), "--dataset", str(dataset), "--out", out]
        command += ["--precision", args.precision]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
        assert child.stdout is not None
        first: float | None = None
        returned: float | None = None
        cpu_first = cpu_returned = 0.0
        for line in child.stdout:
            now = time.perf_counter()
            is_step = line.startswith(STEP_LINE) or parse_progress_line(line) is not None
            if is_step and first is None:
                first, cpu_first = now, cpu_seconds(child.pid)
            if line.startswith(DONE_LINE):
                returned, cpu_returned = now, cpu_seconds(child.pid)
            print(f"  {side}: {line.rstrip()}", file=sys.stderr, flush=True)
        if child.wait() != 0 or first is None or returned is None:
            raise RuntimeError(f"the {side} loop failed (exit {child.returncode})")
    intervals = args.steps - 1
    return (returned - first) / intervals, (cpu_returned - cpu_first) / intervals


# ---------------------------------------------------------------- switches


def switches(model_dir: Path, count: int, workdir: Path) -> tuple[float, float, float]:
    """Medians: engine switch (staging included), file-to-tensor copy, in-memory copy."""
    import torch
    from _lora_files import write_lora
    from safetensors.torch import load_file

    from tuneforge.base_fingerprint import base_model_fingerprint
    from tuneforge.contract import LORA_WEIGHTS
    from tuneforge_serving.config import ServingConfig
    from tuneforge_serving.engine import ServingEngine
    from tuneforge_serving.folder_source import FolderAdapterSource

    config = ServingConfig(
        base_model=str(model_dir),
        cache_dir=workdir / "cache",
        device="cpu",
        adapter_lru_size=1,
        host_cache_size=1,
        hotswap={"max_lora_rank": RANK},
    )
    source = FolderAdapterSource()
    engine = ServingEngine(config, source)
    fingerprint = base_model_fingerprint(model_dir)
    names = [f"lora{i}" for i in range(3)]
    for seed, name in enumerate(names):
        folder = write_lora(
            engine.pipeline.unet, workdir / name, seed, RANK, fingerprint=fingerprint
        )
        source.add(name, folder)
    resolved = [source.resolve(name) for name in names]
    files = [workdir / name / LORA_WEIGHTS for name in names]
    targets = {key: torch.empty_like(value) for key, value in load_file(str(files[0])).items()}
    in_memory = [load_file(str(path)) for path in files]
    print(f"adapter: {sum(t.numel() for t in targets.values()) * 4 / 2**20:.1f} MiB fp32")

    def copy_from_file(index: int) -> None:
        for key, value in load_file(str(files[index])).items():
            targets[key].copy_(value)

    def copy_in_memory(index: int) -> None:
        for key, value in in_memory[index].items():
            targets[key].copy_(value)

    times: dict[str, list[float]] = {"switch": [], "file": [], "memory": []}
    for turn in range(count + len(names)):  # the first cycle warms up (checks, page cache)
        index = turn % len(names)
        actions = {
            "switch": lambda i=index: engine.switch([(resolved[i], 1.0)]),
            "file": lambda i=index: copy_from_file(i),
            "memory": lambda i=index: copy_in_memory(i),
        }
        for kind, action in actions.items():
            start = time.perf_counter()
            action()
            if turn >= len(names):
                times[kind].append(time.perf_counter() - start)
    assert engine.store.misses >= count, "switches were served from host memory"
    return tuple(statistics.median(times[k]) for k in ("switch", "file", "memory"))  # type: ignore[return-value]


def run_switches(args: argparse.Namespace, model_dir: Path) -> tuple[float, float, float]:
    """`switches` in its own process (the pipeline's memory leaves with it)."""
    command = [sys.executable, __file__, "--side", "switch", "--model", str(model_dir)]
    command += ["--switches", str(args.switches)]
    child = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    print(child.stdout, end="", file=sys.stderr)
    last = child.stdout.strip().splitlines()[-1].split()
    return float(last[0]), float(last[1]), float(last[2])


# ---------------------------------------------------------------- main


def child(args: argparse.Namespace) -> None:
    """One side, in its own process."""
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    model_dir = Path(args.model)
    if args.side == "switch":
        with tempfile.TemporaryDirectory(prefix="realsize-switch-") as tmp:
            result = switches(model_dir, args.switches, Path(tmp))
        print(" ".join(f"{value:.6f}" for value in result))
        return
    loop = bare_loop if args.side == "bare" else tuneforge_loop
    loop(model_dir, Path(args.dataset), args.steps, Path(args.out), args.precision == "bf16")
    print(DONE_LINE, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 steps a side, 10 switches")
    parser.add_argument("--steps", type=int, default=5, help="training steps per run (>= 2)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each side, alternated")
    parser.add_argument("--switches", type=int, default=30)
    parser.add_argument("--precision", choices=["bf16", "no"], default="bf16")
    parser.add_argument(
        "--tiny", action="store_true", help="smoke run on the tiny model (checks the script)"
    )
    parser.add_argument("--side", choices=["bare", "tuneforge", "switch"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        child(args)
        return
    if args.quick:
        args.steps, args.repeats, args.switches = 3, 1, 10
    from tuneforge.assets.cache import cached_tiny_dataset, cached_tiny_model

    began = time.perf_counter()
    model_dir = cached_tiny_model(seed=0) if args.tiny else sd15_random_folder()
    dataset = cached_tiny_dataset(resolution=RESOLUTION, num_instance=2, num_class=1)
    bare: list[tuple[float, float]] = []
    ours: list[tuple[float, float]] = []
    for _ in range(args.repeats):
        bare.append(run_side("bare", args, model_dir, dataset))
        ours.append(run_side("tuneforge", args, model_dir, dataset))
    switch_s, file_s, memory_s = run_switches(args, model_dir)
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / GB
    bare_s, ours_s = (statistics.median(wall for wall, _ in side) for side in (bare, ours))
    bare_cpu, ours_cpu = (statistics.median(cpu for _, cpu in side) for side in (bare, ours))
    print(
        f"steps={args.steps} repeats={args.repeats} precision={args.precision} "
        f"bare_s_per_step={bare_s:.2f} tuneforge_s_per_step={ours_s:.2f} "
        f"bare_cpu_s_per_step={bare_cpu:.2f} tuneforge_cpu_s_per_step={ours_cpu:.2f} "
        f"cpu_ratio={ours_cpu / max(bare_cpu, 1e-9):.3f} "
        f"switch_ms={switch_s * 1e3:.1f} copy_from_file_ms={file_s * 1e3:.1f} "
        f"copy_in_memory_ms={memory_s * 1e3:.1f} total_s={time.perf_counter() - began:.0f}"
    )
    print(
        f"step_ratio={ours_s / bare_s:.3f} swap_vs_copy={switch_s / file_s:.2f} "
        f"peak_rss_gb={peak_gb:.2f}"
    )


if __name__ == "__main__":
    main()
