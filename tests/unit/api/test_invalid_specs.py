"""Every invalid FineTuneJob in the shared table is refused by the pydantic models, and the
error a user sees names the offending field (the apiserver twin is in tests/integration/api)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.unit.api.invalid_jobs import (
    ADMISSION_CASES,
    INVALID_CASES,
    PYDANTIC_ONLY_CASES,
    InvalidCase,
    valid_manifest,
)
from tuneforge.api import FineTuneJob
from tuneforge.api.base import error_messages

ALL_CASES = INVALID_CASES + PYDANTIC_ONLY_CASES + ADMISSION_CASES


def test_the_table_has_at_least_15_cases_with_unique_ids() -> None:
    ids = [case.id for case in ALL_CASES]
    assert len(INVALID_CASES) >= 15
    assert len(ids) == len(set(ids))


def test_the_starting_manifest_is_valid() -> None:
    job = FineTuneJob.model_validate(valid_manifest())
    assert job.spec.lora is not None and job.spec.lora.rank == 8


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_models_refuse_invalid_job_naming_the_field(case: InvalidCase) -> None:
    with pytest.raises(ValidationError) as raised:
        FineTuneJob.model_validate(case.manifest())
    message = str(raised.value)
    assert case.field in message, f"{case.id}: error does not name {case.field}:\n{message}"


@pytest.mark.parametrize("case", INVALID_CASES + ADMISSION_CASES, ids=lambda c: c.id)
def test_each_case_breaks_exactly_one_rule(case: InvalidCase) -> None:
    """A case that broke several rules would not prove that each rule works on its own."""
    with pytest.raises(ValidationError) as raised:
        FineTuneJob.model_validate(case.manifest())
    assert raised.value.error_count() == 1, str(raised.value)


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_each_error_is_one_readable_line_starting_with_the_field(case: InvalidCase) -> None:
    with pytest.raises(ValidationError) as raised:
        FineTuneJob.model_validate(case.manifest())
    lines = error_messages(raised.value, FineTuneJob)
    assert len(lines) == raised.value.error_count()
    assert all(line.startswith(("spec.", "metadata.")) for line in lines), lines
    assert any(case.field in line for line in lines), lines
    if case.message is not None:
        assert any(case.message in line for line in lines), lines


def test_unknown_field_without_a_close_match_lists_the_known_fields() -> None:
    manifest = valid_manifest()
    manifest["spec"]["lora"]["zzz"] = 1
    with pytest.raises(ValidationError) as raised:
        FineTuneJob.model_validate(manifest)
    (line,) = error_messages(raised.value, FineTuneJob)
    assert line == (
        "spec.lora.zzz: unknown field (known fields: alpha, dropout, rank, targetModules, "
        "trainTextEncoder)"
    )


def test_an_unknown_method_gets_one_message_naming_method_and_its_values() -> None:
    """Even with a section only another method reads: the method is what to fix first."""
    manifest = valid_manifest()
    manifest["spec"]["method"] = "hypernetwork"
    with pytest.raises(ValidationError) as raised:
        FineTuneJob.model_validate(manifest)
    assert error_messages(raised.value, FineTuneJob) == [
        "spec.method: 'hypernetwork' is not allowed: use one of 'lora', 'dreambooth', "
        "'textualInversion' or 'pivotal'"
    ]


@pytest.mark.parametrize(
    "uri", ["s3://bucket/..x/y", "./data/dogs", "/data/dogs/", "s3://b/.hidden/x", "file:///d"]
)
def test_dots_inside_a_segment_are_not_dot_segments(uri: str) -> None:
    manifest = valid_manifest()
    manifest["spec"]["dataset"]["uri"] = uri
    assert FineTuneJob.model_validate(manifest).spec.dataset.uri == uri


def test_a_63_character_name_is_accepted() -> None:
    assert FineTuneJob.model_validate(valid_manifest("a" * 63)).name == "a" * 63
