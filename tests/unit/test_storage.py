"""tuneforge.storage without a server: URI parsing, configuration errors, local copies."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tuneforge.errors import ConfigurationError, StorageError
from tuneforge.settings import Settings
from tuneforge.storage import (
    S3Uri,
    check_reachable,
    download_prefix,
    is_s3_uri,
    local_path,
    minio_client,
    upload_dir,
)

_S3_VARIABLES = (
    "TUNEFORGE_S3_ENDPOINT",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ENDPOINT_URL",
    "TUNEFORGE_S3_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "TUNEFORGE_S3_SECRET_KEY",
    "AWS_SECRET_ACCESS_KEY",
)


@pytest.fixture(autouse=True)
def _no_s3_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests build their own Settings: a session's services_env must not leak in."""
    for variable in _S3_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix"),
    [
        ("s3://data", "data", ""),
        ("s3://data/", "data", ""),
        ("s3://data/sets/dogs", "data", "sets/dogs"),
        ("s3://data/sets/dogs/", "data", "sets/dogs"),
        ("s3://my.bucket-1/a", "my.bucket-1", "a"),
    ],
)
def test_parse_valid_uris(uri: str, bucket: str, prefix: str) -> None:
    parsed = S3Uri.parse(uri)
    assert (parsed.bucket, parsed.prefix) == (bucket, prefix)
    assert S3Uri.parse(str(parsed)) == parsed


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("http://data/x", "not an S3 URI"),
        ("data/x", "not an S3 URI"),
        ("s3://", "has no bucket"),
        ("s3:///x", "has no bucket"),
        ("s3://Data/x", "not a valid bucket name"),
        ("s3://ab/x", "not a valid bucket name"),
        ("s3://a_b/x", "not a valid bucket name"),
        ("s3://data/a/../b", "'..'"),
        ("s3://data/a//b", "empty"),
    ],
)
def test_parse_rejects_bad_uris(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        S3Uri.parse(uri)


def test_join_and_key() -> None:
    base = S3Uri.parse("s3://data/runs")
    assert str(base.join("r1", "/adapter/")) == "s3://data/runs/r1/adapter"
    assert base.key("x/y.bin") == "runs/x/y.bin"
    assert S3Uri.parse("s3://data").key("/y") == "y"


def test_is_s3_uri_and_local_path(tmp_path: Path) -> None:
    assert is_s3_uri("s3://b/x") and not is_s3_uri("/tmp/x") and not is_s3_uri(None)
    assert local_path("file:///tmp/a%20b") == Path("/tmp/a b")
    assert local_path(str(tmp_path)) == tmp_path
    assert local_path("mlflow-artifacts:/1/abc/artifacts") is None
    assert local_path("s3://b/x") is None


def test_missing_settings_name_the_variables(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, s3_endpoint="127.0.0.1:9", s3_access_key=None)
    with pytest.raises(ConfigurationError) as info:
        minio_client(settings)
    assert "TUNEFORGE_S3_ACCESS_KEY" in str(info.value)
    assert "TUNEFORGE_S3_SECRET_KEY" in str(info.value)
    assert "TUNEFORGE_S3_ENDPOINT" not in str(info.value)
    with pytest.raises(ConfigurationError, match="TUNEFORGE_S3_ENDPOINT"):
        download_prefix("s3://data/x", tmp_path / "out", Settings(home=tmp_path))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_endpoint_fails_fast_and_clearly(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        s3_endpoint=f"http://127.0.0.1:{_closed_port()}",
        s3_access_key="a",
        s3_secret_key="b",
    )
    with pytest.raises(StorageError, match=r"unreachable.*TUNEFORGE_S3_ENDPOINT"):
        check_reachable(settings)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_local_download_copies_tree_skips_equal_files_and_reports_progress(
    tmp_path: Path,
) -> None:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_bytes(b"a" * 10)
    (source / "sub" / "b.txt").write_bytes(b"b" * 30)
    dest = tmp_path / "dest"
    calls: list[tuple[int, int]] = []
    paths = download_prefix(f"file://{source}", dest, progress=lambda d, t: calls.append((d, t)))
    assert paths == [dest / "a.txt", dest / "sub" / "b.txt"]
    assert _tree(dest) == _tree(source)
    assert calls[-1] == (40, 40)

    # A file of equal size is kept (resume); a different size is replaced.
    (dest / "a.txt").write_bytes(b"x" * 10)
    (dest / "sub" / "b.txt").write_bytes(b"short")
    download_prefix(source, dest)
    assert (dest / "a.txt").read_bytes() == b"x" * 10
    assert (dest / "sub" / "b.txt").read_bytes() == b"b" * 30


def test_local_single_file_and_missing_source(tmp_path: Path) -> None:
    source = tmp_path / "one.bin"
    source.write_bytes(b"1")
    assert download_prefix(str(source), tmp_path / "d") == [tmp_path / "d" / "one.bin"]
    with pytest.raises(StorageError, match="does not exist"):
        download_prefix(tmp_path / "nope", tmp_path / "d2")


def test_upload_dir_to_local_target_and_bad_source(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "w.safetensors").write_bytes(b"w")
    uploaded = upload_dir(source, f"file://{tmp_path / 'dst'}")
    assert uploaded == [str(tmp_path / "dst" / "w.safetensors")]
    with pytest.raises(StorageError, match="not a directory"):
        upload_dir(tmp_path / "missing", "s3://data/x")
