"""Generate the FineTuneJob CustomResourceDefinition from the pydantic models.

The pydantic JSON schema is turned into a Kubernetes *structural* OpenAPI v3 schema:
references inlined, `Optional` as a field that may be absent (never `nullable`: the API server
publishes a nullable field to `kubectl explain` and to kubectl's client-side validation with
no type and no properties, and the absent form is what clients send anyway), no
`x-kubernetes-preserve-unknown-fields` on spec or status (for the same reason: every field
stays visible, and kubectl refuses misspelt ones), no empty-string defaults (some 1.20 builds
refuse them), JSON-Schema-2020 exclusive bounds as OpenAPI 3.0 booleans, titles dropped,
descriptions kept. No CEL (`x-kubernetes-validations`): cross-field rules are `anyOf` value
validations (each method's, from `method_rules`).
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from tuneforge.api.base import GROUP, KIND, PLURAL, SHORT_NAME, SINGULAR, VERSION
from tuneforge.api.method_rules import method_schema_rules
from tuneforge.api.spec import FineTuneJobSpec
from tuneforge.api.status import FineTuneJobStatus

_DROP_KEYS = {"title", "$defs"}
_SUCCEEDED = '.status.conditions[?(@.type=="Succeeded")]'
PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Method", "type": "string", "jsonPath": ".spec.method"},
    {"name": "Succeeded", "type": "string", "jsonPath": f"{_SUCCEEDED}.status"},
    {"name": "Reason", "type": "string", "jsonPath": f"{_SUCCEEDED}.reason"},
    {
        "name": "Progress",
        "type": "integer",
        "jsonPath": ".status.progress.percent",
        "description": "Percent of training steps done",
    },
    {"name": "Model", "type": "string", "jsonPath": ".status.mlflow.modelName", "priority": 1},
    {"name": "Version", "type": "string", "jsonPath": ".status.mlflow.modelVersion"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].split("/")[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        target.update(extra)
        return _resolve(target, defs)
    return {k: _resolve(v, defs) for k, v in node.items() if k not in _DROP_KEYS}


def _structural(node: Any) -> Any:
    """Rewrite one resolved JSON schema node into OpenAPI v3 as Kubernetes accepts it."""
    if isinstance(node, list):
        return [_structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    any_of = node.get("anyOf")
    if isinstance(any_of, list):
        non_null = [branch for branch in any_of if branch.get("type") != "null"]
        if len(non_null) == 1 and len(any_of) == 2:
            del node["anyOf"]
            merged = dict(non_null[0])
            merged.update(node)
            node = merged
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = node.get(bound)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            node[plain] = value
            node[bound] = True
    # No `default: null`, and no `default: ""`: 1.20 apiservers built with a newer Go than
    # upstream's refuse empty-string defaults ("must be of type string: null"); the models
    # apply that default anyway, so leaving it out changes nothing for readers.
    if node.get("default", 0) is None or node.get("default") == "":
        del node["default"]
    if (
        node.get("type") == "object"
        and "properties" not in node
        and "additionalProperties" not in node
    ):
        node["x-kubernetes-preserve-unknown-fields"] = True
    node.pop("additionalProperties", None) if node.get("additionalProperties") is False else None
    if "enum" in node and "type" not in node:
        sample = node["enum"][0]
        node["type"] = (
            "boolean"
            if isinstance(sample, bool)
            else "integer"
            if isinstance(sample, int)
            else "string"
        )
    if "properties" in node:
        node["properties"] = {k: _structural(v) for k, v in node["properties"].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            node[key] = _structural(node[key])
    return node


def model_schema(model: type[Any]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a pydantic model (camelCase field names)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return dict(_structural(_resolve(raw, raw.get("$defs", {}))))


def openapi_schema() -> dict[str, Any]:
    """The whole FineTuneJob `openAPIV3Schema`."""
    spec = model_schema(FineTuneJobSpec)
    spec["allOf"] = method_schema_rules()
    status = model_schema(FineTuneJobStatus)
    # Only kopf's own corner of status keeps unknown fields: the rest stays typed and visible.
    status["properties"]["kopf"] = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "description": "kopf's bookkeeping, kept as written (TuneForge's operator keeps its "
        "own in annotations).",
    }
    return {
        "type": "object",
        "description": "A request to fine-tune Stable Diffusion 1.5 and register the resulting adapter.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "Always tuneforge.io/v1alpha1."},
            "kind": {"type": "string", "description": "Always FineTuneJob."},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }


def crd_manifest() -> dict[str, Any]:
    """The CustomResourceDefinition (apiextensions.k8s.io/v1) for FineTuneJob."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "tuneforge", "app.kubernetes.io/component": "crd"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": [SHORT_NAME],
                "categories": ["tuneforge", "all"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                }
            ],
        },
    }


def crd_yaml() -> str:
    """The CRD as YAML, as `tuneforge crd` prints it and the Helm chart ships it."""
    header = (
        "# Generated by `tuneforge crd` from the pydantic models in tuneforge.api. Do not edit.\n"
    )
    return header + yaml.safe_dump(crd_manifest(), sort_keys=False, width=120)
