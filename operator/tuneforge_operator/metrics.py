"""Prometheus metrics: jobs by condition, reconcile durations, errors, writes."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)
RECONCILE_SECONDS = Histogram(
    "tuneforge_operator_reconcile_duration_seconds",
    "Time of one reconcile of a FineTuneJob, by what triggered it.",
    ["trigger"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "tuneforge_operator_reconcile_errors_total",
    "Reconciles that ended in an error, by reason.",
    ["reason"],
    registry=REGISTRY,
)
RAYJOBS_CREATED = Counter(
    "tuneforge_operator_rayjobs_created_total", "RayJobs created.", registry=REGISTRY
)
STATUS_WRITES = Counter(
    "tuneforge_operator_status_writes_total",
    "FineTuneJob status patches (only changed statuses are written).",
    registry=REGISTRY,
)


class JobConditionIndex(Collector):
    """The latest conditions of each known job, exported as `tuneforge_operator_jobs`."""

    def __init__(self) -> None:
        self._jobs: dict[str, dict[str, str]] = {}

    def update(self, uid: str, conditions: dict[str, str]) -> None:
        """Remember a job's conditions (type -> status)."""
        self._jobs[uid] = dict(conditions)

    def forget(self, uid: str) -> None:
        """Drop a deleted job."""
        self._jobs.pop(uid, None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Count jobs per (condition, status)."""
        family = GaugeMetricFamily(
            "tuneforge_operator_jobs",
            "FineTuneJobs by condition type and status.",
            labels=["condition", "status"],
        )
        counts: dict[tuple[str, str], int] = {}
        for conditions in list(self._jobs.values()):
            for key in conditions.items():
                counts[key] = counts.get(key, 0) + 1
        for (condition, status), count in sorted(counts.items()):
            family.add_metric([condition, status], count)
        yield family


JOBS = JobConditionIndex()
REGISTRY.register(JOBS)


def serve_metrics(port: int, address: str) -> None:
    """Expose `/metrics` on a background thread (port 0 disables)."""
    if port:
        start_http_server(port, addr=address, registry=REGISTRY)
