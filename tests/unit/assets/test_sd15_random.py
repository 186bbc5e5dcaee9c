"""SD 1.5 with random weights, and the diffusers -> original (A1111/ComfyUI) single file.

The round trip runs on the tiny architecture (same converter); the real-size build is
checked in the `realsize` tier (tests/realsize), which builds it once into the assets cache.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

from tuneforge.assets.sd15 import (
    SD15,
    SD15_UNET_PARAMETERS,
    TINY,
    architecture_for,
    config_dir,
)
from tuneforge.assets.sd15_random import SD15_RANDOM_MARKER, build_sd15_random
from tuneforge.base_fingerprint import base_model_fingerprint
from tuneforge.cli.main import app
from tuneforge.sd15_keys import UNET_PREFIX, UnetLayout, VaeLayout
from tuneforge.settings import Settings


def _state(module: Any) -> dict[str, torch.Tensor]:
    return {name: tensor.detach() for name, tensor in module.state_dict().items()}


def _assert_same_weights(pipe: Any, folder: Path) -> None:
    """Every UNet, VAE and text-encoder tensor of `pipe` equals the folder's file."""
    files = {
        "unet": "diffusion_pytorch_model.safetensors",
        "vae": "diffusion_pytorch_model.safetensors",
        "text_encoder": "model.safetensors",
    }
    for component, name in files.items():
        loaded = _state(getattr(pipe, component))
        with safe_open(str(folder / component / name), "pt") as handle:
            assert set(handle.keys()) == set(loaded), component
            for key in handle.keys():
                assert torch.equal(handle.get_tensor(key), loaded[key]), (component, key)


def test_sd15_unet_names_match_the_published_conversion() -> None:
    layout = UnetLayout.from_config(SD15.unet)
    expected = {
        "conv_in.weight": "input_blocks.0.0.weight",
        "time_embedding.linear_2.bias": "time_embed.2.bias",
        "down_blocks.1.resnets.0.norm1.weight": "input_blocks.4.0.in_layers.0.weight",
        "down_blocks.1.resnets.0.conv_shortcut.weight": "input_blocks.4.0.skip_connection.weight",
        "down_blocks.2.attentions.1.proj_in.weight": "input_blocks.8.1.proj_in.weight",
        "down_blocks.2.downsamplers.0.conv.weight": "input_blocks.9.0.op.weight",
        "mid_block.resnets.1.time_emb_proj.bias": "middle_block.2.emb_layers.1.bias",
        "mid_block.attentions.0.norm.weight": "middle_block.1.norm.weight",
        "up_blocks.0.resnets.2.conv2.weight": "output_blocks.2.0.out_layers.3.weight",
        "up_blocks.0.upsamplers.0.conv.weight": "output_blocks.2.1.conv.weight",
        "up_blocks.1.upsamplers.0.conv.bias": "output_blocks.5.2.conv.bias",
        "up_blocks.3.attentions.2.proj_out.weight": "output_blocks.11.1.proj_out.weight",
        "conv_norm_out.weight": "out.0.weight",
    }
    assert {name: layout.original_name(name) for name in expected} == expected
    vae = VaeLayout.from_config(SD15.vae)
    assert vae.original_name("decoder.up_blocks.0.resnets.2.norm1.weight") == (
        "decoder.up.3.block.2.norm1.weight"
    )
    assert vae.original_name("encoder.down_blocks.1.resnets.0.conv_shortcut.bias") == (
        "encoder.down.1.block.0.nin_shortcut.bias"
    )
    assert vae.original_name("decoder.mid_block.attentions.0.to_out.0.weight") == (
        "decoder.mid.attn_1.proj_out.weight"
    )
    with pytest.raises(KeyError):
        layout.original_name("not_a_unet.weight")


def test_every_sd15_unet_tensor_converts_back_under_its_own_name() -> None:
    """Map all 686 names forward, let diffusers' own reverse conversion map them back."""
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(SD15.unet)
    assert sum(p.numel() for p in unet.parameters()) == SD15_UNET_PARAMETERS
    layout = UnetLayout.from_config(SD15.unet)
    names = list(unet.state_dict())
    original = {UNET_PREFIX + layout.original_name(name): name for name in names}
    assert len(original) == len(names)
    back = convert_ldm_unet_checkpoint(original, dict(unet.config))
    assert back == {name: name for name in names}


def test_tiny_round_trip_through_the_single_file(tmp_path: Path) -> None:
    folder = build_sd15_random(
        tmp_path / "model", seed=5, single_file=tmp_path / "model.safetensors", architecture=TINY
    )
    single = tmp_path / "model.safetensors"
    with safe_open(str(single), "np") as handle:
        keys = set(handle.keys())
    assert "model.diffusion_model.output_blocks.2.1.conv.weight" in keys
    assert "first_stage_model.decoder.up.3.block.0.conv1.weight" in keys
    assert "cond_stage_model.transformer.text_model.final_layer_norm.weight" in keys
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_single_file(
        str(single), config=str(folder), local_files_only=True
    )
    _assert_same_weights(pipe, folder)
    assert base_model_fingerprint(single) == base_model_fingerprint(folder)
    marker = json.loads((folder / SD15_RANDOM_MARKER).read_text())
    assert marker["seed"] == 5 and marker["parameters"]["unet"] > 0


def test_single_files_pick_the_config_of_their_architecture(tmp_path: Path) -> None:
    settings = Settings(assets_cache=str(tmp_path / "cache"))
    sd15 = config_dir(SD15, settings)
    unet = json.loads((sd15 / "unet/config.json").read_text())
    text = json.loads((sd15 / "text_encoder/config.json").read_text())
    vae = json.loads((sd15 / "vae/config.json").read_text())
    assert unet["block_out_channels"] == [320, 640, 1280, 1280]
    assert unet["cross_attention_dim"] == 768
    assert (text["hidden_size"], text["num_hidden_layers"], text["num_attention_heads"]) == (
        768,
        12,
        12,
    )
    assert (text["intermediate_size"], text["vocab_size"], text["hidden_act"]) == (
        3072,
        49408,
        "quick_gelu",
    )
    assert vae["block_out_channels"] == [128, 256, 512, 512] and vae["scaling_factor"] == 0.18215
    assert architecture_for((320, 768)) is SD15
    assert architecture_for((32, 32)) is TINY
    with pytest.raises(ValueError, match="not a Stable Diffusion 1.5 checkpoint"):
        architecture_for((640, 1024))
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(sd15 / "tokenizer"))
    assert tokenizer.model_max_length == 77
    # Real CLIP's ids, special tokens included: a real SD 1.5 single file reads prompts right.
    assert tokenizer("a photo of a dog").input_ids == [49406, 320, 1125, 539, 320, 1929, 49407]
    assert len(tokenizer) == text["vocab_size"] and text["eos_token_id"] == 49407
    assert config_dir(SD15, settings) == sd15


def test_cli_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("taken")
    result = CliRunner().invoke(app, ["assets", "sd15-random", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert "not empty" in result.output
