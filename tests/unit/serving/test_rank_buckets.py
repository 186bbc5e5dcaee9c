"""Any LoRA the base can carry is hot-swapped: rank buckets, conv (LoCon) slots, two 422s.

A kohya LoCon file (every layer kohya-ss trains with `conv_dim`: 3x3 ResNet convs, 1x1
`proj_in`/`conv_shortcut`, samplers, feed-forward, text-encoder MLP) of rank 64 is imported
and served by the engine's default slots (buckets 16 and 64, all Linear and Conv2d layers);
diffusers' `load_lora_weights(original file)` is the reference, within one 8-bit level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.fixtures.serving import FolderAdapterSource, diffusers_reference, png_pixels
from tests.unit.adapters.locon_inputs import write_kohya_locon
from tuneforge.adapters import convert_adapter
from tuneforge.base_model import resolve_base_model
from tuneforge.settings import Settings

LEVEL = 1.0 / 255 + 1e-6
PROMPT = "a photo of a cat"


@pytest.fixture(scope="module")
def locon_files(tiny_pipeline: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("locon")
    return {
        "locon64": write_kohya_locon(
            tiny_pipeline, root / "big.safetensors", rank=64, alpha=16.0, seed=3
        ),
        "locon4": write_kohya_locon(
            tiny_pipeline, root / "small.safetensors", rank=4, alpha=2.0, seed=4, magnitude=0.3
        ),
    }


@pytest.fixture(scope="module")
def source(
    locon_files: dict[str, Path], tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> FolderAdapterSource:
    root = tmp_path_factory.mktemp("imported")
    base = resolve_base_model(str(tiny_model_dir), root / "bases", Settings())
    folders = FolderAdapterSource()
    for name, path in locon_files.items():
        folders.add(name, convert_adapter(path, root / name, base, str(tiny_model_dir)).folder)
    folders.add("locon64-copy", root / "locon64")
    return folders


@pytest.fixture(scope="module")
def engine(
    tiny_model_dir: Path, source: FolderAdapterSource, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """Default hotswap (buckets 16 and 64, every layer), 3 slots, mixed batching on."""
    from tuneforge_serving.config import ServingConfig
    from tuneforge_serving.engine import ServingEngine

    config = ServingConfig(
        base_model=str(tiny_model_dir),
        cache_dir=tmp_path_factory.mktemp("cache"),
        adapter_lru_size=3,
        mixed_batching={"enabled": True},
    )
    return ServingEngine(config, source)


def _job(source: FolderAdapterSource, adapters: list[str], seed: int = 11) -> Any:
    from tuneforge_serving.jobs import GenerationJob

    return GenerationJob(
        adapters=[(source.resolve(name), 1.0) for name in adapters],
        prompt=PROMPT,
        steps=3,
        width=64,
        height=64,
        seed=seed,
    )


def _pixels(output: Any) -> Any:
    assert output.error is None, output.error
    return png_pixels(output.images[0])


def test_the_default_slots_cover_every_linear_and_conv_layer(engine: Any) -> None:
    slots = engine.lora_slots
    assert slots.ranks == [16, 16, 64] and engine.slot_count == 3
    convs = [
        layer for layer in slots.layers.values() if isinstance(layer.base_layer, torch.nn.Conv2d)
    ]
    assert len(slots.layers) == 293 and len(convs) == 97  # the tiny UNet + CLIP, all of them
    assert engine.slot_plan.total_bytes == engine.slot_plan.bytes_per_rank * (16 + 16 + 64)


def test_a_rank_64_kohya_locon_renders_like_diffusers(
    engine: Any, source: FolderAdapterSource, locon_files: dict[str, Path], fresh_tiny_pipeline: Any
) -> None:
    ours = _pixels(engine.generate(_job(source, ["locon64"])))
    plain = _pixels(engine.generate(_job(source, [])))
    fresh_tiny_pipeline.load_lora_weights(str(locon_files["locon64"]), adapter_name="locon")
    reference = diffusers_reference(fresh_tiny_pipeline, PROMPT)
    assert np.abs(ours - reference).max() <= LEVEL
    assert np.abs(ours - plain).mean() > 0.01, "the LoCon left the image unchanged"


def test_rank_4_and_rank_64_in_one_mixed_batch(engine: Any, source: FolderAdapterSource) -> None:
    jobs = [
        _job(source, ["locon4"], seed=21),
        _job(source, ["locon64"], seed=22),
        _job(source, ["locon4", "locon64"], seed=23),
    ]
    batch = engine.run_requests(jobs)
    mixed = [png_pixels(request.output.images[0]) for request in batch]
    slots = {key.name: engine.lora_slots.ranks[i] for key, i in engine._attached.items()}
    assert slots["locon4"] == 16 and slots["locon64"] == 64
    alone = [_pixels(engine.generate(job)) for job in jobs]
    for position, (ours, solo) in enumerate(zip(mixed, alone, strict=True)):
        assert np.abs(ours - solo).max() <= LEVEL, f"request {position} differs from its solo run"
    assert np.abs(alone[0] - alone[2]).mean() > 0.01 and np.abs(alone[1] - alone[2]).mean() > 0.01


def test_over_the_memory_budget_is_422_naming_it(engine: Any, source: FolderAdapterSource) -> None:
    two_large = engine.generate(_job(source, ["locon64", "locon64-copy"]))
    assert two_large.error is not None and two_large.error.status == 422
    assert "over the memory budget" in two_large.error.detail
    assert "hotswap.memoryBudgetMB" in two_large.error.detail
    from tuneforge_serving.errors import AdapterRejected
    from tuneforge_serving.lora_format import LoraModule, StagedLora

    path = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    too_big = StagedLora(
        {("unet", path): LoraModule(torch.zeros(65, 32), torch.zeros(32, 65), 1.0)}
    )
    with pytest.raises(AdapterRejected, match="rank 65 is over the memory budget: .* rank 64"):
        engine.lora_slots.check(too_big, "huge/1")


def test_a_lora_for_another_base_is_422_naming_the_first_layer_that_differs(engine: Any) -> None:
    from tuneforge_serving.errors import AdapterRejected
    from tuneforge_serving.lora_format import LoraModule, StagedLora

    good = ("unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q")
    conv = ("unet", "down_blocks.0.resnets.0.conv1")
    staged = StagedLora(
        {
            good: LoraModule(torch.zeros(4, 32), torch.zeros(32, 4), 1.0),
            conv: LoraModule(torch.zeros(4, 320, 3, 3), torch.zeros(320, 4, 1, 1), 1.0),
        }
    )
    with pytest.raises(AdapterRejected) as error:
        engine.lora_slots.check(staged, "sdxl/1")
    assert "does not fit this base model: its first layer whose shape differs is " in str(
        error.value
    )
    assert "unet.down_blocks.0.resnets.0.conv1: the LoRA's update is (320, 320, 3, 3)" in str(
        error.value
    )
    staged = StagedLora(
        {("unet", "down_blocks.9.conv"): LoraModule(torch.zeros(4, 32), torch.zeros(32, 4), 1.0)}
    )
    with pytest.raises(
        AdapterRejected, match="down_blocks.9.conv: the base has no Linear or Conv2d"
    ):
        engine.lora_slots.check(staged, "other/1")
