"""`helm install` of the chart on the real node: the operator runs as a pod; `helm test` passes.

The operator image is the one `make images` built (`imagePullPolicy: Never`); the chart's own
ServiceAccount, RBAC, probes and securityContext apply to a running container.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.chart_release import RELEASE, helm, install_chart, ready_operator
from tests.cluster.node_cluster import NodeCluster

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def release(node_cluster: NodeCluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The chart installed into a fresh namespace with the local operator image."""
    namespace = node_cluster.kube.create_namespace("chart")
    install_chart(node_cluster, namespace, tmp_path_factory.mktemp("chart"))
    return namespace


def test_operator_deployment_becomes_ready_as_a_pod_under_its_service_account(
    node_cluster: NodeCluster, release: str
) -> None:
    deployment = ready_operator(node_cluster, release)
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    pods = node_cluster.kube.request(
        "GET",
        f"/api/v1/namespaces/{release}/pods?labelSelector=app.kubernetes.io/component=operator",
    ).body["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running"]
    assert running, [p["status"] for p in pods]
    pod = running[0]
    assert pod["spec"]["serviceAccountName"] == account
    mounted = [
        v
        for v in pod["spec"]["volumes"]
        if v.get("secret", {}).get("secretName", "").startswith(f"{account}-token")
    ]
    assert mounted, "the pod did not get its ServiceAccount's token"
    ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert ready["Ready"] == "True", pod["status"]
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0


def test_helm_test_passes_against_the_running_operator(
    node_cluster: NodeCluster, release: str, tmp_path: Path
) -> None:
    ready_operator(node_cluster, release)
    output = helm(node_cluster, "test", RELEASE, "--namespace", release, "--logs", timeout_s=300)
    assert "Phase:          Succeeded" in output or "Succeeded" in output, output
    assert "TuneForge is installed and its operator is alive." in output, output
