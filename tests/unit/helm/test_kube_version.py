"""One minimum Kubernetes version, stated once (Chart.yaml `kubeVersion`), and true.

Every object the chart can render (each optional one switched on, CRDs and hooks included) is
rendered with `helm template --kube-version <minimum>`, and its `apiVersion`/`kind` must be
served by that minor (fixtures/kube_apis.yaml) or come from a CRD the docs name. The docs
state the same minimum and no other.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.helm.helmchart import CHART_DIR, REPO_ROOT, render, template
from tests.unit.helm.kubeapis import APIS, api_of, minor, served_in
from tests.unit.helm.variants import ENDPOINTS, VARIANTS

EVERYTHING_ON: dict[str, Any] = {
    **ENDPOINTS,
    "operator": {"replicas": 2},
    "metrics": {"serviceMonitor": {"enabled": True}},
    "serving": {
        "enabled": True,
        "auth": {"existingSecret": "serving-token"},
        "ingress": {"enabled": True},
        "httpRoute": {"enabled": True, "parentRefs": [{"name": "public"}]},
    },
}


def chart_minimum() -> tuple[int, int]:
    """The chart's one minimum: the lower bound of Chart.yaml's `kubeVersion`."""
    constraint = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["kubeVersion"]
    assert re.fullmatch(r">=\s*\d+\.\d+\.\d+(-0)?", constraint), (
        f"kubeVersion {constraint!r}: state one lower bound (>=X.Y.Z-0) and nothing else"
    )
    return minor(constraint)


def test_minimum_is_1_21_because_of_policy_v1() -> None:
    assert chart_minimum() == (1, 21)
    assert served_in("policy/v1/PodDisruptionBudget", (1, 21))
    assert not served_in("policy/v1/PodDisruptionBudget", (1, 20))


@pytest.mark.parametrize("variant", [*sorted(VARIANTS), "everything-on"])
def test_every_rendered_api_exists_at_the_minimum(chart: Path, variant: str) -> None:
    minimum = chart_minimum()
    values = EVERYTHING_ON if variant == "everything-on" else VARIANTS[variant]
    kube = f"{minimum[0]}.{minimum[1]}.0"
    docs = render(chart, values, extra_args=["--kube-version", kube, "--include-crds"])
    rendered = {api_of(doc) for doc in docs}
    unknown = rendered - set(APIS["builtin"]) - set(APIS["custom"])
    assert not unknown, f"add {sorted(unknown)} to tests/unit/helm/fixtures/kube_apis.yaml"
    too_new = sorted(a for a in rendered & set(APIS["builtin"]) if not served_in(a, minimum))
    assert not too_new, f"Kubernetes {kube} does not serve {too_new}"
    if variant == "everything-on":
        assert {
            "policy/v1/PodDisruptionBudget",
            "networking.k8s.io/v1/NetworkPolicy",
            "networking.k8s.io/v1/Ingress",
            "gateway.networking.k8s.io/v1/HTTPRoute",
            "apiextensions.k8s.io/v1/CustomResourceDefinition",
        } <= rendered


def test_an_older_cluster_is_refused_by_name(chart: Path) -> None:
    result = template(chart, extra_args=["--kube-version", "1.20.15"])
    assert result.returncode != 0
    assert "kubeVersion" in result.output and "1.20.15" in result.output, result.output


def test_docs_state_the_same_minimum_and_no_other() -> None:
    minimum = "{}.{}".format(*chart_minimum())
    for path in [REPO_ROOT / "docs" / "install.md", CHART_DIR / "README.md"]:
        stated = set(re.findall(r"Kubernetes ≥ (\d+\.\d+)", path.read_text()))
        assert stated == {minimum}, f"{path.name} states Kubernetes ≥ {stated}, the chart {minimum}"
