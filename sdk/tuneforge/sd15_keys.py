"""Stable Diffusion 1.x tensor names: the diffusers layout and the original (LDM) layout.

A single-file checkpoint as A1111 and ComfyUI read it holds the UNet under
`model.diffusion_model.`, the VAE under `first_stage_model.` and the CLIP text encoder under
`cond_stage_model.transformer.text_model.`, with CompVis' block names. A diffusers folder
holds the same tensors under diffusers' names. `UnetLayout`, `VaeLayout` and
`text_encoder_original_name` map a diffusers name to its original name, for any
SD-1.x-shaped configuration (block counts and layers per block come from the config). The
mapping is the one diffusers' `scripts/convert_diffusers_to_original_stable_diffusion.py`
applies, and `diffusers.loaders.single_file_utils` undoes. No torch needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_ENCODER_PREFIX = "cond_stage_model.transformer.text_model."
TEXT_MODEL_PREFIX = "text_model."
"""transformers 4 saved CLIP text-encoder tensors under `text_model.`; transformers 5 does not."""

_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}
_VAE_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}
_VAE_CONV_WEIGHTS = {"q", "k", "v", "proj_out"}
"""VAE mid-block attention projections: linear in diffusers, 1x1 convolutions in LDM."""


def _resnet(rest: str, renames: dict[str, str]) -> str:
    """`rest` with its first matching resnet sub-module renamed."""
    for new, old in renames.items():
        if rest.startswith(new + "."):
            return old + rest[len(new) :]
    return rest


@dataclass(frozen=True)
class UnetLayout:
    """The UNet's block structure, which decides the LDM `input_blocks`/`output_blocks` indices."""

    layers_per_block: int = 2
    up_blocks_with_attention: frozenset[int] = frozenset({1, 2, 3})

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> UnetLayout:
        """The layout of a diffusers `UNet2DConditionModel` config."""
        up_types = config["up_block_types"]
        return cls(
            layers_per_block=int(config["layers_per_block"]),
            up_blocks_with_attention=frozenset(
                index for index, kind in enumerate(up_types) if "CrossAttn" in kind
            ),
        )

    def original_name(self, name: str) -> str:
        """The LDM name (without `model.diffusion_model.`) of diffusers UNet tensor `name`."""
        module, _, param = name.rpartition(".")
        if module in _UNET_TOP:
            return f"{_UNET_TOP[module]}.{param}"
        per_down = self.layers_per_block + 1
        per_up = self.layers_per_block + 1
        if match := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", name):
            block, kind, layer, rest = int(match[1]), match[2], int(match[3]), match[4]
            index = 1 + block * per_down + layer
            if kind == "resnets":
                return f"input_blocks.{index}.0.{_resnet(rest, _UNET_RESNET)}"
            return f"input_blocks.{index}.1.{rest}"
        if match := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", name):
            return f"input_blocks.{(int(match[1]) + 1) * per_down}.0.op.{match[2]}"
        if match := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", name):
            return f"middle_block.{2 * int(match[1])}.{_resnet(match[2], _UNET_RESNET)}"
        if match := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", name):
            return f"middle_block.1.{match[1]}"
        if match := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", name):
            block, kind, layer, rest = int(match[1]), match[2], int(match[3]), match[4]
            index = block * per_up + layer
            if kind == "resnets":
                return f"output_blocks.{index}.0.{_resnet(rest, _UNET_RESNET)}"
            return f"output_blocks.{index}.1.{rest}"
        if match := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.(.+)", name):
            block = int(match[1])
            slot = 2 if block in self.up_blocks_with_attention else 1
            return f"output_blocks.{block * per_up + self.layers_per_block}.{slot}.{match[2]}"
        raise KeyError(f"no original-layout name for UNet tensor {name!r}")


@dataclass(frozen=True)
class VaeLayout:
    """The VAE's level count, which numbers the LDM decoder's `up` blocks in reverse."""

    num_blocks: int = 4

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> VaeLayout:
        """The layout of a diffusers `AutoencoderKL` config."""
        return cls(num_blocks=len(config["block_out_channels"]))

    def original_name(self, name: str) -> str:
        """The LDM name (without `first_stage_model.`) of diffusers VAE tensor `name`."""
        shortcut = {"conv_shortcut": "nin_shortcut"}
        if match := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", name):
            return f"encoder.down.{match[1]}.block.{match[2]}.{_resnet(match[3], shortcut)}"
        if match := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.(.+)", name):
            return f"encoder.down.{match[1]}.downsample.{match[2]}"
        if match := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", name):
            level = self.num_blocks - 1 - int(match[1])
            return f"decoder.up.{level}.block.{match[2]}.{_resnet(match[3], shortcut)}"
        if match := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.+)", name):
            return f"decoder.up.{self.num_blocks - 1 - int(match[1])}.upsample.{match[2]}"
        if match := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", name):
            return f"{match[1]}.mid.block_{int(match[2]) + 1}.{_resnet(match[3], shortcut)}"
        if match := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)", name):
            return f"{match[1]}.mid.attn_1.{_resnet(match[2], _VAE_ATTENTION)}"
        if match := re.fullmatch(r"(encoder|decoder)\.conv_norm_out\.(.+)", name):
            return f"{match[1]}.norm_out.{match[2]}"
        return name

    @staticmethod
    def is_conv_in_original(original: str) -> bool:
        """True for the mid-attention projection weights LDM stores as 1x1 convolutions."""
        match = re.fullmatch(r"(encoder|decoder)\.mid\.attn_1\.(\w+)\.weight", original)
        return bool(match) and match[2] in _VAE_CONV_WEIGHTS  # type: ignore[index]


def text_encoder_original_name(name: str) -> str:
    """The LDM name (without `cond_stage_model.transformer.text_model.`) of a CLIP tensor."""
    return name.removeprefix(TEXT_MODEL_PREFIX)
