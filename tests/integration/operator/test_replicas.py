"""Two operator replicas at once (chart `operator.replicas: 2`): kopf peering keeps one active;
when it is killed, the standby takes over. No duplicate RayJob, no stuck job, one final Event."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.fixtures._kube_cluster import KubeCluster
from tests.fixtures.kuberay_standin import KubeRayStandIn
from tests.integration.helm.apply import install_chart_crds
from tests.integration.operator.harness import (
    OperatorProcess,
    all_succeeded,
    create_job,
    events,
    job_manifest,
    rayjobs,
    wait_until,
)

pytestmark = pytest.mark.integration
LIFETIME_S = 8  # how long the killed leader's peering record blocks the standby


def _full_log(operator: OperatorProcess) -> str:
    """Every line the operator logged (`OperatorProcess.log` keeps only the tail)."""
    return "".join(path.read_text(errors="replace") for path in operator.log_dir.glob("*.log"))


def test_two_replicas_one_acts_and_the_standby_takes_over_after_a_kill(
    kube: KubeCluster,
    kube_namespace: str,
    start_operator: Callable[..., OperatorProcess],
    kuberay_standin: Callable[..., KubeRayStandIn],
) -> None:
    install_chart_crds(kube)
    peered = {
        "TUNEFORGE_OPERATOR_PEERING_NAME": "tuneforge",
        "TUNEFORGE_OPERATOR_PEERING_LIFETIME_SECONDS": str(LIFETIME_S),
    }
    leader = start_operator(kube_namespace, {**peered, "TUNEFORGE_OPERATOR_PRIORITY": "200"})
    standby = start_operator(
        kube_namespace, {**peered, "TUNEFORGE_OPERATOR_PRIORITY": "100"}, runtimes=False
    )
    kuberay_standin(kube_namespace, outcome="succeed")
    first = [f"pair-{i}" for i in range(3)]
    uids = {name: create_job(kube, kube_namespace, job_manifest(name)) for name in first}
    wait_until(
        "the leader's jobs to succeed", lambda: all_succeeded(kube, kube_namespace, first), 90
    )
    # kopf starts a peered replica paused; the standby stays so while the leader lives.
    assert '"kind": "FineTuneJob"' not in _full_log(standby), "the standby handled a job"
    assert '"kind": "FineTuneJob"' in _full_log(leader)

    leader.kill()
    second = [f"pair-{i}" for i in range(3, 6)]
    uids |= {name: create_job(kube, kube_namespace, job_manifest(name)) for name in second}
    names = first + second
    wait_until(
        "the standby to finish every job", lambda: all_succeeded(kube, kube_namespace, names), 120
    )
    assert "Resuming operations" in _full_log(standby)

    owners = sorted(
        ref["uid"]
        for item in rayjobs(kube, kube_namespace)
        for ref in item["metadata"]["ownerReferences"]
        if ref.get("controller")
    )
    assert owners == sorted(job["metadata"]["uid"] for job in uids.values())
    for name in names:
        finals = [
            e for e in events(kube, kube_namespace, name) if e.get("reason") == "TrainingSucceeded"
        ]
        assert len(finals) == 1, (name, finals)
