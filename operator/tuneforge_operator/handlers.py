"""Thin kopf handlers: gather inputs, call the reconciler, turn outcomes into kopf retries.

- create / update / resume of a FineTuneJob start work at once (with retries and a timeout);
- a timer re-reads RayJob and MLflow for every unfinished job (level-triggered safety net);
- every event of a RayJob we manage reconciles its owner immediately.
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

from tuneforge_operator.builder import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    RAYJOB_GROUP,
    RAYJOB_PLURAL,
    RAYJOB_VERSION,
)
from tuneforge_operator.conditions import EventSpec
from tuneforge_operator.reconcile import Outcome, Reconciler, parse_status
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


def _raise_for(outcome: Outcome, retry: int) -> None:
    if outcome.permanent_error:
        raise kopf.PermanentError(outcome.permanent_error)
    if outcome.retry_reason:
        raise kopf.TemporaryError(outcome.retry_reason, delay=min(5.0 * 2**retry, 300.0))


def register(
    registry: kopf.OperatorRegistry,
    settings: OperatorSettings,
    reconciler_ref: list[Reconciler],
) -> None:
    """Register every handler on `registry`; `reconciler_ref[0]` is set at start-up (after login)."""
    retries, timeout = settings.retries, settings.handler_timeout_seconds
    job = (GROUP, VERSION, PLURAL)

    async def on_job_change(
        *, body: kopf.Body, name: str, namespace: str | None, retry: int, logger: Logger, **_: Any
    ) -> None:
        outcome = await reconciler_ref[0].reconcile(
            str(namespace), name, logger, trigger="change", body=body
        )
        _raise_for(outcome, retry)

    for decorator in (kopf.on.create, kopf.on.resume):
        decorator(*job, registry=registry, retries=retries, timeout=timeout)(on_job_change)
    kopf.on.update(*job, field="spec", registry=registry, retries=retries, timeout=timeout)(
        on_job_change
    )

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
        meta: kopf.Meta,
        status: kopf.Status,
        logger: Logger,
        **_: Any,
    ) -> None:
        current = parse_status(status)
        if (
            current is not None
            and current.is_finished()
            and current.observed_generation == meta.get("generation")
        ):
            return  # terminal is terminal: nothing to re-read.
        outcome = await reconciler_ref[0].reconcile(str(namespace), name, logger, trigger="timer")
        if outcome.retry_reason:
            logger.warning(outcome.retry_reason)

    # kopf gives timers a finalizer so it can stop them before the object goes. We do not
    # want one: a FineTuneJob must delete even while the operator is down, and a resync
    # that finds the job gone simply returns. kopf stops the timer on the DELETED event.
    spawning = registry._spawning
    spawning._handlers = [
        dataclasses.replace(h, requires_finalizer=False) for h in spawning._handlers
    ]

    @kopf.on.event(*job, registry=registry, when=lambda type, **_: type == "DELETED")
    async def on_job_event(
        *, type: str, name: str, namespace: str | None, uid: str, **_: Any
    ) -> None:
        if type == "DELETED":
            reconciler_ref[0].forget(str(namespace), name, uid)

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
