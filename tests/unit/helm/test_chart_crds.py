"""The chart's CRDs: in `crds/` (Helm installs them once and never deletes them), and the
kopf peering definitions match what kopf looks for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.unit.helm.helmchart import CHART_DIR, REPO_ROOT, render

PEERING_FILE = CHART_DIR / "crds" / "kopf-peering.yaml"
OPERATOR_PEERING_FILE = REPO_ROOT / "operator" / "tuneforge_operator" / "crds" / "peering.yaml"


def test_crds_live_in_the_crds_folder_not_in_templates(chart: Path) -> None:
    rendered = render(chart)
    assert not [d for d in rendered if d["kind"] == "CustomResourceDefinition"], (
        "CRDs in templates/ would be deleted by `helm uninstall` together with every FineTuneJob"
    )
    for path in (CHART_DIR / "crds").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                assert doc["kind"] == "CustomResourceDefinition", path
                assert doc["apiVersion"] == "apiextensions.k8s.io/v1", path


def test_peering_crds_are_the_ones_kopf_uses() -> None:
    from kopf._cogs.structs import references

    crds = {d["metadata"]["name"]: d for d in yaml.safe_load_all(PEERING_FILE.read_text()) if d}
    wanted = {
        references.CLUSTER_PEERINGS_K: "Cluster",
        references.NAMESPACED_PEERINGS_K: "Namespaced",
    }
    for selector, scope in wanted.items():
        group, version = selector.group, selector.version
        crd = crds[f"{selector.any_name}.{group}"]
        assert crd["spec"]["names"]["plural"] == selector.any_name
        assert crd["spec"]["scope"] == scope
        assert [v["name"] for v in crd["spec"]["versions"]] == [version]
        status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["x-kubernetes-preserve-unknown-fields"] is True, "kopf keeps peers in status"


def test_peering_crds_equal_the_operators_copy() -> None:
    from tests.unit.helm.test_chart_values import VALUES

    def crds(path: Path) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all(path.read_text()) if d]

    theirs = crds(OPERATOR_PEERING_FILE)
    wanted = [d for d in theirs if d["kind"] == "CustomResourceDefinition"]
    assert crds(PEERING_FILE) == wanted, (
        f"copy the CRDs of {OPERATOR_PEERING_FILE} to {PEERING_FILE}"
    )
    objects = [d["metadata"]["name"] for d in theirs if d["kind"] == "ClusterKopfPeering"]
    assert objects in ([], [VALUES["operator"]["peering"]["name"]])
