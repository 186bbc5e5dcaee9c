"""`spec.dreambooth.extractLora`: exactly one of `rank` and `energy`, only for a full
DreamBooth, and a registered model name that leaves room for the `-lora` sibling. The
models and the generated CRD schema (checked with a JSON-schema validator, as the API
server's OpenAPI 3.0 reading) agree on every case."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft4Validator
from pydantic import ValidationError

from tuneforge.api import ExtractLoraSpec, extracted_model_name, load_job
from tuneforge.api.crd import openapi_schema


def _manifest(dreambooth: dict[str, Any], name: str = "dogs") -> dict[str, Any]:
    return {
        "apiVersion": "tuneforge.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "j", "namespace": "default"},
        "spec": {
            "method": "dreambooth",
            "dataset": {"uri": "s3://b/d", "instancePrompt": "a photo of sks dog"},
            "dreambooth": dreambooth,
            "output": {"registeredModel": name},
        },
    }


def _schema_errors(manifest: dict[str, Any]) -> list[str]:
    validator = Draft4Validator(openapi_schema())
    return [error.message for error in validator.iter_errors(manifest)]


@pytest.mark.parametrize("extract", [{"rank": 8}, {"energy": 0.9}, {"energy": 1.0}])
def test_rank_or_energy_is_accepted(extract: dict[str, Any]) -> None:
    job = load_job(_manifest({"extractLora": extract}))
    assert job.spec.dreambooth is not None
    assert job.spec.dreambooth.extract_lora == ExtractLoraSpec(**extract)
    assert _schema_errors(_manifest({"extractLora": extract})) == []
    assert extracted_model_name(job.spec.output.registered_model) == "dogs-lora"


@pytest.mark.parametrize(
    ("extract", "says"),
    [
        ({"rank": 8, "energy": 0.9}, "set exactly one of rank (e.g. rank: 16) and energy"),
        ({}, "set exactly one of rank (e.g. rank: 16) and energy (e.g. energy: 0.9), not neither"),
        ({"energy": 0.0}, "greater than 0"),
        ({"energy": 1.5}, "less than or equal to 1"),
        ({"rank": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_extraction_settings_name_the_rule(extract: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError) as raised:
        load_job(_manifest({"extractLora": extract}))
    assert says in str(raised.value)
    assert _schema_errors(_manifest({"extractLora": extract})), "the CRD must refuse it too"


def test_extract_lora_needs_a_full_dreambooth() -> None:
    manifest = _manifest({"exportLora": True, "extractLora": {"rank": 4}})
    with pytest.raises(ValidationError, match="spec.dreambooth.exportLora trains a LoRA already"):
        load_job(manifest)
    assert _schema_errors(manifest)
    assert _schema_errors(_manifest({"exportLora": True})) == []


def test_registered_model_leaves_room_for_the_lora_sibling() -> None:
    longest = "m" * 123
    assert _schema_errors(_manifest({"extractLora": {"rank": 4}}, longest)) == []
    load_job(_manifest({"extractLora": {"rank": 4}}, longest))
    too_long = "m" * 124
    with pytest.raises(ValidationError, match="registered as '<registeredModel>-lora'"):
        load_job(_manifest({"extractLora": {"rank": 4}}, too_long))
    assert _schema_errors(_manifest({"extractLora": {"rank": 4}}, too_long))
    load_job(_manifest({}, too_long))  # without extraction the full 128 characters stay allowed
    assert _schema_errors(_manifest({}, too_long)) == []
