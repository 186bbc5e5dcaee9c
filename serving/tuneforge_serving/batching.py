"""The batch former: concurrent requests with one batch key become one batch.

Requests are bucketed by a key function: `GenerationJob.choice_key` (shape and adapter
choice: every call runs one shared choice) or, with mixed batching,
`GenerationJob.shape_key` (shape only: each sample gets its own adapters). One worker
task dispatches a bucket when it holds `max_batch_size` requests or its oldest request
has waited `max_wait_s`, whichever comes first, oldest bucket first; the batch runs in a
thread (the pipeline is synchronous) and each caller's future gets its own result. While
a batch runs, new arrivals queue up and form the next one, so under load batches fill
without waiting.

`BatchedEngine` is that former in front of a `ServingEngine`: what a model replica holds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from tuneforge_serving.errors import ErrorInfo
from tuneforge_serving.jobs import GenerationJob, GenerationOutput
from tuneforge_serving.mixed.metrics import MixedBatchMetrics

if TYPE_CHECKING:
    from tuneforge_serving.engine import ServingEngine

log = logging.getLogger(__name__)

Job = TypeVar("Job")
Result = TypeVar("Result")


@dataclass
class _Waiting(Generic[Job, Result]):
    job: Job
    future: asyncio.Future[Result]
    arrived: float = field(default_factory=time.monotonic)


class BatchFormer(Generic[Job, Result]):
    """Gathers jobs into batches of one key and runs `execute(batch) -> results`.

    `execute` is synchronous (it runs in a worker thread) and returns one result per job
    in order. If it raises, every caller of that batch gets the exception. `metrics`
    (optional) records batch sizes and queueing delays.
    """

    def __init__(
        self,
        execute: Callable[[list[Job]], Sequence[Result]],
        key: Callable[[Job], Hashable],
        max_batch_size: int,
        max_wait_s: float,
        metrics: MixedBatchMetrics | None = None,
    ) -> None:
        self.execute = execute
        self.key = key
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.metrics = metrics
        self._buckets: dict[Hashable, list[_Waiting[Job, Result]]] = {}
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self.batches_run = 0

    async def submit(self, job: Job) -> Result:
        """Queue `job` and wait for its result (from whatever batch it lands in)."""
        wakeup = self._ensure_worker()
        waiting: _Waiting[Job, Result] = _Waiting(job, asyncio.get_running_loop().create_future())
        self._buckets.setdefault(self.key(job), []).append(waiting)
        wakeup.set()
        return await waiting.future

    def pending(self) -> int:
        """Requests queued and not yet dispatched."""
        return sum(len(bucket) for bucket in self._buckets.values())

    def _ensure_worker(self) -> asyncio.Event:
        """The worker's wake-up event, starting the worker on this event loop if needed."""
        loop = asyncio.get_running_loop()
        worker = self._worker
        if worker is None or worker.done() or worker.get_loop() is not loop or not self._wakeup:
            self._wakeup = asyncio.Event()
            self._worker = loop.create_task(self._work(self._wakeup))
        return self._wakeup

    async def close(self) -> None:
        """Stop the worker; requests still queued are cancelled."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        for bucket in self._buckets.values():
            for waiting in bucket:
                waiting.future.cancel()
        self._buckets.clear()

    # ------------------------------------------------------------------ the worker

    def _next_batch(self, now: float) -> tuple[list[_Waiting[Job, Result]] | None, float | None]:
        """A ready batch (full or timed out, oldest first), else the seconds to wait."""
        size, wait = self.max_batch_size, self.max_wait_s
        ready: tuple[float, Hashable] | None = None
        earliest: float | None = None
        for key, bucket in self._buckets.items():
            live = [w for w in bucket if not w.future.done()]  # drop cancelled callers
            self._buckets[key] = live
            if not live:
                continue
            oldest = live[0].arrived
            if len(live) >= size or now - oldest >= wait:
                if ready is None or oldest < ready[0]:
                    ready = (oldest, key)
            else:
                deadline = oldest + wait - now
                earliest = deadline if earliest is None else min(earliest, deadline)
        self._buckets = {k: v for k, v in self._buckets.items() if v}
        if ready is None:
            return None, earliest
        bucket = self._buckets[ready[1]]
        batch, rest = bucket[:size], bucket[size:]
        if rest:
            self._buckets[ready[1]] = rest
        else:
            del self._buckets[ready[1]]
        return batch, None

    async def _work(self, wakeup: asyncio.Event) -> None:
        while True:
            batch, wait = self._next_batch(time.monotonic())
            if batch is None:
                wakeup.clear()
                try:
                    await asyncio.wait_for(wakeup.wait(), timeout=wait)
                except TimeoutError:
                    pass
                continue
            await self._dispatch(batch)

    async def _dispatch(self, batch: list[_Waiting[Job, Result]]) -> None:
        started = time.monotonic()
        if self.metrics is not None:
            for waiting in batch:
                self.metrics.queue_delay.observe(started - waiting.arrived)
            self.metrics.batch_requests.observe(len(batch))
        self.batches_run += 1
        try:
            results = await asyncio.to_thread(self.execute, [w.job for w in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"execute returned {len(results)} results for {len(batch)}")
        except Exception as error:  # noqa: BLE001 - every caller must hear about it
            log.exception("Batch failed", extra={"requests": len(batch)})
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.set_exception(error)
            return
        for waiting, result in zip(batch, results, strict=True):
            _add_queue_ms(result, started - waiting.arrived)
            if not waiting.future.done():
                waiting.future.set_result(result)


def _add_queue_ms(result: Any, waited_s: float) -> None:
    """Add the former's queueing delay to a GenerationOutput's `queue_ms` timing."""
    timings = getattr(result, "timings", None)
    if isinstance(timings, dict):
        timings["queue_ms"] = timings.get("queue_ms", 0.0) + waited_s * 1e3


class BatchedEngine:
    """A `ServingEngine` behind one `BatchFormer`, keyed as the engine's config says.

    Mixed batching off: batches share shape and adapter choice (`batching.maxBatchSize`,
    `batching.batchWaitTimeoutS`); on: they share the shape only (`mixedBatching`), and
    the former records the mixed-batching metrics. Errors never escape as exceptions: a
    failed batch answers each caller with a 500 `GenerationOutput`.
    """

    def __init__(self, engine: ServingEngine) -> None:
        config = engine.config
        self.metrics = engine.mixing.metrics if engine.mixing is not None else None
        if self.metrics is not None:
            mixed = config.mixed_batching
            key, size, wait = GenerationJob.shape_key, mixed.max_batch_size, mixed.max_wait_s
        else:
            batching = config.batching
            key = GenerationJob.choice_key
            size, wait = batching.max_batch_size, batching.batch_wait_timeout_s
        self.former: BatchFormer[GenerationJob, GenerationOutput] = BatchFormer(
            engine.generate_batch, key, size, wait, self.metrics
        )

    async def generate(self, job: GenerationJob) -> GenerationOutput:
        """The job's output, computed in whatever batch it joins."""
        try:
            return await self.former.submit(job)
        except Exception as error:  # noqa: BLE001 - answered as data, like every error here
            log.exception("Generation failed")
            return GenerationOutput(
                error=ErrorInfo(status=500, detail=f"generation failed: {error}", kind="Error")
            )

    def render_metrics(self) -> bytes:
        """Mixed-batching metrics in the Prometheus text format; empty when it is off."""
        return self.metrics.render() if self.metrics is not None else b""

    async def close(self) -> None:
        """Stop the former (queued requests are cancelled)."""
        await self.former.close()
