"""What people read about a job's quality: the model card, the status line, the SDK's figures."""

from __future__ import annotations

from tests.fixtures.trainer import make_trainer_job
from tuneforge.api import FineTuneJobStatus, PromoteIf, apply_quality_gate, gate_verdict
from tuneforge.client.state import JobProgress
from tuneforge.contract import AdapterManifest
from tuneforge.registry.register import card_description, model_card


def _job():
    return make_trainer_job(
        "lora",
        "/models/tiny",
        "/data/toys",
        name="toy-job",
        evaluation={},
        lora={"rank": 8, "alpha": 16.0},
        output={"registeredModel": "toy", "alias": "production", "promoteIf": {"dino": 0.6}},
    )


def _manifest() -> AdapterManifest:
    return AdapterManifest.model_validate(
        {
            "method": "lora",
            "base_model": "/models/tiny",
            "files": ["pytorch_lora_weights.safetensors"],
            "lora": {"rank": 8, "alpha": 16.0, "target_modules": ["to_q", "to_v"]},
            "steps": 2,
            "job_name": "toy-job",
            "job_uid": "uid-1",
        }
    )


def test_model_card_lists_method_parameters_figures_and_grids():
    verdict = gate_verdict({"dino": 0.5, "clipT": 0.3}, PromoteIf(dino=0.6), {"dino": 0.2})
    card = model_card("toy", 3, _manifest(), _job().spec, verdict, ["prompt00.png"])
    assert card.startswith("# toy version 3\n")
    assert "A **lora** adapter for `/models/tiny`, trained by TuneForge job `toy-job`" in card
    assert "| LoRA | rank 8, alpha 16, targets to_q, to_v |" in card
    assert "| learning rate | 0.001 |" in card
    assert "| dino | 0.5000 | 0.2000 | 0.6 |" in card and "| clipT | 0.3000 |  |  |" in card
    assert "Quality gate: held back: clipT 0.300; dino 0.500 (base 0.200) < 0.6." in card
    assert "![prompt00.png](../evaluation/grids/prompt00.png)" in card
    unevaluated = model_card("toy", 1, _manifest(), _job().spec, None)
    assert "Not evaluated" in unevaluated and "## Images" not in unevaluated
    assert card_description(_manifest(), verdict).startswith(
        "lora adapter for /models/tiny, 2 steps, job toy-job. Evaluation held back: "
    )


def test_status_summary_and_sdk_figures():
    job = _job()
    job.status = FineTuneJobStatus()
    apply_quality_gate(
        job.status, gate_verdict({"dino": 0.7}, PromoteIf(dino=0.6), {"dino": 0.2}), 1
    )
    assert job.status.evaluation is not None
    assert job.status.evaluation.summary() == "dino 0.7000 (base 0.2000); alias moved"
    progress = JobProgress.of(job)
    assert progress.metrics == {"dino": 0.7} and progress.base_metrics == {"dino": 0.2}
    assert progress.promoted is True
    ungated = FineTuneJobStatus()
    apply_quality_gate(ungated, gate_verdict({"clipT": 0.25}, None), 1)
    assert ungated.evaluation is not None and ungated.evaluation.promoted is None
    assert ungated.evaluation.summary() == "clipT 0.2500"
    assert JobProgress.of(_job()).metrics == {}


def test_get_and_describe_print_the_figures(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from tuneforge.cli.main import app
    from tuneforge.embedded.backend import prepare_local_job
    from tuneforge.embedded.records import JobRecordStore

    home = tmp_path / "home"
    monkeypatch.setenv("TUNEFORGE_HOME", str(home))
    monkeypatch.setenv("TUNEFORGE_BACKEND", "local")
    store = JobRecordStore(home)
    store.create(prepare_local_job(_job()))
    verdict = gate_verdict({"dino": 0.5}, PromoteIf(dino=0.6), {"dino": 0.2})
    store.update_status("toy-job", lambda status: apply_quality_gate(status, verdict, 1))
    runner = CliRunner()
    line = "Evaluation: dino 0.5000 (base 0.2000); alias held back by promoteIf"
    got = runner.invoke(app, ["get", "toy-job"])
    assert got.exit_code == 0, got.output
    assert line in got.output
    described = runner.invoke(app, ["describe", "toy-job"])
    assert described.exit_code == 0, described.output
    assert line in described.output and "QualityGate" in described.output
    as_yaml = runner.invoke(app, ["get", "toy-job", "-o", "yaml"])
    assert "Evaluation:" not in as_yaml.output and "promoted: false" in as_yaml.output
