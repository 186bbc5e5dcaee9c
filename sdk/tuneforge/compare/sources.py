"""What `tuneforge compare` compares: jobs and registered versions, resolved to MLflow runs.

A JOB is a FineTuneJob (embedded or on a cluster) whose `status.mlflow` names its run (or the
version it registered); `NAME/VERSION` (or `NAME@ALIAS`) is a registered model version, whose
source run holds the figures. From each run: the metric histories (`loss`, `eval/dino`,
`eval/clipI`, `eval/clipT`), the prompts (`evaluation/grids/prompts.txt`) and, per prompt,
the evaluation grid logged at step 0 (the base model, the "before") and at the last step.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tuneforge.api import EvalMetric, FineTuneJob
from tuneforge.api.evaluation import GRIDS_ARTIFACT
from tuneforge.compare.artifacts import RunArtifacts
from tuneforge.contract import AdapterRef, Metric, Tag
from tuneforge.errors import TuneForgeError
from tuneforge.registry.fetch import resolve_adapter
from tuneforge.registry.mlflow_store import NOT_FOUND_CODES, MlflowStore, import_mlflow

JobGetter = Callable[[str], FineTuneJob]
"""Reads a job by name (`Client.get`): raises JobNotFoundError for an unknown one."""

EVAL_IMAGE_KEY = "eval~prompt"
"""How `log_image(key="eval/promptNN")` names its files under `images/`."""
_IMAGE_FILE = re.compile(r"^eval~prompt(\d+)\+step\+(\d+)\+.*(?<!\+compressed)\.png$")
CURVE_KEYS = (Metric.LOSS, *(m.mlflow_key for m in EvalMetric))
"""The metric histories a report draws."""


class CompareError(TuneForgeError):
    """A job or version cannot be compared (no run, no evaluation), or the report not written."""


@dataclass(frozen=True)
class Point:
    """One logged value of a metric."""

    step: int
    value: float


@dataclass(frozen=True)
class RunData:
    """Everything a report shows of one job or version."""

    ref: str
    """The reference as given (`my-job`, `toy/3`)."""
    label: str
    """How the report names it: `job my-job`, `toy/3`."""
    run_id: str
    method: str = ""
    """Training method (`lora`, `dreambooth`, `textualInversion`), when the run says."""
    base_model: str = ""
    """Base model URI, when the run says."""
    steps: int = 0
    """Last training step logged."""
    prompts: tuple[str, ...] = ()
    """Evaluation prompts, in logged order."""
    histories: dict[str, list[Point]] = field(default_factory=dict)
    """Metric key (`loss`, `eval/dino`, …) → its values by step."""
    final_grids: dict[int, bytes] = field(default_factory=dict)
    """Prompt index → PNG of the grid logged at the last evaluated step."""
    base_grids: dict[int, bytes] = field(default_factory=dict)
    """Prompt index → PNG of the grid logged at step 0 (the base model's images)."""

    def final(self, metric: EvalMetric) -> float | None:
        """The metric's value at its last logged step."""
        history = self.histories.get(metric.mlflow_key) or []
        return max(history, key=lambda p: p.step).value if history else None

    def before(self, metric: EvalMetric) -> float | None:
        """The base model's value (step 0), when logged."""
        return next(
            (p.value for p in self.histories.get(metric.mlflow_key, []) if p.step == 0), None
        )


@dataclass(frozen=True)
class ResolvedRef:
    """A reference and the MLflow run it names."""

    ref: str
    label: str
    run_id: str


def is_version_ref(ref: str) -> bool:
    """`NAME/VERSION` or `NAME@ALIAS` (job names never hold `/` or `@`)."""
    return "/" in ref or "@" in ref


def resolve_ref(ref: str, store: MlflowStore, get_job: JobGetter) -> ResolvedRef:
    """The run of a job name or a registered version; the library's not-found errors otherwise."""
    if is_version_ref(ref):
        parsed = AdapterRef.parse(ref)
        if parsed.version is None and parsed.alias is None:
            raise CompareError(f"{ref!r}: give a version (NAME/VERSION) or an alias (NAME@ALIAS)")
        resolved = resolve_adapter(store, parsed)
        if not resolved.run_id:
            raise CompareError(f"version {resolved.name}/{resolved.version} names no MLflow run")
        return ResolvedRef(ref, f"{resolved.name}/{resolved.version}", resolved.run_id)
    job = get_job(ref)
    mlflow = job.status.mlflow if job.status is not None else None
    run_id = mlflow.run_id if mlflow is not None else None
    if not run_id and mlflow is not None and mlflow.model_name and mlflow.model_version:
        version = resolve_adapter(store, AdapterRef.of(mlflow.model_name, mlflow.model_version))
        run_id = version.run_id
    if not run_id:
        from tuneforge.client.state import JobState, job_state

        state = job_state(job)
        hint = (
            "it failed before logging to MLflow (`tuneforge describe " + ref + "`)"
            if state == JobState.FAILED
            else "compare it once it has trained (`tuneforge wait " + ref + "`)"
        )
        raise CompareError(f"job {ref!r} ({state.value}) names no MLflow run: {hint}")
    return ResolvedRef(ref, f"job {ref}", run_id)


def read_run(resolved: ResolvedRef, store: MlflowStore) -> RunData:
    """The figures, prompts and grids of a resolved run; CompareError without evaluation."""
    import_mlflow()
    from mlflow.exceptions import MlflowException

    with store.client() as client:
        try:
            run = client.get_run(resolved.run_id)
        except MlflowException as error:
            if error.error_code not in NOT_FOUND_CODES:
                raise
            raise CompareError(
                f"{resolved.label}: MLflow run {resolved.run_id} not found in {store.tracking_uri}"
            ) from None
        if not any(m.mlflow_key in run.data.metrics for m in EvalMetric):
            raise CompareError(
                f"{resolved.label} (run {resolved.run_id}) has no evaluation figures: its job ran "
                "without spec.evaluation; add `evaluation: {}` to the job's spec (docs/evaluation.md) "
                "and train it again"
            )
        histories = {
            key: sorted(
                (
                    Point(int(m.step), float(m.value))
                    for m in client.get_metric_history(run.info.run_id, key)
                ),
                key=lambda p: p.step,
            )
            for key in CURVE_KEYS
            if key in run.data.metrics
        }
    artifacts = RunArtifacts(store, resolved.run_id, str(run.info.artifact_uri))
    final_grids, base_grids = _grids(artifacts)
    steps = max((p.step for p in histories.get(Metric.LOSS, [])), default=0)
    return RunData(
        ref=resolved.ref,
        label=resolved.label,
        run_id=resolved.run_id,
        method=_first(run, ("method",), Tag.METHOD),
        base_model=_first(run, ("baseModel.uri",), Tag.BASE_MODEL),
        steps=steps,
        prompts=_prompts(artifacts, max([*final_grids, *base_grids], default=-1) + 1),
        histories=histories,
        final_grids=final_grids,
        base_grids=base_grids,
    )


def _first(run: Any, params: tuple[str, ...], tag: str) -> str:
    for key in params:
        if run.data.params.get(key):
            return str(run.data.params[key])
    return str(run.data.tags.get(tag, ""))


def _grids(artifacts: RunArtifacts) -> tuple[dict[int, bytes], dict[int, bytes]]:
    """Per prompt: the grid of the last evaluated step, and the one of step 0."""
    latest: dict[int, tuple[int, str]] = {}
    first: dict[int, str] = {}
    for name in artifacts.list("images"):
        match = _IMAGE_FILE.match(name)
        if match is None:
            continue
        index, step = int(match.group(1)), int(match.group(2))
        if step == 0:
            first[index] = name
        elif index not in latest or step >= latest[index][0]:
            latest[index] = (step, name)
    final = {i: artifacts.read(f"images/{name}") for i, (_, name) in sorted(latest.items())}
    base = {i: artifacts.read(f"images/{name}") for i, name in sorted(first.items())}
    return final, base


def _prompts(artifacts: RunArtifacts, count: int) -> tuple[str, ...]:
    """The logged prompts (`prompts.txt`), else `prompt NN` for each grid."""
    if "prompts.txt" in artifacts.list(GRIDS_ARTIFACT):
        text = artifacts.read(f"{GRIDS_ARTIFACT}/prompts.txt").decode("utf-8")
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) >= count:
            return tuple(lines)
    return tuple(f"prompt {i:02d}" for i in range(count))
