"""The chart's RayService is accepted by KubeRay's own CRD and reads back with nothing pruned.

The test apiserver holds KubeRay's real RayService CRD (../shared/kuberay-crds); a structural
schema silently prunes unknown fields, so every field we send must come back unchanged.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.kube import KubeCluster
from tests.integration.helm.apply import collection_path, create
from tests.unit.helm.helmchart import one, render
from tests.unit.helm.variants import VARIANTS

pytestmark = pytest.mark.integration


def missing_paths(sent: Any, got: Any, path: str = "") -> list[str]:
    """Paths of everything in `sent` that `got` lacks or holds differently."""
    if isinstance(sent, dict):
        if not isinstance(got, dict):
            return [path or "/"]
        found = []
        for key, value in sent.items():
            if key not in got:
                found.append(f"{path}.{key}")
            else:
                found += missing_paths(value, got[key], f"{path}.{key}")
        return found
    if isinstance(sent, list):
        if not isinstance(got, list) or len(got) != len(sent):
            return [path]
        found = []
        for index, (a, b) in enumerate(zip(sent, got, strict=True)):
            found += missing_paths(a, b, f"{path}[{index}]")
        return found
    return [] if sent == got else [f"{path} ({sent!r} != {got!r})"]


def _rayservice(chart: Path, namespace: str, values: dict[str, Any]) -> dict[str, Any]:
    return one(render(chart, values, namespace=namespace), "RayService")


@pytest.mark.parametrize("variant", ["serving-gpu", "serving-plain"])
def test_rayservice_is_accepted_with_nothing_pruned(
    kube: KubeCluster, kube_namespace: str, chart: Path, variant: str
) -> None:
    values = VARIANTS.get(variant) or {
        "serving": {"enabled": True, "auth": {"existingSecret": "serving-token"}}
    }
    sent = _rayservice(chart, kube_namespace, values)
    got = create(kube.rest, sent)
    pruned = missing_paths(sent["spec"], got["spec"])
    assert not pruned, f"KubeRay's CRD pruned or changed (misspelt fields?): {pruned}"
    assert got["metadata"]["labels"] == sent["metadata"]["labels"]


def test_a_misspelt_field_would_be_caught(
    kube: KubeCluster, kube_namespace: str, chart: Path
) -> None:
    """Control: the server really prunes unknown fields, so the check above means something."""
    sent = copy.deepcopy(_rayservice(chart, kube_namespace, VARIANTS["serving-gpu"]))
    sent["metadata"]["name"] += "-typo"
    sent["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplica"] = 3
    got = create(kube.rest, sent)
    assert missing_paths(sent["spec"], got["spec"]) == [
        ".rayClusterConfig.workerGroupSpecs[0].maxReplica"
    ]


def test_kuberay_refuses_a_wrongly_typed_field(
    kube: KubeCluster, kube_namespace: str, chart: Path
) -> None:
    sent = copy.deepcopy(_rayservice(chart, kube_namespace, VARIANTS["serving-gpu"]))
    sent["metadata"]["name"] += "-bad"
    sent["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplicas"] = "eight"
    response = kube.request("POST", collection_path("RayService", kube_namespace), sent)
    assert response.status == 422 and "maxReplicas" in response.message
