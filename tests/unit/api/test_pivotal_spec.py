"""`method: pivotal`: the spec rules (new tokens required, a LoRA allowed, its own section),
their messages, the SDK builder and what the reference page says."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tuneforge.api import FineTuneJob, LoraSpec, Method, PivotalSpec
from tuneforge.api.base import error_messages
from tuneforge.api.method_rules import method_rule_docs
from tuneforge.client import pivotal_job

TOKENS = {"placeholderToken": "<sks-cat>", "initializerToken": "cat"}


def _manifest(**spec: object) -> dict[str, object]:
    base: dict[str, object] = {
        "method": "pivotal",
        "dataset": {"uri": "s3://datasets/cats/", "instancePrompt": "a photo of <sks-cat>"},
        "training": {"maxSteps": 100},
        "output": {"registeredModel": "cat-pivotal"},
        "textualInversion": TOKENS,
    }
    base.update(spec)
    return {
        "apiVersion": "tuneforge.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "cat"},
        "spec": base,
    }


def _errors(manifest: dict[str, object]) -> list[str]:
    with pytest.raises(ValidationError) as raised:
        FineTuneJob.model_validate(manifest)
    return error_messages(raised.value, FineTuneJob)


def test_defaults_train_a_default_lora_and_embeddings_at_the_training_rate() -> None:
    job = FineTuneJob.model_validate(_manifest())
    assert job.spec.method is Method.PIVOTAL
    assert job.spec.effective_lora() == LoraSpec()
    assert job.spec.pivotal is None
    assert PivotalSpec().learning_rate_for_embeddings(1e-4) == 1e-4
    assert PivotalSpec(embedding_learning_rate=5e-3).learning_rate_for_embeddings(1e-4) == 5e-3


def test_the_tokens_are_required_and_the_message_says_what_to_set() -> None:
    spec = _manifest()
    del spec["spec"]["textualInversion"]  # type: ignore[attr-defined]
    assert _errors(spec) == [
        "spec.textualInversion is required when method is pivotal: set "
        "textualInversion.placeholderToken (e.g. '<my-concept>') and initializerToken"
    ]


def test_the_pivotal_section_belongs_to_pivotal_only() -> None:
    spec = _manifest(method="textualInversion", pivotal={"embeddingWarmupSteps": 5})
    assert _errors(spec) == [
        "spec.pivotal is only used with method pivotal (method is "
        "textualInversion): remove it or change the method"
    ]


def test_the_tokens_section_names_both_methods_that_read_it() -> None:
    spec = _manifest(method="lora")
    assert _errors(spec) == [
        "spec.textualInversion is only used with method "
        "textualInversion or pivotal (method is lora): remove it or change the method"
    ]


def test_a_warm_up_as_long_as_training_is_refused() -> None:
    spec = _manifest(pivotal={"embeddingWarmupSteps": 100})
    (message,) = _errors(spec)
    assert message.startswith("spec.pivotal.embeddingWarmupSteps")
    assert "less than training.maxSteps" in message
    FineTuneJob.model_validate(_manifest(pivotal={"embeddingWarmupSteps": 99}))


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("embeddingLearningRate", 0, "spec.pivotal.embeddingLearningRate"),
        ("embeddingLearningRate", 2, "spec.pivotal.embeddingLearningRate"),
        ("embeddingWarmupSteps", -1, "spec.pivotal.embeddingWarmupSteps"),
        ("embeddingWarmupStep", 3, "did you mean embeddingWarmupSteps?"),
    ],
)
def test_bad_values_name_the_field(field: str, value: object, fragment: str) -> None:
    (message,) = _errors(_manifest(pivotal={field: value}))
    assert fragment in message


def test_kohya_is_allowed_since_pivotal_trains_a_lora() -> None:
    job = FineTuneJob.model_validate(
        _manifest(output={"registeredModel": "cat-pivotal", "formats": ["diffusers", "kohya"]})
    )
    assert job.spec.effective_lora() is not None


def test_builder_writes_the_same_job_as_yaml() -> None:
    job = pivotal_job(
        "cat",
        "s3://datasets/cats/",
        "<sks-cat>",
        "cat",
        registered_model="cat-pivotal",
        steps=100,
        rank=8,
        embedding_learning_rate=5e-3,
        embedding_warmup_steps=20,
    )
    spec = job.to_manifest()["spec"]
    assert spec["method"] == "pivotal"
    assert spec["dataset"]["instancePrompt"] == "a photo of <sks-cat>"
    assert spec["pivotal"] == {"embeddingLearningRate": 5e-3, "embeddingWarmupSteps": 20}
    assert spec["lora"]["rank"] == 8 and spec["textualInversion"]["placeholderToken"] == "<sks-cat>"
    with pytest.raises(ValidationError, match="embeddingWarmupSteps"):
        pivotal_job(
            "cat", "s3://d/", "<t>", "cat", registered_model="m", steps=5, embedding_warmup_steps=5
        )


def test_the_reference_page_states_the_pivotal_rules() -> None:
    docs = method_rule_docs()
    assert "`method: pivotal` requires `spec.textualInversion`." in docs
    assert (
        "`spec.textualInversion` is only allowed with `method: textualInversion` or "
        "`method: pivotal`." in docs
    )
    assert "`spec.pivotal` is only allowed with `method: pivotal`." in docs
    assert any("`method: pivotal`" in sentence and "spec.lora" in sentence for sentence in docs)
