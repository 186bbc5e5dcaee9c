"""Images from the modules the workers hold: validation images and DreamBooth class images.

A `StableDiffusionPipeline` is assembled around the modules already in memory (the trained
text encoder and UNet as the strategy holds them, the frozen VAE, the tokenizer with any
added tokens) on the worker's device, and renders under the job's mixed precision: no
second load from disk, no copy of the weights.

Where the trained parameters are sharded (FSDP2, DeepSpeed ZeRO-3) every rank renders the
same images in lockstep, because each forward gathers the shards collectively; otherwise
rank 0 renders alone and the other ranks go on. Rank 0 logs the images to MLflow.
`load_pipeline_with_adapter` is the other direction: a plain pipeline from disk with exported
adapter files applied, as a user (and the tests) check an export.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tuneforge.api import FineTuneJobSpec, TrainingSpec, ValidationSpec
from tuneforge.contract import LORA_WEIGHTS, TI_EMBEDDINGS
from tuneforge_trainer.components import Components
from tuneforge_trainer.methods.dreambooth import TEXT_ENCODER_WEIGHTS, UNET_WEIGHTS
from tuneforge_trainer.strategies import TrainingStrategy, World
from tuneforge_trainer.strategies.precision import autocast

if TYPE_CHECKING:
    from tuneforge_trainer.tracking import RunTracker


def inference_scheduler(components: Components) -> Any:
    """The base model's own sampling scheduler (its `scheduler_config.json` class)."""
    import diffusers

    config = diffusers.DDPMScheduler.load_config(str(components.model_dir), subfolder="scheduler")
    return getattr(diffusers, config["_class_name"]).from_config(config)


def pipeline_from_modules(components: Components, text_encoder: nn.Module, unet: nn.Module) -> Any:
    """A `StableDiffusionPipeline` holding these very modules (nothing is loaded or copied)."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=components.vae,
        text_encoder=text_encoder,
        tokenizer=components.tokenizer,
        unet=unet,
        scheduler=inference_scheduler(components),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@contextlib.contextmanager
def rendering(
    modules: list[nn.Module], training: TrainingSpec, device: torch.device
) -> Iterator[None]:
    """Eval mode (LoRA dropout off), no gradients, and the job's autocast on `device`.

    Each module's training flags are restored afterwards.
    """
    flags = [(module, module.training) for root in modules for module in root.modules()]
    for root in modules:
        root.eval()
    try:
        with torch.no_grad(), autocast(training.mixed_precision, device.type):
            yield
    finally:
        for module, flag in flags:
            module.train(flag)


def params_sharded(model: nn.Module) -> bool:
    """Whether the model's parameters are sharded across ranks (FSDP2 or DeepSpeed ZeRO-3)."""
    from torch.distributed.fsdp import FSDPModule

    if isinstance(model, FSDPModule):
        return True
    return any(hasattr(param, "ds_id") for param in model.parameters())


@contextlib.contextmanager
def gathered_root(model: nn.Module) -> Iterator[None]:
    """FSDP2: the root's own parameters unsharded while its submodules are called directly.

    Each sharded block gathers its parameters in its own forward hook; the parameters that
    belong to the root (e.g. the UNet's `conv_in`) are gathered here. A collective.
    """
    from torch.distributed.fsdp import FSDPModule

    if not isinstance(model, FSDPModule):
        yield
        return
    model.unshard()
    try:
        yield
    finally:
        model.reshard()


def render_prompts(
    pipe: Any, validation: ValidationSpec, resolution: int, seed: int, out_dir: Path
) -> list[Path]:
    """Render every validation prompt `numImages` times into `out_dir`; returns the files."""
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


def validate_on_worker(
    strategy: TrainingStrategy,
    components: Components,
    world: World,
    spec: FineTuneJobSpec,
    step: int,
    tracker: RunTracker | None,
) -> list[str]:
    """Render `spec.validation`'s prompts with the live modules; rank 0 logs them to MLflow.

    Returns the rendered file names (empty on ranks that do not render).
    """
    model: Any = strategy.unwrapped()  # the Denoiser: `.text_encoder`, `.unet`
    sharded = params_sharded(model)
    if not (world.is_main or sharded):
        return []
    pipe = pipeline_from_modules(components, model.text_encoder, model.unet)
    with tempfile.TemporaryDirectory(prefix="tuneforge-val-") as tmp:
        images = Path(tmp) / "images"
        with rendering([model, components.vae], spec.training, world.device), gathered_root(model):
            written = render_prompts(
                pipe, spec.validation, spec.dataset.resolution, spec.training.seed, images
            )
        if world.is_main and tracker is not None:
            tracker.log_artifacts(images, f"validation/step-{step:06d}")
        return [path.name for path in written]


def load_pipeline_with_adapter(model_dir: Path, adapter_dir: Path | None) -> Any:
    """A plain `StableDiffusionPipeline` from disk with the adapter files of `adapter_dir`."""
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
