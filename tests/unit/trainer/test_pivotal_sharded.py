"""Pivotal tuning under DeepSpeed is refused before any worker starts, and again on a worker
(never silently trained under another strategy). FSDP2 trains it: see the learning test
(`tests/integration/trainer/test_learning_pivotal.py`)."""

from __future__ import annotations

import pytest

from tests.fixtures.pivotal import pivotal_job
from tuneforge_trainer.errors import InvalidTrainingInput
from tuneforge_trainer.methods import method_class
from tuneforge_trainer.methods.pivotal import DEEPSPEED_REFUSAL


def test_deepspeed_is_refused_at_preflight_and_on_the_worker(tiny_model_dir, tiny_dataset_dir):
    job = pivotal_job(tiny_model_dir, tiny_dataset_dir, strategy="deepspeed")
    method = method_class(job.spec.method)
    with pytest.raises(InvalidTrainingInput) as refused:
        method.preflight(job.spec, tiny_model_dir)
    assert str(refused.value) == DEEPSPEED_REFUSAL
    assert str(refused.value).startswith("spec.resources.strategy: deepspeed")
    assert "use strategy ddp or fsdp" in str(refused.value)
    with pytest.raises(ValueError, match="not supported with method pivotal"):
        method(job.spec, components=None).prepare()
