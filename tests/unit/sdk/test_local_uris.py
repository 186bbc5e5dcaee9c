"""Embedded jobs: relative local paths are resolved where the user typed them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.trainer import make_trainer_job
from tuneforge.embedded.backend import absolute_local_uris


def test_every_local_path_of_a_job_is_made_absolute_against_the_folder(tmp_path: Path) -> None:
    job = make_trainer_job(
        "lora",
        "./model",
        "./data",
        dataset={"classDataUri": "./classes"},
        evaluation={"clipModel": "./evaluators/clip", "dinoModel": "./evaluators/dino"},
    )
    absolute_local_uris(job, tmp_path)
    spec = job.spec
    assert spec.evaluation is not None
    found = [
        spec.base_model.uri,
        spec.dataset.uri,
        spec.dataset.class_data_uri,
        spec.evaluation.clip_model,
        spec.evaluation.dino_model,
    ]
    wanted = ["model", "data", "classes", "evaluators/clip", "evaluators/dino"]
    assert found == [str((tmp_path / path).resolve()) for path in wanted]


@pytest.mark.parametrize("uri", ["s3://bucket/clip", "hf://openai/clip-vit-large-patch14"])
def test_remote_evaluator_uris_stay_as_they_are(tmp_path: Path, uri: str) -> None:
    job = make_trainer_job("lora", "./model", "./data", evaluation={"clipModel": uri})
    absolute_local_uris(job, tmp_path)
    assert job.spec.evaluation is not None and job.spec.evaluation.clip_model == uri
