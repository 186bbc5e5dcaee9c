"""Each method's spec rules live in one class; the Python check, the CRD rule and the
reference sentence all come from it."""

from __future__ import annotations

import pytest

from tuneforge.api import Method
from tuneforge.api.crd import openapi_schema
from tuneforge.api.method_rules import (
    METHOD_RULES,
    method_rule_docs,
    method_schema_rules,
    rules_for,
)
from tuneforge.api.reference import render_reference
from tuneforge.api.spec import DreamBoothSpec, FineTuneJobSpec


def _spec(method: str, **sections: object) -> FineTuneJobSpec:
    return FineTuneJobSpec.model_construct(
        method=Method(method),
        dataset=None,
        lora=sections.get("lora"),
        dreambooth=sections.get("dreambooth"),
        textual_inversion=sections.get("textual_inversion"),
    )


def test_every_method_has_rules() -> None:
    assert set(METHOD_RULES) == set(Method)
    assert all(rules_for(method).method is method for method in Method)


@pytest.mark.parametrize(
    ("method", "dreambooth", "trains_lora"),
    [
        ("lora", None, True),
        ("dreambooth", None, False),
        ("dreambooth", DreamBoothSpec(export_lora=False), False),
        ("dreambooth", DreamBoothSpec(export_lora=True), True),
        ("textualInversion", None, False),
        ("pivotal", None, True),
    ],
)
def test_which_jobs_train_a_lora(
    method: str, dreambooth: DreamBoothSpec | None, trains_lora: bool
) -> None:
    spec = _spec(method, dreambooth=dreambooth)
    assert rules_for(spec.method).trains_lora(spec) is trains_lora
    assert (spec.effective_lora() is not None) is trains_lora


def test_the_crd_and_the_reference_carry_the_method_rules() -> None:
    assert openapi_schema()["properties"]["spec"]["allOf"] == method_schema_rules()
    page = render_reference()
    assert all(f"- {sentence}" in page for sentence in method_rule_docs())
    assert any("dreambooth.exportLora" in sentence for sentence in method_rule_docs())
