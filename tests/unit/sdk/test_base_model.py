"""`tuneforge.base_model` and `tuneforge.base_fingerprint`: every form a user holds.

Folder, single file, fp16 variant and a Hub cache layout (offline) of the same weights
resolve and fingerprint alike; pickles are refused before anything is fetched.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub.utils import filter_repo_objects
from safetensors import safe_open
from safetensors.numpy import save_file

from tuneforge.assets.sd15 import TINY
from tuneforge.assets.sd15_random import build_sd15_random, write_single_file
from tuneforge.base_fingerprint import base_model_fingerprint, read_tensor
from tuneforge.base_model import (
    UnsupportedCheckpointError,
    hf_allow_patterns,
    parse_base_model,
    resolve_base_model,
)
from tuneforge.settings import Settings

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture(scope="module")
def forms(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Path]:
    """The tiny model as a folder, a single file, an fp16-only folder; and other weights."""
    root = tmp_path_factory.mktemp("forms")
    single = write_single_file(tiny_model_dir, root / "tiny.safetensors")
    fp16 = root / "fp16"
    shutil.copytree(tiny_model_dir, fp16)
    for weights in fp16.glob("*/*.safetensors"):
        with safe_open(str(weights), "np") as handle:
            tensors = {key: handle.get_tensor(key).astype(np.float16) for key in handle.keys()}
        save_file(tensors, str(weights.with_name(weights.stem + ".fp16.safetensors")))
        weights.unlink()
    other = build_sd15_random(root / "other", seed=9, architecture=TINY)
    return {"folder": tiny_model_dir, "single": single, "fp16": fp16, "other": other}


def _hub_cache(cache: Path, model: Path, repo: str = "org/tiny-sd") -> Path:
    """A Hub cache holding `model` at COMMIT (ref `v1`) and a broken snapshot at `main`."""
    storage = cache / "hf" / f"models--{repo.replace('/', '--')}"
    shutil.copytree(model, storage / "snapshots" / COMMIT)
    (storage / "snapshots" / OTHER_COMMIT).mkdir(parents=True)
    (storage / "refs").mkdir()
    (storage / "refs" / "v1").write_text(COMMIT)
    (storage / "refs" / "main").write_text(OTHER_COMMIT)
    return storage


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)


def test_parse_every_form() -> None:
    hub = parse_base_model("hf://org/sd@v2")
    assert (hub.scheme, hub.location, hub.revision, hub.single_file) == (
        "hf",
        "org/sd",
        "v2",
        False,
    )
    hub_file = parse_base_model("hf://org/sd/weights/model.safetensors", revision="abc")
    assert (hub_file.filename, hub_file.revision, hub_file.single_file) == (
        "weights/model.safetensors",
        "abc",
        True,
    )
    assert parse_base_model("s3://models/sd15.safetensors").single_file
    assert not parse_base_model("s3://models/sd15/").single_file
    assert parse_base_model("~/m.safetensors").location == str(Path.home() / "m.safetensors")
    with pytest.raises(ValueError, match="names revision 'v2' but revision is 'v3'"):
        parse_base_model("hf://org/sd@v2", revision="v3")
    with pytest.raises(ValueError, match="must be a .safetensors checkpoint"):
        parse_base_model("hf://org/sd/unet")
    with pytest.raises(ValueError, match="variant"):
        parse_base_model("hf://org/sd", variant="bf16")


@pytest.mark.parametrize(
    ("uri", "fix"),
    [
        ("hf://org/sd/v1-5-pruned.ckpt", "convert_original_stable_diffusion_to_diffusers.py"),
        ("s3://models/sd.ckpt", "--checkpoint_path sd.ckpt --dump_path sd --to_safetensors"),
        ("/models/unet.bin", "st.save_file(torch.load('unet.bin', weights_only=True)"),
        ("s3://models/model.PT", "safetensors"),
    ],
)
def test_pickles_are_refused_before_any_download(
    uri: str, fix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("downloaded a pickle")

    monkeypatch.setattr("huggingface_hub.hf_hub_download", no_download)
    monkeypatch.setattr("tuneforge.base_model.materialize", no_download)
    with pytest.raises(UnsupportedCheckpointError, match="pickles") as error:
        resolve_base_model(uri, tmp_path, Settings(home=tmp_path))
    assert fix in str(error.value)
    assert "\n" not in str(error.value)


def test_hub_fetch_takes_only_the_pipeline_files() -> None:
    repo = [
        "model_index.json",
        "v1-5-pruned.safetensors",
        "v1-5-pruned-emaonly.safetensors",
        "v1-5-pruned.ckpt",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.bin",
        "unet/diffusion_pytorch_model.non_ema.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.fp16.safetensors",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "text_encoder/model.fp16.safetensors",
        "text_encoder/pytorch_model.bin",
        "safety_checker/model.safetensors",
        "safety_checker/config.json",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
        "tokenizer/tokenizer_config.json",
        "scheduler/scheduler_config.json",
        "feature_extractor/preprocessor_config.json",
    ]
    small = {
        "model_index.json",
        "unet/config.json",
        "vae/config.json",
        "text_encoder/config.json",
        "safety_checker/config.json",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
        "tokenizer/tokenizer_config.json",
        "scheduler/scheduler_config.json",
        "feature_extractor/preprocessor_config.json",
    }
    kept = set(filter_repo_objects(repo, allow_patterns=hf_allow_patterns()))
    assert kept == small | {
        "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors",
    }
    kept16 = set(filter_repo_objects(repo, allow_patterns=hf_allow_patterns("fp16")))
    assert kept16 == small | {
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.fp16.safetensors",
        "text_encoder/model.fp16.safetensors",
    }


def test_same_weights_same_fingerprint_in_every_local_form(forms: dict[str, Path]) -> None:
    prints = {name: base_model_fingerprint(path) for name, path in forms.items()}
    assert prints["folder"] == prints["single"] == prints["fp16"]
    assert prints["other"] != prints["folder"]
    assert len(prints["folder"]) == 16


def test_fingerprint_reads_bf16_and_fp16(tmp_path: Path) -> None:
    values = np.array([[1.5, -2.25], [0.0, 3.0]], dtype=np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype(np.uint16)
    save_file({"a": values.astype(np.float16)}, str(tmp_path / "h.safetensors"))
    (tmp_path / "b.safetensors").write_bytes(_bf16_file("b", bf16))
    assert np.array_equal(read_tensor(tmp_path / "h.safetensors", "a"), values)
    assert np.array_equal(read_tensor(tmp_path / "b.safetensors", "b"), values)
    with pytest.raises(KeyError, match="Stable Diffusion"):
        read_tensor(tmp_path / "h.safetensors", "missing")


def _bf16_file(name: str, raw: np.ndarray) -> bytes:
    import json
    import struct

    header = json.dumps(
        {name: {"dtype": "BF16", "shape": list(raw.shape), "data_offsets": [0, raw.nbytes]}}
    ).encode()
    return struct.pack("<Q", len(header)) + header + raw.tobytes()


def test_local_forms_resolve(forms: dict[str, Path], tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    folder = resolve_base_model(str(forms["folder"]), tmp_path, settings)
    assert (folder.path, folder.single_file, folder.variant) == (forms["folder"], False, None)
    fp16 = resolve_base_model(str(forms["fp16"]), tmp_path, settings)
    assert fp16.variant == "fp16"
    single = resolve_base_model(f"file://{forms['single']}", tmp_path, settings)
    assert (single.path, single.single_file) == (forms["single"], True)
    with pytest.raises(FileNotFoundError, match="not a diffusers folder"):
        resolve_base_model(str(tmp_path), tmp_path, settings)
    with pytest.raises(FileNotFoundError, match="no file"):
        resolve_base_model(str(tmp_path / "none.safetensors"), tmp_path, settings)
    broken = tmp_path / "broken"
    shutil.copytree(forms["folder"], broken)
    (broken / "vae/diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="lacks weights: .*vae"):
        resolve_base_model(str(broken), tmp_path, settings)


def test_hub_cache_layout_resolves_at_the_revision(
    forms: dict[str, Path], tmp_path: Path, offline: None
) -> None:
    _hub_cache(tmp_path, forms["folder"])
    settings = Settings(home=tmp_path)
    tagged = resolve_base_model("hf://org/tiny-sd@v1", tmp_path, settings)
    assert tagged.path.name == COMMIT
    assert base_model_fingerprint(tagged.path) == base_model_fingerprint(forms["folder"])
    by_field = resolve_base_model("hf://org/tiny-sd", tmp_path, settings, revision=COMMIT)
    assert by_field.path == tagged.path
    with pytest.raises(FileNotFoundError, match="not a diffusers folder"):
        resolve_base_model("hf://org/tiny-sd", tmp_path, settings)  # main: another commit


def test_hub_single_file_resolves_offline(
    forms: dict[str, Path], tmp_path: Path, offline: None
) -> None:
    storage = _hub_cache(tmp_path, forms["folder"])
    shutil.copyfile(forms["single"], storage / "snapshots" / COMMIT / "tiny.safetensors")
    resolved = resolve_base_model(
        "hf://org/tiny-sd@v1/tiny.safetensors", tmp_path, Settings(home=tmp_path)
    )
    assert resolved.single_file
    assert base_model_fingerprint(resolved.path) == base_model_fingerprint(forms["folder"])
