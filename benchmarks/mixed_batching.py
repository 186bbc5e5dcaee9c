"""Mixed-adapter batching: 4 requests with 4 different LoRAs in one call vs one after another.

Both sides run in this process on the same `ServingEngine` (same slots, same adapters
already attached, same PNG encoding, mixed batching on): the baseline calls
`engine.generate(job)` for each request in turn (one pipeline call per request, its
adapters active on the slots); the mixed side runs the same 4 jobs through
`engine.generate_batch` (one pipeline call, each sample routed to its own LoRA). The two sides alternate for
`--rounds` rounds; the ratio of median round times is the speed-up. The images of both
sides are compared too (they must agree to one 8-bit level).

    scripts/netns-run .venv/bin/python benchmarks/mixed_batching.py --quick   # tiny, < 50 s
    .venv/bin/python benchmarks/mixed_batching.py --sd15                   # GPU: SD 1.5, 512 px
    .venv/bin/python benchmarks/mixed_batching.py --sd15 --size 64 --steps 1 --rounds 1  # CPU smoke

`--sd15` builds the real SD 1.5 architecture (UNet 860 M parameters, VAE, 12-layer CLIP
text encoder) with random weights in memory, nothing downloaded; the tokenizer is the
tiny model's (its vocabulary only sizes the embedding table). Last line:
`mixed_speedup=<sequential time / mixed time>`.
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


def write_lora(unet: torch.nn.Module, folder: Path, seed: int, rank: int) -> Path:
    """A LoRA adapter folder on the UNet's attention projections with seeded random weights."""
    from safetensors.torch import save_file

    from tuneforge.contract import (
        ADAPTER_MANIFEST,
        DEFAULT_LORA_TARGETS,
        LORA_WEIGHTS,
        AdapterManifest,
        LoraSection,
    )

    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for path, module in unet.named_modules():
        if isinstance(module, torch.nn.Linear) and path.endswith(DEFAULT_LORA_TARGETS):
            down = torch.randn(rank, module.in_features, generator=generator)
            up = torch.randn(module.out_features, rank, generator=generator)
            tensors[f"unet.{path}.lora_A.weight"] = down / module.in_features**0.5
            tensors[f"unet.{path}.lora_B.weight"] = up * 0.5 / rank**0.5
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / LORA_WEIGHTS))
    manifest = AdapterManifest(
        method="lora",
        base_model="benchmark",
        files=[LORA_WEIGHTS],
        lora=LoraSection(rank=rank, alpha=rank, target_modules=list(DEFAULT_LORA_TARGETS)),
    )
    (folder / ADAPTER_MANIFEST).write_text(manifest.model_dump_json())
    return folder


def build(args: argparse.Namespace, workdir: Path) -> tuple[Any, list[Any]]:
    """Engine (mixed batching on) and the 4 jobs (4 different LoRAs, one each)."""
    from tuneforge_serving.base_model import pick_device, pick_dtype
    from tuneforge_serving.config import ServingConfig
    from tuneforge_serving.engine import ServingEngine
    from tuneforge_serving.folder_source import FolderAdapterSource
    from tuneforge_serving.jobs import GenerationJob

    device = pick_device(args.device)
    dtype = pick_dtype("auto", device)
    if args.sd15:
        pipe, model_dir = sd15_pipeline(device, dtype, workdir)
    else:
        pipe, model_dir = tiny_pipeline(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    names = [f"lora{i}" for i in range(4)]
    folders = {
        n: write_lora(pipe.unet, workdir / n, 100 + i, args.rank) for i, n in enumerate(names)
    }
    config = ServingConfig(
        base_model=str(model_dir),
        cache_dir=workdir / "cache",
        device=device,
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
    return engine, jobs


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)), dtype=np.int16)


def measure(engine: Any, jobs: list[Any], rounds: int) -> tuple[float, float, int]:
    """Median seconds per round of sequential and mixed, and the largest pixel difference."""
    sequential_s: list[float] = []
    mixed_s: list[float] = []
    worst = 0
    for round_index in range(rounds + 1):  # round 0 warms up (slot copies, kernels)
        start = time.perf_counter()
        alone = [engine.generate(job) for job in jobs]
        middle = time.perf_counter()
        mixed = engine.generate_batch(jobs)
        end = time.perf_counter()
        for one, other in zip(alone, mixed, strict=True):
            if one.error or other.error:
                raise RuntimeError(f"generation failed: {one.error or other.error}")
            difference = np.abs(_pixels(one.images[0]) - _pixels(other.images[0])).max()
            worst = max(worst, int(difference))
        if round_index:
            sequential_s.append(middle - start)
            mixed_s.append(end - middle)
        print(f"round {round_index}: sequential {middle - start:.3f}s mixed {end - middle:.3f}s")
    return statistics.median(sequential_s), statistics.median(mixed_s), worst


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
        engine, jobs = build(args, Path(tmp))
        model = "sd15-random" if args.sd15 else "tiny"
        print(
            f"model={model} device={engine.device} size={args.size} steps={args.steps} "
            f"requests=4 adapters=4 rank={args.rank} setup_s={time.perf_counter() - began:.1f}"
        )
        sequential, mixed, worst = measure(engine, jobs, args.rounds)
    print(
        f"sequential_s={sequential:.3f} mixed_s={mixed:.3f} "
        f"sequential_img_per_s={4 / sequential:.2f} mixed_img_per_s={4 / mixed:.2f} "
        f"max_pixel_diff={worst} total_s={time.perf_counter() - began:.1f}"
    )
    if worst > 1:
        print(f"mixed images differ from the sequential ones by {worst} levels", file=sys.stderr)
        return 1
    print(f"mixed_speedup={sequential / mixed:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
