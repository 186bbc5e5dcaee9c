"""Layout detection reads only the header; pickles and unknown layouts are refused clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from tuneforge.adapters import AdapterFormatError, Layout, detect_layout

ROW = np.zeros((4, 8), dtype=np.float32)


def _file(tmp_path: Path, tensors: dict[str, np.ndarray], name: str = "a.safetensors") -> Path:
    path = tmp_path / name
    save_file(tensors, str(path))
    return path


@pytest.mark.parametrize(
    ("keys", "layout"),
    [
        (
            ["unet.down_blocks.0.attn1.to_q.lora_A.weight", "unet.x.to_q.lora_B.weight"],
            Layout.DIFFUSERS,
        ),
        (
            ["unet.a.to_k.lora.down.weight", "text_encoder.b.q_proj.lora.up.weight"],
            Layout.DIFFUSERS,
        ),
        (
            [
                "lora_unet_down_blocks_0_attn1_to_q.lora_down.weight",
                "lora_unet_down_blocks_0_attn1_to_q.lora_up.weight",
                "lora_unet_down_blocks_0_attn1_to_q.alpha",
                "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight",
            ],
            Layout.KOHYA,
        ),
        (["lora_te1_x.lora_down.weight"], Layout.KOHYA),
        (["<my-token>"], Layout.DIFFUSERS_EMBEDDING),
        (["emb_params"], Layout.A1111_EMBEDDING),
    ],
)
def test_each_layout_is_detected(tmp_path: Path, keys: list[str], layout: Layout) -> None:
    assert detect_layout(_file(tmp_path, dict.fromkeys(keys, ROW))) is layout


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth", ".bin"])
def test_pickles_are_refused_with_the_conversion(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"style{suffix}"
    path.write_bytes(b"not even read")
    with pytest.raises(AdapterFormatError) as error:
        detect_layout(path)
    message = str(error.value)
    assert f"{suffix} files are pickles" in message
    assert f"torch.load('style{suffix}', weights_only=True)" in message
    assert "'style.safetensors'" in message


@pytest.mark.parametrize(
    "key",
    [
        "lora_unet_down_blocks_0_attn1_to_q.hada_w1_a",  # LyCORIS LoHa
        "diffusion_model.input_blocks.1.1.proj_in.lora_A.weight",
        "unet.a.to_q.lora_A.weight.something",
    ],
)
def test_unknown_layouts_are_refused_naming_the_key(tmp_path: Path, key: str) -> None:
    path = _file(tmp_path, {key: ROW, "unet.a.to_q.lora_A.weight": ROW})
    with pytest.raises(AdapterFormatError, match="fits no accepted layout") as error:
        detect_layout(path)
    assert repr(key) in str(error.value)


def test_other_suffixes_and_broken_files_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "a.gguf"
    other.write_bytes(b"x")
    with pytest.raises(AdapterFormatError, match="only .safetensors"):
        detect_layout(other)
    broken = tmp_path / "b.safetensors"
    broken.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{bad}")
    with pytest.raises(AdapterFormatError, match="not a valid safetensors"):
        detect_layout(broken)
    with pytest.raises(AdapterFormatError, match="no such file"):
        detect_layout(tmp_path / "missing.safetensors")
