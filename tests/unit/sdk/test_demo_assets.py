"""The demo's base pieces: the pooling VAE, the pretrained-base builder, the image measures.

The pretraining itself is exercised with a few steps (the demo's cached base has 150);
`tests/e2e/test_demo.py` checks what the demo shows with the real one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tuneforge.assets.image_measures import colour_distance, enlarge, load_rgb, smoothness


def test_pooling_vae_encodes_block_colours_and_decodes_them_back(
    tiny_dataset_dir: Path,
) -> None:
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    from tuneforge.assets.pooling_vae import build_pooling_vae

    images = [load_rgb(p) for p in sorted((tiny_dataset_dir / "instance").glob("*.png"))]
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
    vae = build_pooling_vae()
    with torch.no_grad():
        latents = vae.encode(pixels).latent_dist.sample()
        decoded = vae.decode(latents).sample
    pooled = F.avg_pool2d(pixels, 8)
    assert (latents[:, :3] - pooled).abs().max() < 1e-3  # each 8x8 block's mean colour
    assert latents[:, 3].abs().max() < 1e-3
    smooth = F.interpolate(pooled, scale_factor=8, mode="bilinear")
    # Measured on these 6 images: 0.061 from a bilinear upsampling of the pooled colours
    # (the decoder's smoothing pads with zeros, so borders fade toward grey), 0.12 from the
    # originals (fine detail is gone).
    assert (decoded - smooth).abs().mean() < 0.08
    assert (decoded - pixels).abs().mean() < 0.15


def test_pretrained_builder_writes_a_loadable_marked_pipeline(tmp_path: Path) -> None:
    pytest.importorskip("diffusers")
    from tuneforge.assets.tiny_pretrained import PRETRAINED_KIND, build_tiny_pretrained

    seen: list[int] = []
    target = build_tiny_pretrained(
        tmp_path / "base", steps=2, images=8, progress=lambda step, loss: seen.append(step)
    )
    marker = json.loads((target / "tuneforge-tiny.json").read_text())
    assert marker["kind"] == PRETRAINED_KIND
    assert marker["pretraining"]["steps"] == 2 and seen == [2]
    vae_config = json.loads((target / "vae" / "config.json").read_text())
    assert vae_config["norm_num_groups"] == 4
    with pytest.raises(FileExistsError):
        build_tiny_pretrained(target, steps=1, images=4)


def test_colour_distance_is_zero_for_the_same_colours_and_one_for_none_shared() -> None:
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 220
    blue = np.zeros((8, 8, 3), np.uint8)
    blue[..., 2] = 220
    half = np.concatenate([red[:4], blue[:4]])
    assert colour_distance(red, [red, red]) == 0.0
    assert colour_distance(red, [blue]) == 1.0
    assert colour_distance(half, [red]) == pytest.approx(0.5)


def test_smoothness_tells_shapes_from_noise() -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    shape = np.full((64, 64, 3), 200, np.uint8)
    shape[16:48, 16:48] = (200, 30, 30)
    assert smoothness(noise) < 0.1
    assert smoothness(shape) > 0.9


def test_enlarge_makes_every_pixel_a_square() -> None:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.arange(12, dtype=np.uint8).reshape(2, 2, 3)).save(buffer, format="PNG")
    big = load_rgb(enlarge(buffer.getvalue(), 4))
    assert big.shape == (8, 8, 3)
    assert (big[:4, :4] == big[0, 0]).all()
