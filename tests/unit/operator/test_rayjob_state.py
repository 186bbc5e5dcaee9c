"""KubeRay's two status enums, translated defensively."""

from __future__ import annotations

from typing import Any

import pytest

from tuneforge_operator.rayjob_state import RayJobPhase, observe_rayjob

CASES: list[tuple[dict[str, Any] | None, RayJobPhase, str]] = [
    (None, RayJobPhase.STARTING, "ClusterStarting"),
    ({}, RayJobPhase.STARTING, "ClusterStarting"),
    ({"jobDeploymentStatus": "Initializing"}, RayJobPhase.STARTING, "ClusterStarting"),
    ({"jobDeploymentStatus": "Waiting"}, RayJobPhase.STARTING, "ClusterStarting"),
    ({"jobDeploymentStatus": "SomethingNew"}, RayJobPhase.STARTING, "ClusterStarting"),
    (
        {"jobDeploymentStatus": "Running", "jobStatus": "PENDING"},
        RayJobPhase.STARTING,
        "ClusterStarting",
    ),
    ({"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}, RayJobPhase.RUNNING, "Training"),
    # A terminal Ray job under a Running deployment is not terminal yet (KubeRay finishes it).
    ({"jobDeploymentStatus": "Running", "jobStatus": "SUCCEEDED"}, RayJobPhase.RUNNING, "Training"),
    ({"jobDeploymentStatus": "Running", "jobStatus": "FAILED"}, RayJobPhase.RUNNING, "Training"),
    (
        {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"},
        RayJobPhase.SUCCEEDED,
        "TrainingSucceeded",
    ),
    ({"jobDeploymentStatus": "Complete", "jobStatus": "FAILED"}, RayJobPhase.FAILED, "AppFailed"),
    ({"jobDeploymentStatus": "Complete", "jobStatus": "STOPPED"}, RayJobPhase.FAILED, "JobStopped"),
    # The enums disagree: Complete is terminal, but without SUCCEEDED it is no success.
    ({"jobDeploymentStatus": "Complete", "jobStatus": "RUNNING"}, RayJobPhase.FAILED, "JobFailed"),
    ({"jobDeploymentStatus": "Complete"}, RayJobPhase.FAILED, "JobFailed"),
    (
        {"jobDeploymentStatus": "Failed", "reason": "SubmissionFailed"},
        RayJobPhase.FAILED,
        "SubmissionFailed",
    ),
    (
        {"jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded"},
        RayJobPhase.FAILED,
        "DeadlineExceeded",
    ),
    ({"jobDeploymentStatus": "Failed", "reason": "AppFailed"}, RayJobPhase.FAILED, "AppFailed"),
    ({"jobDeploymentStatus": "Failed", "reason": "NewReason"}, RayJobPhase.FAILED, "JobFailed"),
    ({"jobDeploymentStatus": "Failed", "jobStatus": "SUCCEEDED"}, RayJobPhase.FAILED, "JobFailed"),
    ({"jobDeploymentStatus": "ValidationFailed"}, RayJobPhase.FAILED, "RayJobInvalid"),
    ({"jobDeploymentStatus": "Suspended"}, RayJobPhase.SUSPENDED, "Suspended"),
    ({"jobDeploymentStatus": "Suspending"}, RayJobPhase.SUSPENDED, "Suspended"),
    ({"jobDeploymentStatus": "Retrying", "failed": 1}, RayJobPhase.RETRYING, "Retrying"),
]


@pytest.mark.parametrize(("status", "phase", "reason"), CASES)
def test_mapping(status: dict[str, Any] | None, phase: RayJobPhase, reason: str) -> None:
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
    assert observation.terminal
