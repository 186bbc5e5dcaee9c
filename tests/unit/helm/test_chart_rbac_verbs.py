"""The operator's RBAC grants exactly the verbs its code calls: no more, no fewer.

The calls are derived from the code, not written down twice: every
`self._api.get/create/merge_patch(<kind>_path(...))` in the operator's sources
(tuneforge_operator/kubeapi.py is the only client), plus what kopf itself calls for the
handlers the operator registers (read from kopf's registry) and for its peering and Events.
The chart's rules must equal that set, in both modes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.unit.helm.helmchart import REPO_ROOT, find, one, render
from tests.unit.helm.variants import VARIANTS

PEERING = "<peering>"
"""kopf's peering resource: `kopfpeerings` in namespaced mode, `clusterkopfpeerings` else."""
OPERATOR_SOURCES = REPO_ROOT / "operator" / "tuneforge_operator"
API_CALL = re.compile(r"\b_?api\.(get|create|merge_patch)\(\s*(\w+)_path\(([^)]*)\)")
KUBEAPI_VERBS = {"get": "get", "create": "create", "merge_patch": "patch"}
PATH_RESOURCES = {
    "finetunejob": ("tuneforge.io", "finetunejobs"),
    "rayjob": ("ray.io", "rayjobs"),
    "configmap": ("", "configmaps"),
    "events": ("", "events"),
    "peering": ("kopf.dev", PEERING),
}
"""The `kubeapi.*_path` helpers and the resource each one addresses."""
KOPF_WATCH_VERBS = {"list", "watch"}
"""What kopf calls for every resource a handler (event, timer) is registered on."""
KOPF_TIMER_VERBS = {"patch"}
"""kopf keeps a timer's state in its resource's annotations."""
KOPF_OWN = {
    ("", "events"): {"create"},  # kopf.event POSTs Events (never patches them)
}
"""Calls kopf makes for the operator whatever its handlers."""
WEBHOOK_SOURCES = ("webhook", "admission")
"""The admission webhook's own RBAC lives in webhook-rbac.yaml, checked with the webhook."""

Rules = dict[tuple[str, str], set[str]]


def _add(rules: Rules, key: tuple[str, str], verbs: set[str]) -> None:
    rules.setdefault(key, set()).update(verbs)


def client_calls() -> Rules:
    """(group, resource) -> verbs from the operator's own API calls."""
    calls: Rules = {}
    for source in sorted(OPERATOR_SOURCES.glob("*.py")):
        if source.name.startswith(WEBHOOK_SOURCES):
            continue
        for method, kind, args in API_CALL.findall(source.read_text()):
            group, resource = PATH_RESOURCES[kind]
            if "status=True" in args:
                resource += "/status"
            _add(calls, (group, resource), {KUBEAPI_VERBS[method]})
    return calls


def kopf_calls() -> Rules:
    """(group, resource) -> verbs kopf calls for the handlers `handlers.register` registers."""
    import kopf

    from tuneforge_operator.handlers import register
    from tuneforge_operator.settings import OperatorSettings

    registry = kopf.OperatorRegistry()
    register(registry, OperatorSettings(), [])
    calls: Rules = {key: set(verbs) for key, verbs in KOPF_OWN.items()}
    for selector in registry._watching.get_all_selectors():
        _add(calls, (selector.group, str(selector.any_name)), KOPF_WATCH_VERBS)
    for selector in registry._spawning.get_all_selectors():
        _add(calls, (selector.group, str(selector.any_name)), KOPF_WATCH_VERBS | KOPF_TIMER_VERBS)
    return calls


def _granted(role: dict[str, Any]) -> Rules:
    granted: Rules = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                _add(granted, (group, resource), set(rule["verbs"]))
    return granted


def _expected(peering: str) -> Rules:
    expected: Rules = {}
    for calls in (client_calls(), kopf_calls()):
        for key, verbs in calls.items():
            _add(expected, key, verbs)
    expected.pop(("", "configmaps"))  # the runtimes ConfigMap: its own Role, checked below
    # kopf's peering: reads the peers, patches in its own heartbeat.
    _add(expected, ("kopf.dev", peering), {"get", "list", "watch", "patch"})
    _add(expected, ("kopf.dev", peering), expected.pop(("kopf.dev", PEERING), set()))
    return expected


def test_the_code_calls_what_this_test_expects() -> None:
    """Guard on the derivation itself: an empty or odd table would make the checks vacuous."""
    calls = client_calls()
    assert calls[("tuneforge.io", "finetunejobs/status")] == {"patch"}
    assert calls[("ray.io", "rayjobs")] == {"get", "create", "patch"}
    assert calls[("", "configmaps")] == {"get"}
    assert calls[("", "events")] == {"create"}
    assert calls[("kopf.dev", PEERING)] == {"get", "create"}
    assert "delete" not in set().union(*calls.values(), *kopf_calls().values())


@pytest.mark.parametrize(
    ("variant", "kind", "peering"),
    [
        ("defaults", "Role", "kopfpeerings"),
        ("single-namespace", "Role", "kopfpeerings"),
        ("cluster-wide", "ClusterRole", "clusterkopfpeerings"),
    ],
)
def test_operator_rules_are_exactly_the_verbs_the_code_calls(
    chart: Path, variant: str, kind: str, peering: str
) -> None:
    docs = render(chart, VARIANTS[variant])
    roles = find(docs, kind, "-operator")
    assert roles
    for role in roles:
        granted = _granted(role)
        if kind == "ClusterRole":  # kopf notices CRDs coming and going (cluster-wide only)
            crds = granted.pop(("apiextensions.k8s.io", "customresourcedefinitions"))
            assert crds == KOPF_WATCH_VERBS
        expected = _expected(peering)
        unused = {k: sorted(v - expected.get(k, set())) for k, v in granted.items()}
        missing = {k: sorted(v - granted.get(k, set())) for k, v in expected.items()}
        assert not {k: v for k, v in unused.items() if v}, f"granted, never called: {unused}"
        assert not {k: v for k, v in missing.items() if v}, f"called, not granted: {missing}"


def test_runtimes_reader_gets_one_configmap_by_name(chart: Path) -> None:
    docs = render(chart, namespace="tf-system")
    (rule,) = one(docs, "Role", "-runtimes-reader")["rules"]
    assert rule["resources"] == ["configmaps"]
    assert set(rule["verbs"]) == client_calls()[("", "configmaps")]
    (container,) = one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert rule["resourceNames"] == [env["TUNEFORGE_OPERATOR_RUNTIME_CONFIGMAP"]]
    assert one(docs, "ConfigMap", "-runtimes")["metadata"]["name"] in rule["resourceNames"]
