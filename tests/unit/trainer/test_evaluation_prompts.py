"""Evaluation's default prompts name what the method learned, rendered as its encoder reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.trainer import make_trainer_job


@pytest.fixture(scope="module")
def components(tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    from tuneforge_trainer.components import load_components

    return load_components(tiny_model_dir)


def _method(kind: str, model: Path, data: Path, components, **spec):  # type: ignore[no-untyped-def]
    from tuneforge_trainer.methods import build_method

    job = make_trainer_job(kind, model, data, evaluation={"imagesPerPrompt": 1}, **spec)
    return job.spec, build_method(job.spec, components)


def test_textual_inversion_prompts_name_the_placeholder_even_when_the_instance_prompt_does_not(
    tiny_model_dir: Path, tiny_dataset_dir: Path, components
) -> None:  # type: ignore[no-untyped-def]
    spec, method = _method("textualInversion", tiny_model_dir, tiny_dataset_dir, components)
    assert "<sks-toy>" not in spec.dataset.instance_prompt.split()  # the fixture's "sks toy"
    prompts = spec.evaluation.prompts_for(method.evaluation_instance_prompt())
    assert prompts and all("<sks-toy>" in prompt.split() for prompt in prompts)
    assert method.expand_prompt(prompts[0]) == method.prompt_for(prompts[0])


def test_multi_vector_placeholders_expand_for_the_encoder_only(
    tiny_model_dir: Path, tiny_dataset_dir: Path, components
) -> None:  # type: ignore[no-untyped-def]
    _, method = _method(
        "textualInversion",
        tiny_model_dir,
        tiny_dataset_dir,
        components,
        textualInversion={"placeholderToken": "<v>", "initializerToken": "ball", "numVectors": 3},
    )
    assert method.expand_prompt("a <v> on a table") == "a <v> <v>_1 <v>_2 on a table"


def test_lora_prompts_come_from_the_instance_prompt_unchanged(
    tiny_model_dir: Path, tiny_dataset_dir: Path, components
) -> None:  # type: ignore[no-untyped-def]
    spec, method = _method("lora", tiny_model_dir, tiny_dataset_dir, components)
    assert method.evaluation_instance_prompt() == spec.dataset.instance_prompt
    prompts = spec.evaluation.prompts_for(method.evaluation_instance_prompt())
    assert all("sks toy" in prompt for prompt in prompts)
    assert method.expand_prompt(prompts[0]) == prompts[0]
