"""The SVD core of the DreamBooth → LoRA extraction on synthetic weight changes: the
per-layer relative error falls as the rank grows (and is the SVD's tail), `energy` keeps the
fewest directions that hold it, convolutions are flattened and reshaped back as kohya's
extract does (exactly, at full rank), and every Linear and Conv2d weight is extracted, the
layers serving's slots carry (biases, norms and embeddings listed as left out)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tuneforge.api import ExtractLoraSpec
from tuneforge.contract import LORA_WEIGHTS
from tuneforge_trainer.extract_lora import (
    REPORT_CSV,
    REPORT_JSON,
    extract,
    low_rank,
    write_extraction,
    write_report,
)


def _delta(out: int, inp: int, seed: int = 0) -> torch.Tensor:
    """A full-rank change with a decaying spectrum (as trained changes have)."""
    generator = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(out, out, generator=generator))
    v, _ = torch.linalg.qr(torch.randn(inp, inp, generator=generator))
    k = min(out, inp)
    spectrum = torch.tensor([0.7**i for i in range(k)])
    return (u[:, :k] * spectrum) @ v[:, :k].T


def test_error_falls_as_the_rank_grows_and_equals_the_svd_tail() -> None:
    delta = _delta(48, 40)
    singular = torch.linalg.svdvals(delta)
    errors = []
    for rank in (1, 2, 4, 8, 16, 40):
        factors = low_rank(delta, rank=rank)
        assert factors.rank == rank
        assert factors.down.shape == (rank, 40) and factors.up.shape == (48, rank)
        measured = torch.linalg.matrix_norm(delta - factors.up @ factors.down) / (
            torch.linalg.matrix_norm(delta)
        )
        tail = math.sqrt(float((singular[rank:] ** 2).sum() / (singular**2).sum()))
        assert factors.relative_error == pytest.approx(float(measured), abs=1e-5)
        assert factors.relative_error == pytest.approx(tail, abs=1e-5)
        errors.append(factors.relative_error)
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < 1e-5, "full rank reconstructs the change"
    assert low_rank(delta, rank=500).rank == 40, "a rank above the layer's is capped"


@pytest.mark.parametrize("energy", [0.5, 0.9, 0.99, 1.0])
def test_energy_keeps_the_fewest_directions_that_hold_it(energy: float) -> None:
    delta = _delta(32, 32, seed=1)
    squares = torch.linalg.svdvals(delta).double() ** 2
    held = torch.cumsum(squares, 0) / squares.sum()
    factors = low_rank(delta, energy=energy)
    k = factors.rank
    assert held[k - 1] >= energy - 1e-6
    assert k == 1 or held[k - 2] < energy, "one direction fewer would not hold it"
    assert factors.relative_error <= math.sqrt(max(0.0, 1 - energy)) + 1e-5


@pytest.mark.parametrize("kernel", [1, 3])
def test_convolutions_are_flattened_and_reshaped_back(kernel: int) -> None:
    flat = _delta(16, 8 * kernel * kernel, seed=2)
    delta = flat.reshape(16, 8, kernel, kernel)
    factors = low_rank(delta, rank=4)
    assert factors.down.shape == (4, 8, kernel, kernel)
    assert factors.up.shape == (16, 4, 1, 1)
    rebuilt = factors.up.flatten(1) @ factors.down.flatten(1)
    expected = low_rank(flat, rank=4)
    assert torch.allclose(rebuilt, expected.up @ expected.down, atol=1e-6)
    assert factors.relative_error == pytest.approx(expected.relative_error, abs=1e-6)
    # As a real layer: Conv2d(down) then 1x1 Conv2d(up) applies the low-rank change.
    x = torch.randn(1, 8, 6, 6, generator=torch.Generator().manual_seed(3))
    pad = kernel // 2
    through_lora = torch.nn.functional.conv2d(
        torch.nn.functional.conv2d(x, factors.down, padding=pad), factors.up
    )
    through_rebuilt = torch.nn.functional.conv2d(x, rebuilt.reshape(delta.shape), padding=pad)
    assert torch.allclose(through_lora, through_rebuilt, atol=1e-5)


@pytest.mark.parametrize(("kernel", "stride"), [(1, 1), (3, 1), (3, 2)])
def test_a_conv_change_at_full_rank_is_rebuilt_exactly(kernel: int, stride: int) -> None:
    """Full rank (min(out, in·kh·kw)) keeps every direction: the LoRA conv pair (A with the
    layer's kernel, stride and padding, then B 1x1, as peft's and serving's LoCon layers run
    it) applies ΔW itself. The factorisation runs in fp64 (error measured 1.6e-15, asserted
    1e-12); the factors are stored in fp32, each entry rounded by ≤ ε = 6e-8, so a sum of
    k ≤ 24 products is off by ≲ k·ε = 1.4e-6 at worst (measured 1e-7 for the weight, 4e-7
    of the output's peak): 2e-6."""
    generator = torch.Generator().manual_seed(7)
    delta = torch.randn(24, 16, kernel, kernel, generator=generator)  # full rank, flat spectrum
    full = min(24, 16 * kernel * kernel)
    factors = low_rank(delta, rank=full)
    assert factors.rank == full and factors.relative_error < 1e-12
    rebuilt = (factors.up.flatten(1) @ factors.down.flatten(1)).reshape(delta.shape)
    assert float(torch.linalg.vector_norm(rebuilt - delta) / torch.linalg.vector_norm(delta)) < 2e-6
    x = torch.randn(2, 16, 9, 9, generator=generator)
    conv = torch.nn.functional.conv2d
    pad = kernel // 2
    through_lora = conv(conv(x, factors.down, stride=stride, padding=pad), factors.up)
    direct = conv(x, delta, stride=stride, padding=pad)
    assert float((through_lora - direct).abs().max() / direct.abs().max()) < 2e-6


def test_every_linear_and_conv_is_extracted_and_the_rest_reported(tmp_path: Path) -> None:
    attn = "unet.down_blocks.0.attentions.0.transformer_blocks.0"
    names = {
        f"{attn}.attn1.to_q.weight": (32, 32),
        f"{attn}.attn2.to_out.0.weight": (32, 32),
        f"{attn}.attn2.to_out.0.bias": (32,),
        f"{attn}.ff.net.2.weight": (32, 128),
        f"{attn}.norm1.weight": (32,),
        "unet.down_blocks.0.resnets.0.conv1.weight": (32, 32, 3, 3),
        "unet.conv_in.weight": (32, 4, 3, 3),
        "text_encoder.text_model.encoder.layers.0.self_attn.k_proj.weight": (32, 32),
        "text_encoder.text_model.encoder.layers.0.mlp.fc1.weight": (64, 32),
        "text_encoder.text_model.embeddings.token_embedding.weight": (100, 32),
    }
    generator = torch.Generator().manual_seed(4)
    base = {name: torch.randn(shape, generator=generator) for name, shape in names.items()}
    trained = {
        name: tensor + 0.01 * torch.randn(tensor.shape, generator=generator)
        for name, tensor in base.items()
    }
    spec = ExtractLoraSpec(rank=4)
    extraction = extract(trained, base, spec)

    extracted = {layer.name for layer in extraction.extracted}
    assert extracted == {n for n, shape in names.items() if len(shape) > 1} - {
        "text_encoder.text_model.embeddings.token_embedding.weight"
    }
    reasons = {layer.name: layer.reason for layer in extraction.layers if not layer.extracted}
    assert set(reasons) == set(names) - extracted
    assert "embedding" in reasons["text_encoder.text_model.embeddings.token_embedding.weight"]
    assert "bias or norm" in reasons[f"{attn}.attn2.to_out.0.bias"]
    assert "bias or norm" in reasons[f"{attn}.norm1.weight"]

    section = write_extraction(extraction, tmp_path / "lora")
    assert (section.rank, section.alpha, section.text_encoder) == (4, 4.0, True)
    assert section.target_modules == ["conv1", "conv_in", "net.2", "to_out.0", "to_q"]
    tensors = load_file(str(tmp_path / "lora" / LORA_WEIGHTS))
    key = f"{attn}.attn1.to_q"
    delta = trained[f"{key}.weight"] - base[f"{key}.weight"]
    approx = tensors[f"{key}.lora_B.weight"] @ tensors[f"{key}.lora_A.weight"]
    error = float(torch.linalg.matrix_norm(delta - approx) / torch.linalg.matrix_norm(delta))
    assert error == pytest.approx(
        next(x.relative_error for x in extraction.layers if x.name == f"{key}.weight"), abs=1e-5
    )
    assert len(tensors) == 2 * len(extracted)
    conv = "unet.down_blocks.0.resnets.0.conv1"
    assert tensors[f"{conv}.lora_A.weight"].shape == (4, 32, 3, 3)
    assert tensors[f"{conv}.lora_B.weight"].shape == (32, 4, 1, 1)

    write_report(extraction, spec, tmp_path / "report")
    document = json.loads((tmp_path / "report" / REPORT_JSON).read_text())
    assert document["settings"] == {"rank": 4}
    assert [row["name"] for row in document["layers"]] == sorted(names)
    summary = document["summary"]
    errors = [x.relative_error for x in extraction.extracted]
    assert summary["relative_error_max"] == pytest.approx(max(errors))
    assert summary["relative_error_mean"] == pytest.approx(sum(errors) / len(errors))
    assert summary["layers_left_out"] == len(names) - len(extracted)
    assert 0 < summary["left_out_energy_fraction"] < 1
    with (tmp_path / "report" / REPORT_CSV).open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(names) and {r["extracted"] for r in rows} == {"True", "False"}


def test_energy_pads_every_layer_to_one_rank(tmp_path: Path) -> None:
    flat = _delta(32, 32, seed=5)
    steep = _delta(32, 32, seed=6) * torch.tensor([1.0] + [1e-3] * 31)  # nearly rank 1
    prefix = "unet.mid_block.attentions.0.transformer_blocks.0.attn1"
    base = {
        f"{prefix}.to_q.weight": torch.zeros(32, 32),
        f"{prefix}.to_k.weight": torch.zeros(32, 32),
    }
    trained = {f"{prefix}.to_q.weight": flat, f"{prefix}.to_k.weight": steep}
    extraction = extract(trained, base, ExtractLoraSpec(energy=0.9))
    ranks = {layer.name.split(".")[-2]: layer.rank for layer in extraction.layers}
    assert ranks["to_k"] is not None and ranks["to_q"] is not None
    assert ranks["to_k"] < ranks["to_q"]
    section = write_extraction(extraction, tmp_path)
    assert section.rank == ranks["to_q"]
    tensors = load_file(str(tmp_path / LORA_WEIGHTS))
    assert {tuple(t.shape) for k, t in tensors.items() if "lora_A" in k} == {(section.rank, 32)}
    padded = tensors[f"{prefix}.to_k.lora_A.weight"][ranks["to_k"] :]
    assert torch.count_nonzero(padded) == 0
