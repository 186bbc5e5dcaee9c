"""Which FineTuneJob watch events start a reconcile, and the timer's retry backoff."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
import pytest

from tuneforge_operator.handlers import needs_reconcile, register, retry_delay
from tuneforge_operator.settings import OperatorSettings

RUNNING = {
    "rayJobName": "job",
    "observedGeneration": 2,
    "conditions": [
        {"type": "Succeeded", "status": "Unknown", "reason": "Training", "message": ""},
    ],
}
SUCCEEDED = {
    **RUNNING,
    "conditions": [
        {"type": "Succeeded", "status": "True", "reason": "TrainingSucceeded", "message": ""},
    ],
}


def job(generation: int = 2, status: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": "job", "generation": generation, **meta}}
    if status is not None:
        body["status"] = status
    return body


@pytest.mark.parametrize(
    ("event_type", "body", "expected"),
    [
        # New jobs, and jobs whose status is gone or lacks the child's name: always.
        ("ADDED", job(status=None), True),
        (None, job(status=None), True),
        ("MODIFIED", job(status=None), True),
        ("MODIFIED", job(status={"observedGeneration": 2}), True),
        # Our own status writes (generation already observed): skipped.
        ("MODIFIED", job(status=RUNNING), False),
        ("MODIFIED", job(status=SUCCEEDED), False),
        # The spec changed since the last pass.
        ("MODIFIED", job(generation=3, status=RUNNING), True),
        ("MODIFIED", job(generation=3, status=SUCCEEDED), True),
        # Listed at start-up: unfinished (or stale) jobs are looked at once, finished ones not.
        (None, job(status=RUNNING), True),
        (None, job(status={"rayJobName": "job", "observedGeneration": 2}), True),
        (None, job(status=SUCCEEDED), False),
        (None, job(generation=3, status=SUCCEEDED), True),
        # Being deleted: garbage collection takes the RayJob; DELETED forgets the job.
        ("MODIFIED", job(status=None, deletionTimestamp="2026-01-01T00:00:00Z"), False),
        ("DELETED", job(status=SUCCEEDED), True),
    ],
)
def test_needs_reconcile(event_type: str | None, body: dict[str, Any], expected: bool) -> None:
    assert needs_reconcile(event_type, body) is expected


def test_retry_delay_doubles_up_to_the_resync_interval() -> None:
    assert [retry_delay(retry, 30.0) for retry in range(5)] == [5.0, 10.0, 20.0, 30.0, 30.0]
    assert retry_delay(10_000, 300.0) == 300.0
    assert retry_delay(0, 2.0) == 2.0


class _Unreachable:
    """A reconciler whose API server is down."""

    async def reconcile(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError("Connect call failed ('127.0.0.1', 6443)")


def test_a_resync_that_fails_outright_is_retried_on_our_backoff_not_kopfs() -> None:
    """kopf retries an unexpected exception after 60 s; the resync must raise its own delay."""
    registry = kopf.OperatorRegistry()
    settings = OperatorSettings(resync_seconds=3, peering_name="")
    register(registry, settings, [_Unreachable()])  # type: ignore[list-item]
    (timer,) = registry._spawning._handlers
    body = {"metadata": {"name": "job", "generation": 2}, "status": RUNNING}
    for retry, delay in ((0, 3.0), (4, 3.0)):
        with pytest.raises(kopf.TemporaryError) as raised:
            asyncio.run(
                timer.fn(
                    name="job",
                    namespace="ns",
                    body=body,
                    meta=body["metadata"],
                    status=RUNNING,
                    logger=logging.getLogger("test"),
                    retry=retry,
                )
            )
        assert raised.value.delay == delay
        assert "Connect call failed" in str(raised.value)
