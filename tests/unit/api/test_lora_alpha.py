"""One LoRA alpha default everywhere: alpha = rank (scale 1), from YAML and from the SDK."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tuneforge.api import LoraSpec, load_job
from tuneforge.client.builders import lora_job
from tuneforge.contract import default_lora_alpha

DATASET = "s3://datasets/dogs"
PROMPT = "a photo of sks dog"


def _yaml_job(lora: dict[str, Any]) -> Any:
    text = yaml.safe_dump(
        {
            "apiVersion": "tuneforge.io/v1alpha1",
            "kind": "FineTuneJob",
            "metadata": {"name": "dogs"},
            "spec": {
                "method": "lora",
                "baseModel": {"uri": "s3://models/sd15"},
                "dataset": {"uri": DATASET, "instancePrompt": PROMPT},
                "training": {"maxSteps": 400},
                "lora": lora,
                "output": {"registeredModel": "dogs-lora"},
            },
        }
    )
    return load_job(text)


def _sdk_job(**lora: Any) -> Any:
    return lora_job(
        "dogs",
        DATASET,
        PROMPT,
        registered_model="dogs-lora",
        base_model="s3://models/sd15",
        steps=400,
        **lora,
    )


@pytest.mark.parametrize(
    ("yaml_lora", "sdk_lora", "alpha"),
    [
        ({"rank": 16}, {"rank": 16}, 16.0),
        ({"rank": 16, "alpha": 4}, {"rank": 16, "alpha": 4}, 4.0),
        ({"rank": 16, "alpha": 32.0}, {"rank": 16, "alpha": 32.0}, 32.0),
    ],
    ids=["alpha-omitted", "alpha-4", "alpha-32"],
)
def test_yaml_and_sdk_build_the_same_rank_16_spec(
    yaml_lora: dict[str, Any], sdk_lora: dict[str, Any], alpha: float
) -> None:
    from_yaml = _yaml_job(yaml_lora)
    from_sdk = _sdk_job(**sdk_lora)
    assert from_yaml.spec.lora is not None and from_sdk.spec.lora is not None
    assert from_yaml.spec.lora.alpha == from_sdk.spec.lora.alpha == alpha
    assert from_yaml.spec == from_sdk.spec
    assert from_yaml.spec.to_wire() == from_sdk.spec.to_wire()


def test_omitted_alpha_is_the_rank_and_is_stored_resolved() -> None:
    lora = LoraSpec(rank=16)
    assert lora.alpha == 16.0 == default_lora_alpha(16)
    assert lora.resolved_alpha == 16.0
    assert lora.to_wire()["alpha"] == 16.0
    assert LoraSpec.model_validate(lora.to_wire()) == lora


def test_default_lora_settings_keep_scale_one() -> None:
    lora = LoraSpec()
    assert (lora.rank, lora.alpha) == (4, 4.0)


def test_an_effective_lora_of_a_job_without_a_lora_section_uses_rank_as_alpha() -> None:
    job = _yaml_job({"rank": 8})
    job.spec.lora = None
    effective = job.spec.effective_lora()
    assert effective is not None and effective.alpha == float(effective.rank)
