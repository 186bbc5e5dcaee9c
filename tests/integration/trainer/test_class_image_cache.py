"""Generated DreamBooth class images are shared between jobs through S3 (SeaweedFS).

Each "job" is one call of `class_images_on_worker` (one rank) with the tiny model's real
pipeline (2 steps); `generate_share` is wrapped to record which images each job renders.
A second job with the same key renders nothing and trains on byte-identical files; another
seed or prompt renders anew; a set without a manifest, or whose manifest lists a file that
is gone, is not trusted.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.services import S3Service
from tests.fixtures.trainer import make_trainer_job

pytestmark = pytest.mark.integration

STEPS = 2
COUNT = 2
NAMES = [f"generated-{i:05d}.png" for i in range(COUNT)]


@pytest.fixture(scope="module")
def components(tiny_model_dir):
    from tuneforge_trainer.components import load_components

    return load_components(tiny_model_dir)


@pytest.fixture
def settings(s3: S3Service, tmp_path: Path) -> Any:
    from tuneforge.settings import Settings

    s3.make_bucket("class-cache")
    return Settings(
        home=tmp_path,
        s3_endpoint=s3.url,
        s3_access_key=s3.access_key,
        s3_secret_key=s3.secret_key,
    )


@pytest.fixture
def root() -> str:
    """A fresh cache root, as `class_images_uri` names it under the checkpoint storage."""
    return f"s3://class-cache/ckpt-{uuid.uuid4().hex[:8]}/class-images"


@pytest.fixture
def rendered(monkeypatch) -> list[list[int]]:
    from tuneforge_trainer import priors

    calls: list[list[int]] = []
    real = priors.generate_share

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(list(args[3]))
        return real(*args, **kwargs)

    monkeypatch.setattr(priors, "generate_share", counting)
    return calls


def _run(name, root, settings, components, model, data, tmp_path, **dataset) -> Any:
    """One job's class images (a fresh local cache each time, as on another node)."""
    from tuneforge_trainer.plan import WorkerPlan, job_uid
    from tuneforge_trainer.priors import class_images_on_worker
    from tuneforge_trainer.strategies import World

    job = make_trainer_job(
        "dreambooth",
        model,
        data / "instance",
        name=name,
        dataset={"numClassImages": COUNT, **dataset.pop("dataset", {})},
        dreambooth={"priorPreservation": True},
        **dataset,
    )
    plan = WorkerPlan(
        job=job.to_manifest(),
        job_uid=job_uid(job),
        model_uri=str(model),
        dataset_uri=str(data / "instance"),
        class_images_uri=root,
        cache_dir=str(tmp_path / name),
    )
    return class_images_on_worker(
        plan, World(), components, data / "instance", settings, steps=STEPS
    )


def _bytes(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in NAMES}


def _key(root: str, relative: str) -> str:
    return f"{root.removeprefix('s3://class-cache/')}/{relative}"


def _objects(s3: S3Service, root: str) -> list[str]:
    prefix = _key(root, "")
    return sorted(
        str(o.object_name)[len(prefix) :]
        for o in s3.client().list_objects("class-cache", prefix=prefix, recursive=True)
    )


def test_a_second_job_with_the_same_key_downloads_and_renders_none(
    s3, settings, root, rendered, components, tiny_model_dir, tiny_dataset_dir, tmp_path
):
    from tuneforge_trainer.class_image_cache import CLASS_IMAGES_TAG, CacheManifest
    from tuneforge_trainer.priors import class_image_tags

    args = (root, settings, components, tiny_model_dir, tiny_dataset_dir, tmp_path)
    first = _run("job-a", *args)
    assert rendered == [[0, 1]] and first.source == "generated"
    digest = first.cache.key.digest()
    objects = _objects(s3, root)
    assert f"{digest}/manifest.json" in objects
    pngs = [o.split("/") for o in objects if o.endswith(".png")]
    assert [(d, run.startswith("job-a-"), n) for d, run, n in pngs] == [
        (digest, True, name) for name in NAMES
    ]
    response = s3.client().get_object("class-cache", _key(root, f"{digest}/manifest.json"))
    manifest = CacheManifest.model_validate_json(response.read())
    response.close()
    assert manifest.key == first.cache.key and manifest.key.count == COUNT
    assert manifest.key.class_prompt == "a photo of a toy" and manifest.key.seed == 0
    assert (
        sorted(f.path.rsplit("/", 1)[1] for f in manifest.files if f.path.endswith(".png")) == NAMES
    )

    second = _run("job-b", *args)
    assert rendered == [[0, 1]], "the second job rendered nothing"
    assert second.source == "reused" and second.cache.key.digest() == digest
    assert _bytes(second.folder) == _bytes(first.folder)
    assert class_image_tags(second)[CLASS_IMAGES_TAG] == "reused"
    assert class_image_tags(first)[CLASS_IMAGES_TAG] == "generated"

    other_seed = _run("job-c", *args, training={"maxSteps": 2, "batchSize": 2, "seed": 7})
    other_prompt = _run("job-d", *args, dataset={"classPrompt": "a photo of a cup"})
    assert rendered == [[0, 1], [0, 1], [0, 1]]
    keys = {
        first.cache.key.digest(),
        other_seed.cache.key.digest(),
        other_prompt.cache.key.digest(),
    }
    assert len(keys) == 3
    assert _bytes(other_seed.folder) != _bytes(first.folder)
    assert _bytes(other_prompt.folder) != _bytes(first.folder)


def test_a_set_without_a_complete_manifest_is_rendered_again(
    s3, settings, root, rendered, components, tiny_model_dir, tiny_dataset_dir, tmp_path
):
    args = (root, settings, components, tiny_model_dir, tiny_dataset_dir, tmp_path)
    first = _run("job-a", *args)
    digest = first.cache.key.digest()
    client = s3.client()
    client.remove_object(
        "class-cache", _key(root, f"{digest}/manifest.json")
    )  # an upload interrupted before its manifest

    second = _run("job-b", *args)
    assert rendered == [[0, 1], [0, 1]] and second.source == "generated"
    assert _bytes(second.folder) == _bytes(first.folder)  # same key, same pixels (CPU)

    (listed,) = [o for o in _objects(s3, root) if "/job-b-" in o and o.endswith(NAMES[1])]
    client.remove_object("class-cache", _key(root, listed))  # manifest lists a lost file
    third = _run("job-c", *args)
    assert rendered == [[0, 1], [0, 1], [0, 1]] and third.source == "generated"
    fourth = _run("job-d", *args)
    assert rendered == [[0, 1], [0, 1], [0, 1]] and fourth.source == "reused"
