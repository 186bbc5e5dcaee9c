"""FSDP2 and DeepSpeed code paths in-process (a one-member gloo group), without Ray.

The 2-worker runs live in tests/integration/trainer; these check the strategy layer's own
contracts cheaply: FSDP2 gathers a full state dict and restores its optimizer state exactly,
and DeepSpeed (ZeRO-2 for adapters, ZeRO-3 for the full UNet) trains and exports.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.fixtures.trainer import make_trainer_job, run_worker_locally


def _final(context, name: str):
    return load_file(str(context.checkpoints()[-1] / name))


def test_fsdp_resume_matches_uninterrupted_and_exports_full_tensors(
    single_process_group, tiny_model_dir, tiny_dataset_dir, tmp_path
):
    resources = {"strategy": "fsdp"}
    straight = make_trainer_job(
        "lora",
        tiny_model_dir,
        tiny_dataset_dir,
        resources=resources,
        training={"maxSteps": 4, "checkpointEverySteps": 4},
    )
    _, whole = run_worker_locally(straight, tmp_path / "whole")
    half = make_trainer_job(
        "lora",
        tiny_model_dir,
        tiny_dataset_dir,
        resources=resources,
        training={"maxSteps": 2, "checkpointEverySteps": 2},
    )
    run_worker_locally(half, tmp_path / "split")
    resumed, split = run_worker_locally(straight, tmp_path / "split")
    assert resumed.start_step == 2
    expected, actual = (
        _final(whole, "trainable.safetensors"),
        _final(split, "trainable.safetensors"),
    )
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name], tensor, rtol=0, atol=1e-6, msg=name)
    lora = _final(split, "adapter/pytorch_lora_weights.safetensors")
    shapes = {tuple(t.shape) for k, t in lora.items() if "lora_A" in k}
    assert all(shape[0] == 4 for shape in shapes), "LoRA A matrices must be full (rank x in)"


@pytest.mark.parametrize(("method", "stage"), [("lora", 2), ("dreambooth", 3)])
def test_deepspeed_trains_and_exports(
    single_process_group, tiny_model_dir, tiny_dataset_dir, tmp_path, method, stage
):
    from tuneforge_trainer.strategies.deepspeed import DeepSpeedStrategy

    job = make_trainer_job(
        method,
        tiny_model_dir,
        tiny_dataset_dir,
        resources={"strategy": "deepspeed"},
        training={"gradientAccumulationSteps": 2},
    )
    outcome, context = run_worker_locally(job, tmp_path)
    assert outcome.final_step == 2
    manifest = json.loads(
        (context.checkpoints()[-1] / "adapter/tuneforge-adapter.json").read_text()
    )
    expected_file = "pytorch_lora_weights.safetensors" if method == "lora" else "unet.safetensors"
    assert manifest["files"] == [expected_file]
    exported = _final(context, f"adapter/{expected_file}")
    assert exported and all(t.numel() > 0 for t in exported.values())
    from tuneforge.api import TrainingSpec
    from tuneforge_trainer.strategies import World

    chosen = DeepSpeedStrategy(World(), TrainingSpec(), full_model=method == "dreambooth").stage
    assert chosen == stage
    forced = DeepSpeedStrategy(World(), TrainingSpec(), full_model=True, stage=2).stage
    assert forced == 2
