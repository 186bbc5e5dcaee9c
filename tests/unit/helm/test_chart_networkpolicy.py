"""NetworkPolicies: on by default, ingress only, each port open only to the peers that need it,
extendable by values, and off with one switch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.unit.helm.helmchart import chart_copy, find, one, render

SERVING = {"serving": {"enabled": True, "auth": {"existingSecret": "serving-token"}}}


def _rules_by_port(policy: dict[str, Any]) -> dict[int | None, list[Any] | None]:
    """Port -> its `from` peers (None: from anywhere); key None for an all-ports rule."""
    rules: dict[int | None, list[Any] | None] = {}
    for rule in policy["spec"]["ingress"]:
        for port in rule.get("ports") or [{"port": None}]:
            rules[port["port"]] = rule.get("from")
    return rules


def _selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    return policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()


def test_operator_policy_opens_health_and_metrics_only(chart: Path) -> None:
    docs = render(chart)
    policy = one(docs, "NetworkPolicy", "-operator")
    assert policy["spec"]["policyTypes"] == ["Ingress"], "egress must stay open"
    pod_labels = one(docs, "Deployment", "-operator")["spec"]["template"]["metadata"]["labels"]
    assert _selects(policy, pod_labels)
    assert _rules_by_port(policy) == {
        8081: [{"podSelector": {}}],
        8080: [{"namespaceSelector": {}}],
    }
    assert not find(docs, "NetworkPolicy", "-serving"), "serving is off"


def test_serving_policy_keeps_ray_ports_inside_the_release(chart: Path) -> None:
    docs = render(chart, SERVING, release="tf")
    policy = one(docs, "NetworkPolicy", "-serving")
    cluster = one(docs, "RayService")["spec"]["rayClusterConfig"]
    for template in (cluster["headGroupSpec"], cluster["workerGroupSpecs"][0]):
        assert _selects(policy, template["template"]["metadata"]["labels"])
    rules = _rules_by_port(policy)
    own = rules[None]
    assert (
        own and own[0]["podSelector"]["matchLabels"] == policy["spec"]["podSelector"]["matchLabels"]
    )
    assert rules[8000] is None, "the API is open to clients (it has bearer auth)"
    assert rules[8080] == [{"namespaceSelector": {}}]
    kuberay = {"app.kubernetes.io/name": "kuberay-operator"}
    assert rules[8265] == [{"namespaceSelector": {}, "podSelector": {"matchLabels": kuberay}}]
    assert set(rules) == {None, 8000, 8080, 8265}, "GCS 6379 / client 10001 stay closed"


def test_policies_take_narrower_peers_and_extra_rules(chart: Path) -> None:
    monitoring = [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]
    extra = {
        "ports": [{"port": 9443, "protocol": "TCP"}],
        "from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}],
    }
    values = {
        **SERVING,
        "networkPolicy": {
            "metricsFrom": monitoring,
            "operator": {"extraIngress": [extra]},
            "serving": {"apiFrom": monitoring, "extraIngress": [extra]},
        },
    }
    docs = render(chart, values)
    operator = _rules_by_port(one(docs, "NetworkPolicy", "-operator"))
    serving = _rules_by_port(one(docs, "NetworkPolicy", "-serving"))
    assert operator[8080] == monitoring and operator[9443] == extra["from"]
    assert serving[8000] == monitoring and serving[8080] == monitoring
    assert serving[9443] == extra["from"]


def test_metrics_off_closes_the_operator_metrics_port(chart: Path) -> None:
    policy = one(render(chart, {"metrics": {"enabled": False}}), "NetworkPolicy", "-operator")
    assert set(_rules_by_port(policy)) == {8081}


def test_one_switch_turns_them_off(chart: Path) -> None:
    docs = render(chart, {**SERVING, "networkPolicy": {"enabled": False}})
    assert not find(docs, "NetworkPolicy")


def test_a_webhook_port_on_the_operator_is_opened_for_the_apiserver(
    tmp_path: Path, helm_bin: str
) -> None:
    """When the operator container declares a port named `webhook` (the admission webhook),
    the policy opens it (the kube-apiserver calls it from outside the pod network)."""
    del helm_bin
    chart = chart_copy(tmp_path)
    deployment = chart / "templates" / "deployment.yaml"
    health = "            - name: health\n"
    assert health in deployment.read_text()
    deployment.write_text(
        deployment.read_text().replace(
            health, "            - name: webhook\n              containerPort: 9443\n" + health
        )
    )
    policy = one(render(chart), "NetworkPolicy", "-operator")
    assert _rules_by_port(policy)[9443] is None
    control_plane = [{"ipBlock": {"cidr": "172.16.0.0/28"}}]
    values = {"networkPolicy": {"operator": {"webhookFrom": control_plane}}}
    policy = one(render(chart, values), "NetworkPolicy", "-operator")
    assert _rules_by_port(policy)[9443] == control_plane


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels and `Exists` expressions only) selects `labels`."""
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "Exists", expression
        if expression["key"] not in labels:
            return False
    return selector.get("matchLabels", {}).items() <= labels.items()


def _training_pod_labels() -> list[dict[str, str]]:
    """Labels of every pod a RayJob from the operator's builder makes (head, workers, submitter)."""
    from tests.unit.operator.helpers import job, runtime
    from tuneforge_operator.builder import build_rayjob

    spec = build_rayjob(job(), runtime())["spec"]
    cluster = spec["rayClusterSpec"]
    templates = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    pods = [t["template"] for t in templates] + [spec["submitterPodTemplate"]]
    return [pod["metadata"]["labels"] for pod in pods]


def test_training_ray_ports_answer_only_training_pods_and_kuberay(chart: Path) -> None:
    docs = render(chart, {"operator": {"watchNamespaces": ["team-a", "team-b"]}})
    policies = find(docs, "NetworkPolicy", "-training")
    assert sorted(p["metadata"]["namespace"] for p in policies) == ["team-a", "team-b"]
    for policy in policies:
        assert policy["spec"]["policyTypes"] == ["Ingress"], "egress (S3, MLflow) stays open"
        for labels in _training_pod_labels():
            assert _matches(policy["spec"]["podSelector"], labels), labels
        rules = _rules_by_port(policy)
        (own,) = rules[None] or []
        assert own["podSelector"] == policy["spec"]["podSelector"]
        assert "namespaceSelector" not in own, "only pods of the policy's own namespace"
        kuberay = {"app.kubernetes.io/name": "kuberay-operator"}
        assert rules[8265] == [{"namespaceSelector": {}, "podSelector": {"matchLabels": kuberay}}]
        assert set(rules) == {None, 8265}, "GCS 6379 / client 10001 only from training pods"
    assert not _matches(policies[0]["spec"]["podSelector"], {"app": "someone-else"})


def test_training_policy_follows_the_mode_and_its_switch(chart: Path) -> None:
    (policy,) = find(render(chart, namespace="tf-system"), "NetworkPolicy", "-training")
    assert policy["metadata"]["namespace"] == "tf-system"
    assert not find(
        render(chart, {"operator": {"clusterWide": True}}), "NetworkPolicy", "-training"
    )
    off = {"networkPolicy": {"training": {"enabled": False}}}
    assert not find(render(chart, off), "NetworkPolicy", "-training")
    assert find(render(chart, off), "NetworkPolicy", "-operator")
