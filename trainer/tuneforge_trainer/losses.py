"""Noise, timesteps and the diffusion loss (plain MSE or min-SNR-γ weighted)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def sample_noise(
    latents: torch.Tensor, noise_offset: float, generator: torch.Generator
) -> torch.Tensor:
    """Gaussian noise like `latents`, plus a per-channel offset when `noise_offset` > 0."""
    noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype)
    if noise_offset > 0:
        offset = torch.randn(
            (latents.shape[0], latents.shape[1], 1, 1), generator=generator, dtype=latents.dtype
        )
        noise = noise + noise_offset * offset
    return noise.to(latents.device)


def sample_timesteps(
    batch: int, scheduler: Any, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """Uniform training timesteps."""
    steps = int(scheduler.config.num_train_timesteps)
    return torch.randint(0, steps, (batch,), generator=generator).long().to(device)


def prediction_target(
    scheduler: Any, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """What the UNet should predict: the noise (`epsilon`) or the velocity (`v_prediction`)."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    raise ValueError(f"unsupported scheduler prediction_type {kind!r}")


def compute_snr(scheduler: Any, timesteps: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio of each timestep: (α / σ)²."""
    alphas_cumprod = scheduler.alphas_cumprod.to(device=timesteps.device, dtype=torch.float32)
    alpha = alphas_cumprod[timesteps] ** 0.5
    sigma = (1.0 - alphas_cumprod[timesteps]) ** 0.5
    return (alpha / sigma) ** 2


def diffusion_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    timesteps: torch.Tensor,
    scheduler: Any,
    snr_gamma: float | None,
) -> torch.Tensor:
    """Mean squared error, per sample weighted by min(SNR, γ)/SNR when γ is set (Hang et al. 2023)."""
    if snr_gamma is None:
        return F.mse_loss(prediction.float(), target.float(), reduction="mean")
    snr = compute_snr(scheduler, timesteps)
    weights = torch.stack([snr, snr_gamma * torch.ones_like(snr)], dim=1).min(dim=1)[0]
    if scheduler.config.prediction_type == "v_prediction":
        weights = weights / (snr + 1)
    else:
        weights = weights / snr
    per_sample = F.mse_loss(prediction.float(), target.float(), reduction="none")
    per_sample = per_sample.mean(dim=list(range(1, per_sample.ndim)))
    return (per_sample * weights).mean()
