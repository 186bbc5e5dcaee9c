"""DreamBooth class images: the dataset's own, or generated with the base model.

Prior preservation needs `dataset.numClassImages` images of the class. They come from
`dataset.classDataUri`, else the dataset's `class/` folder; missing ones are generated once,
on the driver, with the base model and `dataset.classPrompt` (seeded), before training.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from tuneforge.api import FineTuneJob
from tuneforge.inputs import materialize
from tuneforge.settings import Settings
from tuneforge_trainer.data import bundled_class_root, list_images

GENERATION_STEPS = 25


def uses_prior_preservation(job: FineTuneJob) -> bool:
    """Whether the job trains with the prior-preservation loss."""
    return bool(job.spec.dreambooth and job.spec.dreambooth.prior_preservation)


def class_images_dir(
    job: FineTuneJob,
    model_dir: Path,
    dataset_dir: Path,
    work_dir: Path,
    settings: Settings,
    cache_dir: Path,
    generation_steps: int = GENERATION_STEPS,
) -> Path | None:
    """A folder with `numClassImages` class images (None without prior preservation)."""
    if not uses_prior_preservation(job):
        return None
    dataset = job.spec.dataset
    if dataset.class_data_uri:
        source: Path | None = materialize(dataset.class_data_uri, cache_dir, settings)
    else:
        source = bundled_class_root(dataset_dir)
    have = list_images(source) if source is not None else []
    if len(have) >= dataset.num_class_images:
        assert source is not None
        return source
    target = work_dir / "class-images"
    target.mkdir(parents=True, exist_ok=True)
    for path in have:
        shutil.copy2(path, target / path.name)
    missing = dataset.num_class_images - len(list_images(target))
    if missing > 0:
        generate_class_images(job, model_dir, target, missing, generation_steps)
    return target


def generate_class_images(
    job: FineTuneJob, model_dir: Path, target: Path, count: int, steps: int
) -> list[Path]:
    """Render `count` images of `dataset.classPrompt` with the base model into `target`."""
    from diffusers import StableDiffusionPipeline

    dataset = job.spec.dataset
    pipe = StableDiffusionPipeline.from_pretrained(
        str(model_dir), safety_checker=None, requires_safety_checker=False, use_safetensors=True
    )
    if torch.cuda.is_available():
        pipe = pipe.to("cuda")
    pipe.set_progress_bar_config(disable=True)
    written = []
    for index in range(count):
        generator = torch.Generator().manual_seed(job.spec.training.seed + index)
        image = pipe(
            dataset.class_prompt or "",
            num_inference_steps=steps,
            height=dataset.resolution,
            width=dataset.resolution,
            generator=generator,
        ).images[0]
        path = target / f"generated-{index:05d}.png"
        image.save(path)
        written.append(path)
    return written
