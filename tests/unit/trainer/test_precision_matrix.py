"""The precision matrix: {ddp, fsdp, deepspeed} x {no, bf16, fp16} x {fresh, resumed}.

Every cell trains LoRA on the tiny model for 2 steps at world size 2 (two spawned gloo
processes, `precision_cells`), checkpoints every step, resumes a second run from the first
run's step-1 checkpoint, and exports. Each cell proves that
- the precision was engaged: the UNet's cross-attention outputs have the cell's dtype on both
  ranks; with fp16 the loss scaler is the strategy's (torch's, FSDP2's sharded one) and has
  stepped twice without a skip (its growth tracker, restored across the resume);
- the model is really distributed: DDP wraps it, FSDP2 holds the trained parameters as
  DTensor shards (half on each rank), DeepSpeed ZeRO-2 splits the fp32 masters between ranks
  and runs the module in the half dtype;
- the loss is finite, the trained weights changed, and the exported adapter loads in plain
  diffusers (`load_lora_weights`) and changes the image;
- the resumed run equals the uninterrupted one exactly (tolerance 0: weights, AdamW moments
  and loss; DeepSpeed's moments are gathered into the checkpoint and put back).
A cell a strategy cannot run on this machine is a refusal, asserted on the worker and at
preflight, never a skip or a silent fp32 run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.fixtures.assets import load_tiny_pipeline
from tests.fixtures.trainer import make_trainer_job, render_tiny
from tests.unit.trainer.precision_cells import WORLD_SIZE, cell_key, run_matrix
from tuneforge_trainer.strategies.precision import cpu_has_native_fp16

STRATEGIES = ("ddp", "fsdp", "deepspeed")
PRECISIONS = ("no", "bf16", "fp16")
DTYPES = {"no": "torch.float32", "bf16": "torch.bfloat16", "fp16": "torch.float16"}
SCALERS = {"ddp": "GradScaler", "fsdp": "ShardedGradScaler"}
DEEPSPEED_FP16_REFUSAL = "DeepSpeed's CPU accelerator trains fp16 only on CPUs with native fp16"


def _refusal(strategy: str, precision: str) -> str | None:
    if (strategy, precision) == ("deepspeed", "fp16") and not cpu_has_native_fp16():
        return DEEPSPEED_FP16_REFUSAL
    return None


@pytest.fixture(scope="module")
def matrix(tiny_model_dir, tiny_dataset_dir, tmp_path_factory) -> dict[int, dict[str, Any]]:
    """Every cell, trained once by two spawned processes (rank -> cell key -> result)."""
    cells = [(strategy, precision) for strategy in STRATEGIES for precision in PRECISIONS]
    root = tmp_path_factory.mktemp("precision-matrix")
    return run_matrix(cells, tiny_model_dir, tiny_dataset_dir, root, timeout_s=900)


@pytest.fixture(scope="module")
def pipe_and_base_image(tiny_model_dir) -> tuple[Any, np.ndarray]:
    """One plain diffusers pipeline for every cell's adapter, and its image without one."""
    pipe = load_tiny_pipeline(tiny_model_dir)
    return pipe, render_tiny(pipe)


def _cell(matrix: dict[int, dict[str, Any]], strategy: str, precision: str, rank: int) -> Any:
    result = matrix[rank][cell_key(strategy, precision)]
    assert "error" not in result, result["error"]
    return result


def _checkpoint(run: dict[str, Any], step: int) -> Path:
    return Path(run["checkpoints"]) / f"checkpoint_{step:08d}"


def _trainable(run: dict[str, Any], step: int) -> dict[str, torch.Tensor]:
    return load_file(str(_checkpoint(run, step) / "trainable.safetensors"))


def _check_held(held: dict[str, Any], strategy: str, precision: str, rank_held: list[Any]) -> None:
    if strategy == "ddp":
        assert held["wrapper"] == "DistributedDataParallel"
    if strategy == "fsdp":
        assert held["param_types"] == ["DTensor"]
        assert sum(h["local_numel"] for h in rank_held) == held["trainable_numel"]
        assert all(h["local_numel"] < h["trainable_numel"] for h in rank_held), "not sharded"
    if strategy == "deepspeed":
        assert held["zero_stage"] == 2  # the stage of the engine that trained
        partitions = [h["master_partition_numel"] for h in rank_held]
        assert all(part < held["trainable_numel"] for part in partitions), "masters not split"
        assert sum(partitions) >= held["trainable_numel"]
        assert held["master_dtype"] == "torch.float32"
        assert held["module_dtype"] == DTYPES[precision]
    scaler = held.get("scaler")
    if precision == "fp16" and strategy in SCALERS:
        assert scaler is not None and scaler["class"] == SCALERS[strategy]
        assert scaler["scale"] > 1.0
        assert scaler["growth_tracker"] == 2, "the scaler must have stepped twice, unskipped"
    else:
        assert scaler is None


def test_training_compiles_no_ops_in_a_fresh_worker(matrix):
    """DeepSpeed's CPU shm all-reduce (inference-only) is not JIT-built: no compiler in pods."""
    for rank in range(WORLD_SIZE):
        assert matrix[rank]["compiled_ops"] == []


@pytest.mark.parametrize("run", ["fresh", "resumed"])
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_cell_trains_in_its_precision_and_exports(
    matrix, pipe_and_base_image, strategy, precision, run
):
    refusal = _refusal(strategy, precision)
    if refusal is not None:
        for rank in range(WORLD_SIZE):
            assert refusal in matrix[rank][cell_key(strategy, precision)]["refused"]
        return
    ranks = [_cell(matrix, strategy, precision, rank)[run] for rank in range(WORLD_SIZE)]
    main = ranks[0]
    assert (main["start_step"], main["final_step"]) == ((0, 2) if run == "fresh" else (1, 2))
    for seen in ranks:
        assert seen["attention_dtypes"] == [DTYPES[precision]]
        assert seen["loss_finite"]
        _check_held(seen["held"], strategy, precision, [r["held"] for r in ranks])

    before, after = _trainable(main, 1), _trainable(main, 2)
    assert all(t.dtype == torch.float32 for t in after.values()), "masters are fp32"
    assert max((after[k] - before[k]).abs().max().item() for k in after) > 0
    assert any(k.endswith("lora_B.default.weight") and t.abs().max() > 0 for k, t in after.items())
    state = json.loads((_checkpoint(main, 2) / "trainer_state.json").read_text())
    if precision == "fp16" and strategy in SCALERS:
        assert state["loss_scaler"]["_growth_tracker"] == 2
    else:
        assert state["loss_scaler"] is None

    pipe, base_image = pipe_and_base_image
    pipe.load_lora_weights(str(_checkpoint(main, 2) / "adapter"))
    try:
        assert np.abs(render_tiny(pipe) - base_image).max() > 1e-4
    finally:
        pipe.unload_lora_weights()


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_resume_equals_the_uninterrupted_run(matrix, strategy, precision):
    refusal = _refusal(strategy, precision)
    if refusal is not None:  # refused before training: nothing to resume
        assert refusal in matrix[0][cell_key(strategy, precision)]["refused"]
        return
    cell = _cell(matrix, strategy, precision, 0)
    fresh, resumed = cell["fresh"], cell["resumed"]
    assert resumed["last_loss"] == fresh["last_loss"]
    expected, actual = _trainable(fresh, 2), _trainable(resumed, 2)
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name], tensor, rtol=0, atol=0, msg=name)
    moments = [
        load_file(str(_checkpoint(r, 2) / "optimizer.safetensors")) for r in (fresh, resumed)
    ]
    assert any(key.endswith("::exp_avg_sq") for key in moments[0]), "AdamW moments are saved"
    for key, tensor in moments[0].items():
        torch.testing.assert_close(moments[1][key], tensor, rtol=0, atol=0, msg=key)


def test_preflight_refuses_what_the_device_cannot_run(tiny_model_dir, tiny_dataset_dir):
    from tuneforge_trainer.errors import InvalidTrainingInput
    from tuneforge_trainer.strategies.precision import check_precision

    for strategy in STRATEGIES:
        for precision in PRECISIONS:
            job = make_trainer_job(
                "lora",
                tiny_model_dir,
                tiny_dataset_dir,
                resources={"strategy": strategy, "workers": WORLD_SIZE},
                training={"mixedPrecision": precision},
            )
            refusal = _refusal(strategy, precision)
            if refusal is None:
                check_precision(job)
                continue
            with pytest.raises(InvalidTrainingInput, match=re.escape(refusal)):
                check_precision(job)
