"""DreamBooth class images are rendered by the train workers, each its share.

Two ranks run as two threads of this process sharing one loaded model (the barrier is a
`threading.Barrier`); one rank alone renders the same set, pixel for pixel. A record beside
each image names the rank that rendered it. The whole worker loop loads the model once and
no pipeline from disk.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.fixtures.trainer import make_trainer_job

NUM_CLASS_IMAGES = 3
STEPS = 2


def _job(tiny_model_dir: Path, tiny_dataset_dir: Path, **extra: Any) -> Any:
    return make_trainer_job(
        "dreambooth",
        tiny_model_dir,
        tiny_dataset_dir / "instance",  # no class/ folder: every class image is generated
        dataset={"numClassImages": NUM_CLASS_IMAGES},
        dreambooth={"priorPreservation": True},
        **extra,
    )


def _plan(job: Any, tmp_path: Path, store: Path) -> Any:
    from tuneforge_trainer.plan import WorkerPlan, job_uid

    return WorkerPlan(
        job=job.to_manifest(),
        job_uid=job_uid(job),
        model_uri=job.spec.base_model.uri,
        dataset_uri=job.spec.dataset.uri,
        class_images_uri=str(store),
        cache_dir=str(tmp_path / "cache"),
    )


@pytest.fixture(scope="module")
def components(tiny_model_dir):
    from tuneforge_trainer.components import load_components

    return load_components(tiny_model_dir)


@pytest.fixture
def no_pipeline_loads(monkeypatch):
    import diffusers

    def refuse(*args, **kwargs):
        raise AssertionError("class images must not load a pipeline from disk")

    monkeypatch.setattr(diffusers.StableDiffusionPipeline, "from_pretrained", refuse)


def _generate(plan: Any, world_size: int, components: Any, dataset_dir: Path, monkeypatch):
    from tuneforge.settings import Settings
    from tuneforge_trainer import priors
    from tuneforge_trainer.strategies import World

    gate = threading.Barrier(world_size)
    votes: list[bool] = []

    def all_agree(world: Any, flag: bool) -> bool:  # all_reduce(MIN) between threads
        votes.append(flag)
        gate.wait(timeout=300)
        agreed = all(votes)
        gate.wait(timeout=300)
        return agreed

    monkeypatch.setattr(priors, "barrier", lambda world: gate.wait(timeout=300))
    monkeypatch.setattr(priors, "all_agree", all_agree)
    folders: dict[int, Path] = {}
    errors: list[BaseException] = []

    def worker(rank: int) -> None:
        try:
            world = World(rank=rank, world_size=world_size)
            images = priors.class_images_on_worker(
                plan, world, components, dataset_dir, Settings(), steps=STEPS
            )
            folders[rank] = images.folder
        except BaseException as error:  # surfaced below
            errors.append(error)
            gate.abort()

    threads = [threading.Thread(target=worker, args=(rank,)) for rank in range(world_size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return folders


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_one_or_two_workers_render_the_same_set_each_its_share(
    tiny_model_dir, tiny_dataset_dir, tmp_path, components, no_pipeline_loads, monkeypatch
):
    job = _job(tiny_model_dir, tiny_dataset_dir)
    dataset_dir = tiny_dataset_dir / "instance"
    names = [f"generated-{i:05d}.png" for i in range(NUM_CLASS_IMAGES)]

    alone = _generate(
        _plan(job, tmp_path / "one", tmp_path / "one-store"),
        1,
        components,
        dataset_dir,
        monkeypatch,
    )
    pair = _generate(
        _plan(job, tmp_path / "two", tmp_path / "two-store"),
        2,
        components,
        dataset_dir,
        monkeypatch,
    )

    for folder in [alone[0], pair[0], pair[1]]:
        assert sorted(p.name for p in folder.glob("*.png")) == names
    for name in names:
        reference = _pixels(alone[0] / name)
        assert reference.shape == (64, 64, 3)
        for folder in (pair[0], pair[1]):
            assert np.array_equal(_pixels(folder / name), reference), name
    assert not np.array_equal(_pixels(alone[0] / names[0]), _pixels(alone[0] / names[1]))

    def producers(store: Path) -> dict[int, tuple[int, int]]:
        records = [json.loads(p.read_text()) for p in sorted(store.rglob("generated-*.json"))]
        return {r["index"]: (r["rank"], r["seed"]) for r in records}

    seed = job.spec.training.seed
    assert producers(tmp_path / "one-store") == {i: (0, seed + i) for i in range(3)}
    assert producers(tmp_path / "two-store") == {0: (0, seed), 1: (1, seed + 1), 2: (0, seed + 2)}


def test_a_rerun_renders_nothing_already_stored(
    tiny_model_dir, tiny_dataset_dir, tmp_path, components, monkeypatch
):
    from tuneforge_trainer import priors

    job = _job(tiny_model_dir, tiny_dataset_dir)
    plan = _plan(job, tmp_path, tmp_path / "store")
    dataset_dir = tiny_dataset_dir / "instance"
    _generate(plan, 1, components, dataset_dir, monkeypatch)
    rendered: list[list[int]] = []
    real = priors.generate_share
    monkeypatch.setattr(
        priors, "generate_share", lambda *args, **kw: rendered.append(args[3]) or real(*args, **kw)
    )
    (manifest,) = (tmp_path / "store").glob("*/manifest.json")
    manifest.unlink()  # unpublished: the run's own uploads are kept, the rest is rendered
    (image,) = (tmp_path / "store").rglob("generated-00001.png")
    image.unlink()
    _generate(plan, 2, components, dataset_dir, monkeypatch)
    assert rendered == [[1]], "only the missing image, by its rank (1 of 2)"


def test_the_users_class_images_count_and_no_place_to_generate_is_refused(
    tiny_model_dir, tiny_dataset_dir, tmp_path, components
):
    from tuneforge.settings import Settings
    from tuneforge_trainer.priors import class_images_on_worker
    from tuneforge_trainer.strategies import World

    job = _job(tiny_model_dir, tiny_dataset_dir)
    plan = _plan(job, tmp_path, tmp_path / "store").model_copy(update={"class_images_uri": None})
    with pytest.raises(ValueError, match="needs 3 class images, 0 given"):
        class_images_on_worker(plan, World(), components, tiny_dataset_dir / "instance", Settings())
    enough = plan.model_copy(update={"class_data_uri": str(tiny_dataset_dir / "class")})
    images = class_images_on_worker(
        enough, World(), components, tiny_dataset_dir / "instance", Settings()
    )
    assert images is not None and images.source == "provided" and images.cache is None
    assert images.folder == tiny_dataset_dir / "class"


def test_the_worker_loop_generates_with_the_model_it_loaded_once(  # 25 steps, as a job
    tiny_model_dir, tiny_dataset_dir, tmp_path, no_pipeline_loads, monkeypatch
):
    import tuneforge_trainer.loop as loop
    from tuneforge_trainer.context import LocalContext

    loads: list[Path] = []
    real_load = loop.load_components
    monkeypatch.setattr(loop, "load_components", lambda d: loads.append(d) or real_load(d))
    job = _job(tiny_model_dir, tiny_dataset_dir, training={"maxSteps": 1})
    plan = _plan(job, tmp_path, tmp_path / "store")
    outcome = loop.train_worker(plan, LocalContext(tmp_path / "checkpoints"))
    assert outcome.final_step == 1 and len(loads) == 1
    assert sorted(p.name for p in (tmp_path / "store").rglob("*.png")) == [
        f"generated-{i:05d}.png" for i in range(NUM_CLASS_IMAGES)
    ]
