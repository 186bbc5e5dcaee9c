"""The whole trainer on real services: Ray Train (2 workers), SeaweedFS S3 and `mlflow server`.

Each test is one or two `fit()` calls (~40-60 s each here), so assertions are combined per
fit: the method trains 2 steps on 2 workers with a strategy, its dataset comes from S3, its
checkpoints go to S3 through Ray Train's storage, it registers one MLflow model version,
and the registered files (fetched back from the registry) load into a plain
`StableDiffusionPipeline` that renders something different from the base model.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.fixtures.assets import load_tiny_pipeline
from tests.fixtures.trainer import make_trainer_job, render_tiny

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROMPT = "a photo of sks toy"


@pytest.fixture(scope="module")
def s3_dataset(services_env, s3, tiny_dataset_dir) -> dict[str, str]:
    """The tiny dataset uploaded twice: whole (with class images) and instance images only."""
    from tuneforge.settings import Settings
    from tuneforge.storage import ensure_bucket, upload_dir

    settings = Settings()
    ensure_bucket("datasets", settings)
    upload_dir(tiny_dataset_dir, "s3://datasets/toys", settings)
    upload_dir(tiny_dataset_dir / "instance", "s3://datasets/toys-instance-only", settings)
    return {"full": "s3://datasets/toys", "instance_only": "s3://datasets/toys-instance-only"}


@pytest.fixture(scope="module")
def trainer_env(services_env, tmp_path_factory, monkeypatch_module=None):
    """A fresh download cache for this module's jobs (kept apart from other suites)."""
    import os

    cache = tmp_path_factory.mktemp("trainer-cache")
    previous = os.environ.get("TUNEFORGE_TRAINER_CACHE")
    os.environ["TUNEFORGE_TRAINER_CACHE"] = str(cache)
    yield services_env
    if previous is None:
        os.environ.pop("TUNEFORGE_TRAINER_CACHE", None)
    else:
        os.environ["TUNEFORGE_TRAINER_CACHE"] = previous


def _fetch(result, tmp_path: Path):
    from tuneforge.registry import AdapterRegistry

    registry = AdapterRegistry()
    resolved = registry.resolve(f"{result.model_name}/{result.model_version}")
    return registry.fetch(resolved, tmp_path / "fetched")


def _versions(name: str) -> list[str]:
    from mlflow.tracking import MlflowClient

    from tuneforge.settings import Settings

    uri = Settings().mlflow_tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return [v.version for v in client.search_model_versions(f"name = '{name}'")]


def _metric_steps(run_id: str, key: str) -> list[int]:
    from mlflow.tracking import MlflowClient

    from tuneforge.settings import Settings

    client = MlflowClient(tracking_uri=Settings().mlflow_tracking_uri)
    return [
        m.step for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.timestamp)
    ]


def _validation_files(run_id: str) -> list[str]:
    """The run's `validation/` artifacts (S3 keys below it)."""
    from mlflow.tracking import MlflowClient

    from tuneforge.settings import Settings
    from tuneforge.storage import S3Uri, minio_client

    run = MlflowClient(tracking_uri=Settings().mlflow_tracking_uri).get_run(run_id)
    artifacts = S3Uri.parse(run.info.artifact_uri.rstrip("/") + "/validation/")
    return sorted(
        o.object_name.split("/validation/")[1]
        for o in minio_client().list_objects(
            artifacts.bucket, prefix=artifacts.key(""), recursive=True
        )
    )


def test_lora_ddp_from_s3_registers_a_loadable_version(
    trainer_env, s3_dataset, tiny_model_dir, tmp_path
):
    from mlflow.tracking import MlflowClient

    from tuneforge_trainer import run_job

    job = make_trainer_job(
        "lora",
        tiny_model_dir,
        s3_dataset["full"],
        name="ray-lora",
        uid="uid-ray-lora",
        training={"learningRate": 5e-3},
        lora={"rank": 4, "alpha": 8.0, "trainTextEncoder": True},
        resources={"workers": 2, "strategy": "ddp"},
        validation={"prompts": [PROMPT], "steps": 2, "everySteps": 1},
        output={"registeredModel": "ray-lora", "alias": "candidate"},
    )
    result = run_job(job)
    assert result.steps == 2 and result.model_version == "1"
    client = MlflowClient(tracking_uri=trainer_env["MLFLOW_TRACKING_URI"])
    run = client.get_run(result.run_id)
    assert run.data.tags["tuneforge.job_uid"] == "uid-ray-lora"
    assert run.data.params["lora.alpha"] == "8.0" and run.info.status == "FINISHED"
    assert {"loss", "lr", "step", "images_per_s"} <= set(run.data.metrics)
    assert _metric_steps(result.run_id, "loss") == [1, 2]
    assert _validation_files(result.run_id) == [
        f"step-00000{s}/{f}" for s in (1, 2) for f in ("prompt00-00.png", "prompts.txt")
    ]
    assert client.get_model_version_by_alias("ray-lora", "candidate").version == "1"

    fetched = _fetch(result, tmp_path)
    assert fetched.manifest.lora is not None and fetched.manifest.lora.alpha == 8.0
    assert fetched.manifest.job_uid == "uid-ray-lora"
    pipe = load_tiny_pipeline(tiny_model_dir)
    base = render_tiny(pipe)
    pipe.load_lora_weights(str(fetched.path))
    assert np.abs(render_tiny(pipe) - base).max() > 1e-4


def test_textual_inversion_fsdp_registers_only_new_rows(
    trainer_env, s3_dataset, tiny_model_dir, tmp_path
):
    from tuneforge_trainer import run_job

    job = make_trainer_job(
        "textualInversion",
        tiny_model_dir,
        s3_dataset["full"],
        name="ray-ti",
        uid="uid-ray-ti",
        training={"learningRate": 5e-2},
        textualInversion={
            "placeholderToken": "<sks-toy>",
            "initializerToken": "ball",
            "numVectors": 2,
        },
        resources={"workers": 2, "strategy": "fsdp"},
        validation={"prompts": ["a photo of <sks-toy>"], "steps": 2},
        output={"registeredModel": "ray-ti"},
    )
    result = run_job(job)
    # FSDP2 shards the parameters: both ranks rendered in lockstep, rank 0 logged the images.
    assert _validation_files(result.run_id) == [
        "step-000002/prompt00-00.png",
        "step-000002/prompts.txt",
    ]
    fetched = _fetch(result, tmp_path)
    assert fetched.manifest.embeddings is not None
    assert fetched.manifest.embeddings.tokens == ["<sks-toy>"] and fetched.manifest.steps == 2
    pipe = load_tiny_pipeline(tiny_model_dir)
    base_rows = pipe.text_encoder.get_input_embeddings().weight.detach().clone()
    init_id = pipe.tokenizer.encode("ball", add_special_tokens=False)[0]
    pipe.load_textual_inversion(str(fetched.path / "learned_embeds.safetensors"))
    rows = pipe.text_encoder.get_input_embeddings().weight.detach()
    assert torch.equal(rows[: base_rows.shape[0]], base_rows)
    ids = pipe.tokenizer.convert_tokens_to_ids(["<sks-toy>", "<sks-toy>_1"])
    trained = render_tiny(pipe, "a photo of <sks-toy>")
    with torch.no_grad():
        rows[ids] = base_rows[init_id]
    assert np.abs(trained - render_tiny(pipe, "a photo of <sks-toy>")).max() > 1e-4


def test_dreambooth_deepspeed_generates_class_images_and_registers(
    trainer_env, s3_dataset, tiny_model_dir, tmp_path
):
    from mlflow.tracking import MlflowClient

    from tuneforge.settings import Settings
    from tuneforge.storage import minio_client
    from tuneforge_trainer import run_job
    from tuneforge_trainer.class_image_cache import CLASS_IMAGES_KEY_TAG, CLASS_IMAGES_TAG
    from tuneforge_trainer.validation import load_pipeline_with_adapter

    job = make_trainer_job(
        "dreambooth",
        tiny_model_dir,
        s3_dataset["instance_only"],
        name="ray-db",
        uid="uid-ray-db",
        dataset={"classPrompt": "a photo of a toy (ray-db)"},  # a key no other test renders
        dreambooth={"priorPreservation": True},
        resources={"workers": 2, "strategy": "deepspeed"},
        output={"registeredModel": "ray-db"},
    )
    result = run_job(job)
    fetched = _fetch(result, tmp_path)
    assert fetched.manifest.method == "dreambooth" and fetched.manifest.files == [
        "unet.safetensors"
    ]
    uri = Settings().mlflow_tracking_uri
    tags = MlflowClient(tracking_uri=uri).get_run(result.run_id).data.tags
    assert tags[CLASS_IMAGES_TAG] == "generated"
    digest = tags[CLASS_IMAGES_KEY_TAG]
    client = minio_client()
    prefix = f"runs/class-images/{digest}/"
    stored = [
        str(o.object_name)[len(prefix) :]
        for o in client.list_objects("tuneforge-checkpoints", prefix=prefix, recursive=True)
    ]
    assert "manifest.json" in stored
    generated = sorted(name for name in stored if "/generated-" in name)
    assert [name.rsplit("/", 1)[1] for name in generated] == [
        "generated-00000.json",
        "generated-00000.png",
        "generated-00001.json",
        "generated-00001.png",
    ]
    # Each worker rendered its share (image i on rank i % 2), seeded by the image index.
    records = {}
    for name in generated:
        if name.endswith(".json"):
            response = client.get_object("tuneforge-checkpoints", prefix + name)
            record = json.loads(response.read())
            response.close()
            records[record["index"]] = (record["rank"], record["world_size"], record["seed"])
    seed = job.spec.training.seed
    assert records == {0: (0, 2, seed), 1: (1, 2, seed + 1)}
    pipe = load_pipeline_with_adapter(Path(tiny_model_dir), fetched.path)
    assert np.abs(render_tiny(pipe) - render_tiny(load_tiny_pipeline(tiny_model_dir))).max() > 1e-4


#: Ray Train V2's controller state, rewritten each time it registers a checkpoint.
RAY_CHECKPOINT_SNAPSHOT = "checkpoint_manager_snapshot.json"
#: Long enough that the kill lands after the first registered checkpoint and before the end.
KILL_RUN_STEPS = 32


def _registered_checkpoint(client: Any, prefix: str) -> bool:
    """Whether Ray Train's controller has registered a checkpoint of the run.

    A checkpoint folder in S3 is not enough: a worker uploads it, then the controller
    registers it when it next polls the workers and writes its snapshot. A worker killed in
    between restarts the group from the last registered checkpoint (from scratch, here).
    """
    from minio.error import S3Error

    try:
        response = client.get_object("tuneforge-checkpoints", prefix + RAY_CHECKPOINT_SNAPSHOT)
    except S3Error as error:  # no bucket or no snapshot yet: the run has not registered one
        if error.code in ("NoSuchBucket", "NoSuchKey"):
            return False
        raise
    try:
        snapshot = json.loads(response.read())
    finally:
        response.close()
        response.release_conn()
    return snapshot.get("latest_checkpoint_result") is not None


def _descends_from(process: Any, ancestor: int) -> bool:
    """Whether `ancestor` is among the process's parents (False once it has gone)."""
    import psutil

    try:
        return any(parent.pid == ancestor for parent in process.parents())
    except psutil.Error:
        return False


def _kill_a_worker_after_first_checkpoint(prefix: str, stop: threading.Event, killed: list[int]):
    """Once Ray Train has registered the run's first checkpoint, SIGKILL one training worker."""
    import psutil

    from tuneforge.storage import minio_client

    client = minio_client()
    this_session = os.getpid()  # only this test session's Ray: never another run's workers
    while not stop.is_set():
        if _registered_checkpoint(client, prefix):
            for process in psutil.process_iter(["cmdline"]):
                cmdline = " ".join(process.info["cmdline"] or [])
                if "RayTrainWorker" in cmdline and _descends_from(process, this_session):
                    process.kill()
                    killed.append(process.pid)
                    return
        time.sleep(0.1)


def test_killed_worker_resumes_from_checkpoint_and_registers_once(
    trainer_env, s3_dataset, tiny_model_dir
):
    from tuneforge_trainer import run_job
    from tuneforge_trainer.plan import run_name

    job = make_trainer_job(
        "lora",
        tiny_model_dir,
        s3_dataset["full"],
        name="ray-kill",
        uid="uid-ray-kill",
        training={"maxSteps": KILL_RUN_STEPS, "checkpointEverySteps": 4},
        resources={"workers": 2, "strategy": "ddp"},
        output={"registeredModel": "ray-kill"},
    )
    stop, killed = threading.Event(), []
    watcher = threading.Thread(
        target=_kill_a_worker_after_first_checkpoint,
        args=(f"runs/{run_name(job)}/", stop, killed),
        daemon=True,
    )
    watcher.start()
    try:
        result = run_job(job)
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert killed, "no worker was killed: training finished before a checkpoint was registered?"
    assert result.steps == KILL_RUN_STEPS
    steps = _metric_steps(result.run_id, "step")
    assert steps[-1] == KILL_RUN_STEPS
    assert sorted(set(steps)) == list(range(1, KILL_RUN_STEPS + 1))
    # A killed worker stops the whole group, so training restarted: from a registered
    # checkpoint (step 4, 8, ...), never from scratch. Steps after that checkpoint that the
    # killed attempt had already trained are trained again; a kill that lands just after a
    # checkpoint repeats none.
    repeated = sorted({s for s in steps if steps.count(s) > 1})
    if repeated:
        assert repeated[0] > 1 and (repeated[0] - 1) % 4 == 0, (
            f"not resumed from a checkpoint: {steps}"
        )

    again = run_job(job)  # the same job again: resumes at step 16, registers nothing new
    assert (again.run_id, again.model_version) == (result.run_id, result.model_version)
    assert _versions("ray-kill") == [result.model_version]
