"""The chart's Kubernetes API table and its networking objects, on the real 1.20 apiserver.

The test apiserver is v1.20.2, one minor below the chart's minimum (1.21): it cannot serve
`policy/v1`, so PodDisruptionBudgets are checked offline only (tests/unit/helm). What it can do:
confirm the API table (tests/unit/helm/fixtures/kube_apis.yaml) says exactly what 1.20 serves,
and accept the NetworkPolicies, the Ingress and the annotated serving ServiceAccount with
nothing pruned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.kube import KubeCluster
from tests.integration.helm.apply import create, too_new_for_the_test_apiserver
from tests.integration.helm.test_rayservice_kuberay import missing_paths
from tests.unit.helm.helmchart import find, one, render
from tests.unit.helm.kubeapis import APIS, TEST_APISERVER, served_in
from tests.unit.helm.variants import ENDPOINTS

pytestmark = pytest.mark.integration
SERVER = TEST_APISERVER


def _discovered(kube: KubeCluster, api: str) -> bool:
    """Whether the apiserver's discovery lists this `group/version/Kind`."""
    group_version, kind = api.rsplit("/", 1)
    path = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    response = kube.request("GET", path)
    if response.status == 404:
        return False
    assert response.status == 200, f"discovery {path} -> {response.status}: {response.message}"
    return any(
        resource.get("kind") == kind and "/" not in resource["name"]
        for resource in response.body["resources"]
    )


def test_the_api_table_matches_what_the_1_20_server_serves(kube: KubeCluster) -> None:
    version = kube.request("GET", "/version").body
    assert (int(version["major"]), int(version["minor"].rstrip("+"))) == SERVER
    wrong = {
        api: {"table": served_in(api, SERVER), "server": _discovered(kube, api)}
        for api in APIS["builtin"]
        if served_in(api, SERVER) != _discovered(kube, api)
    }
    assert not wrong, f"tests/unit/helm/fixtures/kube_apis.yaml disagrees with 1.20: {wrong}"
    assert not _discovered(kube, "policy/v1/PodDisruptionBudget"), "why the chart needs 1.21"


def _networking(chart: Path, namespace: str) -> list[dict[str, Any]]:
    values: dict[str, Any] = {
        **ENDPOINTS,
        "serving": {
            "enabled": True,
            "auth": {"existingSecret": "serving-token"},
            "serviceAccount": {"annotations": {"iam.gke.io/gcp-service-account": "sd@p.iam"}},
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "tls": [{"secretName": "sd-tls", "hosts": ["sd.example.com"]}],
                "hosts": [{"host": "sd.example.com", "paths": [{"path": "/"}]}],
            },
        },
        "networkPolicy": {
            "operator": {"extraIngress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]}
        },
    }
    docs = render(chart, values, namespace=namespace)
    wanted = [*find(docs, "NetworkPolicy"), one(docs, "Ingress")]
    return [*wanted, one(docs, "ServiceAccount", "-serving")]


def test_networking_objects_are_accepted_with_nothing_pruned(
    kube: KubeCluster, kube_namespace: str, chart: Path
) -> None:
    sent = _networking(chart, kube_namespace)
    assert {d["kind"] for d in sent} == {"NetworkPolicy", "Ingress", "ServiceAccount"}
    assert len(sent) == 5
    policies = sorted(d["metadata"]["name"] for d in sent if d["kind"] == "NetworkPolicy")
    assert policies == ["tf-tuneforge-operator", "tf-tuneforge-serving", "tf-tuneforge-training"]
    for doc in sent:
        got = create(kube.rest, doc)
        for field in ("spec", "metadata"):
            if field in doc:
                pruned = missing_paths(
                    {k: v for k, v in doc[field].items() if k != "namespace"}, got[field]
                )
                assert not pruned, f"{doc['kind']}/{doc['metadata']['name']}: {pruned}"


def test_install_leaves_out_only_what_1_20_cannot_serve(chart: Path) -> None:
    """The chart's install on the test apiserver skips the PodDisruptionBudgets, nothing else."""
    values = {
        **ENDPOINTS,
        "operator": {"replicas": 2},
        "serving": {"enabled": True, "auth": {"existingSecret": "serving-token"}},
    }
    docs = render(chart, values)
    skipped = sorted(d["metadata"]["name"] for d in docs if too_new_for_the_test_apiserver(d))
    assert skipped == ["tf-tuneforge-operator", "tf-tuneforge-serving"]
    assert {d["kind"] for d in docs if too_new_for_the_test_apiserver(d)} == {"PodDisruptionBudget"}
