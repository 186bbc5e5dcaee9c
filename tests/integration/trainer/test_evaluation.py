"""Evaluation, the quality gate and the model card on real services (Ray Train, S3, MLflow).

One `fit()` (~40-60 s here): a LoRA job with `spec.evaluation` on the tiny model, the tiny
random CLIP and DINO evaluators (built locally, nothing downloaded), and a `promoteIf`
minimum no random CLIP reaches (clipT 1.0). Checked: the figures per step (0 = the base model,
each validation step, the end), one grid per prompt per step through `log_image` (the base
row above this step's), the logged figure recomputed from the logged final grid, the version
registered with the alias held back, the `QualityGate` verdict in run and version tags, the
model card, the operator's reader turning the verdict into the `QualityGate` condition,
`promote` refused without `--force` and done with it, and the alias moving when
`register` gets a passing verdict for the same version.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.fixtures.trainer import make_trainer_job

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROMPTS = ["a photo of sks toy", "a sks toy on the beach"]


@pytest.fixture
def trainer_env(services_env, tmp_path, monkeypatch):
    """The services' variables, and a fresh download cache for this job."""
    monkeypatch.setenv("TUNEFORGE_TRAINER_CACHE", str(tmp_path / "trainer-cache"))
    return services_env


def _artifact_names(client, run_id: str, folder: str) -> list[str]:
    from tuneforge.settings import Settings
    from tuneforge.storage import S3Uri, minio_client

    run = client.get_run(run_id)
    uri = S3Uri.parse(run.info.artifact_uri.rstrip("/") + f"/{folder}/")
    objects = minio_client(Settings()).list_objects(uri.bucket, prefix=uri.key(""), recursive=True)
    return sorted(o.object_name.split(f"/{folder}/")[1] for o in objects)


def _download(client, run_id: str, path: str, target: Path) -> Path:
    from tuneforge.settings import Settings
    from tuneforge.storage import S3Uri, minio_client

    run = client.get_run(run_id)
    folder, _, name = path.rpartition("/")
    uri = S3Uri.parse(run.info.artifact_uri.rstrip("/") + f"/{folder}/")
    minio_client(Settings()).fget_object(uri.bucket, uri.key(name), str(target))
    return target


def test_evaluation_logs_figures_and_grids_and_the_gate_holds_back_the_alias(
    trainer_env, tiny_model_dir, tiny_dataset_dir, tmp_path
):
    import torch
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient
    from PIL import Image

    from tuneforge.api import FineTuneJobStatus, QualityGateVerdict, gate_verdict
    from tuneforge.api.status_rules import Observed, compute_status
    from tuneforge.assets.evaluators import cached_tiny_evaluators
    from tuneforge.client.client import Client
    from tuneforge.registry import AdapterRegistry
    from tuneforge.registry.register import QualityGateHeldBack
    from tuneforge.settings import Settings
    from tuneforge_operator.mlflow_reader import MlflowReader
    from tuneforge_trainer import run_job
    from tuneforge_trainer.evaluation.metrics import subject_fidelity
    from tuneforge_trainer.evaluation.models import load_evaluators
    from tuneforge_trainer.evaluation.worker import real_images
    from tuneforge_trainer.export import read_manifest
    from tuneforge_trainer.runner import register

    clip_dir, dino_dir = cached_tiny_evaluators()
    job = make_trainer_job(
        "lora",
        tiny_model_dir,
        tiny_dataset_dir,
        name="eval-lora",
        uid="uid-eval-lora",
        training={"learningRate": 5e-3},
        validation={"everySteps": 1},
        evaluation={
            "prompts": PROMPTS,
            "imagesPerPrompt": 2,
            "steps": 2,
            "clipModel": str(clip_dir),
            "dinoModel": str(dino_dir),
            "atValidationSteps": True,
        },
        output={
            "registeredModel": "eval-lora",
            "alias": "production",
            "promoteIf": {"dino": -1.0, "clipT": 1.0},
        },
    )
    result = run_job(job)
    client = MlflowClient(tracking_uri=trainer_env["MLFLOW_TRACKING_URI"])
    run = client.get_run(result.run_id)

    # Figures per step: 0 (the base model), each validation step, the end.
    for key in ("eval/dino", "eval/clipI", "eval/clipT"):
        history = client.get_metric_history(result.run_id, key)
        assert sorted(m.step for m in history) == [0, 1, 2], key
        assert all(-1.0 <= m.value <= 1.0 for m in history)

    # One grid per prompt per step, where MLflow's image slider finds them.
    images = _artifact_names(client, result.run_id, "images")
    for index in range(len(PROMPTS)):
        for step in (0, 1, 2):
            stem = f"eval~prompt{index:02d}+step+{step}+"
            assert sum(n.startswith(stem) and n.endswith(".png") for n in images) == 1
            assert sum(n.startswith(stem) and n.endswith("+compressed.webp") for n in images) == 1
    assert run.data.tags["mlflow.loggedImages"] == "true"
    grids = _artifact_names(client, result.run_id, "evaluation/grids")
    assert grids == ["prompt00.png", "prompt01.png", "prompts.txt"]
    grid = Image.open(
        _download(client, result.run_id, "evaluation/grids/prompt00.png", tmp_path / "g.png")
    )
    assert grid.size == (2 * 64, 2 * 64)  # 2 images per prompt; base row above the final row

    # The logged DINO figure is the paper's metric of the logged final images.
    evaluators = load_evaluators(
        job.spec.evaluation, tmp_path / "cache", Settings(), torch.device("cpu")
    )
    finals = []
    for index in range(len(PROMPTS)):
        path = _download(
            client,
            result.run_id,
            f"evaluation/grids/prompt{index:02d}.png",
            tmp_path / f"{index}.png",
        )
        with Image.open(path) as opened:
            finals += [opened.crop((x * 64, 64, x * 64 + 64, 128)).convert("RGB") for x in (0, 1)]
    recomputed = subject_fidelity(
        evaluators.dino_embeddings(finals),
        evaluators.dino_embeddings(real_images(tiny_dataset_dir)),
    )
    assert run.data.metrics["eval/dino"] == pytest.approx(recomputed, abs=1e-4)

    # The gate: the version is registered, the alias held back, the verdict recorded.
    assert result.model_version == "1"
    verdict = QualityGateVerdict.from_json(run.data.tags["tuneforge.quality_gate"])
    assert not verdict.passed and verdict.failed == ["clipT"]
    assert verdict.metrics["dino"] == pytest.approx(run.data.metrics["eval/dino"])
    assert set(verdict.base) == {"dino", "clipI", "clipT"}
    assert json.loads(result.quality_gate or "{}")["passed"] is False
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias("eval-lora", "production")
    # The operator reads the verdict with the run (one REST read) and the status rules show it.
    observed = asyncio.run(
        MlflowReader(trainer_env["MLFLOW_TRACKING_URI"]).observe("uid-eval-lora", "eval-lora")
    )
    assert observed.quality_gate == run.data.tags["tuneforge.quality_gate"]
    status = compute_status(FineTuneJobStatus(), Observed(generation=1, run=observed))
    condition = status.condition("QualityGate")
    assert condition is not None and condition.reason == "QualityGateFailed"
    assert condition.message.startswith("held back: clipI ")
    assert status.evaluation is not None and status.evaluation.promoted is False
    version = client.get_model_version("eval-lora", "1")
    assert QualityGateVerdict.from_json(version.tags["tuneforge.quality_gate"]) == verdict

    # The model card: description and README.md.
    assert version.description.startswith("lora adapter for ")
    assert f"Evaluation {verdict.message()}." in version.description
    assert "held back: " in version.description
    assert version.tags["tuneforge.model_card"].endswith("/model-card/README.md")
    readme = _download(
        client, result.run_id, "model-card/README.md", tmp_path / "README.md"
    ).read_text()
    assert "# eval-lora version 1" in readme and "| LoRA | rank 4" in readme
    assert f"| dino | {verdict.metrics['dino']:.4f} | {verdict.base['dino']:.4f} | -1 |" in readme
    assert "![prompt00.png](../evaluation/grids/prompt00.png)" in readme

    # promote: refused without --force, done with it.
    sdk = Client(Settings(), backend="local")
    with pytest.raises(QualityGateHeldBack, match="failed its quality gate .*--force"):
        sdk.promote("eval-lora", 1, "production")
    sdk.promote("eval-lora", 1, "staging", force=True)
    assert client.get_model_version_by_alias("eval-lora", "staging").version == "1"

    # A passing verdict for the same version moves the alias (register is idempotent).
    registry = AdapterRegistry()
    fetched = registry.fetch(registry.resolve("eval-lora/1"), tmp_path / "fetched")
    passing = gate_verdict(
        verdict.metrics, job.spec.output.promote_if.model_copy(update={"clip_t": 0.0})
    )
    assert passing.passed
    again = register(
        Settings(), result.run_id, fetched.path, read_manifest(fetched.path), job, passing
    )
    assert again.version == 1
    assert client.get_model_version_by_alias("eval-lora", "production").version == "1"
