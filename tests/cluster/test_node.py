"""The single-node cluster runs real pods: scheduled, started by containerd, logs readable."""

from __future__ import annotations

import time

import pytest

from tests.cluster.node_cluster import NODE_NAME, NodeCluster

pytestmark = pytest.mark.cluster


def _wait_phase(cluster: NodeCluster, namespace: str, name: str, timeout_s: float = 90) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        pod = cluster.kube.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}").body
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return pod
        assert time.monotonic() < deadline, f"pod {name} did not finish: {pod.get('status')}"
        time.sleep(1)


def test_a_scheduled_pod_runs_in_the_operator_image_and_its_log_is_served(
    node_cluster: NodeCluster,
) -> None:
    kube = node_cluster.kube
    namespace = kube.create_namespace("node")
    operator = node_cluster.images["operator"].reference
    assert operator in node_cluster.ctr("images", "ls", "-q").split()
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "hello"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "hello",
                    "image": operator,
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", "import os; print('uid', os.getuid())"],
                    "resources": {"limits": {"memory": "64Mi"}},
                }
            ],
        },
    }
    created = kube.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod)
    assert created.status == 201, created.body
    finished = _wait_phase(node_cluster, namespace, "hello")
    assert finished["status"]["phase"] == "Succeeded", finished["status"]
    assert finished["spec"]["nodeName"] == NODE_NAME, "the scheduler did not bind the pod"
    assert finished["status"]["podIP"].startswith("10.88.0."), "no address from the CNI bridge"
    log = kube.request("GET", f"/api/v1/namespaces/{namespace}/pods/hello/log")
    assert log.status == 200 and log.body.strip() == "uid 65532", log.body
