"""A full DreamBooth fine-tune is not a hot-swappable adapter: refused with a clear message."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tuneforge.contract import AdapterManifest, AdapterRef
from tuneforge_serving.adapter_store import load_staged
from tuneforge_serving.errors import AdapterRejected


def test_full_dreambooth_export_is_refused_with_the_way_out(tmp_path: Path) -> None:
    save_file({"conv_in.weight": torch.zeros(4, 4, 3, 3)}, str(tmp_path / "unet.safetensors"))
    manifest = AdapterManifest(
        method="dreambooth",
        base_model="/models/tiny",
        files=["unet.safetensors"],
        full_model=True,
    )
    with pytest.raises(
        AdapterRejected, match="extractLora registers it as sks-db-lora.*exportLora"
    ):
        load_staged(AdapterRef("sks-db", 1), tmp_path, manifest, fingerprint="any")


def test_a_version_1_full_dreambooth_manifest_is_refused_too(tmp_path: Path) -> None:
    old = {
        "format_version": 1,
        "method": "dreambooth",
        "base_model": "/m",
        "files": ["u.safetensors"],
    }
    manifest = AdapterManifest.model_validate(old)
    with pytest.raises(AdapterRejected, match="full DreamBooth fine-tune"):
        load_staged(AdapterRef("sks-db", 2), tmp_path, manifest, fingerprint="any")


def test_a_folder_without_weights_still_names_the_expected_files(tmp_path: Path) -> None:
    manifest = AdapterManifest(method="lora", base_model="/models/tiny", files=[])
    with pytest.raises(AdapterRejected, match="pytorch_lora_weights.safetensors"):
        load_staged(AdapterRef("empty", 1), tmp_path, manifest, fingerprint="any")
