"""`spec.output.formats`: `[diffusers]` by default, `kohya` only for jobs that train a LoRA."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tuneforge.api import load_job
from tuneforge.contract import AdapterFormat


def _job(method: str, formats: list[str] | None, **sections: Any) -> Any:
    output: dict[str, Any] = {"registeredModel": "dogs-model"}
    if formats is not None:
        output["formats"] = formats
    return load_job(
        {
            "apiVersion": "tuneforge.io/v1alpha1",
            "kind": "FineTuneJob",
            "metadata": {"name": "dogs"},
            "spec": {
                "method": method,
                "dataset": {"uri": "s3://datasets/dogs", "instancePrompt": "a photo of sks dog"},
                "output": output,
                **sections,
            },
        }
    )


TI = {"textualInversion": {"placeholderToken": "<sks>", "initializerToken": "dog"}}


def test_formats_default_to_diffusers() -> None:
    assert _job("lora", None).spec.output.formats == [AdapterFormat.DIFFUSERS]


@pytest.mark.parametrize(
    ("method", "sections"),
    [("lora", {}), ("dreambooth", {"dreambooth": {"exportLora": True}})],
)
def test_kohya_is_accepted_for_methods_that_train_a_lora(method: str, sections: dict) -> None:
    job = _job(method, ["diffusers", "kohya"], **sections)
    assert job.spec.output.formats == [AdapterFormat.DIFFUSERS, AdapterFormat.KOHYA]
    assert job.to_manifest()["spec"]["output"]["formats"] == ["diffusers", "kohya"]


@pytest.mark.parametrize(
    ("method", "sections"),
    [("textualInversion", TI), ("dreambooth", {}), ("dreambooth", {"dreambooth": {}})],
)
def test_kohya_is_refused_without_a_lora(method: str, sections: dict) -> None:
    with pytest.raises(ValidationError) as raised:
        _job(method, ["diffusers", "kohya"], **sections)
    messages = [error["msg"] for error in raised.value.errors()]
    assert len(messages) == 1
    assert "spec.output.formats lists kohya" in messages[0]
    assert f"this {method} job trains no LoRA" in messages[0]
    assert "\n" not in messages[0]


@pytest.mark.parametrize(
    ("formats", "says"),
    [
        (["kohya"], "must include diffusers"),
        (["diffusers", "diffusers"], "list each format once"),
        (["diffusers", "a1111"], "'diffusers' or 'kohya'"),
        ([], "at least 1 item"),
    ],
)
def test_bad_format_lists_name_the_field(formats: list[str], says: str) -> None:
    with pytest.raises(ValidationError) as raised:
        _job("lora", formats)
    errors = raised.value.errors()
    assert any(
        "formats" in [str(part) for part in error["loc"]] and says in error["msg"]
        for error in errors
    ), errors
