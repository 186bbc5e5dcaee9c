"""DreamBooth class images (prior preservation): the user's, completed by the train workers.

Prior preservation needs `dataset.numClassImages` images of the class. They come from
`dataset.classDataUri`, else the dataset's `class/` folder. When some are missing, the set of
generated ones is looked up in the shared cache (`tuneforge_trainer.class_image_cache`, root
`class_images_uri`: `<checkpoint storage>/class-images`, on S3 or in a local folder) under a
key of everything that decides its pixels; a job that finds a complete set downloads it and
renders nothing. Otherwise every train worker renders its share with the base modules it has
just loaded (before the method changes them), on its own device, in the job's precision:
image `i` is rank `i % world_size`'s and is seeded `training.seed + i`, so the set is the same
whatever the number of workers. Beside each image a record `generated-NNNNN.json` says which
rank rendered it. After a barrier every worker fetches the whole set and trains on it, and
rank 0 publishes it (manifest last). Images this run already uploaded (a resumed or re-run
job) are not rendered again.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from tuneforge.api import FineTuneJob, FineTuneJobSpec
from tuneforge.base_fingerprint import base_model_fingerprint
from tuneforge.inputs import materialize
from tuneforge.settings import Settings
from tuneforge.storage import StorageError, download_prefix, is_s3_uri, list_prefix, upload_dir
from tuneforge_trainer.class_image_cache import (
    CACHE_FOLDER,
    CLASS_IMAGES_KEY_TAG,
    CLASS_IMAGES_TAG,
    CLASS_IMAGES_URI_TAG,
    ClassImageCache,
    ClassImageKey,
    generated_name,
)
from tuneforge_trainer.components import Components
from tuneforge_trainer.data import bundled_class_root, list_images
from tuneforge_trainer.plan import WorkerPlan, run_name
from tuneforge_trainer.strategies import World
from tuneforge_trainer.validation import inference_scheduler, pipeline_from_modules, rendering

GENERATION_STEPS = 25
"""Denoising steps per generated class image."""
GUIDANCE_SCALE = 7.5
"""Classifier-free guidance of generated class images (diffusers' default)."""


@dataclass(frozen=True)
class ClassImages:
    """The folder a worker trains on and where its images came from."""

    folder: Path
    source: Literal["provided", "reused", "generated"]
    """`provided`: the user's alone; `reused`: a cached set; `generated`: rendered now."""
    cache: ClassImageCache | None = None
    """The cache entry of the generated part (None when `provided`)."""


def class_image_tags(images: ClassImages) -> dict[str, str]:
    """MLflow run tags saying whether generated class images were reused or rendered, and
    under which cache key (none when the user's images sufficed)."""
    if images.cache is None:
        return {}
    return {
        CLASS_IMAGES_TAG: images.source,
        CLASS_IMAGES_KEY_TAG: images.cache.key.digest(),
        CLASS_IMAGES_URI_TAG: images.cache.uri,
    }


def uses_prior_preservation(spec: FineTuneJobSpec) -> bool:
    """Whether the job trains with the prior-preservation loss."""
    return bool(spec.dreambooth and spec.dreambooth.prior_preservation)


def class_images_uri(job: FineTuneJob, checkpoint_uri: str) -> str | None:
    """The class-image cache root (`<checkpoints>/class-images`), or None without priors."""
    if not uses_prior_preservation(job.spec):
        return None
    return f"{checkpoint_uri.rstrip('/')}/{CACHE_FOLDER}"


def share_of(rank: int, world_size: int, count: int) -> list[int]:
    """The indices of the `count` images to generate that `rank` renders."""
    return list(range(rank, count, world_size))


def stored_names(uri: str, settings: Settings) -> set[str]:
    """File names already under the shared `uri` (S3 prefix or local folder)."""
    if is_s3_uri(uri):
        try:
            return set(list_prefix(uri, settings))
        except StorageError:
            return set()
    folder = Path(uri.removeprefix("file://"))
    return {path.name for path in folder.iterdir()} if folder.is_dir() else set()


def class_image_key(
    components: Components, spec: FineTuneJobSpec, count: int, steps: int, device: torch.device
) -> ClassImageKey:
    """The cache key of the `count` class images this job would render."""
    import diffusers

    scheduler = inference_scheduler(components)
    config = {k: v for k, v in dict(scheduler.config).items() if not k.startswith("_")}
    return ClassImageKey(
        base_fingerprint=base_model_fingerprint(components.weights),
        class_prompt=spec.dataset.class_prompt or "",
        resolution=spec.dataset.resolution,
        count=count,
        seed=spec.training.seed,
        steps=steps,
        guidance_scale=GUIDANCE_SCALE,
        scheduler={
            "class": type(scheduler).__name__,
            "config": json.loads(json.dumps(config, sort_keys=True, default=str)),
        },
        precision=str(spec.training.mixed_precision.value),
        device=device.type,
        diffusers=diffusers.__version__,
    )


def generate_share(
    components: Components,
    world: World,
    spec: FineTuneJobSpec,
    indices: list[int],
    out_dir: Path,
    steps: int = GENERATION_STEPS,
) -> list[Path]:
    """Render class images `indices` with the loaded base modules into `out_dir`."""
    dataset, training = spec.dataset, spec.training
    out_dir.mkdir(parents=True, exist_ok=True)
    for module in (components.text_encoder, components.unet, components.vae):
        module.to(world.device)
    pipe = pipeline_from_modules(components, components.text_encoder, components.unet)
    modules = [components.text_encoder, components.unet, components.vae]
    written = []
    with rendering(modules, training, world.device):
        for index in indices:
            seed = training.seed + index
            image = pipe(
                dataset.class_prompt or "",
                num_inference_steps=steps,
                guidance_scale=GUIDANCE_SCALE,
                height=dataset.resolution,
                width=dataset.resolution,
                generator=torch.Generator().manual_seed(seed),
            ).images[0]
            path = out_dir / generated_name(index)
            image.save(path)
            record = {
                "index": index,
                "seed": seed,
                "rank": world.rank,
                "world_size": world.world_size,
            }
            path.with_suffix(".json").write_text(json.dumps(record) + "\n")
            written.append(path)
    return written


def _process_group(world: World) -> bool:
    if not world.distributed:
        return False
    import torch.distributed as dist

    if not dist.is_initialized():
        raise RuntimeError("class images on several workers need a process group (Ray Train)")
    return True


def barrier(world: World) -> None:
    """Wait for every rank (no-op alone); a multi-rank world without a process group is an error."""
    if _process_group(world):
        import torch.distributed as dist

        dist.barrier()


def all_agree(world: World, flag: bool) -> bool:
    """True on every rank when `flag` is true on every rank (collective; no pickling)."""
    if not _process_group(world):
        return flag
    import torch.distributed as dist

    value = torch.tensor([1 if flag else 0], device=world.device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def class_images_on_worker(
    plan: WorkerPlan,
    world: World,
    components: Components,
    dataset_dir: Path,
    settings: Settings,
    steps: int = GENERATION_STEPS,
) -> ClassImages | None:
    """The job's class images in a local folder: the user's, completed from the cache or by
    rendering (this rank its share).

    Collective when images are missing: the ranks agree on reusing a cached set or render
    together. None without prior preservation.
    """
    spec = plan.load_job().spec
    if not uses_prior_preservation(spec):
        return None
    wanted = spec.dataset.num_class_images
    source = (
        materialize(plan.class_data_uri, plan.cache_path, settings)
        if plan.class_data_uri
        else bundled_class_root(dataset_dir)
    )
    have = list_images(source) if source is not None else []
    if len(have) >= wanted:
        assert source is not None
        return ClassImages(source, "provided")
    if plan.class_images_uri is None:
        raise ValueError(
            f"prior preservation needs {wanted} class images, {len(have)} given, and the plan "
            "names no place for generated ones (class_images_uri)"
        )
    missing = wanted - len(have)
    key = class_image_key(components, spec, missing, steps, world.device)
    cache = ClassImageCache(plan.class_images_uri, key, settings)
    target = plan.cache_path / "class-images" / plan.job_uid / f"rank-{world.rank}"
    reused = all_agree(world, cache.fetch(target) is not None)
    if not reused:
        _render_and_publish(plan, world, components, spec, cache, target, missing, steps)
    for path in have:
        shutil.copy2(path, target / path.name)
    return ClassImages(target, "reused" if reused else "generated", cache)


def _render_and_publish(
    plan: WorkerPlan,
    world: World,
    components: Components,
    spec: FineTuneJobSpec,
    cache: ClassImageCache,
    target: Path,
    missing: int,
    steps: int,
) -> None:
    """Each rank renders its share into this run's cache folder; all fetch the set; rank 0
    publishes its manifest (last)."""
    run = run_name(plan.load_job())
    run_uri = cache.run_uri(run)
    settings = cache.settings
    stored = stored_names(run_uri, settings)
    share = share_of(world.rank, world.world_size, missing)
    todo = [i for i in share if generated_name(i) not in stored]
    if todo:
        with tempfile.TemporaryDirectory(prefix="tuneforge-class-") as tmp:
            generate_share(components, world, spec, todo, Path(tmp), steps)
            upload_dir(tmp, run_uri, settings)
    barrier(world)
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    download_prefix(run_uri, target, settings)
    expected = [generated_name(i) for i in range(missing)]
    absent = [name for name in expected if not (target / name).is_file()]
    if absent:
        raise RuntimeError(f"class images missing after every worker's share: {absent[:5]}")
    records = [Path(name).with_suffix(".json").name for name in expected]
    if world.is_main:
        cache.publish(run, target, expected + [r for r in records if (target / r).is_file()])
