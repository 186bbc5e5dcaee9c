"""Prometheus metrics of the mixed-adapter batch former (one registry per model replica)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

_SIZE_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
_DELAY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class MixedBatchMetrics:
    """Batch sizes, adapters per batch, queueing delay and fallbacks.

    - `<prefix>_mixed_batch_requests`: requests per formed batch (histogram);
    - `<prefix>_mixed_call_images`: images per pipeline call (histogram);
    - `<prefix>_mixed_call_adapters`: distinct adapters per pipeline call (histogram);
    - `<prefix>_mixed_queue_seconds`: time a request waited for its batch (histogram);
    - `<prefix>_mixed_fallbacks_total{reason}`: requests run in a batch of their own;
    - `<prefix>_mixed_slot_splits_total`: extra pipeline calls because a batch's adapters
      did not fit the slots at once.
    """

    def __init__(
        self, prefix: str = "tuneforge_serving", registry: CollectorRegistry | None = None
    ):
        self.registry = registry or CollectorRegistry()
        self.batch_requests = Histogram(
            f"{prefix}_mixed_batch_requests",
            "Requests per batch formed by the mixed-adapter batch former",
            buckets=_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.call_images = Histogram(
            f"{prefix}_mixed_call_images",
            "Images per mixed pipeline call",
            buckets=_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.call_adapters = Histogram(
            f"{prefix}_mixed_call_adapters",
            "Distinct adapters per mixed pipeline call",
            buckets=(0, *_SIZE_BUCKETS),
            registry=self.registry,
        )
        self.queue_delay = Histogram(
            f"{prefix}_mixed_queue_seconds",
            "Time from a request's arrival to the start of its batch",
            buckets=_DELAY_BUCKETS,
            registry=self.registry,
        )
        self.fallbacks = Counter(
            f"{prefix}_mixed_fallbacks",
            "Requests that could not be mixed and ran in a batch of their own, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.slot_splits = Counter(
            f"{prefix}_mixed_slot_splits",
            "Additional pipeline calls because a batch's adapters exceeded the slots",
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The text exposition format (for a /metrics route)."""
        return generate_latest(self.registry)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A sample's current value by full name (e.g. `..._mixed_fallbacks_total`); 0 if absent."""
        found = self.registry.get_sample_value(name, labels or {})
        return float(found) if found is not None else 0.0
