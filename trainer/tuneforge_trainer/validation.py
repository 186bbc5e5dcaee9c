"""Validation images: the base pipeline plus the adapter as exported, as serving will load it.

Rendering from the exported files (not the live, possibly sharded modules) works the same
under every strategy and checks the export on the way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tuneforge.api import ValidationSpec
from tuneforge.contract import LORA_WEIGHTS, TI_EMBEDDINGS
from tuneforge_trainer.methods.dreambooth import TEXT_ENCODER_WEIGHTS, UNET_WEIGHTS


def load_pipeline_with_adapter(model_dir: Path, adapter_dir: Path | None) -> Any:
    """A plain `StableDiffusionPipeline` with the adapter files of `adapter_dir` applied."""
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file

    pipe = StableDiffusionPipeline.from_pretrained(
        str(model_dir), safety_checker=None, requires_safety_checker=False, use_safetensors=True
    )
    if adapter_dir is not None and (adapter_dir / UNET_WEIGHTS).is_file():
        pipe.unet.load_state_dict(load_file(str(adapter_dir / UNET_WEIGHTS)))
    if adapter_dir is not None and (adapter_dir / TEXT_ENCODER_WEIGHTS).is_file():
        pipe.text_encoder.load_state_dict(load_file(str(adapter_dir / TEXT_ENCODER_WEIGHTS)))
    pipe.set_progress_bar_config(disable=True)
    if adapter_dir is not None and (adapter_dir / LORA_WEIGHTS).is_file():
        pipe.load_lora_weights(str(adapter_dir), weight_name=LORA_WEIGHTS)
    if adapter_dir is not None and (adapter_dir / TI_EMBEDDINGS).is_file():
        pipe.load_textual_inversion(str(adapter_dir / TI_EMBEDDINGS))
    return pipe


def render(
    model_dir: Path,
    adapter_dir: Path,
    validation: ValidationSpec,
    resolution: int,
    seed: int,
    out_dir: Path,
) -> list[Path]:
    """Render every validation prompt `numImages` times into `out_dir`; returns the files."""
    pipe = load_pipeline_with_adapter(model_dir, adapter_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for prompt_index, prompt in enumerate(validation.prompts):
        generator = torch.Generator().manual_seed(seed + prompt_index)
        images = pipe(
            prompt,
            negative_prompt=validation.negative_prompt or None,
            num_inference_steps=validation.steps,
            guidance_scale=validation.guidance_scale,
            num_images_per_prompt=validation.num_images,
            height=resolution,
            width=resolution,
            generator=generator,
        ).images
        for image_index, image in enumerate(images):
            path = out_dir / f"prompt{prompt_index:02d}-{image_index:02d}.png"
            image.save(path)
            written.append(path)
    (out_dir / "prompts.txt").write_text("\n".join(validation.prompts) + "\n")
    return written
