"""`WorkerPlan`: everything a training worker needs, as plain data Ray can ship.

The driver resolves what must be decided once (the job's uid, the MLflow run, where class
images are) and every worker rebuilds the rest from it. No credentials travel here: workers
read S3 and MLflow settings from their own environment (`tuneforge.settings.Settings`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tuneforge.api import FineTuneJob, load_job


def job_uid(job: FineTuneJob) -> str:
    """The job's uid, or (embedded jobs without one) a stable id from its name and spec."""
    if job.metadata.uid:
        return job.metadata.uid
    spec = json.dumps(job.spec.to_wire(), sort_keys=True).encode()
    namespace = job.metadata.namespace or "default"
    return f"local-{namespace}-{job.name}-{hashlib.sha256(spec).hexdigest()[:12]}"


def run_name(job: FineTuneJob) -> str:
    """The Ray Train run name: job name plus a uid prefix (same job, same checkpoints)."""
    digest = hashlib.sha256(job_uid(job).encode()).hexdigest()[:10]
    return f"{job.name}-{digest}"


class WorkerPlan(BaseModel):
    """Inputs of `tuneforge_trainer.loop.train_worker`."""

    job: dict[str, Any]
    """The FineTuneJob manifest (camelCase), validated again by each worker."""
    job_uid: str
    """See `job_uid`."""
    model_uri: str
    """Base model: local path, `s3://` or `hf://`."""
    dataset_uri: str
    """Training images: local path or `s3://`."""
    class_data_uri: str | None = None
    """The job's own prior-preservation class images (`dataset.classDataUri`); None: the
    dataset's `class/` folder."""
    class_images_uri: str | None = None
    """Root of the shared class-image cache (`<checkpoints>/class-images`, S3 prefix or local
    folder) where workers find or publish generated class images (see
    `tuneforge_trainer.class_image_cache`); None without prior preservation."""
    cache_dir: str
    """Where workers download and cache models and data."""
    tracking_uri: str | None = None
    """MLflow tracking URI (rank 0 logs metrics and images); None disables tracking."""
    run_id: str | None = None
    """The job's MLflow run."""
    threads: int = Field(default=1, ge=1)
    """torch intra-op threads per worker (the CPUs Ray gave it)."""
    zero_stage: int | None = Field(default=None, ge=0, le=3)
    """DeepSpeed ZeRO stage forced by `TrainerSettings.deepspeed_zero_stage`; None: by method."""

    def load_job(self) -> FineTuneJob:
        """The validated job."""
        return load_job(self.job)

    @property
    def cache_path(self) -> Path:
        """`cache_dir` as a path."""
        return Path(self.cache_dir)
