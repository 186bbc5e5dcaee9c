"""LoRA actually learns the subject: held-out denoising loss drops by a real margin.

Single process (the loop with world size 1): the loss is measured on the subject images at
fixed noise and timesteps that training never drew, before and after training, through a
plain diffusers pipeline with the exported LoRA loaded.
"""

from __future__ import annotations

import pytest
import torch

from tests.fixtures.assets import load_tiny_pipeline
from tests.fixtures.trainer import make_trainer_job, run_worker_locally
from tuneforge_trainer.components import tokenize
from tuneforge_trainer.data import instance_root, load_pixels, read_records

MARGIN = 0.10  # at least 10 % lower held-out loss


@torch.no_grad()
def held_out_loss(pipe, dataset_dir, prompt: str) -> float:
    """Mean epsilon-prediction MSE over every subject image at 8 fixed (noise, timestep) pairs."""
    import random

    records = read_records(instance_root(dataset_dir))
    pixels = torch.stack([load_pixels(r.path, 64, True, False, random.Random(0)) for r in records])
    latents = pipe.vae.encode(pixels).latent_dist.mean * pipe.vae.config.scaling_factor
    ids = tokenize(pipe.tokenizer, [prompt] * len(records))
    hidden = pipe.text_encoder(ids)[0]
    generator = torch.Generator().manual_seed(12345)
    scheduler = pipe.scheduler
    alphas = scheduler.alphas_cumprod
    losses = []
    for timestep in (50, 150, 250, 350, 450, 550, 650, 750):
        noise = torch.randn(latents.shape, generator=generator)
        t = torch.full((len(records),), timestep, dtype=torch.long)
        noisy = (
            alphas[t].sqrt().view(-1, 1, 1, 1) * latents
            + (1 - alphas[t]).sqrt().view(-1, 1, 1, 1) * noise
        )
        prediction = pipe.unet(noisy, t, hidden).sample
        losses.append(torch.nn.functional.mse_loss(prediction, noise).item())
    return sum(losses) / len(losses)


@pytest.mark.slow
def test_lora_lowers_held_out_denoising_loss(tiny_model_dir, tiny_dataset_dir, tmp_path):
    job = make_trainer_job(
        "lora",
        tiny_model_dir,
        tiny_dataset_dir,
        training={
            "maxSteps": 60,
            "learningRate": 1e-2,
            "checkpointEverySteps": 60,
            "lrScheduler": "cosine",
            "lrWarmupSteps": 5,
            "cacheLatents": True,
            "batchSize": 3,
        },
        lora={"rank": 8, "alpha": 8.0},
    )
    _, context = run_worker_locally(job, tmp_path)
    prompt = "a photo of sks toy"
    base = load_tiny_pipeline(tiny_model_dir)
    before = held_out_loss(base, tiny_dataset_dir, prompt)
    base.load_lora_weights(str(context.checkpoints()[-1] / "adapter"))
    after = held_out_loss(base, tiny_dataset_dir, prompt)
    print(f"held-out loss before={before:.4f} after={after:.4f} ({(1 - after / before):.1%} lower)")
    assert after < (1 - MARGIN) * before
