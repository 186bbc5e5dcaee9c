"""`helm install` of the chart on the real node, with the locally built operator image.

The only Kubernetes that builds here is v1.20.2; the chart asks for >= 1.21 (policy/v1 and
friends). Everything the values used here render exists in 1.20, so the chart's copy has its
floor lowered; nothing else of the chart is changed.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.node_cluster import NodeCluster
from tests.unit.helm.helmchart import chart_copy, helm_binary

RELEASE = "tf"
READY_TIMEOUT_S = 180


def helm(cluster: NodeCluster, *args: str, timeout_s: float = 300) -> str:
    """Run helm against the node's apiserver; fail with its output unless it succeeds."""
    command = [helm_binary(), "--kubeconfig", str(cluster.kube.kubeconfig), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def install_chart(
    cluster: NodeCluster, namespace: str, work: Path, values: dict[str, Any] | None = None
) -> None:
    """Install the chart as `RELEASE` into `namespace` with the local operator image and
    `values` (a values file) on top."""
    image = cluster.images["operator"]
    chart = chart_copy(work / "chart")
    chart_yaml = chart / "Chart.yaml"
    text = chart_yaml.read_text()
    assert 'kubeVersion: ">=1.21.0-0"' in text, "the chart's kubeVersion floor changed"
    chart_yaml.write_text(text.replace(">=1.21.0-0", ">=1.20.0-0"))
    extra: list[str] = []
    if values:
        values_file = work / "values.yaml"
        values_file.write_text(yaml.safe_dump(values))
        extra = ["--values", str(values_file)]
    helm(
        cluster, "install", RELEASE, str(chart), "--namespace", namespace,
        "--set", f"image.repository={image.repository}", "--set", f"image.tag={image.tag}",
        "--set", "image.pullPolicy=Never", *extra,
    )  # fmt: skip


def ready_operator(cluster: NodeCluster, namespace: str) -> dict[str, Any]:
    """The operator Deployment once it has a ready replica."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    while True:
        items = cluster.kube.request("GET", path).body["items"]
        operator = next(d for d in items if "operator" in d["metadata"]["name"])
        status = operator.get("status", {})
        if status.get("readyReplicas", 0) >= 1:
            return dict(operator)
        assert time.monotonic() < deadline, f"operator Deployment not Ready: {status}"
        time.sleep(2)
