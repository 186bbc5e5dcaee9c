"""The tiny model, briefly pretrained on generic shapes, so its images are not noise (the demo's base).

`build_tiny_pretrained(path)` starts from `build_tiny_model`'s random pipeline, swaps in the
pooling VAE (`pooling_vae`: set, not trained; a 64 px image survives as its 8x8 colour
layout) and trains the UNet and the text encoder for `steps` steps on generic toys: balls,
blocks, pyramids, rings and stars in ten colours on six backgrounds, captioned like the
dataset's class images (`a photo of a toy, a red ball, on a blue background`). Never the
demo's subject: a LoRA trained on the "sks toy" images is what brings the robot in.

Seeded (data, noise, batches); on two threads by default, so the bytes can differ in the
last bits between machines. The random tiny model (`cached_tiny_model`) is untouched: tests
keep using it. The demo's subject images are `demo_subject`'s close-ups.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuneforge.assets.fs import publish_dir, quiet_build, staging_dir
from tuneforge.assets.tiny_model import TINY_MODEL_MARKER, TINY_MODEL_RESOLUTION, library_versions

TINY_PRETRAINED_VERSION = 2
"""Bumped whenever the builder's output changes (cache keys include it)."""
PRETRAINED_KIND = "tuneforge-tiny-sd15-pretrained"
DEFAULT_STEPS = 300
DEFAULT_IMAGES = 256
BATCH_SIZE = 16
LEARNING_RATE = 2e-3
WARMUP_STEPS = 20
"""Linear learning-rate warm-up (with gradient clipping at 1.0: without both, 150 steps at
batch 32 left the images noise-like; measured in docs/assets.md)."""
MAX_GRAD_NORM = 1.0
CAPTION_DROPOUT = 0.1
GENERIC_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (205, 35, 40),
    "orange": (240, 140, 30),
    "yellow": (235, 215, 40),
    "green": (40, 170, 70),
    "teal": (30, 160, 160),
    "blue": (40, 90, 230),
    "purple": (130, 60, 170),
    "pink": (235, 120, 180),
    "brown": (140, 90, 50),
    "black": (30, 30, 35),
}
"""Toy colours of the generic domain (the subject's red and yellow among them, as a real
base model knows every colour)."""


def build_tiny_pretrained(
    path: str | os.PathLike[str],
    seed: int = 0,
    *,
    steps: int = DEFAULT_STEPS,
    images: int = DEFAULT_IMAGES,
    threads: int = 2,
    overwrite: bool = False,
    progress: Callable[[int, float], None] | None = None,
) -> Path:
    """Write the pretrained tiny pipeline to `path` (built beside it, renamed into place).

    `progress(step, loss)` is called every 25 steps and after the last.
    """
    if steps < 1 or images < 1:
        raise ValueError(f"steps and images must be >= 1, got {steps} and {images}")
    target = Path(path)
    with staging_dir(target, overwrite=overwrite) as staging, quiet_build():
        _build(staging, seed, steps, images, threads, progress)
        publish_dir(staging, target, overwrite=overwrite)
    return target


def generic_images(
    count: int, seed: int, resolution: int = TINY_MODEL_RESOLUTION
) -> tuple[Any, list[str]]:
    """`count` generic toy images (uint8 array N x H x W x 3) and their captions."""
    import numpy as np

    from tuneforge.assets import drawing

    rng = np.random.default_rng(seed)
    canvas_size = resolution * 2
    colours, backgrounds = list(GENERIC_COLOURS), list(drawing.BACKGROUND_COLOURS)
    sprites: dict[tuple[str, str], Any] = {}
    pixels, captions = [], []
    for _ in range(count):
        shape = drawing.CLASS_SHAPES[int(rng.integers(len(drawing.CLASS_SHAPES)))]
        colour = colours[int(rng.integers(len(colours)))]
        ground = backgrounds[int(rng.integers(len(backgrounds)))]
        style = drawing.BACKGROUND_STYLES[int(rng.integers(len(drawing.BACKGROUND_STYLES)))]
        if (shape, colour) not in sprites:
            sprites[shape, colour] = drawing.class_sprite(
                canvas_size, shape, GENERIC_COLOURS[colour]
            )
        x, y = rng.uniform(0.3, 0.7, size=2)
        placement = drawing.Placement(x, y, rng.uniform(0.4, 0.7), rng.uniform(-40, 40))
        canvas = drawing.background(canvas_size, drawing.BACKGROUND_COLOURS[ground], style, rng)
        image = drawing.downsample(
            drawing.compose(canvas, sprites[shape, colour], placement), resolution
        )
        pixels.append(np.asarray(image))
        words = (
            f"on a {ground} background" if style == "plain" else f"on a {ground} {style} background"
        )
        captions.append(f"a photo of a toy, a {colour} {shape}, {words}")
    return np.stack(pixels), captions


def _build(
    root: Path,
    seed: int,
    steps: int,
    images: int,
    threads: int,
    progress: Callable[[int, float], None] | None,
) -> None:
    import torch

    from tuneforge.assets.pooling_vae import build_pooling_vae
    from tuneforge.assets.tiny_model import random_pipeline, save_pipeline

    started = time.monotonic()
    # Built in memory (no from_pretrained: loading through transformers imports accelerate,
    # which imports DeepSpeed, which logs its accelerator choice on the user's terminal).
    pipeline = random_pipeline(seed)  # the random tiny model: UNet, text encoder, tokenizer...
    pipeline.vae = build_pooling_vae()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, min(threads, os.cpu_count() or 1)))
    try:
        loss = _train(pipeline, seed, steps, images, progress)
    finally:
        torch.set_num_threads(previous_threads)
    save_pipeline(root, pipeline, seed)
    _rewrite_marker(root, seed, steps, images, loss, time.monotonic() - started)


def _train(
    pipeline: Any,
    seed: int,
    steps: int,
    images: int,
    progress: Callable[[int, float], None] | None,
) -> float:
    """Denoising training of UNet and text encoder on the generic images; the last loss."""
    import importlib

    import torch
    import torch.nn.functional as F

    diffusers: Any = importlib.import_module("diffusers")
    pixels, captions = generic_images(images, seed)
    batch = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1
    vae, unet, text_encoder, tokenizer = (
        pipeline.vae,
        pipeline.unet,
        pipeline.text_encoder,
        pipeline.tokenizer,
    )
    with torch.no_grad():
        latents = vae.encode(batch).latent_dist.mean * vae.config.scaling_factor
    tokens = tokenizer(
        captions, padding="max_length", truncation=True, return_tensors="pt"
    ).input_ids
    empty = tokenizer([""], padding="max_length", return_tensors="pt").input_ids[0]
    scheduler = diffusers.DDPMScheduler.from_config(pipeline.scheduler.config)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    parameters = [*unet.parameters(), *text_encoder.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=LEARNING_RATE, weight_decay=1e-4)
    warmup = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda done: min(1.0, (done + 1) / WARMUP_STEPS)
    )
    unet.train()
    text_encoder.train()
    for step in range(1, steps + 1):
        index = torch.randint(0, images, (BATCH_SIZE,), generator=generator)
        clean, ids = latents[index], tokens[index].clone()
        ids[torch.rand(BATCH_SIZE, generator=generator) < CAPTION_DROPOUT] = empty
        noise = torch.randn(clean.shape, generator=generator)
        timesteps = torch.randint(
            0, scheduler.config.num_train_timesteps, (BATCH_SIZE,), generator=generator
        )
        noisy = scheduler.add_noise(clean, noise, timesteps)
        prediction = unet(noisy, timesteps, text_encoder(ids)[0]).sample
        loss: Any = F.mse_loss(prediction, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, MAX_GRAD_NORM)
        optimizer.step()
        warmup.step()
        if progress is not None and (step % 25 == 0 or step == steps):
            progress(step, float(loss.detach()))
    unet.eval()
    text_encoder.eval()
    return float(loss.detach()) if steps else float("nan")


def _rewrite_marker(
    root: Path, seed: int, steps: int, images: int, loss: float, seconds: float
) -> None:
    marker_path = root / TINY_MODEL_MARKER
    marker: dict[str, Any] = json.loads(marker_path.read_text())
    marker.update(
        {
            "kind": PRETRAINED_KIND,
            "description": (
                "The tiny SD-1.5-shaped pipeline with a pooling VAE (8x8 colour layout) and "
                "UNet + text encoder pretrained briefly on generic toy shapes, for the demo. "
                "Built by tuneforge.assets.tiny_pretrained.build_tiny_pretrained."
            ),
            "builder_version": TINY_PRETRAINED_VERSION,
            "built_with": library_versions(),
            "pretraining": {
                "steps": steps,
                "images": images,
                "batch_size": BATCH_SIZE,
                "learning_rate": LEARNING_RATE,
                "warmup_steps": WARMUP_STEPS,
                "max_grad_norm": MAX_GRAD_NORM,
                "final_loss": round(loss, 4),
                "seconds": round(seconds, 1),
            },
        }
    )
    marker_path.write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
