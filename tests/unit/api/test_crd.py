"""The generated CRD: what `tuneforge crd` prints, the chart's copy, and the schema's shape
(structural, no CEL, nothing the 1.20 apiserver refuses). The apiserver side is in
tests/integration/api/test_crd_apiserver.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from tuneforge.api.crd import PRINTER_COLUMNS, crd_manifest, crd_yaml
from tuneforge.cli.main import app

HELM_CRD = (
    Path(__file__).resolve().parents[3] / "helm/tuneforge/crds/finetunejobs.tuneforge.io.yaml"
)
REGENERATE = f"regenerate it: tuneforge crd > {HELM_CRD.relative_to(HELM_CRD.parents[3])}"


def _walk(node: Any, path: str = "$") -> list[tuple[str, dict[str, Any]]]:
    """Every schema object under node, with its JSON path."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            found.extend(_walk(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_walk(value, f"{path}[{index}]"))
    return found


def _schema() -> dict[str, Any]:
    version = crd_manifest()["spec"]["versions"][0]
    return dict(version["schema"]["openAPIV3Schema"])


def test_cli_prints_the_generated_crd() -> None:
    result = CliRunner().invoke(app, ["crd"])
    assert result.exit_code == 0, result.output
    assert result.output == crd_yaml()
    assert yaml.safe_load(result.output) == crd_manifest()


def test_helm_chart_copy_is_identical_to_tuneforge_crd() -> None:
    assert HELM_CRD.read_text() == crd_yaml(), f"{HELM_CRD} is out of date; {REGENERATE}"


def test_names_scope_subresources_and_printer_columns() -> None:
    spec = crd_manifest()["spec"]
    assert spec["group"] == "tuneforge.io" and spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "FineTuneJob" and spec["names"]["shortNames"] == ["ftj"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    names = [column["name"] for column in version["additionalPrinterColumns"]]
    assert names == [column["name"] for column in PRINTER_COLUMNS]
    assert {"Method", "Succeeded", "Progress", "Age"} <= set(names)


def test_schema_has_no_cel_and_no_defaults_the_1_20_apiserver_refuses() -> None:
    for path, node in _walk(_schema()):
        assert "x-kubernetes-validations" not in node, path
        if "default" in node:
            assert node["default"] not in ("", None), f"{path}: default {node['default']!r}"
        assert "$ref" not in node and "$defs" not in node and "title" not in node, path
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            if bound in node:
                assert node[bound] is True, f"{path}.{bound} must be a boolean in OpenAPI v3"


def test_schema_is_structural_every_property_has_a_type() -> None:
    """Structural schemas need a type on every property node outside value validations."""

    def check(node: dict[str, Any], path: str) -> None:
        assert "type" in node, f"{path} has no type"
        for name, child in node.get("properties", {}).items():
            check(child, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            check(node["items"], f"{path}[]")

    check(_schema(), "$")


def test_cross_field_rules_are_value_validations_only() -> None:
    """Inside allOf/anyOf/not, structural schemas forbid types, defaults and descriptions."""
    spec = _schema()["properties"]["spec"]
    assert spec["allOf"], "the cross-field rules are missing from the spec schema"
    for path, node in _walk(spec["allOf"]):
        for key in ("type", "default", "description", "nullable"):
            assert key not in node, f"allOf{path[1:]} has {key!r}"


def test_every_spec_field_is_documented() -> None:
    def check(node: dict[str, Any], path: str) -> None:
        for name, child in node.get("properties", {}).items():
            assert child.get("description"), f"{path}.{name} has no description"
            check(child, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            check(node["items"], f"{path}[]")

    check(_schema()["properties"]["spec"], "spec")
    check(_schema()["properties"]["status"], "status")
