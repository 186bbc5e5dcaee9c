"""KubeRay's two status enums, translated defensively."""

from __future__ import annotations

from typing import Any

import pytest

from tuneforge.api.status_rules import TrainingPhase
from tuneforge_operator.rayjob_state import observe_rayjob

CASES: list[tuple[dict[str, Any] | None, TrainingPhase, str]] = [
    (None, TrainingPhase.STARTING, "ClusterStarting"),
    ({}, TrainingPhase.STARTING, "ClusterStarting"),
    ({"jobDeploymentStatus": "Initializing"}, TrainingPhase.STARTING, "ClusterStarting"),
    ({"jobDeploymentStatus": "Waiting"}, TrainingPhase.STARTING, "ClusterStarting"),
    ({"jobDeploymentStatus": "SomethingNew"}, TrainingPhase.STARTING, "ClusterStarting"),
    (
        {"jobDeploymentStatus": "Running", "jobStatus": "PENDING"},
        TrainingPhase.STARTING,
        "ClusterStarting",
    ),
    ({"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}, TrainingPhase.RUNNING, "Training"),
    # A terminal Ray job under a Running deployment is not terminal yet (KubeRay finishes it).
    (
        {"jobDeploymentStatus": "Running", "jobStatus": "SUCCEEDED"},
        TrainingPhase.RUNNING,
        "Training",
    ),
    ({"jobDeploymentStatus": "Running", "jobStatus": "FAILED"}, TrainingPhase.RUNNING, "Training"),
    (
        {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"},
        TrainingPhase.SUCCEEDED,
        "TrainingSucceeded",
    ),
    ({"jobDeploymentStatus": "Complete", "jobStatus": "FAILED"}, TrainingPhase.FAILED, "AppFailed"),
    (
        {"jobDeploymentStatus": "Complete", "jobStatus": "STOPPED"},
        TrainingPhase.FAILED,
        "JobStopped",
    ),
    # The enums disagree: Complete is terminal, but without SUCCEEDED it is no success.
    (
        {"jobDeploymentStatus": "Complete", "jobStatus": "RUNNING"},
        TrainingPhase.FAILED,
        "JobFailed",
    ),
    ({"jobDeploymentStatus": "Complete"}, TrainingPhase.FAILED, "JobFailed"),
    (
        {"jobDeploymentStatus": "Failed", "reason": "SubmissionFailed"},
        TrainingPhase.FAILED,
        "SubmissionFailed",
    ),
    (
        {"jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded"},
        TrainingPhase.FAILED,
        "DeadlineExceeded",
    ),
    ({"jobDeploymentStatus": "Failed", "reason": "AppFailed"}, TrainingPhase.FAILED, "AppFailed"),
    ({"jobDeploymentStatus": "Failed", "reason": "NewReason"}, TrainingPhase.FAILED, "JobFailed"),
    (
        {"jobDeploymentStatus": "Failed", "jobStatus": "SUCCEEDED"},
        TrainingPhase.FAILED,
        "JobFailed",
    ),
    ({"jobDeploymentStatus": "ValidationFailed"}, TrainingPhase.FAILED, "RayJobInvalid"),
    ({"jobDeploymentStatus": "Suspended"}, TrainingPhase.SUSPENDED, "Suspended"),
    ({"jobDeploymentStatus": "Suspending"}, TrainingPhase.SUSPENDED, "Suspended"),
    ({"jobDeploymentStatus": "Retrying", "failed": 1}, TrainingPhase.RETRYING, "Retrying"),
]


@pytest.mark.parametrize(("status", "phase", "reason"), CASES)
def test_mapping(status: dict[str, Any] | None, phase: TrainingPhase, reason: str) -> None:
    observation = observe_rayjob(status)
    assert (observation.phase, observation.reason) == (phase, reason)
    assert observation.message


def test_messages_carry_kuberay_detail_and_disagreement() -> None:
    failed = observe_rayjob(
        {"jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded", "message": "after 60s"}
    )
    assert "activeDeadlineSeconds" in failed.message and "after 60s" in failed.message
    odd = observe_rayjob({"jobDeploymentStatus": "Complete", "jobStatus": "RUNNING"})
    assert "Complete" in odd.message and "RUNNING" in odd.message


def test_times_prefer_the_ray_job_info() -> None:
    observation = observe_rayjob(
        {
            "jobDeploymentStatus": "Complete",
            "jobStatus": "SUCCEEDED",
            "startTime": "2026-01-01T00:00:00Z",
            "endTime": "2026-01-01T01:00:00Z",
            "rayJobInfo": {"startTime": "2026-01-01T00:05:00Z"},
        }
    )
    assert observation.start_time == "2026-01-01T00:05:00Z"
    assert observation.end_time == "2026-01-01T01:00:00Z"
    assert observation.phase == TrainingPhase.SUCCEEDED
