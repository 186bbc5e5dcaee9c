"""docs/reference/finetunejob.md is generated from the models and kept up to date."""

from __future__ import annotations

from pathlib import Path

from tuneforge.api import FineTuneJob
from tuneforge.api.reference import _models_in_order, render_reference

PAGE = Path(__file__).resolve().parents[3] / "docs/reference/finetunejob.md"


def test_checked_in_page_is_up_to_date() -> None:
    assert PAGE.read_text() == render_reference(), (
        "docs/reference/finetunejob.md is stale: regenerate it with "
        "`.venv/bin/python -m tuneforge.api.reference docs/reference/finetunejob.md`"
    )


def test_every_field_of_every_model_is_listed_with_a_description() -> None:
    page = render_reference()
    models, enums = _models_in_order(FineTuneJob)
    assert {m.__name__ for m in models} >= {"FineTuneJobSpec", "LoraSpec", "FineTuneJobStatus"}
    for model in models:
        section = page.split(f"\n## {model.__name__}\n", 1)[1].split("\n## ", 1)[0]
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no docstring"
            row = next(
                (
                    line
                    for line in section.splitlines()
                    if line.startswith(f"| `{info.alias or name}` |")
                ),
                None,
            )
            assert row is not None, f"{model.__name__}.{name} is missing from the reference"
            assert info.description.split("`")[0][:20] in row
    for enum in enums:
        assert all(f"`{member.value}`" in page for member in enum)


def test_constraints_and_defaults_are_rendered() -> None:
    page = render_reference()
    assert "| `rank` | integer | `4` | ≥ 1; ≤ 256 |" in page
    assert "| `resolution` | integer | `512` | ≥ 8; ≤ 2048; multiple of 8 |" in page
    assert "| `learningRate` | number | `0.0001` | > 0; ≤ 1 |" in page
    assert "| `dataset` | [DatasetSpec](#datasetspec) | **required** |" in page
