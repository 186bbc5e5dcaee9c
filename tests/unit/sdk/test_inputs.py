"""`tuneforge.inputs.materialize`: local paths, s3:// downloads (once, traversal-checked).

`hf://` is a base model: `tuneforge.base_model` resolves it (tests/unit/sdk/test_base_model.py).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tuneforge.errors import StorageError
from tuneforge.inputs import COMPLETE_MARKER, materialize, s3_cache_dir
from tuneforge.settings import Settings


@dataclass
class _Object:
    object_name: str
    size: int
    is_dir: bool = False


class _Response(io.BytesIO):
    def stream(self, chunk: int) -> Any:
        yield self.read()

    def release_conn(self) -> None:
        pass


class _FakeMinio:
    """Stands in for minio's client: a dict of key -> bytes in one bucket."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.downloads: list[str] = []

    def list_objects(self, bucket: str, prefix: str, recursive: bool) -> list[_Object]:
        return [_Object(k, len(v)) for k, v in self.objects.items() if k.startswith(prefix)]

    def get_object(self, bucket: str, key: str) -> _Response:
        self.downloads.append(key)
        return _Response(self.objects[key])


@pytest.fixture
def fake_s3(monkeypatch: pytest.MonkeyPatch) -> _FakeMinio:
    fake = _FakeMinio({})
    monkeypatch.setattr("tuneforge.storage.minio_client", lambda settings=None: fake)
    return fake


def test_local_paths_are_used_where_they_are(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert materialize(str(tmp_path / "data"), tmp_path / "cache", settings) == tmp_path / "data"
    assert materialize(f"file://{tmp_path}/d", tmp_path / "cache", settings) == tmp_path / "d"
    assert materialize("data/dogs", tmp_path, settings) == Path("data/dogs")
    assert materialize("~/models", tmp_path, settings) == Path.home() / "models"
    with pytest.raises(ValueError, match="unsupported URI 'gs://b/x'"):
        materialize("gs://b/x", tmp_path, settings)
    with pytest.raises(ValueError, match="resolve_base_model"):
        materialize("hf://org/sd", tmp_path, settings)


def test_s3_is_downloaded_once_with_a_marker(tmp_path: Path, fake_s3: _FakeMinio) -> None:
    fake_s3.objects.update({"sd/model_index.json": b"{}", "sd/unet/w.safetensors": b"w"})
    settings = Settings(home=tmp_path)
    folder = materialize("s3://models/sd", tmp_path / "cache", settings)
    assert folder == s3_cache_dir("s3://models/sd", tmp_path / "cache")
    assert (folder / "unet" / "w.safetensors").read_bytes() == b"w"
    assert (folder / COMPLETE_MARKER).read_text() == "s3://models/sd"
    assert materialize("s3://models/sd", tmp_path / "cache", settings) == folder
    assert sorted(fake_s3.downloads) == ["sd/model_index.json", "sd/unet/w.safetensors"]


def test_s3_keys_that_leave_the_folder_are_refused(tmp_path: Path, fake_s3: _FakeMinio) -> None:
    fake_s3.objects.update({"sd/model_index.json": b"{}", "sd/../../../escaped.txt": b"x"})
    with pytest.raises(StorageError, match="unsafe relative path"):
        materialize("s3://models/sd", tmp_path / "cache", Settings(home=tmp_path))
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not (s3_cache_dir("s3://models/sd", tmp_path / "cache") / COMPLETE_MARKER).exists()


def test_s3_single_object_lands_in_its_own_folder(tmp_path: Path, fake_s3: _FakeMinio) -> None:
    fake_s3.objects.update({"ckpt/sd15.safetensors": b"weights", "ckpt/sd15.safetensors.bak": b"x"})
    fake_s3.stat_object = lambda bucket, key: _Object(key, len(fake_s3.objects[key]))  # type: ignore[attr-defined]
    folder = materialize(
        "s3://models/ckpt/sd15.safetensors", tmp_path / "cache", Settings(home=tmp_path)
    )
    assert (folder / "sd15.safetensors").read_bytes() == b"weights"
    assert fake_s3.downloads == ["ckpt/sd15.safetensors"]
