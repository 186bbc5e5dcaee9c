"""Adapters in the MLflow model registry: register, resolve, fetch, list, promote.

An adapter is an MLflow model version whose source is a run's `adapter/` artifact folder
holding only safetensors weights and `tuneforge-adapter.json` (DESIGN.md §4). Works with
an `mlflow server` whose artifacts live in S3 (files go straight to S3 with the minio
client) and with the embedded SQLite store (artifacts on local disk under home).

    registry = AdapterRegistry()                   # Settings() from TUNEFORGE_* variables
    registry.register(run_id, "out/adapter", manifest, "dogs", alias="prod")
    resolved = registry.resolve("dogs@prod")       # or "dogs/3", "dogs", AdapterRef("dogs", 3)
    fetched = registry.fetch(resolved, Path("~/.cache/tuneforge").expanduser())
    fetched.path, fetched.manifest

Modules: `mlflow_store` (the MLflow client and its local store), `register`, `fetch`
(resolve and download), `listing` (list and promote), `safety` (which files may travel),
`results` (what the registry returns).
"""

from tuneforge.registry.adapter_registry import AdapterRegistry
from tuneforge.registry.mlflow_store import ensure_experiment, experiment_artifact_location
from tuneforge.registry.results import (
    AdapterSummary,
    AdapterVersion,
    FetchedAdapter,
    RegisteredAdapter,
    RegisteredVersion,
    ResolvedAdapter,
)
from tuneforge.registry.safety import check_artifact_names, is_allowed_artifact

__all__ = [
    "AdapterRegistry",
    "AdapterSummary",
    "AdapterVersion",
    "FetchedAdapter",
    "RegisteredAdapter",
    "RegisteredVersion",
    "ResolvedAdapter",
    "check_artifact_names",
    "ensure_experiment",
    "experiment_artifact_location",
    "is_allowed_artifact",
]
