"""MLflow: one run per job (found again by its `Tag.JOB_UID` tag), metrics and images.

The driver finds or creates the run (in `Settings.mlflow_experiment`) and logs the
spec as params; rank 0 of the workers logs metrics (`Metric.*`, `eval/*`), validation images
and evaluation grids (`log_image`, with the step) into it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneforge.api import FineTuneJob
from tuneforge.contract import Tag, job_run_filter
from tuneforge.registry import ensure_experiment
from tuneforge.registry.mlflow_store import prepare_local_store
from tuneforge.settings import Settings

LOGGED_IMAGES_TAG = "mlflow.loggedImages"
"""The run tag MLflow's UI reads to show a run's logged images."""


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """Nested dicts as dotted keys, values as strings (MLflow params)."""
    if isinstance(data, dict):
        out: dict[str, str] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): str(data)[:6000]}


def client(tracking_uri: str) -> Any:
    """An `MlflowClient` for `tracking_uri`."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def find_or_create_run(tracking_uri: str, job: FineTuneJob, uid: str, settings: Settings) -> str:
    """The id of the job's run: the one tagged with its uid, else a new one with its params.

    Runs live in `Settings.mlflow_experiment`, created (with its artifact location) if missing.
    A trainer started on its own in embedded mode creates the home's database the way
    `tuneforge run` does (from the migrated template, `prepare_local_store`).
    """
    if tracking_uri == settings.embedded_tracking_uri():
        prepare_local_store(settings)
    mlflow = client(tracking_uri)
    experiment_id = ensure_experiment(mlflow, settings)
    found = mlflow.search_runs([experiment_id], filter_string=job_run_filter(uid), max_results=1)
    if found:
        run_id: str = found[0].info.run_id
        mlflow.update_run(run_id, status="RUNNING")
        return run_id
    tags = {
        Tag.JOB_UID: uid,
        Tag.JOB_NAME: job.name,
        Tag.JOB_NAMESPACE: job.metadata.namespace or "default",
        "mlflow.runName": job.name,
    }
    run = mlflow.create_run(experiment_id, tags=tags, run_name=job.name)
    from mlflow.entities import Param

    params = flatten(job.spec.to_wire())
    items = [Param(key, value) for key, value in sorted(params.items())]
    for start in range(0, len(items), 100):
        mlflow.log_batch(run.info.run_id, params=items[start : start + 100])
    return str(run.info.run_id)


class RunTracker:
    """Logs metrics and validation images into one run (rank 0 only)."""

    def __init__(self, tracking_uri: str, run_id: str, settings: Settings):
        """Track into `run_id` on `tracking_uri` (`settings`: the S3 store of artifacts)."""
        self.run_id = run_id
        self._client = client(tracking_uri)
        self._settings = settings

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Log numeric metrics at `step`."""
        import time

        from mlflow.entities import Metric as MlflowMetric

        now = int(time.time() * 1000)
        batch = [MlflowMetric(key, float(value), now, step) for key, value in metrics.items()]
        self._client.log_batch(self.run_id, metrics=batch)

    def log_artifacts(self, local_dir: Path, artifact_path: str) -> None:
        """Upload a folder (validation images) under `artifact_path` of the run.

        Runs whose artifacts live on S3 are written with the minio client (as the registry
        does), so the trainer needs no boto3; other stores go through MLflow's client.
        """
        artifact_uri = str(self._client.get_run(self.run_id).info.artifact_uri).rstrip("/")
        if artifact_uri.startswith("s3://"):
            from tuneforge.storage import upload_dir

            upload_dir(local_dir, f"{artifact_uri}/{artifact_path}", self._settings)
            return
        self._client.log_artifacts(self.run_id, str(local_dir), artifact_path)

    def log_image(self, image: Any, key: str, step: int) -> None:
        """Log a PIL image under `key` at `step`, where MLflow's UI shows it with a step slider.

        The files are named as `MlflowClient.log_image(key=..., step=...)` names them
        (`images/<key>+step+<step>+timestamp+<ms>+<uuid>.png` and a compressed `.webp`) and
        uploaded through `log_artifacts`, so S3 artifact stores need no boto3.
        """
        import tempfile
        import time
        import uuid

        from mlflow.tracking.multimedia import compress_image_size

        stem = f"{key.replace('/', '~')}+step+{step}+timestamp+{int(time.time() * 1000)}+{uuid.uuid4()}"
        with tempfile.TemporaryDirectory(prefix="tuneforge-image-") as tmp:
            folder = Path(tmp)
            image.save(folder / f"{stem}.png")
            compress_image_size(image).save(folder / f"{stem}+compressed.webp")
            self.log_artifacts(folder, "images")
        self._client.set_tag(self.run_id, LOGGED_IMAGES_TAG, "true")

    def metric_at(self, key: str, step: int) -> float | None:
        """The last value of metric `key` logged at `step`, or None when there is none."""
        history = [m for m in self._client.get_metric_history(self.run_id, key) if m.step == step]
        return float(max(history, key=lambda m: m.timestamp).value) if history else None

    def finish(self, status: str = "FINISHED") -> None:
        """Mark the run finished (or FAILED)."""
        self._client.set_terminated(self.run_id, status=status)

    def set_tag(self, key: str, value: str) -> None:
        """Set a run tag."""
        self._client.set_tag(self.run_id, key, value)
