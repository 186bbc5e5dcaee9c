"""The tiny SD-1.5-shaped model: loads offline, generates, is deterministic, supports TI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tuneforge.assets import TINY_MODEL_MARKER, build_tiny_model, tiny_model_info
from tuneforge.assets.tiny_model import library_versions

WEIGHT_FILES = (
    "unet/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/model.safetensors",
)


def _digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_pipeline_generates_a_64px_image_in_4_steps(tiny_pipeline: Any) -> None:
    result = tiny_pipeline(
        "a photo of sks toy",
        num_inference_steps=4,
        guidance_scale=7.5,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    )
    image = result.images[0]
    assert image.shape == (64, 64, 3)
    assert np.isfinite(image).all()
    assert image.std() > 0.01  # not a blank image
    again = tiny_pipeline(
        "a photo of sks toy",
        num_inference_steps=4,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).images[0]
    np.testing.assert_allclose(again, image, atol=1e-6)


def test_folder_layout_and_configs(tiny_model_dir: Path) -> None:
    index = json.loads((tiny_model_dir / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["safety_checker"] == [None, None]
    assert index["feature_extractor"] == [None, None]
    assert index["requires_safety_checker"] is False
    for name in WEIGHT_FILES:
        assert (tiny_model_dir / name).is_file(), name
    assert not list(tiny_model_dir.rglob("*.bin")), "weights must be safetensors only"
    unet = json.loads((tiny_model_dir / "unet/config.json").read_text())
    assert unet["block_out_channels"] == [32, 32, 64, 64]
    assert unet["down_block_types"][:3] == ["CrossAttnDownBlock2D"] * 3
    assert unet["norm_num_groups"] == 8 and unet["cross_attention_dim"] == 32
    vae = json.loads((tiny_model_dir / "vae/config.json").read_text())
    assert len(vae["block_out_channels"]) == 4 and vae["latent_channels"] == 4
    text = json.loads((tiny_model_dir / "text_encoder/config.json").read_text())
    assert text["eos_token_id"] == 1513 and text["bos_token_id"] == 1512
    assert text["vocab_size"] == 1514 and text["max_position_embeddings"] == 77
    assert text["hidden_act"] == "quick_gelu"
    scheduler = json.loads((tiny_model_dir / "scheduler/scheduler_config.json").read_text())
    assert scheduler["beta_schedule"] == "scaled_linear"
    assert (scheduler["beta_start"], scheduler["beta_end"]) == (0.00085, 0.012)
    tokenizer_config = json.loads((tiny_model_dir / "tokenizer/tokenizer_config.json").read_text())
    assert tokenizer_config["model_max_length"] == 77
    info = tiny_model_info(tiny_model_dir)
    assert info is not None and info["kind"] == "tuneforge-tiny-sd15" and info["seed"] == 0


def test_loaded_components_match_sd15_shapes(tiny_pipeline: Any) -> None:
    assert tiny_pipeline.tokenizer.model_max_length == 77
    assert tiny_pipeline.vae_scale_factor == 8
    assert tiny_pipeline.safety_checker is None
    latents = torch.zeros(1, 4, 8, 8)
    with torch.no_grad():
        decoded = tiny_pipeline.vae.decode(latents).sample
    assert decoded.shape == (1, 3, 64, 64)


def test_same_seed_gives_identical_bytes_and_other_seed_differs(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    reference_dir = tiny_model_dir
    info = tiny_model_info(tiny_model_dir)
    if info is None or info.get("built_with") != library_versions():
        # The cache was built by other library versions: compare two fresh builds instead.
        reference_dir = build_tiny_model(tmp_path / "reference", seed=0)
    again = build_tiny_model(tmp_path / "seed0", seed=0)
    assert _digests(again) == _digests(reference_dir)
    other = build_tiny_model(tmp_path / "seed1", seed=1)
    reference, changed = _digests(reference_dir), _digests(other)
    for name in WEIGHT_FILES:
        assert changed[name] != reference[name], name
    assert changed["unet/config.json"] == reference["unet/config.json"]


def test_refuses_non_empty_folder_unless_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        build_tiny_model(target)
    assert (target / "keep.txt").read_text() == "user data"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    build_tiny_model(target, overwrite=True)
    assert not (target / "keep.txt").exists()
    assert (target / TINY_MODEL_MARKER).is_file()


def test_added_token_works_with_the_text_encoder(fresh_tiny_pipeline: Any) -> None:
    """The textual-inversion path: add a token, resize embeddings, its vector matters."""
    tokenizer, text_encoder = fresh_tiny_pipeline.tokenizer, fresh_tiny_pipeline.text_encoder
    assert tokenizer.add_tokens(["<sks>"]) == 1
    token_id = tokenizer.convert_tokens_to_ids("<sks>")
    assert token_id == 1514
    text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    ids = tokenizer(
        "a photo of <sks> toy", padding="max_length", truncation=True, return_tensors="pt"
    ).input_ids
    assert ids[0, 4].item() == token_id
    eos_position = int((ids[0] == 1513).nonzero()[0])
    embeddings = text_encoder.get_input_embeddings()
    with torch.no_grad():
        before = text_encoder(ids)
        # Not a constant shift: LayerNorm would remove that.
        embeddings.weight[token_id] += torch.randn(32, generator=torch.Generator().manual_seed(0))
        after = text_encoder(ids)
    hidden_change = (after.last_hidden_state - before.last_hidden_state).abs().amax(dim=-1)[0]
    assert hidden_change[4] > 1e-3  # the token's own output moves
    assert hidden_change[:4].max() < 1e-6  # causal attention: earlier positions do not
    # Pooling reads the real EOS position (eos_token_id 2 would take a legacy argmax path).
    torch.testing.assert_close(after.pooler_output[0], after.last_hidden_state[0, eos_position])
    assert not torch.equal(after.pooler_output, before.pooler_output)
