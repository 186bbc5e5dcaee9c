"""Prometheus metrics of the API (one registry per ingress replica, served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_SWAP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)


class ApiMetrics:
    """Counters and histograms for requests, rejections, swaps and inference."""

    def __init__(self, prefix: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            f"{prefix}_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            f"{prefix}_request_seconds",
            "End-to-end request latency",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inflight = Gauge(
            f"{prefix}_inflight_requests",
            "Generate requests in flight at this ingress",
            registry=self.registry,
        )
        self.rejected = Counter(
            f"{prefix}_rejected",
            "Requests refused before running, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.images = Counter(f"{prefix}_images", "Images generated", registry=self.registry)
        self.swap = Histogram(
            f"{prefix}_adapter_swap_seconds",
            "Time to copy a request's adapters into slots",
            buckets=_SWAP_BUCKETS,
            registry=self.registry,
        )
        self.stage = Histogram(
            f"{prefix}_adapter_stage_seconds",
            "Time to fetch/parse adapters not in host memory",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inference = Histogram(
            f"{prefix}_inference_seconds",
            "Pipeline time per request",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe_timings(self, timings: dict[str, float], images: int) -> None:
        """Record one successful generation's timings (milliseconds) and image count."""
        self.swap.observe(timings.get("swap_ms", 0.0) / 1e3)
        self.stage.observe(timings.get("stage_ms", 0.0) / 1e3)
        self.inference.observe(timings.get("inference_ms", 0.0) / 1e3)
        self.images.inc(images)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
