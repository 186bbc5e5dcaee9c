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
    # `not: {}` fails for any value, and `properties` only applies to fields that are
    # present: the branch holds exactly when the field is absent, and when it fails the
    # message names the field itself (`spec.<field>: ... must not validate the schema`).
    return {"properties": {field: {"not": {}}}}


# The API server reports the errors of one failing branch: the one with the most passing
# checks, the first on a tie. Each rule therefore lists first the branch whose error names
# the field the user has to fix.
SPEC_RULES: list[dict[str, Any]] = [
    # textualInversion is required with method textualInversion ...
    {
        "anyOf": [
            {"required": ["textualInversion"], **_method_is("textualInversion")},
            _method_is("lora", "dreambooth"),
        ]
    },
    # ... and only allowed there.
    {"anyOf": [_absent("textualInversion"), _method_is("textualInversion")]},
    # dreambooth only with method dreambooth.
    {"anyOf": [_absent("dreambooth"), _method_is("dreambooth")]},
    # lora only with method lora, or dreambooth with exportLora: true.
    {
        "anyOf": [
            _absent("lora"),
            _method_is("lora"),
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
                "required": ["dataset"],
                "properties": {
                    "dataset": {"required": ["classPrompt"]},
                    "dreambooth": {"properties": {"priorPreservation": {"enum": [True]}}},
                },
            },
            {
                "properties": {
                    "dreambooth": {"properties": {"priorPreservation": {"enum": [False]}}}
                }
            },
        ]
    },
]
