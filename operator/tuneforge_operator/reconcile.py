"""Reconcile one FineTuneJob: fetch -> pure build -> apply -> conditions -> write if changed.

Level-triggered: every call recomputes everything from what the API server and MLflow say
now, whatever triggered it (a change of the job, a RayJob event, the resync timer). Calls
for the same job are serialised by a per-job lock; peering keeps other replicas paused.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from tuneforge.api import FineTuneJob, FineTuneJobStatus, Reason
from tuneforge.api.base import error_messages
from tuneforge.api.runtime import TrainingRuntime
from tuneforge.api.status_rules import (
    Blocker,
    EventSpec,
    Observed,
    RunObservation,
    compute_status,
    events_for,
    wire,
)
from tuneforge_operator.builder import (
    KUEUE_QUEUE_LABEL,
    build_rayjob,
    changed_immutable_fields,
    rayjob_name,
)
from tuneforge_operator.entrypoint import parse_entrypoint
from tuneforge_operator.final_event import FinalEvents, is_final_reason
from tuneforge_operator.kubeapi import (
    AlreadyExists,
    KubeApi,
    KubeApiError,
    finetunejob_path,
    rayjob_path,
)
from tuneforge_operator.lanes import CreatesFirst
from tuneforge_operator.metrics import (
    JOBS,
    RAYJOBS_CREATED,
    RECONCILE_ERRORS,
    RECONCILE_SECONDS,
    STATUS_WRITES,
)
from tuneforge_operator.mlflow_reader import MlflowReader, MlflowUnavailable
from tuneforge_operator.rayjob_state import observe_rayjob
from tuneforge_operator.runtimes import RuntimeCatalog

_STATUS_KEYS = {
    "conditions",
    "observedGeneration",
    "rayJobName",
    "startTime",
    "completionTime",
    "progress",
    "mlflow",
}
EventPoster = Callable[[Mapping[str, Any], EventSpec], None]


@dataclass(frozen=True)
class Outcome:
    """How a reconcile ended, for the kopf handler to turn into retries."""

    finished: bool = False
    """The job is in a terminal state (or gone)."""
    retry_reason: str | None = None
    """A temporary blocker: retry later."""
    permanent_error: str | None = None
    """The spec is invalid: retrying cannot help until it changes."""


def parse_status(raw: Any) -> FineTuneJobStatus | None:
    """Our part of `.status` (kopf's or unknown keys are ignored); None when absent or unreadable."""
    if not isinstance(raw, Mapping):
        return None
    known = {k: v for k, v in raw.items() if k in _STATUS_KEYS}
    if not known:
        return None
    try:
        return FineTuneJobStatus.model_validate(known)
    except ValidationError:
        return None


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    """True when `obj` has a controller owner reference to `uid`."""
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid and ref.get("controller") for ref in refs)


def _validation_message(error: ValidationError) -> str:
    """The first three readable lines, as the admission webhook and the CLI word them."""
    return "Invalid spec: " + "; ".join(error_messages(error, FineTuneJob)[:3])


def _fingerprint(rayjob: Mapping[str, Any]) -> str:
    meta = rayjob.get("metadata", {})
    return json.dumps([meta.get("generation"), rayjob.get("status")], sort_keys=True)


class Reconciler:
    """Holds the clients and per-job locks; `reconcile` does one level-triggered pass."""

    def __init__(
        self,
        api: KubeApi,
        catalog: RuntimeCatalog,
        mlflow: MlflowReader | None,
        post_event: EventPoster,
        registration_grace_s: float = 120.0,
    ) -> None:
        self._api, self._catalog, self._mlflow = api, catalog, mlflow
        self._post_event = post_event
        self._grace = registration_grace_s
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._lanes = CreatesFirst()
        self._seen_rayjobs: dict[str, str] = {}
        self._final_events = FinalEvents(api)

    def forget(self, namespace: str, name: str, uid: str | None) -> None:
        """Drop what we keep for a deleted job."""
        self._locks.pop((namespace, name), None)
        if uid:
            JOBS.forget(uid)
            self._final_events.forget(uid)

    async def ensure_final_event(
        self,
        body: Mapping[str, Any],
        logger: logging.Logger | logging.LoggerAdapter[Any],
    ) -> None:
        """Post the final Event of a finished job unless it exists (after a restart, say)."""
        await self._final_events.ensure(body, parse_status(body.get("status")), logger)

    async def reconcile(
        self,
        namespace: str,
        name: str,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        trigger: str,
        body: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """One full pass for the job `namespace/name` (timed and counted).

        `body` (the object as kopf just saw it) saves a GET on the first visit only; any
        later pass reads the job fresh, so it never acts on a status older than its own.
        """
        lock = self._locks.setdefault((namespace, name), asyncio.Lock())
        with RECONCILE_SECONDS.labels(trigger).time():
            try:
                async with lock:
                    return await self._reconcile(namespace, name, logger, body)
            except Exception as error:
                RECONCILE_ERRORS.labels(type(error).__name__).inc()
                raise

    def rayjob_is_known(self, rayjob: Mapping[str, Any]) -> bool:
        """True when this RayJob's generation and status are what the last pass already saw."""
        meta = rayjob.get("metadata", {})
        return self._seen_rayjobs.get(str(meta.get("uid"))) == _fingerprint(rayjob)

    async def _reconcile(
        self,
        namespace: str,
        name: str,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        body: Mapping[str, Any] | None,
    ) -> Outcome:
        first_sight = body is not None and parse_status(body.get("status")) is None
        raw = dict(body) if first_sight and body is not None else None
        raw = raw or await self._api.get(finetunejob_path(namespace, name))
        if raw is None or raw.get("metadata", {}).get("deletionTimestamp"):
            return Outcome(finished=True)
        meta = raw["metadata"]
        uid, generation = str(meta["uid"]), int(meta.get("generation", 1))
        current = parse_status(raw.get("status"))
        if (
            current is not None
            and current.is_finished()
            and current.observed_generation == generation
        ):
            self._index(uid, current)
            await self._final_events.ensure(raw, current, logger)
            return Outcome(finished=True)
        child = current.ray_job_name if current and current.ray_job_name else rayjob_name(name)
        try:
            job = FineTuneJob.model_validate(
                {
                    "metadata": {
                        k: meta[k]
                        for k in ("name", "namespace", "uid", "generation", "labels")
                        if k in meta
                    },
                    "spec": raw.get("spec", {}),
                }
            )
        except ValidationError as error:
            message = _validation_message(error)
        else:
            # Tenancy (the admission webhook's rules) is decided before any RayJob exists.
            refused = current is None or current.ray_job_name is None
            refusals = await self._catalog.refusals(job.spec, namespace) if refused else []
            message = "Refused by tenancy: " + "; ".join(refusals) if refusals else ""
        if message:
            blocker = Blocker(Reason.INVALID_SPEC, message, permanent=True)
            # No RayJob will exist for an invalid spec: name none unless one already does.
            existing_child = current.ray_job_name if current is not None else None
            observed = Observed(generation, ray_job_name=existing_child, blocker=blocker)
            await self._write(raw, logger, current, compute_status(current, observed))
            return Outcome(permanent_error=message)

        spec = job.spec
        base = Observed.of_job(
            job,
            generation=generation,
            ray_job_name=child,
            mlflow_configured=self._mlflow is not None,
            registration_grace_s=self._grace,
        )
        first_visit = current is None or current.ray_job_name is None
        runtime_lookup: asyncio.Task[TrainingRuntime | Blocker] | None = None
        with self._lanes.create_path() if first_visit else contextlib.nullcontext():
            if first_visit:
                # The runtime is looked up while the name is written: both precede the create.
                runtime_lookup = asyncio.create_task(self._catalog.get(spec.runtime, namespace))
                # The child's name is in status before the child exists: a restart finds it.
                pending = compute_status(current, base)
                try:
                    await self._write(raw, logger, current, pending)
                except BaseException:
                    runtime_lookup.cancel()
                    raise
                current = pending
            existing, create_blocker, created = await self._ensure_rayjob(
                job, child, skip_get=first_visit, logger=logger, runtime_lookup=runtime_lookup
            )
        immutable: list[str] = []
        if existing is not None:
            self._seen_rayjobs[str(existing["metadata"].get("uid"))] = _fingerprint(existing)
            existing = await self._sync_suspend(job, existing, logger)
            if not created:  # one we just built from this very spec has nothing to compare
                applied = parse_entrypoint(str(existing.get("spec", {}).get("entrypoint", "")))
                if applied is not None:
                    immutable = changed_immutable_fields(applied.get("spec", {}), spec.to_wire())
        run, mlflow_error = await self._read_mlflow(uid, spec.output.registered_model, existing)
        observed = dataclasses.replace(
            base,
            training=observe_rayjob(existing.get("status")) if existing is not None else None,
            blocker=create_blocker,
            run=run,
            mlflow_error=mlflow_error,
            immutable_changes=immutable,
        )
        new = compute_status(current, observed)
        if created:
            # The status after a create is not urgent: in a burst of new jobs it waits for
            # the other jobs' creates (see lanes.py).
            async with self._lanes.follow_up():
                await self._write(raw, logger, current, new)
        else:
            await self._write(raw, logger, current, new)
        if create_blocker is not None:
            return Outcome(retry_reason=create_blocker.message)
        return Outcome(finished=new.is_finished())

    async def _ensure_rayjob(
        self,
        job: FineTuneJob,
        child: str,
        skip_get: bool,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        runtime_lookup: Awaitable[TrainingRuntime | Blocker] | None = None,
    ) -> tuple[dict[str, Any] | None, Blocker | None, bool]:
        """The RayJob (created when missing), why it cannot exist, and whether we created it.

        `runtime_lookup` is the job's runtime already being looked up (else looked up here).
        """
        namespace, uid = str(job.metadata.namespace), str(job.metadata.uid)
        existing = None if skip_get else await self._api.get(rayjob_path(namespace, child))
        created = False
        if existing is None:
            runtime = await (runtime_lookup or self._catalog.get(job.spec.runtime, namespace))
            if isinstance(runtime, Blocker):
                logger.warning(runtime.message)
                return None, runtime, False
            manifest = build_rayjob(job, runtime)
            manifest["metadata"]["name"] = child
            try:
                existing = await self._api.create(rayjob_path(namespace), manifest)
                created = True
                RAYJOBS_CREATED.inc()
                logger.info(f"Created RayJob {namespace}/{child}")
            except AlreadyExists:
                existing = await self._api.get(rayjob_path(namespace, child))
            except KubeApiError as error:
                message = f"The API server refused RayJob {child}: {error.message}"
                logger.error(message)
                return None, Blocker(Reason.RAY_JOB_CREATE_FAILED, message), False
        if existing is None:
            return (
                None,
                Blocker(
                    Reason.RAY_JOB_CREATE_FAILED, f"RayJob {child} vanished while being created"
                ),
                False,
            )
        if not owned_by(existing, uid):
            return (
                None,
                Blocker(
                    Reason.RAY_JOB_CREATE_FAILED,
                    f"RayJob {namespace}/{child} exists but is not owned by this FineTuneJob; "
                    "delete it or give the job another name",
                ),
                False,
            )
        return existing, None, created

    async def _sync_suspend(
        self,
        job: FineTuneJob,
        rayjob: dict[str, Any],
        logger: logging.Logger | logging.LoggerAdapter[Any],
    ) -> dict[str, Any]:
        labels = rayjob.get("metadata", {}).get("labels") or {}
        if KUEUE_QUEUE_LABEL in labels:
            # Kueue owns `suspend` of queued RayJobs (the job's queue or its runtime's default).
            return rayjob
        if bool(rayjob.get("spec", {}).get("suspend", False)) == job.spec.suspend:
            return rayjob
        name = rayjob["metadata"]["name"]
        logger.info(f"{'Suspending' if job.spec.suspend else 'Resuming'} RayJob {name}")
        return await self._api.merge_patch(
            rayjob_path(str(job.metadata.namespace), name), {"spec": {"suspend": job.spec.suspend}}
        )

    async def _read_mlflow(
        self, uid: str, model_name: str, rayjob: dict[str, Any] | None
    ) -> tuple[RunObservation | None, str | None]:
        if self._mlflow is None or rayjob is None:
            return None, None
        try:
            return await self._mlflow.observe(uid, model_name), None
        except MlflowUnavailable as error:
            RECONCILE_ERRORS.labels("MlflowUnavailable").inc()
            return None, str(error)

    async def _write(
        self,
        raw: Mapping[str, Any],
        logger: logging.Logger | logging.LoggerAdapter[Any],
        current: FineTuneJobStatus | None,
        new: FineTuneJobStatus,
    ) -> bool:
        self._index(str(raw["metadata"]["uid"]), new)
        before, after = wire(current), wire(new)
        if before == after:
            return False
        patch: dict[str, Any] = dict(after)
        patch.update({key: None for key in before if key not in after})
        meta = raw["metadata"]
        await self._api.merge_patch(
            finetunejob_path(meta["namespace"], meta["name"], status=True), {"status": patch}
        )
        STATUS_WRITES.inc()
        for event in events_for(current, new):
            if not is_final_reason(event.reason, new):
                self._post_event(raw, event)
        await self._final_events.ensure(raw, new, logger)
        return True

    @staticmethod
    def _index(uid: str, status: FineTuneJobStatus) -> None:
        JOBS.update(uid, {c.type: c.status.value for c in status.conditions})
