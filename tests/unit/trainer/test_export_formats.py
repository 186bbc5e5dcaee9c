"""`output.formats: [diffusers, kohya]`: the trainer's export writes the kohya/A1111 copy of
the LoRA beside the diffusers file, the manifest lists both, and plain diffusers'
`load_lora_weights` reads the kohya file into the same weights as the diffusers one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.assets import load_tiny_pipeline
from tests.fixtures.trainer import make_trainer_job
from tuneforge.adapters import Layout, detect_layout
from tuneforge.contract import KOHYA_LORA_WEIGHTS, LORA_WEIGHTS, AdapterFormat
from tuneforge.registry.safety import check_artifact_names
from tuneforge_trainer.export import export_adapter, read_manifest

TOLERANCE = 1e-6


def _exported(tiny_model_dir: Path, out_dir: Path, formats: list[str]) -> Any:
    """A LoRA (UNet + text encoder, alpha != rank) with random non-zero weights, exported."""
    import torch

    from tuneforge_trainer.components import load_components
    from tuneforge_trainer.methods import build_method

    job = make_trainer_job(
        "lora",
        tiny_model_dir,
        tiny_model_dir,
        lora={"rank": 4, "alpha": 8, "trainTextEncoder": True},
        output={"registeredModel": "formats-model", "formats": formats},
    )
    method = build_method(job.spec, load_components(tiny_model_dir))
    method.prepare()
    denoiser = method.denoiser()
    generator = torch.Generator().manual_seed(7)
    state = {}
    for name, param in denoiser.named_parameters():
        if "lora_" in name:
            param.data = torch.randn(param.shape, generator=generator) * 0.1
            state[name] = param.detach().clone()
    return export_adapter(method, state, out_dir, job, "uid-formats", steps=3)


def _fused_weights(model_dir: Path, lora_file: Path) -> dict[str, Any]:
    """UNet and text-encoder weights after plain diffusers loads `lora_file` and fuses it."""
    pipe = load_tiny_pipeline(model_dir)
    pipe.load_lora_weights(str(lora_file.parent), weight_name=lora_file.name)
    pipe.fuse_lora()
    weights = {}
    for part in ("unet", "text_encoder"):
        for name, tensor in getattr(pipe, part).state_dict().items():
            if "lora_" not in name:
                weights[f"{part}.{name.replace('.base_layer', '')}"] = tensor.clone()
    return weights


def test_kohya_format_loads_in_diffusers_like_the_diffusers_file(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "adapter"
    manifest = _exported(tiny_model_dir, out_dir, ["diffusers", "kohya"])

    assert manifest.formats == [AdapterFormat.DIFFUSERS, AdapterFormat.KOHYA]
    assert manifest.files == [LORA_WEIGHTS, KOHYA_LORA_WEIGHTS]
    assert read_manifest(out_dir) == manifest
    check_artifact_names(manifest.files, "exported adapter")
    assert detect_layout(out_dir / KOHYA_LORA_WEIGHTS) is Layout.KOHYA

    from_diffusers = _fused_weights(tiny_model_dir, out_dir / LORA_WEIGHTS)
    from_kohya = _fused_weights(tiny_model_dir, out_dir / KOHYA_LORA_WEIGHTS)
    base = load_tiny_pipeline(tiny_model_dir)
    base_weights = {
        f"{part}.{name}": tensor
        for part in ("unet", "text_encoder")
        for name, tensor in getattr(base, part).state_dict().items()
    }

    assert from_kohya.keys() == from_diffusers.keys()
    changed = {
        key.split(".")[0]
        for key, value in from_diffusers.items()
        if (value - base_weights[key]).abs().max() > 1e-3
    }
    assert changed == {"unet", "text_encoder"}, "the comparison must cover both LoRA parts"
    worst = max((from_kohya[k] - v).abs().max().item() for k, v in from_diffusers.items())
    assert worst <= TOLERANCE, f"kohya and diffusers files differ by {worst} after loading"


def test_default_format_writes_only_the_diffusers_file(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "adapter"
    manifest = _exported(tiny_model_dir, out_dir, ["diffusers"])

    assert manifest.formats == [AdapterFormat.DIFFUSERS]
    assert manifest.files == [LORA_WEIGHTS]
    assert not (out_dir / KOHYA_LORA_WEIGHTS).exists()


@pytest.mark.parametrize(
    "manifest_change",
    [
        {"formats": ["diffusers", "kohya"]},
        {"files": [LORA_WEIGHTS, KOHYA_LORA_WEIGHTS]},
    ],
)
def test_manifest_refuses_a_kohya_format_without_its_file(manifest_change: dict) -> None:
    from pydantic import ValidationError

    from tuneforge.contract import AdapterManifest, LoraSection

    values: dict[str, Any] = {
        "method": "lora",
        "base_model": "b",
        "files": [LORA_WEIGHTS],
        "lora": LoraSection(rank=4, alpha=4, target_modules=["to_q"]),
        **manifest_change,
    }
    with pytest.raises(ValidationError, match=re.escape(KOHYA_LORA_WEIGHTS)):
        AdapterManifest(**values)
