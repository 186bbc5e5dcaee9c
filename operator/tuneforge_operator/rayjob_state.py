"""Translate a RayJob's status into the status rules' `TrainingObservation`, defensively.

KubeRay's RayJob has no conditions, only two enums that can disagree (kuberay #2314, #5152):
`jobDeploymentStatus` (the cluster and submission lifecycle) and `jobStatus` (the Ray job).
Rules, in order:

1. `jobDeploymentStatus` Complete or Failed is terminal, whatever `jobStatus` says.
   Complete succeeds only with `jobStatus` SUCCEEDED; any other pairing is a failure whose
   message names both values.
2. Failed takes its reason from `status.reason` (SubmissionFailed, DeadlineExceeded,
   AppFailed, ...); unknown or missing reasons become `JobFailed`.
3. A terminal `jobStatus` under a non-terminal deployment status is *not* terminal yet:
   KubeRay is still finishing (or retrying, with `backoffLimit`).
4. Anything unknown is "starting", never "failed": a newer KubeRay must not fail our jobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tuneforge.api import Reason
from tuneforge.api.status_rules import TrainingObservation, TrainingPhase

_FAILURE_REASONS = {
    "SubmissionFailed": (
        Reason.SUBMISSION_FAILED,
        "KubeRay could not submit the Ray job (the submitter failed or the cluster never got ready)",
    ),
    "DeadlineExceeded": (
        Reason.DEADLINE_EXCEEDED,
        "The job ran longer than spec.activeDeadlineSeconds",
    ),
    "AppFailed": (Reason.APP_FAILED, "The trainer exited with an error"),
    "ValidationFailed": (Reason.RAY_JOB_INVALID, "KubeRay refused the RayJob"),
}
_STARTING_DEPLOYMENTS = {"", "Initializing", "Waiting", "Scheduling", "Scheduled", "New"}


def _text(status: Mapping[str, Any], key: str) -> str:
    value = status.get(key)
    return value if isinstance(value, str) else ""


def _times(status: Mapping[str, Any]) -> tuple[str | None, str | None]:
    info = status.get("rayJobInfo")
    info = info if isinstance(info, Mapping) else {}
    start = info.get("startTime") or status.get("startTime")
    end = status.get("endTime") or info.get("endTime")
    return (start if isinstance(start, str) else None, end if isinstance(end, str) else None)


def _with_detail(summary: str, detail: str) -> str:
    return f"{summary}: {detail}" if detail else summary


def observe_rayjob(status: Mapping[str, Any] | None) -> TrainingObservation:
    """Translate `rayjob.status` (possibly empty or partial) into an observation."""
    status = status or {}
    deployment = _text(status, "jobDeploymentStatus")
    job_status = _text(status, "jobStatus")
    reason = _text(status, "reason")
    detail = _text(status, "message")
    start, end = _times(status)

    if deployment == "Complete":
        if job_status == "SUCCEEDED":
            return TrainingObservation(
                TrainingPhase.SUCCEEDED,
                Reason.TRAINING_SUCCEEDED.value,
                "Training finished",
                start,
                end,
            )
        if job_status == "STOPPED":
            return TrainingObservation(
                TrainingPhase.FAILED,
                Reason.JOB_STOPPED.value,
                _with_detail("The Ray job was stopped before it finished", detail),
                start,
                end,
            )
        mapped, summary = _FAILURE_REASONS.get(reason, (Reason.APP_FAILED, "The trainer failed"))
        if job_status != "FAILED":
            summary = (
                f"KubeRay reports the deployment Complete but the Ray job {job_status or 'unknown'}"
            )
            mapped = Reason.JOB_FAILED
        return TrainingObservation(
            TrainingPhase.FAILED, mapped.value, _with_detail(summary, detail), start, end
        )
    if deployment == "Failed" or deployment == "ValidationFailed":
        key = "ValidationFailed" if deployment == "ValidationFailed" and not reason else reason
        mapped, summary = _FAILURE_REASONS.get(
            key, (Reason.JOB_FAILED, f"KubeRay marked the RayJob failed ({reason or 'no reason'})")
        )
        if job_status == "SUCCEEDED":
            summary += " although the Ray job reported SUCCEEDED"
        return TrainingObservation(
            TrainingPhase.FAILED, mapped.value, _with_detail(summary, detail), start, end
        )
    if deployment in ("Suspended", "Suspending"):
        return TrainingObservation(
            TrainingPhase.SUSPENDED,
            Reason.SUSPENDED.value,
            f"The RayJob is {deployment.lower()}: its Ray cluster is deleted until it resumes",
            start,
        )
    if deployment == "Retrying":
        failed = status.get("failed")
        attempts = f" after {failed} failed attempt(s)" if isinstance(failed, int) else ""
        return TrainingObservation(
            TrainingPhase.RETRYING,
            Reason.RETRYING.value,
            _with_detail(f"KubeRay is retrying the job{attempts}", detail),
            start,
        )
    if deployment == "Running":
        if job_status == "RUNNING":
            return TrainingObservation(
                TrainingPhase.RUNNING, Reason.TRAINING.value, "The trainer is running", start
            )
        waiting = {
            "": "The Ray cluster is up; the job is being submitted",
            "PENDING": "The Ray job is submitted and waiting to start",
            "SCHEDULED": "The Ray job is scheduled",
        }
        if job_status in waiting:
            return TrainingObservation(
                TrainingPhase.STARTING, Reason.CLUSTER_STARTING.value, waiting[job_status], start
            )
        return TrainingObservation(
            TrainingPhase.RUNNING,
            Reason.TRAINING.value,
            f"The Ray job is {job_status}; waiting for KubeRay to finish the RayJob",
            start,
        )
    message = (
        "Waiting for KubeRay to start the Ray cluster"
        if deployment in _STARTING_DEPLOYMENTS
        else f"KubeRay reports jobDeploymentStatus {deployment!r}"
    )
    return TrainingObservation(
        TrainingPhase.STARTING, Reason.CLUSTER_STARTING.value, _with_detail(message, detail), start
    )
