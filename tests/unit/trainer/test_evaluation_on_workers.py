"""Evaluation on a worker (in-process, world size 1) with the tiny model and tiny evaluators.

The step-0 images are the base model's: the "before" row of the final grid matches what a
plain pipeline loaded from disk renders for the same prompts and seeds. The logged figures
are the metrics of the images logged beside them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.fixtures.assets import load_tiny_pipeline
from tests.fixtures.trainer import make_trainer_job, worker_plan

PROMPTS = ["a photo of sks toy", "a sks toy on the beach"]


class _Tracker:
    """Stands in for `RunTracker` (MLflow is covered by tests/integration/trainer/test_evaluation.py)."""

    def __init__(self) -> None:
        self.metrics: dict[int, dict[str, float]] = {}
        self.images: dict[tuple[str, int], Any] = {}
        self.folders: dict[str, list[str]] = {}

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        figures = {key: value for key, value in metrics.items() if key.startswith("eval/")}
        if figures:
            self.metrics.setdefault(step, {}).update(figures)

    def log_image(self, image: Any, key: str, step: int) -> None:
        self.images[(key, step)] = image.copy()

    def log_artifacts(self, local_dir: Path, artifact_path: str) -> None:
        self.folders[artifact_path] = sorted(p.name for p in local_dir.iterdir())


def test_worker_evaluates_base_and_result_and_logs_grids(
    tiny_model_dir, tiny_dataset_dir, tmp_path, monkeypatch
):
    import tuneforge_trainer.loop as loop
    from tuneforge.assets.evaluators import cached_tiny_evaluators
    from tuneforge.settings import Settings
    from tuneforge_trainer.context import LocalContext
    from tuneforge_trainer.evaluation.metrics import subject_fidelity
    from tuneforge_trainer.evaluation.models import load_evaluators
    from tuneforge_trainer.evaluation.worker import real_images

    clip_dir, dino_dir = cached_tiny_evaluators()
    tracker = _Tracker()
    monkeypatch.setattr(loop, "RunTracker", lambda *args: tracker)
    job = make_trainer_job(
        "lora",
        tiny_model_dir,
        tiny_dataset_dir,
        training={"learningRate": 5e-3},
        evaluation={
            "prompts": PROMPTS,
            "imagesPerPrompt": 2,
            "steps": 2,
            "guidanceScale": 1.0,
            "metrics": ["dino", "clipT"],
            "clipModel": str(clip_dir),
            "dinoModel": str(dino_dir),
        },
    )
    plan = worker_plan(job, tmp_path).model_copy(update={"tracking_uri": "x", "run_id": "r"})
    loop.train_worker(plan, LocalContext(tmp_path / "checkpoints"), Settings())

    # Before training and at the end only (no atValidationSteps); only the asked metrics.
    assert sorted(tracker.metrics) == [0, 2]
    assert set(tracker.metrics[0]) == set(tracker.metrics[2]) == {"eval/dino", "eval/clipT"}
    assert sorted(tracker.images) == [(f"eval/prompt{i:02d}", s) for i in (0, 1) for s in (0, 2)]
    assert tracker.images[("eval/prompt00", 0)].size == (128, 64)  # step 0: the base row only
    final = tracker.images[("eval/prompt00", 2)]
    assert final.size == (128, 128)  # base row above the final row
    assert tracker.folders["evaluation/grids"] == ["prompt00.png", "prompt01.png", "prompts.txt"]

    # The "before" row is the base model's own output for the same prompt and seed.
    pipe = load_tiny_pipeline(tiny_model_dir)
    base = pipe(
        PROMPTS[0],
        num_inference_steps=2,
        guidance_scale=1.0,
        num_images_per_prompt=2,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(0),
    ).images
    before_row = np.asarray(final.crop((0, 0, 128, 64)), dtype=np.int16)
    expected = np.concatenate([np.asarray(image, dtype=np.int16) for image in base], axis=1)
    assert np.abs(before_row - expected).max() <= 2
    after_row = np.asarray(final.crop((0, 64, 128, 128)), dtype=np.int16)
    assert np.abs(after_row - before_row).max() > 0  # training changed the images

    # The logged DINO figure is the metric of the logged final images.
    spec = job.spec.evaluation
    evaluators = load_evaluators(spec, tmp_path / "cache", Settings(), torch.device("cpu"))
    finals = [
        tracker.images[(f"eval/prompt{i:02d}", 2)].crop((x, 64, x + 64, 128))
        for i in (0, 1)
        for x in (0, 64)
    ]
    expected_dino = subject_fidelity(
        evaluators.dino_embeddings(finals),
        evaluators.dino_embeddings(real_images(tiny_dataset_dir)),
    )
    assert tracker.metrics[2]["eval/dino"] == pytest.approx(expected_dino, abs=1e-5)
    assert tracker.metrics[0]["eval/dino"] != tracker.metrics[2]["eval/dino"]
