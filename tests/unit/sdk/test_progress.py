"""Parsing the trainer's progress lines and estimating the time left."""

from __future__ import annotations

import pytest

from tuneforge.client.progress import (
    EtaEstimator,
    TrainingProgress,
    TrainingResult,
    parse_progress_line,
    parse_result_line,
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            '{"event": "progress", "step": 3, "total_steps": 10, "loss": 0.25, "images_per_s": 4.0}',
            TrainingProgress(step=3, total_steps=10, loss=0.25, images_per_s=4.0),
        ),
        (
            '(RayTrainWorker pid=1234) {"step": 7, "totalSteps": 20, "loss": "0.5"}',
            TrainingProgress(step=7, total_steps=20, loss=0.5),
        ),
        (
            "progress step=3/10 loss=0.1234 images_per_s=5.5 eta_s=12.0",
            TrainingProgress(
                step=3, total_steps=10, loss=0.1234, images_per_s=5.5, eta_seconds=12.0
            ),
        ),
        (
            "2026-01-01 12:00:00 INFO tuneforge_trainer: step=4 total_steps=8 loss=1e-2,",
            TrainingProgress(step=4, total_steps=8, loss=0.01),
        ),
        ("step=2", TrainingProgress(step=2)),
    ],
)
def test_progress_lines_in_several_shapes_parse(line: str, expected: TrainingProgress) -> None:
    assert parse_progress_line(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "",
        "Loading pipeline components...",
        "warming up: stepping through the schedule",
        '{"event": "started", "job": "x"}',
        "step=abc loss=1",
        "step=-1",
        "max_step=5 loss=0.1",  # `step` must be its own key
        '{"step": true}',
    ],
)
def test_ordinary_log_lines_are_not_progress(line: str) -> None:
    assert parse_progress_line(line) is None


def test_non_finite_loss_is_dropped_but_the_step_is_kept() -> None:
    assert parse_progress_line("step=3 loss=nan") == TrainingProgress(step=3)


def test_percent_is_clamped_and_zero_without_total() -> None:
    assert TrainingProgress(step=5, total_steps=10).percent == 50
    assert TrainingProgress(step=15, total_steps=10).percent == 100
    assert TrainingProgress(step=5).percent == 0


def test_eta_comes_from_the_recent_step_rate() -> None:
    estimator = EtaEstimator()
    first = estimator.observe(TrainingProgress(step=0, total_steps=10), now=100.0)
    assert first.eta_seconds is None  # one sample gives no rate
    later = estimator.observe(TrainingProgress(step=4, total_steps=10), now=108.0)
    assert later.eta_seconds == pytest.approx(12.0)  # 2 s/step, 6 steps left


def test_eta_reported_by_the_trainer_wins_and_restarts_reset_the_rate() -> None:
    estimator = EtaEstimator()
    estimator.observe(TrainingProgress(step=0, total_steps=10), now=0.0)
    reported = estimator.observe(TrainingProgress(step=5, total_steps=10, eta_seconds=1.0), now=5.0)
    assert reported.eta_seconds == 1.0
    restarted = estimator.observe(TrainingProgress(step=2, total_steps=10), now=6.0)
    assert restarted.eta_seconds is None  # the old samples were dropped
    resumed = estimator.observe(TrainingProgress(step=4, total_steps=10), now=10.0)
    assert resumed.eta_seconds == pytest.approx(12.0)


def test_the_trainers_own_line_format_parses() -> None:
    line = (
        '(RayTrainWorker pid=9) tuneforge-progress {"event": "progress", "step": 2, '
        '"total_steps": 4, "loss": 0.5, "lr": 0.0001, "images_per_s": 3.2, "eta_seconds": null}'
    )
    assert parse_progress_line(line) == TrainingProgress(
        step=2, total_steps=4, loss=0.5, images_per_s=3.2
    )


def test_result_lines_are_not_progress_but_parse_as_results() -> None:
    line = 'tuneforge-result {"event": "result", "step": 4, "run_id": "abc", "model_name": "m", "model_version": 3}'
    assert parse_progress_line(line) is None
    assert parse_result_line(line) == TrainingResult(
        run_id="abc", model_name="m", model_version="3"
    )
    assert parse_result_line("tuneforge-result not json") is None
    assert parse_result_line("step=3") is None
