"""The asyncio batch former: grouping by key, batch size, wait time, errors, metrics."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import pytest

from tuneforge_serving.batching import BatchFormer
from tuneforge_serving.mixed import MixedBatchMetrics

PREFIX = "tuneforge_serving"


@dataclass
class _Job:
    ident: int
    width: int = 64
    height: int = 64
    steps: int = 3
    guidance_scale: float = 7.5

    def shape_key(self) -> tuple[int, int, int, float]:
        return (self.width, self.height, self.steps, self.guidance_scale)


class _Recorder:
    """`execute`: answers each job with its own ident and records the batches."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.gate = gate

    def __call__(self, jobs: list[_Job]) -> list[str]:
        if self.gate is not None:
            self.gate.wait(timeout=30)
        self.batches.append([job.ident for job in jobs])
        return [f"result-{job.ident}" for job in jobs]


def _former(execute: _Recorder, size: int = 4, wait: float = 0.05) -> BatchFormer[_Job, str]:
    return BatchFormer(execute, _Job.shape_key, size, wait, MixedBatchMetrics(PREFIX))


def test_concurrent_jobs_of_one_shape_form_one_batch_and_get_their_own_results() -> None:
    recorder = _Recorder()
    former = _former(recorder, size=4, wait=30.0)  # only a full batch dispatches

    async def main() -> list[str]:
        return await asyncio.gather(*(former.submit(_Job(i)) for i in range(4)))

    assert asyncio.run(main()) == [f"result-{i}" for i in range(4)]
    assert recorder.batches == [[0, 1, 2, 3]]
    metrics = former.metrics
    assert metrics.value(f"{PREFIX}_mixed_batch_requests_count") == 1
    assert metrics.value(f"{PREFIX}_mixed_batch_requests_sum") == 4
    assert metrics.value(f"{PREFIX}_mixed_queue_seconds_count") == 4


def test_shapes_never_share_a_batch() -> None:
    recorder = _Recorder()
    former = _former(recorder, size=4, wait=0.01)
    jobs = [_Job(0), _Job(1, width=72), _Job(2), _Job(3, steps=5)]

    async def main() -> list[str]:
        return await asyncio.gather(*(former.submit(job) for job in jobs))

    assert asyncio.run(main()) == [f"result-{i}" for i in range(4)]
    widths_steps = {i: (j.width, j.steps) for i, j in enumerate(jobs)}
    for batch in recorder.batches:
        assert len({widths_steps[i] for i in batch}) == 1, batch
    assert sorted(i for batch in recorder.batches for i in batch) == [0, 1, 2, 3]


def test_a_lone_job_runs_after_the_wait_time() -> None:
    recorder = _Recorder()
    former = _former(recorder, size=4, wait=0.01)
    assert asyncio.run(former.submit(_Job(7))) == "result-7"
    assert recorder.batches == [[7]]


def test_arrivals_during_a_batch_form_the_next_batch_up_to_the_size() -> None:
    gate = threading.Event()
    recorder = _Recorder(gate)
    former = _former(recorder, size=4, wait=0.0)

    async def main() -> list[str]:
        first = asyncio.ensure_future(former.submit(_Job(0)))
        while not former.batches_run:  # the first batch ([0]) is running, blocked on gate
            await asyncio.sleep(0.001)
        rest = [asyncio.ensure_future(former.submit(_Job(i))) for i in range(1, 7)]
        await asyncio.sleep(0.01)
        gate.set()
        return await asyncio.gather(first, *rest)

    assert asyncio.run(main()) == [f"result-{i}" for i in range(7)]
    assert recorder.batches == [[0], [1, 2, 3, 4], [5, 6]]


def test_a_failing_batch_fails_each_of_its_callers_and_the_former_goes_on() -> None:
    calls: list[int] = []

    def execute(jobs: list[_Job]) -> list[str]:
        calls.append(len(jobs))
        if len(calls) == 1:
            raise RuntimeError("pipeline exploded")
        return ["ok" for _ in jobs]

    former: BatchFormer[_Job, str] = BatchFormer(execute, _Job.shape_key, 2, 30.0)

    async def main() -> tuple[list[object], str]:
        failed = await asyncio.gather(
            *(former.submit(_Job(i)) for i in range(2)), return_exceptions=True
        )
        later = await asyncio.gather(*(former.submit(_Job(i)) for i in range(2)))
        return failed, later[0]

    failed, later = asyncio.run(main())
    assert all(isinstance(e, RuntimeError) and "exploded" in str(e) for e in failed)
    assert later == "ok"


def test_a_cancelled_caller_leaves_the_others_alone() -> None:
    recorder = _Recorder()
    former = _former(recorder, size=3, wait=0.05)

    async def main() -> list[str]:
        gone = asyncio.ensure_future(former.submit(_Job(0)))
        await asyncio.sleep(0)
        gone.cancel()
        return await asyncio.gather(former.submit(_Job(1)), former.submit(_Job(2)))

    assert asyncio.run(main()) == ["result-1", "result-2"]
    assert recorder.batches == [[1, 2]]


def test_close_cancels_queued_requests() -> None:
    former = _former(_Recorder(), size=4, wait=30.0)

    async def main() -> None:
        waiting = asyncio.ensure_future(former.submit(_Job(0)))
        await asyncio.sleep(0.01)
        assert former.pending() == 1
        await former.close()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(main())
