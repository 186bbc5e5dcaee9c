"""`helm install` of the chart on the real node: the operator runs as a pod; `helm test` passes.

The operator image is the one `make images` built (`imagePullPolicy: Never`); the chart's own
ServiceAccount, RBAC, probes and securityContext apply to a running container.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.cluster.node_cluster import NodeCluster
from tests.unit.helm.helmchart import chart_copy, helm_binary

pytestmark = pytest.mark.cluster

RELEASE = "tf"
READY_TIMEOUT_S = 180


def _helm(cluster: NodeCluster, *args: str, timeout_s: float = 300) -> str:
    command = [helm_binary(), "--kubeconfig", str(cluster.kube.kubeconfig), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def release(node_cluster: NodeCluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The chart installed into a fresh namespace with the local operator image."""
    namespace = node_cluster.kube.create_namespace("chart")
    image = node_cluster.images["operator"]
    chart = chart_copy(tmp_path_factory.mktemp("chart"))
    # The only Kubernetes that builds here is v1.20.2; the chart asks for >= 1.21 (policy/v1
    # and friends). Everything the default values render exists in 1.20, so the copy's floor
    # is lowered; nothing else of the chart is changed.
    chart_yaml = chart / "Chart.yaml"
    text = chart_yaml.read_text()
    assert 'kubeVersion: ">=1.21.0-0"' in text, "the chart's kubeVersion floor changed"
    chart_yaml.write_text(text.replace(">=1.21.0-0", ">=1.20.0-0"))
    _helm(
        node_cluster, "install", RELEASE, str(chart), "--namespace", namespace,
        "--set", f"image.repository={image.repository}", "--set", f"image.tag={image.tag}",
        "--set", "image.pullPolicy=Never",
    )  # fmt: skip
    return namespace


def _ready_deployment(cluster: NodeCluster, namespace: str) -> dict:
    deadline = time.monotonic() + READY_TIMEOUT_S
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    while True:
        items = cluster.kube.request("GET", path).body["items"]
        operator = next(d for d in items if "operator" in d["metadata"]["name"])
        status = operator.get("status", {})
        if status.get("readyReplicas", 0) >= 1:
            return operator
        assert time.monotonic() < deadline, f"operator Deployment not Ready: {status}"
        time.sleep(2)


def test_operator_deployment_becomes_ready_as_a_pod_under_its_service_account(
    node_cluster: NodeCluster, release: str
) -> None:
    deployment = _ready_deployment(node_cluster, release)
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
    _ready_deployment(node_cluster, release)
    output = _helm(node_cluster, "test", RELEASE, "--namespace", release, "--logs", timeout_s=300)
    assert "Phase:          Succeeded" in output or "Succeeded" in output, output
    assert "TuneForge is installed and its operator is alive." in output, output
