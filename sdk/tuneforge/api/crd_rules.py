"""Cross-field rules of the spec, expressed for the API server.

The test API server (and many production ones) predates CEL, so the rules that
`spec.cross_field_errors` checks in Python are written here as structural-schema `anyOf`
value validations. Each rule is one `anyOf`: the object is valid when any branch holds, and
the API server's 422 names the fields of the failing branches.
"""

from __future__ import annotations

from typing import Any


def _method_is(*methods: str) -> dict[str, Any]:
    return {"properties": {"method": {"enum": list(methods)}}}


def _absent(field: str) -> dict[str, Any]:
    return {"not": {"required": [field]}}


SPEC_RULES: list[dict[str, Any]] = [
    # textualInversion is required with method textualInversion ...
    {"anyOf": [_method_is("lora", "dreambooth"), {"required": ["textualInversion"]}]},
    # ... and only allowed there.
    {"anyOf": [_method_is("textualInversion"), _absent("textualInversion")]},
    # dreambooth only with method dreambooth.
    {"anyOf": [_method_is("dreambooth"), _absent("dreambooth")]},
    # lora only with method lora, or dreambooth with exportLora: true.
    {
        "anyOf": [
            _method_is("lora"),
            _absent("lora"),
            {
                "required": ["dreambooth"],
                "properties": {
                    "dreambooth": {
                        "required": ["exportLora"],
                        "properties": {"exportLora": {"enum": [True]}},
                    }
                },
            },
        ]
    },
    # prior preservation needs a class prompt.
    {
        "anyOf": [
            {
                "properties": {
                    "dreambooth": {"properties": {"priorPreservation": {"enum": [False]}}}
                }
            },
            {"properties": {"dataset": {"required": ["classPrompt"]}}},
        ]
    },
]
