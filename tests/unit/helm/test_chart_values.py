"""values.yaml and values.schema.json: every value documented, every object closed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.helm.helmchart import CHART_DIR, template

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())
VALUES_TEXT = (CHART_DIR / "values.yaml").read_text()
VALUES = yaml.safe_load(VALUES_TEXT)
# Objects deliberately left open, each with the reason.
OPEN_OBJECTS = {"/global": "Helm's global values (Helm always passes them)"}
# Kubernetes types passed through to the manifests as they are; kubernetes-validate --strict
# checks them on the rendered output (test_chart_render).
PASSTHROUGH = re.compile(
    r"/(nodeAffinity|podAffinity|podAntiAffinity|seLinuxOptions|appArmorProfile|valueFrom)$"
    r"|/topologySpreadConstraints/items$"
    r"|/(metricsFrom|healthFrom|webhookFrom|apiFrom|dashboardFrom|extraIngress)/items$"
)


def _objects(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every object-typed schema node with its JSON-pointer-like path."""
    found = []
    if node.get("type") == "object":
        found.append((path, node))
    for key, child in (node.get("properties") or {}).items():
        found += _objects(child, f"{path}/{key}")
    for keyword in ("items", "additionalProperties"):
        child = node.get(keyword)
        if isinstance(child, dict):
            found += _objects(child, f"{path}/{keyword}" if keyword == "items" else f"{path}/*")
    for keyword in ("anyOf", "oneOf", "allOf"):
        for index, child in enumerate(node.get(keyword) or []):
            found += _objects(child, f"{path}/{keyword}{index}")
    return found


def test_every_schema_object_is_closed() -> None:
    open_objects = []
    for path, node in _objects(SCHEMA):
        if path in OPEN_OBJECTS or PASSTHROUGH.search(path):
            continue
        extra = node.get("additionalProperties")
        if extra is False or isinstance(extra, dict):
            continue  # closed, or a typed map (labels, nodeSelector, env, runtimes)
        open_objects.append(path or "/")
    assert not open_objects, f"objects without additionalProperties: false: {open_objects}"
    assert SCHEMA["additionalProperties"] is False


def _leaves(values: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(values, dict) and values:
        found: list[tuple[str, ...]] = []
        for key, child in values.items():
            found += _leaves(child, (*path, key))
        return found
    return [path]


def _schema_node(path: tuple[str, ...]) -> dict[str, Any] | None:
    node: Any = SCHEMA
    for key in path:
        props = node.get("properties") or {}
        if key in props:
            node = props[key]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
    return node


def test_schema_accepts_the_defaults_and_covers_every_value() -> None:
    import jsonschema

    jsonschema.validate(VALUES, SCHEMA)
    missing = [".".join(p) for p in _leaves(VALUES) if _schema_node(p) is None]
    assert not missing, f"values without a schema entry: {missing}"


def _documented_keys() -> set[tuple[str, ...]]:
    """Key paths in values.yaml preceded by a helm-docs `# --` comment."""
    documented: set[tuple[str, ...]] = set()
    stack: list[tuple[int, str]] = []
    pending = False
    for line in VALUES_TEXT.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = True
            continue
        if stripped.startswith("#") or not stripped:
            continue
        match = re.match(r"^(\s*)([A-Za-z0-9_.-]+):", line)
        if not match or stripped.startswith("- "):
            continue
        indent = len(match.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match.group(2)))
        if pending:
            documented.add(tuple(key for _, key in stack))
        pending = False
    return documented


def test_every_value_is_documented_helm_docs_style() -> None:
    documented = _documented_keys()
    undocumented = []
    for leaf in _leaves(VALUES):
        prefixes = [leaf[:n] for n in range(len(leaf), 0, -1)]
        if not any(prefix in documented for prefix in prefixes):
            undocumented.append(".".join(leaf))
    assert not undocumented, f"values without a `# --` comment: {undocumented}"


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"operator": {"replicsa": 2}}, "replicsa"),
        ({"servng": {"enabled": True}}, "servng"),
        ({"runtimes": {"default": {"imgae": "x"}}}, "imgae"),
        ({"serving": {"app": {"baseModle": "s3://m"}}}, "baseModle"),
        ({"s3": {"existingSecrets": "s"}}, "existingSecrets"),
        (
            {"operator": {"securityContext": {"readOnlyRootFileSystem": True}}},
            "readOnlyRootFileSystem",
        ),
        ({"operator": {"replicas": "two"}}, "replicas"),
        ({"operator": {"watchNamespaces": ["Team_A"]}}, "watchNamespaces"),
        ({"runtimes": {"GPU": {}}}, "GPU"),
        ({"serving": {"app": {"device": "tpu"}}}, "device"),
    ],
)
def test_schema_rejects_misspelt_or_invalid_values(
    chart: Path, values: dict[str, Any], complaint: str
) -> None:
    result = template(chart, values)
    assert result.returncode != 0, f"helm template accepted {values}"
    assert "schema" in result.output and complaint in result.output, result.output


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        (
            {
                "serving": {
                    "enabled": True,
                    "auth": {"existingSecret": "serving-token"},
                    "app": {"autoscaling": {"maxReplicas": 9}},
                }
            },
            "serving.gpuWorkers.maxReplicas",
        ),
        (
            {
                "serving": {
                    "enabled": True,
                    "auth": {"existingSecret": "serving-token"},
                    "app": {"limits": {"maxAdaptersPerRequest": 5}},
                }
            },
            "adapterLruSize",
        ),
        ({"serviceAccount": {"create": False}}, "serviceAccount.name is required"),
    ],
)
def test_inconsistent_values_fail_with_the_fix(
    chart: Path, values: dict[str, Any], complaint: str
) -> None:
    result = template(chart, values)
    assert result.returncode != 0 and complaint in result.output, result.output
