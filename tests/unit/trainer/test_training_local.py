"""Each method trains in-process (world size 1, no Ray) and its export loads into diffusers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.fixtures.assets import load_tiny_pipeline
from tests.fixtures.trainer import make_trainer_job, render_tiny, run_worker_locally


def _adapter(context) -> Path:
    return context.checkpoints()[-1] / "adapter"


def test_lora_with_text_encoder_exports_loadable_weights_with_alpha(
    tiny_model_dir, tiny_dataset_dir, tmp_path
):
    job = make_trainer_job(
        "lora",
        tiny_model_dir,
        tiny_dataset_dir,
        training={
            "learningRate": 5e-3,
            "snrGamma": 5.0,
            "noiseOffset": 0.05,
            "lrScheduler": "linear",
            "lrWarmupSteps": 1,
            "gradientAccumulationSteps": 2,
        },
        lora={"rank": 4, "alpha": 8.0, "trainTextEncoder": True},
    )
    outcome, context = run_worker_locally(job, tmp_path)
    assert (outcome.start_step, outcome.final_step) == (0, 2)
    assert [p.name for p in context.checkpoints()] == ["checkpoint_00000001", "checkpoint_00000002"]
    manifest = json.loads((_adapter(context) / "tuneforge-adapter.json").read_text())
    assert manifest["method"] == "lora" and manifest["format_version"] == 2
    assert manifest["lora"] == {
        "rank": 4,
        "alpha": 8.0,
        "target_modules": ["to_q", "to_k", "to_v", "to_out.0"],
        "text_encoder": True,
    }
    assert manifest["steps"] == 2 and manifest["embeddings"] is None
    assert manifest["files"] == ["pytorch_lora_weights.safetensors"]
    keys = load_file(str(_adapter(context) / "pytorch_lora_weights.safetensors")).keys()
    assert any(k.startswith("unet.") for k in keys) and any(
        k.startswith("text_encoder.") for k in keys
    )

    pipe = load_tiny_pipeline(tiny_model_dir)
    base_image = render_tiny(pipe)
    pipe.load_lora_weights(str(_adapter(context)))
    scalings = {
        layer.scaling["default_0"]
        for layer in pipe.unet.modules()
        if hasattr(layer, "scaling") and "default_0" in getattr(layer, "scaling", {})
    }
    assert scalings == {2.0}, "alpha/rank = 8/4 must survive the reload"
    assert np.abs(render_tiny(pipe) - base_image).max() > 1e-4


def test_textual_inversion_changes_only_the_new_rows(tiny_model_dir, tiny_dataset_dir, tmp_path):
    job = make_trainer_job(
        "textualInversion",
        tiny_model_dir,
        tiny_dataset_dir,
        training={"learningRate": 5e-2},
        textualInversion={
            "placeholderToken": "<sks-toy>",
            "initializerToken": "ball",
            "numVectors": 2,
        },
    )
    _, context = run_worker_locally(job, tmp_path)
    learned = load_file(str(_adapter(context) / "learned_embeds.safetensors"))
    assert list(learned) == ["<sks-toy>"] and tuple(learned["<sks-toy>"].shape) == (2, 32)

    base = load_tiny_pipeline(tiny_model_dir)
    base_rows = base.text_encoder.get_input_embeddings().weight.detach().clone()
    init_id = base.tokenizer.encode("ball", add_special_tokens=False)[0]
    assert not torch.equal(learned["<sks-toy>"][0], base_rows[init_id]), "vectors must move"

    pipe = load_tiny_pipeline(tiny_model_dir)
    pipe.load_textual_inversion(str(_adapter(context) / "learned_embeds.safetensors"))
    rows = pipe.text_encoder.get_input_embeddings().weight.detach()
    assert torch.equal(rows[: base_rows.shape[0]], base_rows), "original rows must be bit-identical"
    ids = pipe.tokenizer.convert_tokens_to_ids(["<sks-toy>", "<sks-toy>_1"])
    assert torch.equal(rows[ids], learned["<sks-toy>"])
    trained_image = render_tiny(pipe, "a photo of <sks-toy>")
    with torch.no_grad():
        rows[ids] = base_rows[init_id]
    assert np.abs(trained_image - render_tiny(pipe, "a photo of <sks-toy>")).max() > 1e-4


def test_dreambooth_full_unet_with_prior_preservation(tiny_model_dir, tiny_dataset_dir, tmp_path):
    from tuneforge_trainer.validation import load_pipeline_with_adapter

    job = make_trainer_job(
        "dreambooth",
        tiny_model_dir,
        tiny_dataset_dir,
        training={"learningRate": 1e-3, "gradientCheckpointing": True, "cacheLatents": True},
        dreambooth={"priorPreservation": True, "priorLossWeight": 0.5},
    )
    _, context = run_worker_locally(job, tmp_path, class_data_uri=str(tiny_dataset_dir / "class"))
    adapter = _adapter(context)
    manifest = json.loads((adapter / "tuneforge-adapter.json").read_text())
    assert manifest["files"] == ["unet.safetensors"]
    assert manifest["full_model"] is True and manifest["lora"] is None
    pipe = load_pipeline_with_adapter(tiny_model_dir, adapter)
    base = load_tiny_pipeline(tiny_model_dir)
    assert np.abs(render_tiny(pipe) - render_tiny(base)).max() > 1e-4


def test_rerun_resumes_from_the_latest_checkpoint(tiny_model_dir, tiny_dataset_dir, tmp_path):
    job = make_trainer_job("lora", tiny_model_dir, tiny_dataset_dir)
    first, _ = run_worker_locally(job, tmp_path)
    longer = make_trainer_job("lora", tiny_model_dir, tiny_dataset_dir, training={"maxSteps": 3})
    second, context = run_worker_locally(longer, tmp_path)
    assert (first.final_step, second.start_step, second.final_step) == (2, 2, 3)
    assert json.loads((_adapter(context) / "tuneforge-adapter.json").read_text())["steps"] == 3


def test_placeholder_already_in_vocabulary_is_refused(tiny_model_dir, tiny_dataset_dir, tmp_path):
    job = make_trainer_job(
        "textualInversion",
        tiny_model_dir,
        tiny_dataset_dir,
        textualInversion={"placeholderToken": "photo", "initializerToken": "ball"},
    )
    with pytest.raises(ValueError, match="already in the vocabulary"):
        run_worker_locally(job, tmp_path)


def test_resumed_run_matches_an_uninterrupted_one(tiny_model_dir, tiny_dataset_dir, tmp_path):
    """Weights, AdamW moments, data order and noise all resume exactly."""
    from safetensors.torch import load_file as load

    straight = make_trainer_job(
        "lora",
        tiny_model_dir,
        tiny_dataset_dir,
        training={"maxSteps": 4, "checkpointEverySteps": 4},
    )
    _, whole = run_worker_locally(straight, tmp_path / "whole")
    half = make_trainer_job(
        "lora",
        tiny_model_dir,
        tiny_dataset_dir,
        training={"maxSteps": 2, "checkpointEverySteps": 2},
    )
    run_worker_locally(half, tmp_path / "split")
    resumed, split = run_worker_locally(straight, tmp_path / "split")
    assert resumed.start_step == 2
    expected = load(str(whole.checkpoints()[-1] / "trainable.safetensors"))
    actual = load(str(split.checkpoints()[-1] / "trainable.safetensors"))
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name], tensor, rtol=0, atol=1e-6, msg=name)
    assert (split.checkpoints()[-1] / "optimizer.safetensors").is_file()


@pytest.mark.parametrize("export_lora", [False, True])
def test_dreambooth_with_text_encoder(tiny_model_dir, tiny_dataset_dir, tmp_path, export_lora):
    from tuneforge_trainer.validation import load_pipeline_with_adapter

    job = make_trainer_job(
        "dreambooth",
        tiny_model_dir,
        tiny_dataset_dir,
        dreambooth={"trainTextEncoder": True, "exportLora": export_lora},
        **({"lora": {"rank": 2, "alpha": 2.0}} if export_lora else {}),
    )
    _, context = run_worker_locally(job, tmp_path)
    adapter = _adapter(context)
    manifest = json.loads((adapter / "tuneforge-adapter.json").read_text())
    if export_lora:
        assert manifest["files"] == ["pytorch_lora_weights.safetensors"]
        assert manifest["lora"]["rank"] == 2 and manifest["lora"]["text_encoder"] is True
        assert manifest["full_model"] is False
        keys = load_file(str(adapter / "pytorch_lora_weights.safetensors")).keys()
        assert any(k.startswith("text_encoder.") for k in keys)
    else:
        assert manifest["files"] == ["unet.safetensors", "text_encoder.safetensors"]
        assert manifest["full_model"] is True
        base = load_tiny_pipeline(tiny_model_dir)
        trained = load_file(str(adapter / "text_encoder.safetensors"))
        base_state = base.text_encoder.state_dict()
        assert trained.keys() == base_state.keys()
        assert any(not torch.equal(trained[k], base_state[k]) for k in trained)
    pipe = load_pipeline_with_adapter(tiny_model_dir, adapter)
    assert np.abs(render_tiny(pipe) - render_tiny(load_tiny_pipeline(tiny_model_dir))).max() > 1e-4


def test_lr_schedule_resumes_at_its_step_without_stepping_the_optimizer(
    tiny_model_dir, tiny_dataset_dir
):
    """A resume under fp16 builds the schedule at step N: no `GradScaler.step` before `scale`."""
    from tuneforge_trainer.loop import make_lr_scheduler, mark_initial_lr

    job = make_trainer_job(
        "lora",
        tiny_model_dir,
        tiny_dataset_dir,
        training={"maxSteps": 10, "lrScheduler": "linear", "lrWarmupSteps": 4},
    )
    param = torch.nn.Parameter(torch.zeros(2))
    stepped = torch.optim.AdamW([param], lr=1e-3)
    mark_initial_lr(stepped)
    reference = make_lr_scheduler(job, stepped, 0)
    for _ in range(6):
        stepped.step()
        reference.step()

    resumed = torch.optim.AdamW([param], lr=1e-3)
    mark_initial_lr(resumed)
    schedule = make_lr_scheduler(job, resumed, 6)
    assert schedule.get_last_lr() == reference.get_last_lr()
    assert resumed.param_groups[0]["lr"] == stepped.param_groups[0]["lr"]
    assert resumed.state == {}, "the optimizer must not have stepped (fp16: GradScaler asserts)"
