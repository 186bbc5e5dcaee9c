"""KubeRay's CRDs are normalised for the 1.20 test apiserver exactly as their README says,
and nothing else in them changes."""

from __future__ import annotations

from typing import Any

from tests.fixtures._kube_crds import (
    KUBERAY_CRD_FILES,
    kuberay_crds,
    load_kuberay_crd,
    normalise_for_1_20,
)


def _nodes(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found.extend(_nodes(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_nodes(value))
    return found


def test_normalisation_drops_the_three_features_and_keeps_the_rest() -> None:
    schema = {
        "type": "object",
        "required": ["a"],
        "x-kubernetes-validations": [{"rule": "self.a > 0"}],
        "properties": {
            "a": {"type": "integer", "minimum": 1, "default": 1},
            "b": {"type": "string", "default": ""},
            "ports": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "x-kubernetes-validations": [{"rule": "true"}]},
            },
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        },
    }
    assert normalise_for_1_20(schema) == {
        "type": "object",
        "required": ["a"],
        "properties": {
            "a": {"type": "integer", "minimum": 1, "default": 1},
            "b": {"type": "string"},
            "ports": {"type": "array", "items": {"type": "object"}},
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        },
    }


def test_real_kuberay_crds_are_normalised() -> None:
    crds = kuberay_crds()
    assert [crd["spec"]["names"]["kind"] for crd in crds] == ["RayCluster", "RayJob", "RayService"]
    for crd in crds:
        for node in _nodes(crd):
            assert "x-kubernetes-validations" not in node
            assert node.get("default", 0) != ""
            assert node.get("x-kubernetes-list-type") != "map"
            assert "x-kubernetes-list-map-keys" not in node
    originals = [load_kuberay_crd(name) for name in KUBERAY_CRD_FILES]
    for original, crd in zip(originals, crds, strict=True):
        assert original["spec"]["names"] == crd["spec"]["names"]
        assert [v["name"] for v in original["spec"]["versions"]] == [
            v["name"] for v in crd["spec"]["versions"]
        ]
