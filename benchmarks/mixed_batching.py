"""Mixed-adapter batching: 4 requests with 4 different LoRAs in one call vs one after another.

Both sides run in this process on the same `ServingEngine` (same slots, same adapters
already attached, same PNG encoding, mixed batching on): the baseline calls
`engine.generate(job)` for each request in turn (one pipeline call per request, its
adapters active on the slots); the mixed side runs the same 4 jobs through
`engine.generate_batch` (one pipeline call, each sample routed to its own LoRA). The
strongest path the libraries offer is measured too: plain diffusers + peft on a second
pipeline of the same model, the 4 LoRAs loaded with `load_lora_weights`, one call with
peft's per-sample `adapter_names` (`PeftPerSampleBatch`). The three alternate for
`--rounds` rounds, each timed here around its calls; medians per round. The engine's
sequential and mixed images must agree to one 8-bit level; the difference to peft's is
printed.

    scripts/netns-run .venv/bin/python benchmarks/mixed_batching.py --quick   # tiny, < 50 s
    .venv/bin/python benchmarks/mixed_batching.py --sd15                   # GPU: SD 1.5, 512 px
    .venv/bin/python benchmarks/mixed_batching.py --sd15 --size 64 --steps 1 --rounds 1  # CPU smoke

`--sd15` builds the real SD 1.5 architecture (UNet 860 M parameters, VAE, 12-layer CLIP
text encoder) with random weights in memory, nothing downloaded; the tokenizer is the
tiny model's (its vocabulary only sizes the embedding table). Last line:
`mixed_speedup=<sequential time / mixed time> vs_peft=<peft per-sample time / mixed time>`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

PROMPTS = [
    "a photo of a cat on a sofa",
    "a watercolor of a lighthouse",
    "a red car in the rain",
    "a bowl of fruit, studio light",
]


def tiny_pipeline(device: str, dtype: torch.dtype) -> tuple[Any, Path]:
    """The tiny SD-1.5-shaped model from the asset cache (built locally on first use)."""
    from diffusers import StableDiffusionPipeline

    from tuneforge.assets.cache import cached_tiny_model

    model_dir = cached_tiny_model(seed=0)
    pipe = StableDiffusionPipeline.from_pretrained(
        str(model_dir),
        dtype=dtype,
        use_safetensors=True,
        safety_checker=None,
        requires_safety_checker=False,
    )
    return pipe.to(device), model_dir


def sd15_pipeline(device: str, dtype: torch.dtype, workdir: Path) -> tuple[Any, Path]:
    """SD 1.5's architecture with random weights, built in memory (seeded)."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from tuneforge.assets.cache import cached_tiny_model

    torch.manual_seed(0)
    tokenizer = CLIPTokenizer.from_pretrained(
        str(cached_tiny_model(seed=0) / "tokenizer"), model_max_length=77
    )
    unet = UNet2DConditionModel(
        sample_size=64,
        block_out_channels=(320, 640, 1280, 1280),
        cross_attention_dim=768,
        attention_head_dim=8,
        layers_per_block=2,
    )
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
        sample_size=512,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    model_dir = workdir / "sd15-random"  # configs only: the engine needs a model folder
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "model_index.json").write_text(json.dumps({"_class_name": "Pipeline"}))
    return pipe.to(device, dtype), model_dir


def make_pipeline(args: argparse.Namespace, workdir: Path) -> tuple[Any, Path]:
    """The model the flags name, on the device and dtype serving would pick."""
    from tuneforge_serving.base_model import pick_device, pick_dtype

    device = pick_device(args.device)
    dtype = pick_dtype("auto", device)
    if args.sd15:
        pipe, model_dir = sd15_pipeline(device, dtype, workdir)
    else:
        pipe, model_dir = tiny_pipeline(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe, model_dir


def build(args: argparse.Namespace, workdir: Path) -> tuple[Any, list[Any], dict[str, Path]]:
    """Engine (mixed batching on), the 4 jobs (4 different LoRAs, one each), their folders."""
    from _lora_files import write_lora

    from tuneforge_serving.config import ServingConfig
    from tuneforge_serving.engine import ServingEngine
    from tuneforge_serving.folder_source import FolderAdapterSource
    from tuneforge_serving.jobs import GenerationJob

    pipe, model_dir = make_pipeline(args, workdir)
    names = [f"lora{i}" for i in range(4)]
    folders = {
        n: write_lora(pipe.unet, workdir / n, 100 + i, args.rank) for i, n in enumerate(names)
    }
    config = ServingConfig(
        base_model=str(model_dir),
        cache_dir=workdir / "cache",
        device=str(pipe.device),
        adapter_lru_size=4,
        hotswap={"max_lora_rank": args.rank},
        limits={"max_width": max(768, args.size), "max_height": max(768, args.size)},
        mixed_batching={"enabled": True, "max_batch_size": 4},
    )
    source = FolderAdapterSource()
    for name, folder in folders.items():
        source.add(name, folder)
    engine = ServingEngine(config, source, pipeline=pipe)
    jobs = [
        GenerationJob(
            prompt=PROMPTS[i],
            adapters=[(source.resolve(name), 1.0)],
            steps=args.steps,
            width=args.size,
            height=args.size,
            seed=10 + i,
        )
        for i, name in enumerate(names)
    ]
    return engine, jobs, folders


class PeftPerSampleBatch:
    """Plain diffusers + peft: the 4 LoRAs loaded with `load_lora_weights`, one pipeline call
    for the 4 prompts, each sample routed to its LoRA by peft's `adapter_names` (passed to
    every `LoraLayer` by a forward pre-hook; with CFG the UNet batch is [uncond..., cond...],
    so the names repeat in that order). PNG-encoded like the engine's answers."""

    def __init__(self, args: argparse.Namespace, workdir: Path, folders: dict[str, Path]):
        """A second pipeline of the same model with `folders` loaded under their names."""
        from peft.tuners.lora import LoraLayer

        self.pipe, _ = make_pipeline(args, workdir / "peft")
        for name, folder in folders.items():
            self.pipe.load_lora_weights(str(folder), adapter_name=name)
        self.names: list[str] = []
        for module in self.pipe.unet.modules():
            if isinstance(module, LoraLayer):
                module.register_forward_pre_hook(self._route, with_kwargs=True)

    def _route(self, module: Any, args: Any, kwargs: dict[str, Any]) -> tuple[Any, Any]:
        rows = args[0].shape[0]
        return args, {**kwargs, "adapter_names": self.names * (rows // len(self.names))}

    def generate(self, jobs: list[Any], names: list[str]) -> list[bytes]:
        """PNGs of one call for `jobs`, sample i with LoRA `names[i]`."""
        self.names = names
        first = jobs[0]
        images = self.pipe(
            prompt=[job.prompt for job in jobs],
            num_inference_steps=first.steps,
            guidance_scale=first.guidance_scale,
            width=first.width,
            height=first.height,
            generator=[torch.Generator("cpu").manual_seed(job.seed) for job in jobs],
        ).images
        encoded = []
        for image in images:
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            encoded.append(buffer.getvalue())
        return encoded


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)), dtype=np.int16)


def measure(
    engine: Any, jobs: list[Any], peft: PeftPerSampleBatch, rounds: int
) -> tuple[dict[str, float], int, int]:
    """Median seconds per round of each side, the largest pixel difference between the
    engine's sequential and mixed images, and between the engine's and peft's mixed ones."""
    names = [f"lora{i}" for i in range(len(jobs))]
    times: dict[str, list[float]] = {"sequential": [], "mixed": [], "peft": []}
    worst = worst_peft = 0
    for round_index in range(rounds + 1):  # round 0 warms up (slot copies, kernels)
        start = time.perf_counter()
        alone = [engine.generate(job) for job in jobs]
        middle = time.perf_counter()
        mixed = engine.generate_batch(jobs)
        end = time.perf_counter()
        theirs = peft.generate(jobs, names)
        done = time.perf_counter()
        for one, other, peft_png in zip(alone, mixed, theirs, strict=True):
            if one.error or other.error:
                raise RuntimeError(f"generation failed: {one.error or other.error}")
            ours = _pixels(other.images[0])
            worst = max(worst, int(np.abs(_pixels(one.images[0]) - ours).max()))
            worst_peft = max(worst_peft, int(np.abs(_pixels(peft_png) - ours).max()))
        if round_index:
            times["sequential"].append(middle - start)
            times["mixed"].append(end - middle)
            times["peft"].append(done - end)
        print(
            f"round {round_index}: sequential {middle - start:.3f}s mixed {end - middle:.3f}s "
            f"peft per-sample {done - end:.3f}s"
        )
    return {side: statistics.median(values) for side, values in times.items()}, worst, worst_peft


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, 64 px, few rounds")
    parser.add_argument("--sd15", action="store_true", help="SD 1.5 architecture, random weights")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--size", type=int, help="image width and height (default 64 / 512)")
    parser.add_argument("--steps", type=int, help="denoising steps (default 4 / 20)")
    parser.add_argument("--rounds", type=int, help="measured rounds (default 8, --quick 6)")
    parser.add_argument("--rank", type=int, default=8, help="LoRA rank of the adapters")
    args = parser.parse_args(argv)
    args.size = args.size or (512 if args.sd15 else 64)
    args.steps = args.steps or (20 if args.sd15 else 4)
    args.rounds = args.rounds or (6 if args.quick else 8)
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tf-mixed-bench-") as tmp:
        engine, jobs, folders = build(args, Path(tmp))
        peft = PeftPerSampleBatch(args, Path(tmp), folders)
        model = "sd15-random" if args.sd15 else "tiny"
        print(
            f"model={model} device={engine.device} size={args.size} steps={args.steps} "
            f"requests=4 adapters=4 rank={args.rank} setup_s={time.perf_counter() - began:.1f}"
        )
        medians, worst, worst_peft = measure(engine, jobs, peft, args.rounds)
    sequential, mixed, peft_s = medians["sequential"], medians["mixed"], medians["peft"]
    print(
        f"sequential_s={sequential:.3f} mixed_s={mixed:.3f} peft_per_sample_s={peft_s:.3f} "
        f"sequential_img_per_s={4 / sequential:.2f} mixed_img_per_s={4 / mixed:.2f} "
        f"max_pixel_diff={worst} max_pixel_diff_vs_peft={worst_peft} "
        f"total_s={time.perf_counter() - began:.1f}"
    )
    if worst > 1:
        print(f"mixed images differ from the sequential ones by {worst} levels", file=sys.stderr)
        return 1
    print(f"mixed_speedup={sequential / mixed:.2f} vs_peft={peft_s / mixed:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
