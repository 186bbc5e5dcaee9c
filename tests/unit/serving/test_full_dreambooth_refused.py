"""A full DreamBooth fine-tune is not a hot-swappable adapter: refused with a clear message."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tuneforge.adapter import AdapterManifest
from tuneforge_serving.adapter_store import AdapterKey, load_staged
from tuneforge_serving.errors import AdapterRejected


def test_full_dreambooth_export_is_refused_with_the_way_out(tmp_path: Path) -> None:
    save_file({"conv_in.weight": torch.zeros(4, 4, 3, 3)}, str(tmp_path / "unet.safetensors"))
    manifest = AdapterManifest(
        method="dreambooth", base_model="/models/tiny", files=["unet.safetensors"]
    )
    with pytest.raises(AdapterRejected, match="exportLora"):
        load_staged(AdapterKey("sks-db", 1), tmp_path, manifest, fingerprint="any")


def test_a_folder_without_weights_still_names_the_expected_files(tmp_path: Path) -> None:
    manifest = AdapterManifest(method="lora", base_model="/models/tiny", files=[])
    with pytest.raises(AdapterRejected, match="pytorch_lora_weights.safetensors"):
        load_staged(AdapterKey("empty", 1), tmp_path, manifest, fingerprint="any")
