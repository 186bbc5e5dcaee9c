"""`spec.evaluation`, `output.promoteIf`, the gate's verdict and the `QualityGate` condition."""

from __future__ import annotations

import pytest

from tests.fixtures.trainer import make_trainer_job
from tuneforge.api import (
    EvalMetric,
    FineTuneJobStatus,
    PromoteIf,
    QualityGateVerdict,
    apply_quality_gate,
    gate_verdict,
)
from tuneforge.api.evaluation import PAPER_OBJECT_PROMPTS, subject_of


def _job(**sections):
    return make_trainer_job("lora", "/models/tiny", "/data/toys", **sections)


def test_defaults_are_the_papers_prompts_models_and_metrics():
    evaluation = _job(evaluation={}).spec.evaluation
    assert evaluation is not None
    assert evaluation.metrics == [EvalMetric.DINO, EvalMetric.CLIP_I, EvalMetric.CLIP_T]
    assert evaluation.images_per_prompt == 4
    assert evaluation.dino_model == "hf://facebook/dino-vits16"
    assert evaluation.clip_model == "hf://openai/clip-vit-base-patch32"
    prompts = evaluation.prompts_for("a photo of sks toy")
    assert len(prompts) == len(PAPER_OBJECT_PROMPTS) == 25
    assert prompts[0] == "a sks toy in the jungle" and prompts[-1] == "a cube shaped sks toy"


@pytest.mark.parametrize(
    ("instance_prompt", "subject"),
    [
        ("a photo of sks toy", "sks toy"),
        ("A photo of <sks-cat>.", "<sks-cat>"),
        ("an sks dog", "sks dog"),
        ("sks backpack", "sks backpack"),
    ],
)
def test_subject_of_instance_prompt(instance_prompt, subject):
    assert subject_of(instance_prompt) == subject


def test_given_prompts_win_and_evaluation_is_off_by_default():
    assert _job().spec.evaluation is None
    spec = _job(evaluation={"prompts": ["a sks toy on the moon"]}).spec
    assert spec.evaluation is not None
    assert spec.evaluation.prompts_for(None) == ["a sks toy on the moon"]


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        (
            {"output": {"registeredModel": "m", "promoteIf": {"dino": 0.5}}, "evaluation": {}},
            "spec.output.promoteIf decides whether output.alias moves: set output.alias",
        ),
        (
            {"output": {"registeredModel": "m", "alias": "prod", "promoteIf": {"clipT": 0.2}}},
            "promoteIf sets a minimum for clipT, which spec.evaluation does not measure",
        ),
        (
            {
                "evaluation": {"metrics": ["dino"]},
                "output": {"registeredModel": "m", "alias": "prod", "promoteIf": {"clipI": 0.7}},
            },
            "minimum for clipI",
        ),
        (
            {"evaluation": {"atValidationSteps": True}},
            "atValidationSteps needs validation.everySteps",
        ),
        ({"evaluation": {"metrics": ["dino", "dino"]}}, "list each metric once"),
        ({"evaluation": {"metrics": ["fid"]}}, "evaluation.metrics"),
        ({"evaluation": {"clipModel": "http://example.com/clip"}}, "clipModel"),
        ({"output": {"registeredModel": "m", "alias": "a", "promoteIf": {"dino": 2}}}, "dino"),
        (
            {"dataset": {"instancePrompt": None}, "evaluation": {}},
            "evaluation.prompts is empty and dataset.instancePrompt is unset",
        ),
    ],
)
def test_bad_evaluation_settings_name_the_field(sections, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(")):
        _job(**sections)


def test_gate_passes_only_when_every_minimum_holds():
    minimums = PromoteIf(dino=0.6, clip_t=0.25)
    held = gate_verdict({"dino": 0.7, "clipT": 0.2, "clipI": 0.9}, minimums, {"dino": 0.3})
    assert not held.passed and held.failed == ["clipT"]
    assert held.message() == (
        "held back: clipI 0.900; clipT 0.200 < 0.25; dino 0.700 (base 0.300) >= 0.6"
    )
    assert gate_verdict({"dino": 0.6, "clipT": 0.25}, minimums).passed
    missing = gate_verdict({"dino": 0.9, "clipT": float("nan")}, minimums)
    assert not missing.passed and missing.failed == ["clipT"]
    assert "clipT missing < 0.25" in missing.message()
    assert gate_verdict({}, None).passed


def test_verdict_round_trips_through_its_tag_json():
    verdict = gate_verdict({"dino": 0.5}, PromoteIf(dino=0.6), {"dino": 0.1})
    assert QualityGateVerdict.from_json(verdict.to_json()) == verdict
    with pytest.raises(ValueError, match="not a quality gate verdict"):
        QualityGateVerdict.from_json('{"metrics": {}}')


def test_quality_gate_condition_and_figures_in_status():
    status = FineTuneJobStatus()
    failed = gate_verdict({"dino": 0.5}, PromoteIf(dino=0.6), {"dino": 0.1})
    assert apply_quality_gate(status, failed, generation=3)
    condition = status.condition("QualityGate")
    assert condition is not None and condition.status.value == "False"
    assert condition.reason == "QualityGateFailed" and condition.observed_generation == 3
    assert "dino 0.500 (base 0.100) < 0.6" in condition.message and "--force" in condition.message
    assert status.evaluation is not None and status.evaluation.promoted is False
    assert status.evaluation.metrics == {"dino": "0.5000"}
    assert not apply_quality_gate(status, failed, generation=3)  # nothing new
    passed = gate_verdict({"dino": 0.7}, PromoteIf(dino=0.6))
    assert apply_quality_gate(status, passed, generation=3)
    condition = status.condition("QualityGate")
    assert condition is not None and condition.reason == "QualityGatePassed"
    assert status.evaluation.promoted is True
    wire = status.to_wire()
    assert wire["evaluation"] == {"metrics": {"dino": "0.7000"}, "base": {}, "promoted": True}


def test_the_status_rules_show_the_verdict_the_run_or_result_line_carries():
    """Operator (run tag, read with the run) and embedded mode (result line) feed one rule."""
    from tuneforge.api.status_rules import Observed, RunObservation, compute_status
    from tuneforge.contract import format_result, parse_result_line

    failed = gate_verdict({"clipT": 0.2}, PromoteIf(clipT=0.3), {"clipT": 0.1})
    result = parse_result_line(format_result(run_id="r1", quality_gate=failed.to_json()))
    assert result is not None and result.quality_gate == failed.to_json()
    run = RunObservation(run_id="r1", model_version="1", quality_gate=result.quality_gate)
    status = compute_status(None, Observed(generation=2, run=run))
    condition = status.condition("QualityGate")
    assert condition is not None and condition.reason == "QualityGateFailed"
    assert status.evaluation is not None and status.evaluation.promoted is False
    ungated = compute_status(None, Observed(generation=2, run=RunObservation(run_id="r1")))
    assert ungated.condition("QualityGate") is None and ungated.evaluation is None
