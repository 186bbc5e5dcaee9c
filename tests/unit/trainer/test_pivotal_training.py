"""Pivotal tuning trains new tokens and a LoRA together: the warm-up trains only the
embeddings, then both train; only the new rows change; each group gets its own learning
rate and weight decay; a resume inside the warm-up ends exactly where an uninterrupted run
does; the adapter holds both files and loads into plain diffusers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.fixtures.assets import load_tiny_pipeline
from tests.fixtures.pivotal import (
    EMBEDDING_LR,
    LORA_LR,
    PIVOTAL_TOKEN,
    PIVOTAL_WARMUP,
    pivotal_job,
    trained_pivotal,
)
from tests.fixtures.trainer import render_tiny, run_worker_locally

VECTORS = "text_encoder.embeddings.token_embedding.placeholder_vectors"


def _tensors(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / "trainable.safetensors"))


def _split(tensors: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    lora = {name: value for name, value in tensors.items() if name != VECTORS}
    return tensors[VECTORS], lora


def _initial_state(model_dir: Path, job) -> dict[str, torch.Tensor]:
    """The trained tensors before step 1, prepared exactly as the worker does (same seed)."""
    from tuneforge_trainer.components import load_components
    from tuneforge_trainer.loop import seed_everything
    from tuneforge_trainer.methods import build_method

    seed_everything(job.spec.training.seed)
    method = build_method(job.spec, load_components(model_dir))
    method.prepare()
    model = method.denoiser()
    named = dict(model.named_parameters())
    return {name: named[name].detach().clone() for name in method.trainable_names(model)}


@pytest.fixture(scope="module")
def checkpoints(tiny_model_dir, tiny_dataset_dir, tmp_path_factory) -> list[Path]:
    return trained_pivotal(tiny_model_dir, tiny_dataset_dir, tmp_path_factory)


def test_warm_up_trains_only_the_embeddings_then_both_train(
    checkpoints, tiny_model_dir, tiny_dataset_dir
):
    job = pivotal_job(tiny_model_dir, tiny_dataset_dir)
    initial = _initial_state(tiny_model_dir, job)
    states = [initial] + [_tensors(checkpoint) for checkpoint in checkpoints]
    assert [c.name for c in checkpoints] == [f"checkpoint_0000000{i}" for i in (1, 2, 3)]
    assert states[1].keys() == initial.keys()
    assert any(".lora_A." in n for n in initial) and any("unet." in n for n in initial)
    assert not any(n.startswith("text_encoder.") and "lora" in n for n in initial)
    for step in range(1, 4):
        before_vectors, before_lora = _split(states[step - 1])
        vectors, lora = _split(states[step])
        assert not torch.equal(vectors, before_vectors), f"embeddings must move at step {step}"
        changed = [n for n in lora if not torch.equal(lora[n], before_lora[n])]
        if step <= PIVOTAL_WARMUP:
            assert changed == [], f"warm-up step {step} changed the LoRA: {changed[:3]}"
        else:
            assert any(".lora_B." in n for n in changed), "the LoRA must train after warm-up"


def test_each_group_has_its_own_learning_rate_and_weight_decay(checkpoints):
    """Linear schedule over 3 steps: after step k the factor is (3 - k) / 3; the LoRA's is 0
    until the warm-up ends."""
    for step, checkpoint in enumerate(checkpoints, start=1):
        groups = json.loads((checkpoint / "optimizer.json").read_text())["param_groups"]
        lora, embeddings = groups
        assert embeddings["params"] == [VECTORS]
        assert VECTORS not in lora["params"] and len(lora["params"]) > 0
        assert (lora["initial_lr"], embeddings["initial_lr"]) == (LORA_LR, EMBEDDING_LR)
        assert (lora["weight_decay"], embeddings["weight_decay"]) == (1e-2, 0.0)
        factor = (3 - step) / 3
        expected_lora = LORA_LR * factor if step >= PIVOTAL_WARMUP else 0.0
        assert lora["lr"] == pytest.approx(expected_lora, abs=1e-12), step
        assert embeddings["lr"] == pytest.approx(EMBEDDING_LR * factor), step
        moments = load_file(str(checkpoint / "optimizer.safetensors"))
        assert moments[f"{VECTORS}::exp_avg"].shape == (2, 32), "moments saved under their names"


def test_adapter_holds_both_files_and_only_the_new_rows_change(checkpoints, tiny_model_dir):
    adapter = checkpoints[-1] / "adapter"
    manifest = json.loads((adapter / "tuneforge-adapter.json").read_text())
    assert manifest["method"] == "pivotal"
    assert manifest["files"] == ["pytorch_lora_weights.safetensors", "learned_embeds.safetensors"]
    assert manifest["embeddings"] == {"tokens": [PIVOTAL_TOKEN]}
    assert manifest["lora"]["rank"] == 4 and manifest["lora"]["text_encoder"] is False
    learned = load_file(str(adapter / "learned_embeds.safetensors"))
    assert list(learned) == [PIVOTAL_TOKEN] and tuple(learned[PIVOTAL_TOKEN].shape) == (2, 32)

    base = load_tiny_pipeline(tiny_model_dir)
    base_rows = base.text_encoder.get_input_embeddings().weight.detach().clone()
    pipe = load_tiny_pipeline(tiny_model_dir)
    pipe.load_lora_weights(str(adapter))
    pipe.load_textual_inversion(str(adapter / "learned_embeds.safetensors"))
    rows = pipe.text_encoder.get_input_embeddings().weight.detach()
    assert torch.equal(rows[: base_rows.shape[0]], base_rows), "original rows must not change"
    ids = pipe.tokenizer.convert_tokens_to_ids([PIVOTAL_TOKEN, f"{PIVOTAL_TOKEN}_1"])
    assert torch.equal(rows[ids], learned[PIVOTAL_TOKEN])
    prompt = f"a photo of {PIVOTAL_TOKEN}"
    assert np.abs(render_tiny(pipe, prompt) - render_tiny(base, prompt)).max() > 1e-4


def test_a_resume_inside_the_warm_up_matches_the_uninterrupted_run(
    checkpoints, tiny_model_dir, tiny_dataset_dir, tmp_path
):
    """Restart from step 1 (warm-up): weights, both groups' moments and learning rates, the
    data order and the noise continue exactly, across the end of the warm-up."""
    storage = tmp_path / "resumed"
    shutil.copytree(checkpoints[0], storage / "checkpoints" / checkpoints[0].name)
    outcome, context = run_worker_locally(pivotal_job(tiny_model_dir, tiny_dataset_dir), storage)
    assert (outcome.start_step, outcome.final_step) == (1, 3)
    expected, actual = _tensors(checkpoints[-1]), _tensors(context.checkpoints()[-1])
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name], tensor, rtol=0, atol=1e-6, msg=name)
    for checkpoint in (checkpoints[-1], context.checkpoints()[-1]):
        groups = json.loads((checkpoint / "optimizer.json").read_text())["param_groups"]
        assert [g["lr"] for g in groups] == pytest.approx([0.0, 0.0], abs=1e-12)
