"""Serving's parser takes Linear and Conv2d LoRA pairs and refuses what is neither."""

from __future__ import annotations

import pytest
import torch

from tuneforge_serving.errors import AdapterRejected
from tuneforge_serving.lora_format import parse_lora_state_dict

CONV = "unet.down_blocks.0.resnets.0.conv1"


def test_a_conv_lora_layer_is_parsed_with_its_kernel() -> None:
    tensors = {
        f"{CONV}.lora_A.weight": torch.zeros(4, 32, 3, 3),
        f"{CONV}.lora_B.weight": torch.zeros(32, 4, 1, 1),
    }
    staged = parse_lora_state_dict(tensors, {}, 2.0, "locon")
    module = staged.modules[("unet", "down_blocks.0.resnets.0.conv1")]
    assert module.a.shape == (4, 32, 3, 3) and module.scale == 0.5
    assert staged.rank == 4


def test_a_pair_that_is_neither_linear_nor_conv_is_refused_naming_it() -> None:
    tensors = {
        f"{CONV}.lora_A.weight": torch.zeros(4, 32, 3, 3),
        f"{CONV}.lora_B.weight": torch.zeros(32, 4, 3, 3),
    }
    with pytest.raises(AdapterRejected) as error:
        parse_lora_state_dict(tensors, {}, None, "odd")
    assert "down_blocks.0.resnets.0.conv1 is neither a Linear LoRA pair" in str(error.value)


def test_a_pair_whose_ranks_disagree_is_refused() -> None:
    module = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    tensors = {
        f"{module}.lora_A.weight": torch.zeros(4, 32),
        f"{module}.lora_B.weight": torch.zeros(32, 2),
    }
    with pytest.raises(AdapterRejected, match="A has rank 4, B 2"):
        parse_lora_state_dict(tensors, {}, None, "odd")
