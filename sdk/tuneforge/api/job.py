"""The whole FineTuneJob object, and reading/writing it as YAML or JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ConfigDict, Field, field_validator

from tuneforge.api.base import API_VERSION, KIND, ApiModel
from tuneforge.api.spec import FineTuneJobSpec
from tuneforge.api.status import FineTuneJobStatus

assert API_VERSION == "tuneforge.io/v1alpha1" and KIND == "FineTuneJob"  # literals below
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MAX_JOB_NAME = 63
"""Longest job name: the name is the value of the `tuneforge.io/job-name` label on the RayJob
and on every Ray pod, and label values stop at 63 characters. (The RayJob's own name is
shortened with a hash past 47 characters, so it sets no lower limit.)"""


class ObjectMeta(ApiModel):
    """The parts of Kubernetes object metadata TuneForge reads; the rest is kept as is."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(
        json_schema_extra={"minLength": 1, "maxLength": MAX_JOB_NAME, "pattern": DNS_LABEL}
    )
    """Job name (a DNS label: it names the RayJob and the MLflow run)."""
    namespace: str | None = Field(default=None, pattern=DNS_LABEL)
    """Namespace (defaults to the client's)."""
    uid: str | None = None
    """Set by the API server."""
    generation: int | None = None
    """Set by the API server; bumped on each spec change."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Annotations."""

    @field_validator("name")
    @classmethod
    def _name_fits_children(cls, name: str) -> str:
        if len(name) > MAX_JOB_NAME:
            raise ValueError(
                f"{len(name)} characters is too long: at most {MAX_JOB_NAME}, as the name is "
                "the value of the tuneforge.io/job-name label on the RayJob and its pods; "
                "choose a shorter name"
            )
        if not re.fullmatch(DNS_LABEL, name):
            raise ValueError(
                f"{name!r} is not a DNS label: use lowercase letters, digits and '-', "
                "starting and ending with a letter or digit"
            )
        return name


class FineTuneJob(ApiModel):
    """A request to fine-tune Stable Diffusion 1.5 and register the resulting adapter."""

    api_version: Literal["tuneforge.io/v1alpha1"] = "tuneforge.io/v1alpha1"
    """Always `tuneforge.io/v1alpha1`."""
    kind: Literal["FineTuneJob"] = "FineTuneJob"
    """Always `FineTuneJob`."""
    metadata: ObjectMeta
    """Object metadata."""
    spec: FineTuneJobSpec
    """Desired job."""
    status: FineTuneJobStatus | None = None
    """Observed state (written by the operator or the embedded runner)."""

    @property
    def name(self) -> str:
        """The job's name."""
        return self.metadata.name

    def to_manifest(self, include_status: bool = False) -> dict[str, Any]:
        """The object as a Kubernetes manifest (camelCase, no unset fields)."""
        data = self.to_wire()
        if not include_status:
            data.pop("status", None)
        meta = data.get("metadata", {})
        assert isinstance(meta, dict)
        for empty_key in ("labels", "annotations"):
            if not meta.get(empty_key):
                meta.pop(empty_key, None)
        return data


def load_job(source: str | Path | dict[str, Any]) -> FineTuneJob:
    """Validate one FineTuneJob from a dict, a YAML/JSON string, or a file path."""
    if isinstance(source, dict):
        return FineTuneJob.model_validate(source)
    jobs = load_jobs(source)
    if len(jobs) != 1:
        raise ValueError(f"expected exactly one FineTuneJob, found {len(jobs)}")
    return jobs[0]


def load_jobs(source: str | Path) -> list[FineTuneJob]:
    """Validate every FineTuneJob document in a YAML/JSON string or file."""
    text = (
        Path(source).read_text() if isinstance(source, Path) or _looks_like_path(source) else source
    )
    docs: Iterable[Any] = yaml.safe_load_all(text)
    return [FineTuneJob.model_validate(doc) for doc in docs if doc is not None]


def _looks_like_path(text: str) -> bool:
    return "\n" not in text and not text.lstrip().startswith("{") and Path(text).is_file()


def dump_job(
    job: FineTuneJob, fmt: Literal["yaml", "json"] = "yaml", include_status: bool = False
) -> str:
    """Serialize a job as YAML or JSON (camelCase)."""
    manifest = job.to_manifest(include_status=include_status)
    if fmt == "json":
        return json.dumps(manifest, sort_keys=False)
    return yaml.safe_dump(manifest, sort_keys=False)
