"""Trainer and serving load every base-model form, and agree on its fingerprint.

A single original-layout file loads through diffusers' `from_single_file` with the packaged
config of its architecture (offline); an `hf://` base served from a Hub cache gets the
fingerprint the trainer writes into the adapter (it used to hash nothing and refuse every
adapter).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from tuneforge.assets.sd15_random import write_single_file
from tuneforge.settings import Settings
from tuneforge_serving.base_model import load_pipeline, locate_base_model
from tuneforge_trainer.components import load_components, load_tokenizer, unet_module_names

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def single_file(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    return write_single_file(tiny_model_dir, tmp_path_factory.mktemp("single") / "tiny.safetensors")


@pytest.fixture
def assets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEFORGE_ASSETS_CACHE", str(tmp_path / "assets"))


def _same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    left, right = a.state_dict(), b.state_dict()
    assert left.keys() == right.keys()
    assert all(torch.equal(left[key], right[key]) for key in left)


def test_trainer_loads_a_single_file_like_its_folder(
    single_file: Path, tiny_model_dir: Path, assets_cache: None
) -> None:
    from_file = load_components(single_file)
    from_folder = load_components(Path(tiny_model_dir))
    for part in ("unet", "vae", "text_encoder"):
        _same(getattr(from_file, part), getattr(from_folder, part))
    assert from_file.fingerprint == from_folder.fingerprint
    assert (from_file.model_dir / "scheduler/scheduler_config.json").is_file()
    assert from_file.noise_scheduler.config.beta_end == from_folder.noise_scheduler.config.beta_end
    assert (
        load_tokenizer(single_file)("a toy").input_ids == from_folder.tokenizer("a toy").input_ids
    )
    assert unet_module_names(single_file) == unet_module_names(Path(tiny_model_dir))


def test_serving_loads_a_single_file_like_its_folder(
    single_file: Path, tiny_model_dir: Path, tmp_path: Path, assets_cache: None
) -> None:
    settings = Settings(home=tmp_path)
    base = locate_base_model(str(single_file), tmp_path, settings)
    assert base.single_file
    pipe = load_pipeline(base, "cpu", torch.float32)
    folder = load_pipeline(
        locate_base_model(str(tiny_model_dir), tmp_path, settings), "cpu", torch.float32
    )
    _same(pipe.unet, folder.unet)
    _same(pipe.text_encoder, folder.text_encoder)
    images = [
        p(
            "a toy",
            num_inference_steps=2,
            generator=torch.Generator().manual_seed(0),
            output_type="np",
        ).images[0]
        for p in (pipe, folder)
    ]
    # Same weights and configs; float32 summation order differs by a few ulps.
    assert abs(images[0] - images[1]).max() < 1e-5


def test_an_hf_base_serves_the_adapters_trained_on_it(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tuneforge.base_fingerprint import base_model_fingerprint

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    storage = tmp_path / "base-models" / "hf" / "models--org--tiny-sd"
    shutil.copytree(tiny_model_dir, storage / "snapshots" / COMMIT)
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(COMMIT)
    base = locate_base_model("hf://org/tiny-sd", tmp_path, Settings(home=tmp_path))
    trained_on = load_components(Path(tiny_model_dir)).fingerprint
    assert base_model_fingerprint(base.path) == trained_on
