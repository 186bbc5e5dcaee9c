"""DreamBooth class images (prior preservation): the user's, completed by the train workers.

Prior preservation needs `dataset.numClassImages` images of the class. They come from
`dataset.classDataUri`, else the dataset's `class/` folder. When some are missing, the driver
only names where generated ones go (`class_images_uri`: beside the checkpoints, on S3 or in
a local folder); every train worker renders its share with the base modules it has just
loaded (before the method changes them), on its own device, in the job's precision:
image `i` is rank `i % world_size`'s and is seeded `training.seed + i`, so the set is the same
whatever the number of workers. Beside each image a record `generated-NNNNN.json` says which
rank rendered it. After a barrier every worker fetches the whole set and trains on it.
Images already there (a resumed or re-run job) are not rendered again.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch

from tuneforge.api import FineTuneJob, FineTuneJobSpec
from tuneforge.inputs import materialize
from tuneforge.settings import Settings
from tuneforge.storage import StorageError, download_prefix, is_s3_uri, list_prefix, upload_dir
from tuneforge_trainer.components import Components
from tuneforge_trainer.data import bundled_class_root, list_images
from tuneforge_trainer.plan import WorkerPlan, run_name
from tuneforge_trainer.strategies import World
from tuneforge_trainer.validation import pipeline_from_modules, rendering

GENERATION_STEPS = 25
"""Denoising steps per generated class image."""


def uses_prior_preservation(spec: FineTuneJobSpec) -> bool:
    """Whether the job trains with the prior-preservation loss."""
    return bool(spec.dreambooth and spec.dreambooth.prior_preservation)


def class_images_uri(job: FineTuneJob, checkpoint_uri: str) -> str | None:
    """Where workers put generated class images (`<checkpoints>/<run>-class-images`), or None."""
    if not uses_prior_preservation(job.spec):
        return None
    return f"{checkpoint_uri.rstrip('/')}/{run_name(job)}-class-images"


def generated_name(index: int) -> str:
    """The file name of generated class image `index`."""
    return f"generated-{index:05d}.png"


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


def barrier(world: World) -> None:
    """Wait for every rank (no-op alone); a multi-rank world without a process group is an error."""
    if not world.distributed:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        raise RuntimeError("class images on several workers need a process group (Ray Train)")
    dist.barrier()


def class_images_on_worker(
    plan: WorkerPlan,
    world: World,
    components: Components,
    dataset_dir: Path,
    settings: Settings,
    steps: int = GENERATION_STEPS,
) -> Path | None:
    """A local folder with the job's class images, this rank's share generated first.

    Collective when images are missing: every rank renders its share, then all wait for
    each other. None without prior preservation.
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
        return source
    if plan.class_images_uri is None:
        raise ValueError(
            f"prior preservation needs {wanted} class images, {len(have)} given, and the plan "
            "names no place for generated ones (class_images_uri)"
        )
    missing = wanted - len(have)
    stored = stored_names(plan.class_images_uri, settings)
    share = share_of(world.rank, world.world_size, missing)
    todo = [i for i in share if generated_name(i) not in stored]
    if todo:
        with tempfile.TemporaryDirectory(prefix="tuneforge-class-") as tmp:
            generate_share(components, world, spec, todo, Path(tmp), steps)
            upload_dir(tmp, plan.class_images_uri, settings)
    barrier(world)
    target = plan.cache_path / "class-images" / plan.job_uid / f"rank-{world.rank}"
    target.mkdir(parents=True, exist_ok=True)
    for path in have:
        shutil.copy2(path, target / path.name)
    download_prefix(plan.class_images_uri, target, settings)
    absent = [
        generated_name(i) for i in range(missing) if not (target / generated_name(i)).is_file()
    ]
    if absent:
        raise RuntimeError(f"class images missing after every worker's share: {absent[:5]}")
    return target
