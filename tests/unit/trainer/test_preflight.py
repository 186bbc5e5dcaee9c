"""Bad input fails before training with one message that names what and where."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.trainer import make_trainer_job
from tuneforge.settings import Settings
from tuneforge_trainer.errors import InvalidTrainingInput, ServiceUnavailable
from tuneforge_trainer.preflight import check_mlflow, preflight


def _settings(tmp_path: Path, **values) -> Settings:
    base = {
        "home": tmp_path / "home",
        "s3_endpoint": None,
        "s3_access_key": None,
        "s3_secret_key": None,
    }
    return Settings(**{**base, **values})


def _check(job, tmp_path: Path, settings: Settings | None = None):
    settings = settings or _settings(tmp_path)
    return preflight(
        job, settings, f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "ckpt"), tmp_path / "cache"
    )


@pytest.fixture
def dataset_copy(tiny_dataset_dir, tmp_path) -> Path:
    target = tmp_path / "dataset"
    shutil.copytree(tiny_dataset_dir, target)
    return target


def test_a_valid_job_passes_and_returns_local_folders(tiny_model_dir, tiny_dataset_dir, tmp_path):
    job = make_trainer_job("lora", tiny_model_dir, tiny_dataset_dir)
    prepared = _check(job, tmp_path)
    assert prepared.model_config_dir == Path(tiny_model_dir)
    assert prepared.dataset_dir == Path(tiny_dataset_dir)


def test_empty_dataset(tiny_model_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    job = make_trainer_job("lora", tiny_model_dir, empty)
    with pytest.raises(InvalidTrainingInput, match=r"spec.dataset.uri .*empty: no images found"):
        _check(job, tmp_path)


def test_corrupt_images_are_listed(tiny_model_dir, dataset_copy, tmp_path):
    (dataset_copy / "instance" / "broken.png").write_bytes(b"\x89PNG not really")
    (dataset_copy / "instance" / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    job = make_trainer_job("lora", tiny_model_dir, dataset_copy)
    with pytest.raises(InvalidTrainingInput) as error:
        _check(job, tmp_path)
    message = str(error.value)
    assert "2 unreadable or corrupt images" in message
    assert "broken.png" in message and "truncated.jpg" in message


def test_a_caption_file_with_no_image_is_refused_before_training(
    tiny_model_dir, dataset_copy, tmp_path
):
    """The job has an instance prompt (the common case): the orphan is still refused."""
    (dataset_copy / "instance" / "misspelt-name.txt").write_text("a photo of sks toy\n")
    job = make_trainer_job("lora", tiny_model_dir, dataset_copy)
    assert job.spec.dataset.instance_prompt
    with pytest.raises(InvalidTrainingInput, match=r"misspelt-name\.txt"):
        _check(job, tmp_path)


def test_images_smaller_than_the_resolution(tiny_model_dir, tiny_dataset_dir, tmp_path):
    job = make_trainer_job("lora", tiny_model_dir, tiny_dataset_dir, dataset={"resolution": 128})
    with pytest.raises(
        InvalidTrainingInput, match=r"smaller than spec.dataset.resolution=128.*64x64"
    ):
        _check(job, tmp_path)


def test_unknown_lora_target_module(tiny_model_dir, tiny_dataset_dir, tmp_path):
    job = make_trainer_job(
        "lora", tiny_model_dir, tiny_dataset_dir, lora={"targetModules": ["to_q", "to_query"]}
    )
    with pytest.raises(InvalidTrainingInput, match=r"spec.lora.targetModules: \['to_query'\]"):
        _check(job, tmp_path)


def test_placeholder_token_already_in_vocabulary(tiny_model_dir, tiny_dataset_dir, tmp_path):
    job = make_trainer_job(
        "textualInversion",
        tiny_model_dir,
        tiny_dataset_dir,
        textualInversion={"placeholderToken": "photo", "initializerToken": "ball"},
    )
    with pytest.raises(InvalidTrainingInput, match=r"placeholderToken: \['photo'\] already in"):
        _check(job, tmp_path)


def test_initializer_must_be_one_token(tiny_model_dir, tiny_dataset_dir, tmp_path):
    job = make_trainer_job(
        "textualInversion",
        tiny_model_dir,
        tiny_dataset_dir,
        textualInversion={"placeholderToken": "<x>", "initializerToken": "object"},
    )
    with pytest.raises(InvalidTrainingInput, match="initializerToken 'object' is 3 tokens"):
        _check(job, tmp_path)


def test_missing_s3_credentials(tiny_model_dir, tmp_path):
    job = make_trainer_job("lora", tiny_model_dir, "s3://datasets/toys")
    with pytest.raises(
        InvalidTrainingInput,
        match=r"spec.dataset.uri on S3 but S3 credentials are "
        r"missing: set TUNEFORGE_S3_ENDPOINT, TUNEFORGE_S3_ACCESS_KEY",
    ):
        _check(job, tmp_path)


def test_unreachable_mlflow():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(
        ServiceUnavailable, match=f"MLflow at http://127.0.0.1:{port} is unreachable"
    ):
        check_mlflow(f"http://127.0.0.1:{port}", timeout_s=2)


def test_cli_exit_codes_and_one_line_errors(tiny_model_dir, tiny_dataset_dir, tmp_path):
    invalid = make_trainer_job("lora", tiny_model_dir, tiny_dataset_dir).to_manifest()
    invalid["spec"]["dataset"]["resolution"] = 63
    import json

    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TUNEFORGE_HOME": str(tmp_path / "h"),
        "OMP_NUM_THREADS": "1",
    }
    run = subprocess.run(
        [sys.executable, "-m", "tuneforge_trainer", "run", "--job", "-", "--check"],
        input=json.dumps(invalid),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert lines[-1].startswith(
        "tuneforge-trainer: error: invalid FineTuneJob: spec.dataset.resolution"
    )
    job_file = tmp_path / "job.yaml"
    from tuneforge.api import dump_job

    job_file.write_text(dump_job(make_trainer_job("lora", tiny_model_dir, tiny_dataset_dir)))
    run = subprocess.run(
        [sys.executable, "-m", "tuneforge_trainer", "run", "--job", str(job_file), "--check"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]


@pytest.fixture(scope="module")
def tiny_single_file(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model as one original-layout checkpoint."""
    from tuneforge.assets.sd15_random import write_single_file

    return write_single_file(tiny_model_dir, tmp_path_factory.mktemp("single") / "tiny.safetensors")


def _weight_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and ".safetensors" in p.name)


def test_a_single_file_checkpoint_is_checked_from_its_header(
    tiny_single_file, tiny_dataset_dir, tmp_path
):
    from tuneforge.assets.sd15 import TINY, config_dir

    settings = _settings(tmp_path)
    job = make_trainer_job("lora", tiny_single_file, tiny_dataset_dir)
    prepared = _check(job, tmp_path, settings)
    assert prepared.model_config_dir == config_dir(TINY, settings)
    assert _weight_files(prepared.model_config_dir) == []
    clash = make_trainer_job(
        "textualInversion",
        tiny_single_file,
        tiny_dataset_dir,
        textualInversion={"placeholderToken": "photo", "initializerToken": "ball"},
    )
    with pytest.raises(InvalidTrainingInput, match=r"placeholderToken: \['photo'\] already in"):
        _check(clash, tmp_path, settings)


def test_a_checkpoint_that_is_not_sd1_is_refused_before_training(tiny_dataset_dir, tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    other = tmp_path / "other.safetensors"
    save_file({"model.weight": np.zeros((2, 2), dtype=np.float32)}, str(other))
    job = make_trainer_job("lora", other, tiny_dataset_dir)
    with pytest.raises(InvalidTrainingInput, match=r"spec.baseModel.uri .*other.safetensors"):
        _check(job, tmp_path)


def test_a_pickled_checkpoint_is_refused_with_the_conversion(tiny_dataset_dir, tmp_path):
    ckpt = tmp_path / "v1-5-pruned-emaonly.ckpt"
    ckpt.write_bytes(b"not read")
    job = make_trainer_job("lora", ckpt, tiny_dataset_dir)
    with pytest.raises(InvalidTrainingInput, match=r"pickles .*convert"):
        _check(job, tmp_path)


@pytest.fixture
def s3_settings(s3, tmp_path) -> Settings:
    """Settings on the test S3 server."""
    return _settings(
        tmp_path, s3_endpoint=s3.url, s3_access_key=s3.access_key, s3_secret_key=s3.secret_key
    )


@pytest.mark.integration
def test_the_driver_reads_only_configs_of_an_s3_folder(
    s3, s3_settings, tiny_model_dir, tiny_dataset_dir, tmp_path
):
    from tuneforge.storage import upload_dir

    bucket = s3.make_bucket("preflight-models")
    upload_dir(tiny_model_dir, f"s3://{bucket}/tiny", s3_settings)
    job = make_trainer_job("lora", f"s3://{bucket}/tiny", tiny_dataset_dir)
    prepared = _check(job, tmp_path, s3_settings)
    folder = prepared.model_config_dir
    assert str(folder).startswith(str(tmp_path / "cache"))
    assert (folder / "unet" / "config.json").is_file() and (folder / "tokenizer").is_dir()
    assert _weight_files(tmp_path / "cache") == [], "the driver downloaded weights"
    s3.client().remove_object(bucket, "tiny/unet/diffusion_pytorch_model.safetensors")
    with pytest.raises(
        InvalidTrainingInput, match=r"lacks weights: unet/diffusion_pytorch_model.safetensors"
    ):
        _check(job, tmp_path, s3_settings)


@pytest.mark.integration
def test_the_driver_reads_only_the_header_of_an_s3_checkpoint(
    s3, s3_settings, tiny_single_file, tiny_dataset_dir, tmp_path
):
    from tuneforge.base_fingerprint import read_header

    bucket = s3.make_bucket("preflight-models")
    s3.client().fput_object(bucket, "sd/tiny.safetensors", str(tiny_single_file))
    job = make_trainer_job("lora", f"s3://{bucket}/sd/tiny.safetensors", tiny_dataset_dir)
    _check(job, tmp_path, s3_settings)
    cached = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    (header,) = [p for p in cached if "tiny.safetensors" in p.name]
    assert header.name == "tiny.safetensors.header"
    assert read_header(header) == read_header(tiny_single_file)
    with tiny_single_file.open("rb") as handle:
        (header_length,) = struct.unpack("<Q", handle.read(8))
    assert header.stat().st_size == 8 + header_length, "tensor data was downloaded"
