"""A VAE for the tiny model that needs no training: 8x8 colour pooling, then upsampling.

The tiny model's VAE has SD 1.5's layout (four levels, latent = image / 8, 4 latent
channels). With random weights it cannot reconstruct anything, and training one from
scratch costs minutes of CPU for blurry results (../shared/TINY-MODEL.md). Here its weights
are *set*, not learnt, so that

- `encode` gives each 8x8 pixel block's mean colour: latent channels 0-2 are R, G, B in
  [-1, 1], channel 3 is zero (a constant the diffusion model learns to keep);
- `decode` turns an 8x8x4 latent back into a 64x64 image: each latent pixel's colour,
  upsampled x2 three times with a small smoothing filter.

So a 64 px image survives as its 8x8 colour layout (blobs of colour, not fine detail).
Every resnet and attention block is made an identity (its last projection zeroed); the
average pooling sits in the downsamplers, the upsampling in the upsamplers. The only
non-linear layers left are the final GroupNorm + SiLU of encoder and decoder; they are made
linear by pairing each colour with its negative and two large constants in one group (the
group's mean is then exactly 0 and its spread set by the constants), and by shifting the
SiLU's input far into its linear range. The VAE config differs from the random tiny model's
only in `norm_num_groups` (4: the trick needs 4 channels per group) and `scaling_factor`.
"""

from __future__ import annotations

import math
from typing import Any

from tuneforge.assets.tiny_model import VAE_CONFIG

CONSTANT = 100.0
"""The large constant that makes the final group norms (nearly) linear: error ~ 1/CONSTANT^2."""
SHIFT = 20.0
"""Added before each final SiLU (silu(x) = x within 1e-7 for x >= 16) and removed after."""
SCALING_FACTOR = 2.0
"""Latent scale: pooled colours of the generic pretraining images have std ~0.5 in [-1, 1]."""
POOLING_VAE_CONFIG: dict[str, Any] = {
    **VAE_CONFIG,
    "norm_num_groups": 4,
    "scaling_factor": SCALING_FACTOR,
}
_SMOOTH = (0.25, 0.5, 0.25)


def build_pooling_vae() -> Any:
    """An `AutoencoderKL` with `POOLING_VAE_CONFIG` whose weights pool and upsample colours."""
    import importlib

    import torch

    diffusers: Any = importlib.import_module("diffusers")
    vae = diffusers.AutoencoderKL(**POOLING_VAE_CONFIG)
    with torch.no_grad():
        for parameter in vae.parameters():
            parameter.zero_()
        _set_encoder(vae.encoder, vae.quant_conv)
        _set_decoder(vae.decoder, vae.post_quant_conv)
    return vae.eval()


def _centre(conv: Any, out_channel: int, in_channel: int, value: float = 1.0) -> None:
    """Set one tap at the kernel's centre (a 1x1 or 3x3 convolution)."""
    k = conv.weight.shape[-1] // 2
    conv.weight[out_channel, in_channel, k, k] = value


def _identity_blocks(blocks: Any) -> None:
    """Zero-initialised weights already make every resnet and attention an identity.

    A resnet returns `shortcut(x) + conv2(...)`, an attention `to_out(...) + x`: with
    `conv2` and `to_out` zero both return their input (or its shortcut). Nothing to set.
    """
    del blocks


def _signed_pairs(conv: Any, per_group: int, colours: int = 3) -> None:
    """A 1x1 shortcut that lays each colour out as [c, -c, +C, -C] at the start of a group."""
    for colour in range(colours):
        first = colour * per_group
        _centre(conv, first, colour, 1.0)
        _centre(conv, first + 1, colour, -1.0)
        conv.bias[first + 2] = CONSTANT
        conv.bias[first + 3] = -CONSTANT


def _linear_norm(norm: Any, per_group: int, colours: int = 3) -> None:
    """Scale the normalised colour back (the group's std is CONSTANT * sqrt(2 / per_group))."""
    spread = CONSTANT * math.sqrt(2.0 / per_group)
    for colour in range(colours):
        norm.weight[colour * per_group] = spread
        norm.bias[colour * per_group] = SHIFT


def _set_encoder(encoder: Any, quant_conv: Any) -> None:
    for colour in range(3):
        _centre(encoder.conv_in, colour, colour)
    for block in encoder.down_blocks:
        for sampler in block.downsamplers or []:
            # Padding (0, 1, 0, 1) then a stride-2 3x3 conv: taps [0:2, 0:2] are one 2x2 block.
            channels = sampler.conv.weight.shape[0]
            for channel in range(channels):
                sampler.conv.weight[channel, channel, 0:2, 0:2] = 0.25
    _identity_blocks(encoder.mid_block)
    shortcut = encoder.down_blocks[1].resnets[0].conv_shortcut
    per_group = encoder.conv_norm_out.num_channels // encoder.conv_norm_out.num_groups
    _signed_pairs(shortcut, per_group)
    _linear_norm(encoder.conv_norm_out, per_group)
    for colour in range(3):
        _centre(encoder.conv_out, colour, colour * per_group)
        encoder.conv_out.bias[colour] = -SHIFT
    encoder.conv_out.bias[4:] = -30.0  # log-variance at its clamp: sampling adds ~3e-7
    for channel in range(quant_conv.weight.shape[0]):
        _centre(quant_conv, channel, channel)


def _set_decoder(decoder: Any, post_quant_conv: Any) -> None:
    import torch

    for channel in range(post_quant_conv.weight.shape[0]):
        _centre(post_quant_conv, channel, channel)
    for colour in range(3):
        _centre(decoder.conv_in, colour, colour)
    smooth = torch.tensor(_SMOOTH)
    kernel = smooth[:, None] * smooth[None, :]
    for block in decoder.up_blocks:
        for sampler in block.upsamplers or []:
            for channel in range(sampler.conv.weight.shape[0]):
                sampler.conv.weight[channel, channel] = kernel
    shortcut = decoder.up_blocks[-1].resnets[0].conv_shortcut
    per_group = decoder.conv_norm_out.num_channels // decoder.conv_norm_out.num_groups
    _signed_pairs(shortcut, per_group)
    _linear_norm(decoder.conv_norm_out, per_group)
    for colour in range(3):
        _centre(decoder.conv_out, colour, colour * per_group)
        decoder.conv_out.bias[colour] = -SHIFT
