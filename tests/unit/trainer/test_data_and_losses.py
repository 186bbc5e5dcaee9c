"""Data order, transforms and loss weighting, without models."""

from __future__ import annotations

import random
from itertools import islice

import numpy as np
import pytest
import torch
from PIL import Image

from tuneforge_trainer.data import ExampleSource, load_pixels, read_records
from tuneforge_trainer.losses import compute_snr, diffusion_loss, sample_noise


@pytest.fixture
def images(tmp_path):
    for index in range(5):
        array = np.zeros((80, 96, 3), np.uint8)
        array[:, : 10 * (index + 1)] = 255
        Image.fromarray(array).save(tmp_path / f"img{index}.png")
    (tmp_path / "img0.txt").write_text("a caption\n")
    return tmp_path


def test_captions_come_from_txt_files(images):
    records = read_records(images)
    assert [r.path.name for r in records] == [f"img{i}.png" for i in range(5)]
    assert records[0].caption == "a caption" and records[1].caption is None


def test_pixels_are_cropped_resized_and_flipped(images):
    rng = random.Random(0)
    pixels = load_pixels(images / "img0.png", 64, True, False, rng)
    assert pixels.shape == (3, 64, 64) and pixels.min() >= -1 and pixels.max() <= 1
    flipped = load_pixels(images / "img0.png", 64, True, True, rng)
    assert torch.equal(flipped, pixels.flip(-1))


def test_ranks_draw_disjoint_deterministic_batches(images):
    records = read_records(images)
    source = ExampleSource(records, ["p"] * 5, 64, True, False, seed=3)
    rank0 = [[e.index for e in b] for b in islice(source.batches(2, 0, 2), 2)]
    rank1 = [[e.index for e in b] for b in islice(source.batches(2, 1, 2), 2)]
    assert set(rank0[0]).isdisjoint(rank1[0])
    again = [[e.index for e in b] for b in islice(source.batches(2, 0, 2), 2)]
    assert rank0 == again
    resumed = next(source.batches(2, 0, 2, skip=1))
    assert [e.index for e in resumed] == rank0[1]


def test_min_snr_weighting_matches_the_formula():
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    timesteps = torch.tensor([10, 900])
    pred, target = torch.zeros(2, 4, 8, 8), torch.ones(2, 4, 8, 8)
    snr = compute_snr(scheduler, timesteps)
    expected = (torch.minimum(snr, torch.full_like(snr, 5.0)) / snr).mean()
    assert torch.allclose(diffusion_loss(pred, target, timesteps, scheduler, 5.0), expected)
    assert diffusion_loss(pred, target, timesteps, scheduler, None) == 1.0


def test_noise_offset_shifts_channels():
    latents = torch.zeros(2, 4, 8, 8)
    plain = sample_noise(latents, 0.0, torch.Generator().manual_seed(0))
    offset = sample_noise(latents, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(plain, sample_noise(latents, 0.0, torch.Generator().manual_seed(0)))
    channel_shift = (offset - plain).mean(dim=(2, 3))
    assert channel_shift.abs().min() > 0
    assert torch.allclose((offset - plain).std(dim=(2, 3)), torch.zeros(2, 4), atol=1e-6)
