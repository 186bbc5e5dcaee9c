"""A training method owns its knowledge: what it trains, what it checks before training,
and the typed manifest sections it writes; the progress lines are the contract's."""

from __future__ import annotations

import io

import pytest

from tests.fixtures.trainer import make_trainer_job
from tuneforge.api import Method
from tuneforge.contract import parse_progress_line
from tuneforge_trainer.methods import METHODS, method_class
from tuneforge_trainer.progress import ProgressPrinter


def test_every_spec_method_has_its_training_method() -> None:
    assert set(METHODS) == set(Method)
    assert all(method_class(method).method is method for method in Method)


@pytest.mark.parametrize(
    ("method", "sections", "full_model", "text_encoder"),
    [
        ("lora", {}, False, False),
        ("lora", {"lora": {"trainTextEncoder": True}}, False, True),
        ("dreambooth", {}, True, False),
        ("dreambooth", {"dreambooth": {"trainTextEncoder": True}}, True, True),
        ("dreambooth", {"dreambooth": {"exportLora": True}}, False, False),
        ("textualInversion", {}, False, True),
        (
            "pivotal",
            {"textualInversion": {"placeholderToken": "<t>", "initializerToken": "a"}},
            False,
            True,
        ),
    ],
)
def test_the_method_says_what_it_trains(
    tmp_path, method: str, sections: dict, full_model: bool, text_encoder: bool
) -> None:
    job = make_trainer_job(method, tmp_path, tmp_path, **sections)
    trainer = method_class(job.spec.method)(job.spec, components=None)
    assert trainer.trains_full_model is full_model
    assert trainer.trains_text_encoder is text_encoder


def test_lora_part_describes_its_file_with_alpha_defaulting_to_the_rank(tmp_path) -> None:
    job = make_trainer_job(
        "dreambooth", tmp_path, tmp_path, dreambooth={"exportLora": True}, lora={"rank": 16}
    )
    trainer = method_class(job.spec.method)(job.spec, components=None)
    section = trainer.part.section()
    assert (section.rank, section.alpha, section.text_encoder) == (16, 16.0, False)
    assert section.target_modules == ["to_q", "to_k", "to_v", "to_out.0"]


def test_progress_lines_are_the_contracts() -> None:
    stream = io.StringIO()
    printer = ProgressPrinter(10, start_step=0, stream=stream)
    printer.step(3, 0.125, 1e-4, 2.5)
    progress = parse_progress_line(stream.getvalue())
    assert progress is not None
    assert (progress.step, progress.total_steps, progress.loss) == (3, 10, 0.125)
    assert progress.images_per_s == 2.5


@pytest.mark.parametrize(
    ("method", "sections", "frozen"),
    [
        ("lora", {}, True),
        ("lora", {"lora": {"trainTextEncoder": True}}, False),
        ("textualInversion", {}, False),
    ],
)
def test_the_text_encoder_runs_under_the_steps_autocast_and_without_autograd_when_frozen(
    tmp_path, tiny_model_dir, method: str, sections: dict, frozen: bool
) -> None:
    import torch

    from tuneforge_trainer.components import load_components, tokenize

    job = make_trainer_job(method, tmp_path, tmp_path, **sections)
    components = load_components(tiny_model_dir)
    trainer = method_class(job.spec.method)(job.spec, components=components)
    trainer.prepare()
    denoiser = trainer.denoiser()
    ids = tokenize(components.tokenizer, ["a photo of sks dog"])
    autocast_seen: list[bool] = []
    denoiser.text_encoder.register_forward_pre_hook(
        lambda *_: autocast_seen.append(torch.is_autocast_enabled("cpu"))
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        hidden = denoiser.encode_prompts(ids)
    assert denoiser.text_encoder_frozen is frozen
    assert autocast_seen == [True]  # the job's precision, frozen or not
    assert hidden.requires_grad is not frozen
