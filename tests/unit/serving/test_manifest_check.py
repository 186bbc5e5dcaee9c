"""Serving checks an adapter's manifest against its tensors: each mismatch is a named 422."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from tuneforge.contract import ADAPTER_MANIFEST, EmbeddingsSection, LoraSection
from tuneforge_serving.embedding_slots import StagedEmbeddings
from tuneforge_serving.errors import AdapterRejected
from tuneforge_serving.lora_format import LoraModule, StagedLora
from tuneforge_serving.manifest_check import check_embeddings, check_lora

UNET_PATH = "down_blocks.0.attentions.0.transformer_blocks.0.attn1"


def _lora(rank: int = 4, modules: tuple[str, ...] = ("to_q", "to_v"), te: bool = False) -> Any:
    staged = StagedLora()
    for module in modules:
        pair = LoraModule(a=torch.zeros(rank, 8), b=torch.zeros(8, rank), scale=1.0)
        staged.modules[("unet", f"{UNET_PATH}.{module}")] = pair
    if te:
        pair = LoraModule(a=torch.zeros(rank, 8), b=torch.zeros(8, rank), scale=1.0)
        staged.modules[("text_encoder", "text_model.encoder.layers.0.self_attn.q_proj")] = pair
    return staged


def _section(**changes: Any) -> LoraSection:
    values: dict[str, Any] = {"rank": 4, "alpha": 4.0, "target_modules": ["to_q", "to_v"]}
    return LoraSection(**{**values, **changes})


def test_a_lora_that_matches_its_manifest_passes() -> None:
    check_lora(_lora(), _section(), "ok/1")
    check_lora(_lora(te=True), _section(text_encoder=True), "ok/2")
    check_lora(_lora(modules=("to_out.0",)), _section(target_modules=["to_out.0"]), "ok/3")


def test_rank_mismatch_names_the_adapter_and_both_ranks() -> None:
    with pytest.raises(AdapterRejected, match=r"cat/2: its manifest says LoRA rank 8.*rank 4"):
        check_lora(_lora(rank=4), _section(rank=8), "cat/2")


def test_a_unet_module_outside_the_manifest_targets_is_named() -> None:
    with pytest.raises(AdapterRejected, match=r"cat/1: unet module .*attn1.to_v.* not among"):
        check_lora(_lora(), _section(target_modules=["to_q"]), "cat/1")


def test_text_encoder_layers_must_match_the_flag_both_ways() -> None:
    with pytest.raises(AdapterRejected, match="text_encoder=False.*holds text-encoder"):
        check_lora(_lora(te=True), _section(text_encoder=False), "cat/1")
    with pytest.raises(AdapterRejected, match="text_encoder=True.*holds no text-encoder"):
        check_lora(_lora(), _section(text_encoder=True), "cat/1")


def test_embedding_tokens_must_match_the_manifest() -> None:
    staged = StagedEmbeddings({"<cat-toy>": torch.zeros(2, 8)})
    check_embeddings(staged, EmbeddingsSection(tokens=["<cat-toy>"]), "ti/1")
    with pytest.raises(AdapterRejected, match=r"ti/1: its manifest lists tokens \['<dog>'\]"):
        check_embeddings(staged, EmbeddingsSection(tokens=["<dog>"]), "ti/1")
    with pytest.raises(AdapterRejected, match="holds \\['<cat-toy>'\\]"):
        check_embeddings(staged, EmbeddingsSection(tokens=["<cat-toy>", "<more>"]), "ti/1")


def _edited(source: Path, target: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    shutil.copytree(source, target)
    manifest = json.loads((target / ADAPTER_MANIFEST).read_text())
    edit(manifest)
    (target / ADAPTER_MANIFEST).write_text(json.dumps(manifest))
    return target


@pytest.mark.parametrize(
    ("adapter", "edit", "needle"),
    [
        ("lora1", lambda m: m["lora"].update(rank=2), "LoRA rank 2"),
        ("lora1", lambda m: m["lora"].update(target_modules=["to_q"]), "not among"),
        ("lora1", lambda m: m["lora"].update(text_encoder=True), "text_encoder=True"),
        ("lora-te", lambda m: m["lora"].update(text_encoder=False), "text_encoder=False"),
        ("ti-cat", lambda m: m["embeddings"].update(tokens=["<dog>"]), "lists tokens"),
    ],
)
def test_the_engine_answers_a_mismatch_with_422_naming_the_adapter(
    adapter: str,
    edit: Callable[[dict[str, Any]], None],
    needle: str,
    engine: Any,
    folder_source: Any,
    serving_adapters: dict[str, Path],
    make_job: Callable[..., Any],
    tmp_path: Path,
) -> None:
    name = f"edited-{adapter}-{needle.split()[0]}"
    folder_source.add(name, _edited(serving_adapters[adapter], tmp_path / name, edit))
    output = engine.generate(make_job([(name, 1.0)]))
    assert output.error is not None and output.error.status == 422
    assert f"{name}/1" in output.error.detail and needle in output.error.detail
