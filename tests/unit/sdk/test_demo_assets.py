"""The demo's pieces: the pooling VAE, the pretrained-base builder, the close-up subject
photos and the image measures.

The pretraining itself is exercised with a few steps (the demo's cached base has 300);
`tests/e2e/test_demo.py` checks what the demo shows with the real one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tuneforge.assets.image_measures import enlarge, layout_distance, load_rgb, smoothness


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
    assert marker["pretraining"]["warmup_steps"] == 20
    vae_config = json.loads((target / "vae" / "config.json").read_text())
    assert vae_config["norm_num_groups"] == 4
    with pytest.raises(FileExistsError):
        build_tiny_pretrained(target, steps=1, images=4)


def test_layout_distance_compares_8x8_block_colours_with_the_nearest_reference() -> None:
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((64, 64, 3), np.uint8)
    blue[..., 2] = 255
    half = red.copy()
    half[:, 32:] = blue[:, 32:]
    assert layout_distance(red, [blue, red]) == 0.0  # the nearest reference counts
    assert layout_distance(red, [blue]) == pytest.approx(2 / 3)  # two channels of three differ
    assert layout_distance(half, [red]) == pytest.approx(1 / 3)
    noisy = red.copy()
    noisy[::2, ::2] = 0  # fine detail inside the 8x8 blocks: a quarter of each block darker
    assert layout_distance(noisy, [red]) == pytest.approx(0.25 / 3, abs=0.01)
    with pytest.raises(ValueError, match="no reference"):
        layout_distance(red, [])


def test_demo_subject_is_deterministic_close_up_and_captioned(tmp_path: Path) -> None:
    from tuneforge.assets.demo_subject import build_demo_subject, demo_caption
    from tuneforge.assets.tiny_dataset import tiny_dataset_info

    first = build_demo_subject(tmp_path / "a", count=3)
    second = build_demo_subject(tmp_path / "b", count=3)
    pngs = sorted((first / "instance").glob("*.png"))
    assert [p.name for p in pngs] == ["instance-000.png", "instance-001.png", "instance-002.png"]
    for png in pngs:
        assert png.read_bytes() == (second / "instance" / png.name).read_bytes()
        pixels = load_rgb(png).astype(int)
        red_body = (pixels[..., 0] > 150) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90)
        # Close-up: the red body covers 18-23 % of each photo (the tests' dataset: 4-9 %).
        assert red_body.mean() > 0.15
    assert (first / "instance" / "instance-000.txt").read_text() == demo_caption("blue") + "\n"
    info = tiny_dataset_info(first)
    assert info is not None and info["num_instance"] == 3
    with pytest.raises(FileExistsError):
        build_demo_subject(first, count=1)
    with pytest.raises(ValueError, match="count"):
        build_demo_subject(tmp_path / "c", count=0)


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
