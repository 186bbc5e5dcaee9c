"""Every invalid FineTuneJob in the shared table is refused by the pydantic models, and the
error a user sees names the offending field (the apiserver twin is in tests/integration/api)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.unit.api.invalid_jobs import (
    INVALID_CASES,
    PYDANTIC_ONLY_CASES,
    InvalidCase,
    valid_manifest,
)
from tuneforge.api import FineTuneJob


def test_the_table_has_at_least_15_cases_with_unique_ids() -> None:
    ids = [case.id for case in INVALID_CASES + PYDANTIC_ONLY_CASES]
    assert len(INVALID_CASES) >= 15
    assert len(ids) == len(set(ids))


def test_the_starting_manifest_is_valid() -> None:
    job = FineTuneJob.model_validate(valid_manifest())
    assert job.spec.lora is not None and job.spec.lora.rank == 8


@pytest.mark.parametrize("case", INVALID_CASES + PYDANTIC_ONLY_CASES, ids=lambda c: c.id)
def test_models_refuse_invalid_job_naming_the_field(case: InvalidCase) -> None:
    with pytest.raises(ValidationError) as raised:
        FineTuneJob.model_validate(case.manifest())
    message = str(raised.value)
    assert case.field in message, f"{case.id}: error does not name {case.field}:\n{message}"


@pytest.mark.parametrize("case", INVALID_CASES, ids=lambda c: c.id)
def test_each_case_breaks_exactly_one_rule(case: InvalidCase) -> None:
    """A case that broke several rules would not prove that each rule works on its own."""
    with pytest.raises(ValidationError) as raised:
        FineTuneJob.model_validate(case.manifest())
    assert raised.value.error_count() == 1, str(raised.value)
