"""Validation images come from the modules the worker trains, not from a second load.

The worker loop runs in-process (world size 1); the base model is loaded once
(`load_components`), no pipeline is loaded from disk, the images are rendered with the live
(adapter-carrying) modules under the job's autocast, and rank 0 hands them to the tracker.
FSDP2 and DeepSpeed ZeRO-3 hold sharded parameters: every rank renders (on a one-member
gloo group here).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from tests.fixtures.trainer import make_trainer_job

PROMPT = "a photo of sks toy"


class _Tracker:
    """Stands in for `RunTracker`: keeps a copy of every logged folder."""

    def __init__(self, store: Path):
        self.store = store
        self.logged: list[str] = []

    def log_metrics(self, metrics: dict[str, Any], step: int) -> None:
        pass

    def log_artifacts(self, local_dir: Path, artifact_path: str) -> None:
        self.logged.append(artifact_path)
        shutil.copytree(local_dir, self.store / artifact_path)


@pytest.fixture
def watched(monkeypatch, tmp_path):
    """Counts model loads and records each attention output's (grad mode, dtype, device)."""
    import diffusers

    import tuneforge_trainer.loop as loop

    seen: dict[str, Any] = {"components": 0, "pipelines": 0, "activations": []}
    real_load = loop.load_components

    def counting_load(model_dir):
        seen["components"] += 1
        components = real_load(model_dir)
        attention = next(m for n, m in components.unet.named_modules() if n.endswith("attn1"))
        attention.register_forward_hook(
            lambda _m, _i, out: seen["activations"].append(
                (torch.is_grad_enabled(), out.dtype, out.device.type)
            )
        )
        return components

    def no_pipeline_load(*args, **kwargs):
        seen["pipelines"] += 1
        raise AssertionError("validation must not load a pipeline from disk")

    monkeypatch.setattr(loop, "load_components", counting_load)
    monkeypatch.setattr(diffusers.StableDiffusionPipeline, "from_pretrained", no_pipeline_load)
    tracker = _Tracker(tmp_path / "mlflow")
    monkeypatch.setattr(loop, "RunTracker", lambda *args: tracker)
    seen["tracker"] = tracker
    return seen


def _train(job, tmp_path: Path, context=None) -> Any:
    from tuneforge_trainer.context import LocalContext
    from tuneforge_trainer.loop import train_worker
    from tuneforge_trainer.plan import WorkerPlan, job_uid

    plan = WorkerPlan(
        job=job.to_manifest(),
        job_uid=job_uid(job),
        model_uri=job.spec.base_model.uri,
        dataset_uri=job.spec.dataset.uri,
        cache_dir=str(tmp_path / "cache"),
        tracking_uri="sqlite:///unused.db",
        run_id="run-1",
    )
    return train_worker(plan, context or LocalContext(tmp_path / "checkpoints"))


@pytest.mark.parametrize("precision", ["no", "bf16"])
def test_validation_renders_the_live_modules_once_loaded(
    tiny_model_dir, tiny_dataset_dir, tmp_path, watched, precision
):
    job = make_trainer_job(
        "lora",
        tiny_model_dir,
        tiny_dataset_dir,
        training={"learningRate": 5e-2, "mixedPrecision": precision},
        validation={"prompts": [PROMPT, "a toy"], "steps": 2, "everySteps": 1, "numImages": 1},
    )
    _train(job, tmp_path)
    assert watched["components"] == 1 and watched["pipelines"] == 0
    tracker = watched["tracker"]
    assert tracker.logged == ["validation/step-000001", "validation/step-000002"]
    for step in tracker.logged:
        names = sorted(p.name for p in (tracker.store / step).iterdir())
        assert names == ["prompt00-00.png", "prompt01-00.png", "prompts.txt"]
    rendered = [(dtype, device) for grad, dtype, device in watched["activations"] if not grad]
    expected = torch.bfloat16 if precision == "bf16" else torch.float32
    assert rendered and set(rendered) == {(expected, "cpu")}, rendered
    assert any(grad for grad, _, _ in watched["activations"]), "training forwards ran too"
    first, last = (
        np.asarray(Image.open(tracker.store / step / "prompt00-00.png"), dtype=np.float32)
        for step in tracker.logged
    )
    assert np.abs(first - last).max() > 0, "the second render must show the trained adapter"


def test_rendering_restores_training_mode_and_uses_the_models_scheduler(tiny_model_dir):
    from tuneforge_trainer.components import load_components
    from tuneforge_trainer.validation import pipeline_from_modules, rendering

    components = load_components(tiny_model_dir)
    components.unet.train()
    pipe = pipeline_from_modules(components, components.text_encoder, components.unet)
    assert pipe.unet is components.unet and pipe.text_encoder is components.text_encoder
    assert type(pipe.scheduler).__name__ == "PNDMScheduler"  # the model's scheduler_config
    job = make_trainer_job("lora", tiny_model_dir, tiny_model_dir)
    with rendering([components.unet], job.spec.training, torch.device("cpu")):
        assert not components.unet.training and not torch.is_grad_enabled()
    assert components.unet.training and torch.is_grad_enabled()


@pytest.mark.parametrize(
    ("strategy", "method", "precision"),
    [("fsdp", "lora", "bf16"), ("deepspeed", "dreambooth", "no")],
)
def test_sharded_strategies_render_on_every_rank(
    tiny_model_dir,
    tiny_dataset_dir,
    tmp_path,
    watched,
    single_process_group,
    monkeypatch,
    strategy,
    method,
    precision,
):
    import tuneforge_trainer.validation as validation

    job = make_trainer_job(
        method,
        tiny_model_dir,
        tiny_dataset_dir,
        training={"maxSteps": 1, "mixedPrecision": precision},
        resources={"strategy": strategy},
        validation={"prompts": [PROMPT], "steps": 2, "everySteps": 1},
    )
    sharded: list[bool] = []
    real = validation.params_sharded
    monkeypatch.setattr(
        validation, "params_sharded", lambda model: sharded.append(real(model)) or sharded[-1]
    )
    _train(job, tmp_path)
    assert sharded == [True], f"{strategy} parameters must be seen as sharded"
    assert real(torch.nn.Linear(1, 1)) is False
    assert watched["tracker"].logged == ["validation/step-000001"]
    assert watched["components"] == 1 and watched["pipelines"] == 0
    rendered = {dtype for grad, dtype, _ in watched["activations"] if not grad}
    assert rendered == {torch.bfloat16 if precision == "bf16" else torch.float32}
