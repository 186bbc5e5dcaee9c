"""Base models from a real S3 server: a diffusers folder and a single file, same fingerprint.

The S3 copies resolve through `tuneforge.base_model.resolve_base_model` (downloaded once)
and fingerprint like the local folder they were uploaded from.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.services import S3Service
from tuneforge.assets.sd15_random import write_single_file
from tuneforge.base_fingerprint import base_model_fingerprint
from tuneforge.base_model import resolve_base_model
from tuneforge.settings import Settings
from tuneforge.storage import ensure_bucket, upload_dir

pytestmark = pytest.mark.integration


def test_s3_folder_and_single_file_fingerprint_like_the_local_folder(
    s3: S3Service, tiny_model_dir: Path, tmp_path: Path
) -> None:
    settings = Settings(
        home=tmp_path,
        s3_endpoint=s3.url,
        s3_access_key=s3.access_key,
        s3_secret_key=s3.secret_key,
    )
    ensure_bucket("s3://base-models", settings)
    upload_dir(tiny_model_dir, "s3://base-models/tiny-sd", settings)
    single = write_single_file(tiny_model_dir, tmp_path / "upload" / "tiny.safetensors")
    upload_dir(single.parent, "s3://base-models/checkpoints", settings)

    cache = tmp_path / "cache"
    folder = resolve_base_model("s3://base-models/tiny-sd", cache, settings)
    one_file = resolve_base_model("s3://base-models/checkpoints/tiny.safetensors", cache, settings)
    assert not folder.single_file and one_file.single_file
    assert one_file.path.name == "tiny.safetensors" and one_file.path.is_relative_to(cache)
    expected = base_model_fingerprint(tiny_model_dir)
    assert base_model_fingerprint(folder.path) == expected
    assert base_model_fingerprint(one_file.path) == expected
    assert resolve_base_model("s3://base-models/tiny-sd/", cache, settings).path == folder.path
