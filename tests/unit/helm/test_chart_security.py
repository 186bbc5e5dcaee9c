"""Secure defaults (bitnami style) and least-privilege RBAC from one rule definition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.unit.helm.helmchart import find, one, render
from tests.unit.helm.variants import VARIANTS


def _pod_specs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every pod spec the chart renders (Deployment, helm test Pod, Ray head and workers)."""
    specs = {}
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] == "Deployment":
            specs[name] = doc["spec"]["template"]["spec"]
        elif doc["kind"] == "Pod":
            specs[name] = doc["spec"]
        elif doc["kind"] == "RayService":
            cluster = doc["spec"]["rayClusterConfig"]
            specs[f"{name}/head"] = cluster["headGroupSpec"]["template"]["spec"]
            for group in cluster["workerGroupSpecs"]:
                specs[f"{name}/{group['groupName']}"] = group["template"]["spec"]
    return specs


def test_every_pod_runs_non_root_without_capabilities(chart: Path) -> None:
    docs = render(chart, VARIANTS["serving-gpu"])
    specs = _pod_specs(docs)
    assert len(specs) == 4, sorted(specs)
    for name, spec in specs.items():
        pod_context = spec["securityContext"]
        assert pod_context["runAsNonRoot"] is True, name
        assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert "resources" in container, name


def test_operator_has_read_only_root_probes_and_resources(chart: Path) -> None:
    deployment = one(render(chart), "Deployment", "-operator")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["limits"]["memory"]
    assert container["resources"]["requests"]["cpu"]
    assert container["command"] == ["python", "-m", "tuneforge_operator"]


def test_serving_pods_get_no_api_token(chart: Path) -> None:
    docs = render(chart, VARIANTS["serving-gpu"])
    for name, spec in _pod_specs(docs).items():
        if "RayService" in name:
            assert spec["automountServiceAccountToken"] is False, name
            assert spec["serviceAccountName"] == "tf-tuneforge-serving"
    assert one(docs, "ServiceAccount", "-serving")["automountServiceAccountToken"] is False


def _rules(role: dict[str, Any]) -> list[tuple[str, str, tuple[str, ...]]]:
    return sorted(
        (group, resource, tuple(sorted(rule["verbs"])))
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    )


JOB_RULES = {
    ("tuneforge.io", "finetunejobs", ("get", "list", "patch", "watch")),
    ("tuneforge.io", "finetunejobs/status", ("patch",)),
    ("ray.io", "rayjobs", ("create", "get", "list", "patch", "watch")),
    ("", "events", ("create",)),
}


def test_namespaced_mode_is_the_default_and_watches_the_release_namespace(chart: Path) -> None:
    docs = render(chart, namespace="tf-system")
    assert not find(docs, "ClusterRole") and not find(docs, "ClusterRoleBinding")
    (role,) = find(docs, "Role", "-operator")
    assert role["metadata"]["namespace"] == "tf-system"
    assert one(docs, "KopfPeering")["metadata"]["namespace"] == "tf-system"


def test_cluster_wide_refuses_a_namespace_list(chart: Path) -> None:
    import pytest

    values = {"operator": {"clusterWide": True, "watchNamespaces": ["team-a"]}}
    with pytest.raises(AssertionError, match="operator.clusterWide: true watches every namespace"):
        render(chart, values)


def test_cluster_wide_and_namespaced_modes_share_one_rule_set(chart: Path) -> None:
    cluster_docs = render(chart, VARIANTS["cluster-wide"])
    cluster_role = one(cluster_docs, "ClusterRole", "-operator")
    cluster_rules = set(_rules(cluster_role))
    assert JOB_RULES <= cluster_rules
    assert cluster_rules - JOB_RULES == {
        ("kopf.dev", "clusterkopfpeerings", ("create", "get", "list", "patch", "watch")),
        ("apiextensions.k8s.io", "customresourcedefinitions", ("list", "watch")),
    }
    assert not find(cluster_docs, "Role", "-operator")

    ns_docs = render(chart, VARIANTS["single-namespace"])
    assert not find(ns_docs, "ClusterRole") and not find(ns_docs, "ClusterRoleBinding")
    roles = find(ns_docs, "Role", "-operator")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert set(_rules(role)) == JOB_RULES | {
            ("kopf.dev", "kopfpeerings", ("create", "get", "list", "patch", "watch"))
        }
    bindings = find(ns_docs, "RoleBinding", "-operator")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "tf-tuneforge", "namespace": "tuneforge-system"}
        ]


def test_no_secret_access_and_no_wildcards(chart: Path) -> None:
    for variant in VARIANTS.values():
        docs = render(chart, variant)
        for role in [d for d in docs if d["kind"] in ("Role", "ClusterRole")]:
            for group, resource, verbs in _rules(role):
                assert "*" not in (group, resource) and "*" not in verbs, role["metadata"]
                assert resource not in ("secrets", "pods/exec", "serviceaccounts/token")


def test_runtimes_are_read_only_in_the_operators_namespace(chart: Path) -> None:
    docs = render(chart, VARIANTS["single-namespace"], namespace="tf-system")
    reader = one(docs, "Role", "-runtimes-reader")
    assert reader["metadata"]["namespace"] == "tf-system"
    assert _rules(reader) == [("", "configmaps", ("get",))]


def test_peering_objects_follow_the_mode(chart: Path) -> None:
    clusterwide = render(chart, VARIANTS["cluster-wide"])
    assert one(clusterwide, "ClusterKopfPeering")["metadata"]["name"] == "tuneforge"
    peerings = find(render(chart, VARIANTS["single-namespace"]), "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]


def test_secrets_are_copied_to_watched_namespaces_only_when_chart_made(chart: Path) -> None:
    docs = render(chart, VARIANTS["single-namespace"], namespace="tf-system")
    placed = sorted(
        (d["metadata"]["namespace"], d["metadata"]["name"]) for d in find(docs, "Secret")
    )
    assert placed == [
        (ns, f"tf-tuneforge-{kind}")
        for ns in ("team-a", "team-b", "tf-system")
        for kind in ("mlflow", "s3")
    ]
    s3 = next(d for d in find(docs, "Secret", "-s3"))
    assert s3["stringData"] == {"AWS_ACCESS_KEY_ID": "ak", "AWS_SECRET_ACCESS_KEY": "sk"}


def test_two_replicas_get_a_disruption_budget(chart: Path) -> None:
    docs = render(chart, VARIANTS["two-replicas"])
    assert one(docs, "Deployment")["spec"]["replicas"] == 2
    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert not find(render(chart), "PodDisruptionBudget")
