"""What the import refuses (naming the layer and the limit) and what it normalises exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from tuneforge.adapters import AdapterFormatError, ServingLimits, convert_adapter
from tuneforge.base_model import resolve_base_model
from tuneforge.contract import LORA_WEIGHTS, TI_EMBEDDINGS
from tuneforge.settings import Settings

Q = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
K = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_k"
FF = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_ff_net_2"
CONV = "lora_unet_down_blocks_0_resnets_0_conv1"


@pytest.fixture(scope="module")
def base(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return resolve_base_model(str(tiny_model_dir), tmp_path_factory.mktemp("bases"), Settings())


@pytest.fixture(scope="module")
def single_file_base(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The tiny model as one original-layout (A1111/ComfyUI) checkpoint."""
    from tuneforge.assets.sd15_random import write_single_file

    root = tmp_path_factory.mktemp("single")
    single = write_single_file(tiny_model_dir, root / "tiny.safetensors")
    return resolve_base_model(str(single), root, Settings())


def _pair(name: str, rank: int, out: int, inp: int, alpha: float, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        f"{name}.lora_down.weight": rng.standard_normal((rank, inp)).astype(np.float32),
        f"{name}.lora_up.weight": rng.standard_normal((out, rank)).astype(np.float32),
        f"{name}.alpha": np.array(alpha, dtype=np.float32),
    }


def _convert(base: Any, tmp_path: Path, tensors: dict[str, Any], **kwargs: Any) -> Any:
    path = tmp_path / "in.safetensors"
    save_file(tensors, str(path))
    return convert_adapter(path, tmp_path / "out", base, "tiny", **kwargs)


def test_mixed_ranks_are_zero_padded_and_alpha_folded_in_exactly(base: Any, tmp_path: Path) -> None:
    tensors = {**_pair(Q, 2, 32, 32, alpha=1.0, seed=1), **_pair(K, 4, 32, 32, alpha=8.0, seed=2)}
    converted = _convert(base, tmp_path, tensors)
    lora = converted.manifest.lora
    assert lora is not None
    assert (lora.rank, lora.alpha, lora.target_modules) == (4, 4.0, ["to_k", "to_q"])
    written = load_file(str(converted.folder / LORA_WEIGHTS))
    attn = "down_blocks.0.attentions.0.transformer_blocks.0.attn1"
    for name, module, rank, alpha in ((Q, f"{attn}.to_q", 2, 1.0), (K, f"{attn}.to_k", 4, 8.0)):
        a = written[f"unet.{module}.lora_A.weight"]
        b = written[f"unet.{module}.lora_B.weight"]
        assert a.shape == (4, 32) and b.shape == (32, 4)
        expected = (
            (alpha / rank) * tensors[f"{name}.lora_up.weight"] @ tensors[f"{name}.lora_down.weight"]
        )
        np.testing.assert_allclose(b @ a, expected, rtol=1e-5, atol=1e-5)


def test_a_conv_layer_is_converted_and_a_wrong_kernel_is_refused(base: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    down = rng.standard_normal((4, 32, 3, 3)).astype(np.float32)
    up = rng.standard_normal((32, 4, 1, 1)).astype(np.float32)
    tensors = {
        **_pair(Q, 4, 32, 32, 4.0, 1),
        f"{CONV}.lora_down.weight": down,
        f"{CONV}.lora_up.weight": up,
        f"{CONV}.alpha": np.array(2.0, dtype=np.float32),
    }
    converted = _convert(base, tmp_path, tensors)
    assert converted.manifest.lora is not None
    assert converted.manifest.lora.target_modules == ["conv1", "to_q"]
    written = load_file(str(converted.folder / LORA_WEIGHTS))
    module = "unet.down_blocks.0.resnets.0.conv1"
    a, b = written[f"{module}.lora_A.weight"], written[f"{module}.lora_B.weight"]
    assert a.shape == (4, 32, 3, 3) and b.shape == (32, 4, 1, 1)
    np.testing.assert_allclose(b[:, :, 0, 0], 0.5 * up[:, :, 0, 0], rtol=1e-6)
    np.testing.assert_array_equal(a, down)
    tensors[f"{CONV}.lora_down.weight"] = down[:, :, :1, :1].copy()
    with pytest.raises(AdapterFormatError) as error:
        _convert(base, tmp_path, tensors)
    assert "unet.down_blocks.0.resnets.0.conv1: the LoRA is 32x32x1x1 (out x in x kh x kw)" in (
        str(error.value)
    )
    assert "base layer is 32x32x3x3" in str(error.value)


def test_a_rank_above_the_slot_rank_is_refused_naming_layer_and_limit(
    base: Any, tmp_path: Path
) -> None:
    tensors = _pair(Q, 8, 32, 32, 8.0, 1)
    with pytest.raises(AdapterFormatError) as error:
        _convert(base, tmp_path, tensors, limits=ServingLimits(max_rank=4))
    message = str(error.value)
    assert "attn1.to_q has rank 8, over the memory budget" in message
    assert "largest slot rank is 4 (hotswap.rankBuckets)" in message
    assert _convert(base, tmp_path, tensors, limits=ServingLimits(max_rank=8)).manifest.lora


def test_a_module_without_a_slot_is_refused_naming_the_slots(base: Any, tmp_path: Path) -> None:
    from tuneforge.contract import DEFAULT_LORA_TARGETS

    assert _convert(base, tmp_path, _pair(FF, 4, 32, 128, 4.0, 1)).manifest.lora is not None
    attention_only = ServingLimits(unet_targets=DEFAULT_LORA_TARGETS)
    with pytest.raises(AdapterFormatError) as error:
        _convert(base, tmp_path, _pair(FF, 4, 32, 128, 4.0, 1), limits=attention_only)
    message = str(error.value)
    assert "ff.net.2 has no serving LoRA slot" in message
    assert "['to_q', 'to_k', 'to_v', 'to_out.0'] (hotswap.unetTargetModules)" in message


def test_a_lora_for_another_base_is_refused_naming_the_first_layer(
    base: Any, tmp_path: Path
) -> None:
    with pytest.raises(AdapterFormatError) as error:
        _convert(base, tmp_path, _pair(Q, 4, 320, 320, 4.0, 1))
    assert "attn1.to_q: the LoRA is 320x320 (out x in) but the base layer is 32x32" in str(
        error.value
    )
    missing = "lora_unet_down_blocks_7_attentions_0_transformer_blocks_0_attn1_to_q"
    with pytest.raises(AdapterFormatError, match="down_blocks.7.*has no such layer"):
        _convert(base, tmp_path, _pair(missing, 4, 32, 32, 4.0, 1))


def test_embeddings_are_checked_and_named(base: Any, tmp_path: Path) -> None:
    two = {"<a>": np.ones((1, 32), np.float32), "<b>": np.ones(32, np.float32)}
    converted = _convert(base, tmp_path, two)
    assert converted.manifest.embeddings is not None
    assert converted.manifest.embeddings.tokens == ["<a>", "<b>"]
    assert load_file(str(converted.folder / TI_EMBEDDINGS))["<b>"].shape == (1, 32)
    with pytest.raises(AdapterFormatError, match="--token: .* holds 2 tokens"):
        _convert(base, tmp_path, two, token="<c>")
    with pytest.raises(AdapterFormatError, match="768-wide vectors but .* embeds 32-wide"):
        _convert(base, tmp_path, {"emb_params": np.ones((2, 768), np.float32)})
    with pytest.raises(AdapterFormatError, match="--token: .* is a LoRA"):
        _convert(base, tmp_path, _pair(Q, 4, 32, 32, 4.0, 1), token="<t>")


def test_a_single_file_base_is_checked_by_its_original_names(
    single_file_base: Any, tmp_path: Path
) -> None:
    te = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
    converted = _convert(
        single_file_base, tmp_path, {**_pair(Q, 4, 32, 32, 4.0, 1), **_pair(te, 4, 32, 32, 4.0, 2)}
    )
    assert converted.manifest.lora is not None and converted.manifest.lora.text_encoder
    with pytest.raises(AdapterFormatError, match="the LoRA is 320x320 .* base layer is 32x32"):
        _convert(single_file_base, tmp_path, _pair(Q, 4, 320, 320, 4.0, 1))
    with pytest.raises(AdapterFormatError, match="128-wide vectors but .* embeds 32-wide"):
        _convert(single_file_base, tmp_path, {"emb_params": np.ones((1, 128), np.float32)})
