"""Thin kopf handlers: gather inputs, call the reconciler, turn outcomes into kopf retries.

- every watch event of a FineTuneJob that asks for work (new, listed at start-up, spec
  changed: `metadata.generation` ahead of `status.observedGeneration`) reconciles it at once;
- a timer re-reads RayJob and MLflow for every unfinished job (level-triggered safety net)
  and is the retry path: a blocked pass raises `kopf.TemporaryError` with backoff;
- every event of a RayJob we manage reconciles its owner immediately.

Why `kopf.on.event` and not `on.create`/`on.update`/`on.resume`: kopf's change handlers keep
their bookkeeping (the last handled spec, handler progress) in annotations, one more PATCH
per job and one more watch event to process; the generation/observedGeneration pair already
says whether a job needs work. Events our own status writes cause are skipped by a cheap
filter before kopf invokes anything.
No finalizers (not even kopf's timer finalizer): the RayJob goes with its owner through
garbage collection, and a job deletes even while the operator is down.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, cast

import kopf

from tuneforge.api import GROUP, KIND, PLURAL, VERSION
from tuneforge.api.status_rules import EventSpec
from tuneforge_operator.builder import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    RAYJOB_GROUP,
    RAYJOB_PLURAL,
    RAYJOB_VERSION,
)
from tuneforge_operator.final_event import finished_recently
from tuneforge_operator.reconcile import Reconciler, parse_status
from tuneforge_operator.settings import OperatorSettings

Logger = logging.Logger | logging.LoggerAdapter[Any]


def post_event(body: Mapping[str, Any], event: EventSpec) -> None:
    """Post a Kubernetes event on the FineTuneJob (through kopf's event queue)."""
    kopf.event(
        cast(kopf.Body, dict(body)),
        type=event.type,
        reason=event.reason,
        message=event.message[:1000],
    )


def needs_reconcile(event_type: str | None, body: Mapping[str, Any]) -> bool:
    """Whether a FineTuneJob watch event asks for a reconcile (cheap: runs for every event).

    `None` is kopf's type for objects listed at start-up: everything not finished (for its
    current generation) is looked at once, as kopf's `on.resume` would. A MODIFIED event is
    news only when the spec changed since the last pass (or our status is gone); the ones
    our own status writes cause are not.
    """
    if event_type == "DELETED":
        return True  # forget what we keep for it
    meta = body.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return False  # garbage collection takes the RayJob with it
    status = body.get("status") or {}
    if not isinstance(status, Mapping) or not status.get("rayJobName"):
        return True
    current = status.get("observedGeneration") == meta.get("generation")
    if event_type == "MODIFIED":
        return not current
    if event_type is None and current:
        parsed = parse_status(status)
        return parsed is None or not parsed.is_finished()
    return True


def retry_delay(retry: int, cap_s: float) -> float:
    """Backoff of the timer's retries of a blocked job: 5, 10, 20 ... s, at most `cap_s`."""
    return float(min(5.0 * 2 ** min(retry, 16), cap_s))


def register(
    registry: kopf.OperatorRegistry,
    settings: OperatorSettings,
    reconciler_ref: list[Reconciler],
) -> None:
    """Register every handler on `registry`; `reconciler_ref[0]` is set at start-up (after login)."""
    job = (GROUP, VERSION, PLURAL)

    @kopf.on.event(
        *job, registry=registry, when=lambda type, body, **_: needs_reconcile(type, body)
    )
    async def on_job_event(
        *,
        type: str | None,
        body: kopf.Body,
        name: str,
        namespace: str | None,
        uid: str,
        logger: Logger,
        **_: Any,
    ) -> None:
        if type == "DELETED":
            reconciler_ref[0].forget(str(namespace), name, uid)
            return
        try:
            outcome = await reconciler_ref[0].reconcile(
                str(namespace), name, logger, trigger="change", body=body
            )
        except Exception as error:  # an event handler has no retries: the timer retries
            logger.warning(f"Reconcile failed, the resync timer retries it: {error}")
            return
        if outcome.retry_reason:
            logger.warning(f"{outcome.retry_reason} (the resync timer retries)")

    @kopf.timer(
        *job,
        registry=registry,
        interval=settings.resync_seconds,
        initial_delay=settings.resync_seconds,
    )
    async def resync(
        *,
        name: str,
        namespace: str | None,
        body: kopf.Body,
        meta: kopf.Meta,
        status: kopf.Status,
        logger: Logger,
        **kwargs: Any,
    ) -> None:
        current = parse_status(status)
        if (
            current is not None
            and current.is_finished()
            and current.observed_generation == meta.get("generation")
        ):
            # Terminal is terminal: nothing to re-read; only its final Event may be missing
            # (a kill right after the terminal status write).
            if finished_recently(current):
                await reconciler_ref[0].ensure_final_event(body, logger)
            return
        delay = retry_delay(int(kwargs.get("retry", 0)), settings.resync_seconds)
        try:
            outcome = await reconciler_ref[0].reconcile(
                str(namespace), name, logger, trigger="timer"
            )
        except Exception as error:
            # Not kopf's default backoff for unexpected errors (60 s): an API server or
            # network outage is retried on our own schedule, at most the resync interval.
            raise kopf.TemporaryError(f"Reconcile failed: {error}", delay=delay) from error
        if outcome.retry_reason:
            raise kopf.TemporaryError(outcome.retry_reason, delay=delay)

    # kopf gives timers a finalizer so it can stop them before the object goes. We do not
    # want one: a FineTuneJob must delete even while the operator is down, and a resync
    # that finds the job gone simply returns. kopf stops the timer on the DELETED event.
    spawning = registry._spawning
    spawning._handlers = [
        dataclasses.replace(h, requires_finalizer=False) for h in spawning._handlers
    ]

    @kopf.on.event(
        RAYJOB_GROUP,
        RAYJOB_VERSION,
        RAYJOB_PLURAL,
        registry=registry,
        labels={MANAGED_BY_LABEL: MANAGED_BY},
        # Skip (before kopf even invokes the handler) RayJobs whose status we already saw,
        # e.g. the ADDED event of a RayJob we just created.
        when=lambda body, **_: not reconciler_ref[0].rayjob_is_known(body),
    )
    async def on_rayjob_event(
        *, body: kopf.Body, meta: kopf.Meta, namespace: str | None, logger: Logger, **_: Any
    ) -> None:
        namespace = str(namespace)
        owners = meta.get("ownerReferences") or []
        owner = next((o for o in owners if o.get("kind") == KIND and o.get("controller")), None)
        if owner is None:
            return
        try:
            await reconciler_ref[0].reconcile(namespace, owner["name"], logger, trigger="rayjob")
        except Exception as error:  # the timer retries; an event handler has no retries
            logger.warning(f"Reconcile of FineTuneJob {namespace}/{owner['name']} failed: {error}")
