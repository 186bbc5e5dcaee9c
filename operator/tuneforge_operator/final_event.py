"""A job's final Event, derived from its stored status and posted once under a fixed name.

The other Events go through kopf's queue after the status write that caused them; a kill
between the two loses them. The final one (`Succeeded` turned True or False) matters most,
so it is not queued: it is posted directly, named after the job's uid, generation and
reason. Whoever finds a terminal status (the write that made it, or the resync timer after
a restart) posts it; the API server answers 409 when it is already there, so it exists once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tuneforge.api import GROUP, KIND, VERSION, ConditionType, FineTuneJobStatus, Reason
from tuneforge.api.status_rules import EventSpec
from tuneforge.api.status_rules.events import WARNING_REASONS
from tuneforge_operator.kubeapi import AlreadyExists, KubeApi, events_path

COMPONENT = "tuneforge-operator"
RECENT_S = 3600.0
"""Only jobs that finished this recently are checked after a restart: the API server keeps
Events one hour by default (`--event-ttl`), so an older one is gone either way."""

Logger = logging.Logger | logging.LoggerAdapter[Any]


def final_event(status: FineTuneJobStatus | None) -> EventSpec | None:
    """The Event that announces the job's end, or None while it is not finished."""
    if status is None or not status.is_finished():
        return None
    summary = status.condition(ConditionType.SUCCEEDED)
    assert summary is not None
    kind = "Warning" if summary.reason in WARNING_REASONS else "Normal"
    return EventSpec(kind, summary.reason, summary.message or f"Succeeded is {summary.status}")


def is_final_reason(reason: str, status: FineTuneJobStatus) -> bool:
    """Whether an Event with this reason is the final Event's to post (not kopf's queue's).

    `TrainingSucceeded` is announced only by the final Event: the `Training` condition takes
    it as soon as the RayJob succeeds, and a second Event would follow at registration.
    """
    event = final_event(status)
    return reason == Reason.TRAINING_SUCCEEDED.value or (
        event is not None and event.reason == reason
    )


def finished_recently(status: FineTuneJobStatus, now: datetime | None = None) -> bool:
    """True when the job finished less than `RECENT_S` ago (or the time is unreadable)."""
    summary = status.condition(ConditionType.SUCCEEDED)
    if summary is None:
        return False
    try:
        ended = datetime.fromisoformat(summary.last_transition_time.replace("Z", "+00:00"))
    except ValueError:
        return True
    return ((now or datetime.now(UTC)) - ended).total_seconds() < RECENT_S


def event_name(job_name: str, uid: str, generation: int, reason: str) -> str:
    """The final Event's name: one per job, generation and reason."""
    digest = hashlib.sha256(f"{uid}/{generation}/{reason}".encode()).hexdigest()[:16]
    return f"{job_name[:200]}.{digest}"


class FinalEvents:
    """Posts final Events, remembering which ones this process already saw posted."""

    def __init__(self, api: KubeApi) -> None:
        self._api = api
        self._posted: set[tuple[str, int]] = set()

    def forget(self, uid: str) -> None:
        """Drop what we keep for a deleted job."""
        self._posted = {key for key in self._posted if key[0] != uid}

    async def ensure(
        self, job: Mapping[str, Any], status: FineTuneJobStatus | None, logger: Logger
    ) -> bool:
        """Post the job's final Event unless it exists; False when the post failed (retry later)."""
        event = final_event(status)
        meta = job["metadata"]
        uid, generation = str(meta["uid"]), int(meta.get("generation", 1))
        if event is None or status is None or (uid, generation) in self._posted:
            return True
        summary = status.condition(ConditionType.SUCCEEDED)
        assert summary is not None
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": event_name(meta["name"], uid, generation, event.reason),
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": uid,
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message[:1000],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": summary.last_transition_time,
            "lastTimestamp": summary.last_transition_time,
            "count": 1,
        }
        try:
            await self._api.create(events_path(meta["namespace"]), body)
        except AlreadyExists:
            pass
        except Exception as error:  # noqa: BLE001 - the resync timer posts it later
            logger.warning(f"Could not post the final Event {event.reason} (retried): {error}")
            return False
        self._posted.add((uid, generation))
        return True
