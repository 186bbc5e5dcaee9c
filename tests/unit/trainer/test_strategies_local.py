"""DeepSpeed's ZeRO-3 path in-process (a one-member gloo group), without Ray.

The world-size-2 runs of every strategy and precision are in `test_precision_matrix.py`
(ZeRO-2, FSDP2 shards, DDP). This checks ZeRO-3 on the engine that actually trained (chosen
for the full UNet): gathered export, and a resume exact in weights and AdamW moments.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

import torch
from safetensors.torch import load_file

from tests.fixtures.trainer import make_trainer_job, worker_plan


def _train(job: Any, storage, monkeypatch) -> tuple[Any, Any, Any]:
    """`train_worker` at world size 1; returns (outcome, context, the strategy that trained)."""
    import tuneforge_trainer.loop as loop
    from tuneforge_trainer.context import LocalContext

    built: list[Any] = []
    original = loop.build_strategy

    def recording(*args: Any, **kwargs: Any) -> Any:
        built.append(original(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(loop, "build_strategy", recording)
    context = LocalContext(storage / "checkpoints")
    outcome = loop.train_worker(worker_plan(job, storage), context)
    return outcome, context, built[0]


def test_dreambooth_full_unet_under_zero3_exports_and_resumes_exactly_with_its_moments(
    single_process_group, tiny_model_dir, tiny_dataset_dir, tmp_path, monkeypatch
):
    job = make_trainer_job(
        "dreambooth",
        tiny_model_dir,
        tiny_dataset_dir,
        resources={"strategy": "deepspeed"},
        training={"maxSteps": 2, "checkpointEverySteps": 1},
    )
    outcome, whole, strategy = _train(job, tmp_path / "whole", monkeypatch)
    assert outcome.final_step == 2
    assert strategy.engine.zero_optimization_stage() == 3  # chosen for the full UNet
    assert all(hasattr(p, "ds_id") for p in strategy.unwrapped().unet.parameters())
    adapter = whole.checkpoints()[-1] / "adapter"
    manifest = json.loads((adapter / "tuneforge-adapter.json").read_text())
    assert manifest["files"] == ["unet.safetensors"]
    exported = load_file(str(adapter / "unet.safetensors"))
    base = load_file(str(tiny_model_dir / "unet" / "diffusion_pytorch_model.safetensors"))
    assert exported.keys() == base.keys(), "ZeRO-3 shards must be gathered into full tensors"
    assert all(exported[k].shape == base[k].shape for k in base)
    assert any(not torch.equal(exported[k], base[k]) for k in base), "the UNet must train"

    first = whole.checkpoints()[0]
    shutil.copytree(first, tmp_path / "split" / "checkpoints" / first.name)
    resumed, split, _ = _train(job, tmp_path / "split", monkeypatch)
    assert resumed.start_step == 1
    for name in ("trainable.safetensors", "optimizer.safetensors"):
        expected = load_file(str(whole.checkpoints()[-1] / name))
        actual = load_file(str(split.checkpoints()[-1] / name))
        assert expected.keys() == actual.keys()
        for key, tensor in expected.items():
            torch.testing.assert_close(actual[key], tensor, rtol=0, atol=0, msg=key)
    moments = load_file(str(split.checkpoints()[-1] / "optimizer.safetensors"))
    assert any(key.endswith("::exp_avg") and t.abs().max() > 0 for key, t in moments.items())
