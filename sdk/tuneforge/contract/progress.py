"""The trainer's machine-readable stdout lines: their format and their parser.

The trainer prints, beside its MLflow metrics, one line per logged step and one when it ends.
Each line is a prefix and one JSON object, so a parser finds it behind Ray's
`(RayTrainWorker pid=…)` prefix or a logger's timestamp:

    tuneforge-progress {"event": "progress", "step": 3, "total_steps": 10, "loss": 0.12, ...}
    tuneforge-result {"event": "result", "run_id": "…", "model_name": "dogs", "model_version": "3"}

`format_progress` and `format_result` write them (trainer); `parse_progress_line` and
`parse_result_line` read them (SDK, CLI, tests). The parser also accepts camelCase keys and
`key=value` lines with a `step` key (`step=3/10 loss=0.12`), so logs from other tools that
follow that convention show progress too; any other line yields None.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

PROGRESS_PREFIX = "tuneforge-progress "
RESULT_PREFIX = "tuneforge-result "


def format_progress(
    step: int,
    total_steps: int,
    loss: float,
    lr: float,
    images_per_s: float,
    eta_seconds: float | None,
) -> str:
    """One progress line (no newline)."""
    return _format(
        PROGRESS_PREFIX,
        "progress",
        step=step,
        total_steps=total_steps,
        loss=round(loss, 6),
        lr=lr,
        images_per_s=round(images_per_s, 3),
        eta_seconds=eta_seconds,
    )


def format_result(**fields: Any) -> str:
    """The closing result line (no newline): run id, registered model and version, …"""
    return _format(RESULT_PREFIX, "result", **fields)


def _format(prefix: str, event: str, **fields: Any) -> str:
    return prefix + json.dumps({"event": event, **fields}, sort_keys=False)


def parse_event(line: str) -> dict[str, Any] | None:
    """The JSON object of a progress or result line, or None for any other line."""
    for prefix in (PROGRESS_PREFIX, RESULT_PREFIX):
        start = line.find(prefix)
        if start >= 0:
            try:
                data = json.loads(line[start + len(prefix) :])
            except ValueError:
                return None
            return data if isinstance(data, dict) else None
    return None


_KEY_VALUE = re.compile(r"(?<![\w.])([A-Za-z_][A-Za-z0-9_]*)=(\S+)")
_STEP_OF_TOTAL = re.compile(r"^(\d+)/(\d+)$")

_TOTAL_KEYS = ("total_steps", "totalSteps", "max_steps", "maxSteps", "total")
_LOSS_KEYS = ("loss", "train_loss")
_RATE_KEYS = ("images_per_s", "imagesPerS", "images_per_second", "img_per_s")
_ETA_KEYS = ("eta_seconds", "etaSeconds", "eta_s", "eta")


@dataclass(frozen=True)
class TrainingProgress:
    """One progress observation of a training run."""

    step: int
    """Optimizer steps done."""
    total_steps: int | None = None
    """Optimizer steps in the job, when known."""
    loss: float | None = None
    """Latest training loss."""
    images_per_s: float | None = None
    """Training throughput."""
    eta_seconds: float | None = None
    """Estimated seconds until training ends."""

    @property
    def percent(self) -> int:
        """Completion in whole percent (0 when the total is unknown)."""
        if not self.total_steps:
            return 0
        return max(0, min(100, int(100 * self.step / self.total_steps)))


def parse_progress_line(line: str) -> TrainingProgress | None:
    """The progress in one line of trainer output, or None for an ordinary log line."""
    text = line.strip()
    if not text or "step" not in text:
        return None
    brace = text.find("{")
    if brace >= 0 and text.endswith("}"):
        try:
            data = json.loads(text[brace:])
        except ValueError:
            data = None
        if isinstance(data, dict):
            if data.get("event", "progress") != "progress":
                return None
            return _from_mapping(data)
    pairs = {key: value.rstrip(",;") for key, value in _KEY_VALUE.findall(text)}
    return _from_mapping(pairs) if "step" in pairs else None


@dataclass(frozen=True)
class TrainingResult:
    """What the trainer reports when it finishes: its MLflow run and registered version."""

    run_id: str | None = None
    """MLflow run id."""
    model_name: str | None = None
    """Registered model name."""
    model_version: str | None = None
    """Registered version."""
    quality_gate: str | None = None
    """The quality-gate verdict (JSON), when the job evaluated its result."""


def parse_result_line(line: str) -> TrainingResult | None:
    """The trainer's `tuneforge-result {...}` line, or None for any other line."""
    start = line.find(RESULT_PREFIX.strip())
    brace = line.find("{", start) if start >= 0 else -1
    if brace < 0:
        return None
    try:
        data = json.loads(line[brace:])
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None

    def text(*keys: str) -> str | None:
        for key in keys:
            value = data.get(key)
            if value is not None and not isinstance(value, (dict, list)):
                return str(value)
        return None

    return TrainingResult(
        run_id=text("run_id", "runId"),
        model_name=text("model_name", "modelName", "registered_model", "registeredModel"),
        model_version=text("model_version", "modelVersion", "version"),
        quality_gate=text("quality_gate", "qualityGate"),
    )


def _from_mapping(data: dict[str, Any]) -> TrainingProgress | None:
    if "step" not in data:
        return None
    raw_step = data["step"]
    total = _first_number(data, _TOTAL_KEYS)
    if isinstance(raw_step, str) and (match := _STEP_OF_TOTAL.match(raw_step)):
        step = int(match.group(1))
        total = float(match.group(2))
    else:
        step_number = _number(raw_step)
        if step_number is None:
            return None
        step = int(step_number)
    if step < 0:
        return None
    return TrainingProgress(
        step=step,
        total_steps=int(total) if total is not None and total > 0 else None,
        loss=_first_number(data, _LOSS_KEYS),
        images_per_s=_first_number(data, _RATE_KEYS),
        eta_seconds=_first_number(data, _ETA_KEYS),
    )


def _first_number(data: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        if key in data:
            value = _number(data[key])
            if value is not None:
                return value
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.rstrip("s"))
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None
