"""The trainer's progress and result lines: written by `format_*`, read by `parse_*`."""

from __future__ import annotations

import pytest

from tuneforge.contract.progress import (
    PROGRESS_PREFIX,
    RESULT_PREFIX,
    TrainingProgress,
    TrainingResult,
    format_progress,
    format_result,
    parse_event,
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


def test_the_trainers_own_line_format_parses() -> None:
    line = (
        '(RayTrainWorker pid=9) tuneforge-progress {"event": "progress", "step": 2, '
        '"total_steps": 4, "loss": 0.5, "lr": 0.0001, "images_per_s": 3.2, "eta_seconds": null}'
    )
    assert parse_progress_line(line) == TrainingProgress(
        step=2, total_steps=4, loss=0.5, images_per_s=3.2
    )


def test_result_lines_are_not_progress_but_parse_as_results() -> None:
    line = (
        'tuneforge-result {"event": "result", "step": 4, "run_id": "abc", "model_name": "m", '
        '"model_version": 3}'
    )
    assert parse_progress_line(line) is None
    assert parse_result_line(line) == TrainingResult(
        run_id="abc", model_name="m", model_version="3"
    )
    assert parse_result_line("tuneforge-result not json") is None
    assert parse_result_line("step=3") is None


def test_a_formatted_progress_line_parses_back_behind_a_log_prefix() -> None:
    line = format_progress(
        step=5, total_steps=20, loss=0.1234567, lr=1e-4, images_per_s=2.34567, eta_seconds=30.0
    )
    assert line.startswith(PROGRESS_PREFIX) and "\n" not in line
    assert parse_progress_line(f"(RayTrainWorker pid=7) {line}") == TrainingProgress(
        step=5, total_steps=20, loss=0.123457, images_per_s=2.346, eta_seconds=30.0
    )


def test_a_formatted_result_line_parses_back() -> None:
    line = format_result(run_id="r1", model_name="dogs", model_version="4")
    assert line.startswith(RESULT_PREFIX)
    assert parse_progress_line(line) is None
    assert parse_result_line(f"2026-01-01 INFO {line}") == TrainingResult(
        run_id="r1", model_name="dogs", model_version="4"
    )


def test_parse_event_gives_the_json_of_either_line_and_nothing_else() -> None:
    progress = format_progress(1, 2, 0.5, 1e-3, 1.0, None)
    assert parse_event(progress) == {
        "event": "progress",
        "step": 1,
        "total_steps": 2,
        "loss": 0.5,
        "lr": 1e-3,
        "images_per_s": 1.0,
        "eta_seconds": None,
    }
    assert parse_event("x " + format_result(run_id="r")) == {"event": "result", "run_id": "r"}
    assert parse_event("step=3 loss=0.1") is None
    assert parse_event(PROGRESS_PREFIX + "{not json") is None
    assert parse_event(RESULT_PREFIX + "[1, 2]") is None
