"""Shared names: the LoRA defaults and the MLflow filter that finds a job's run."""

from __future__ import annotations

import pytest
from mlflow.utils.search_utils import SearchUtils

from tuneforge.contract import DEFAULT_LORA_TARGETS, Tag, default_lora_alpha, job_run_filter


@pytest.mark.parametrize(
    "uid",
    [
        "0d7c5a7e-2f0b-4a8e-9f55-3c1d2b4e6f70",
        "it's",
        'say "hi"',
        "back\\slash",
        "trailing\\",
    ],
)
def test_job_run_filter_finds_exactly_the_uid_in_mlflows_parser(uid: str) -> None:
    (clause,) = SearchUtils.parse_search_filter(job_run_filter(uid))
    assert clause == {"type": "tag", "key": Tag.JOB_UID, "comparator": "=", "value": uid}


def test_job_run_filter_uses_single_quotes_for_a_plain_uid() -> None:
    assert job_run_filter("abc-1") == "tags.`tuneforge.job_uid` = 'abc-1'"


def test_job_run_filter_refuses_a_uid_with_both_quote_characters() -> None:
    with pytest.raises(ValueError, match="both quote characters"):
        job_run_filter("""it's "quoted\"""")


def test_lora_alpha_defaults_to_the_rank() -> None:
    assert default_lora_alpha(16) == 16.0 and isinstance(default_lora_alpha(16), float)


def test_default_lora_targets_are_the_attention_projections() -> None:
    assert DEFAULT_LORA_TARGETS == ("to_q", "to_k", "to_v", "to_out.0")
