"""Download caps on a real S3 server (SeaweedFS): a download larger than
`TUNEFORGE_DOWNLOAD_MAX_OBJECTS`/`_BYTES` is refused before the first byte, naming the cap."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.services import S3Service
from tuneforge.errors import StorageError
from tuneforge.inputs import materialize
from tuneforge.settings import Settings

pytestmark = pytest.mark.integration


def _settings(s3: S3Service, home: Path, **caps: Any) -> Settings:
    return Settings(
        home=home,
        s3_endpoint=s3.url,
        s3_access_key=s3.access_key,
        s3_secret_key=s3.secret_key,
        **caps,
    )


@pytest.fixture
def dataset(s3: S3Service) -> str:
    """Three objects of 1000 bytes under a fresh prefix."""
    bucket = s3.make_bucket("caps")
    prefix = f"ds-{uuid.uuid4().hex[:8]}"
    for index in range(3):
        data = bytes([index]) * 1000
        s3.client().put_object(bucket, f"{prefix}/{index}.png", io.BytesIO(data), len(data))
    return f"s3://{bucket}/{prefix}"


@pytest.mark.parametrize(
    ("caps", "message"),
    [
        (
            {"download_max_objects": 2},
            "holds 3 objects, more than the download cap TUNEFORGE_DOWNLOAD_MAX_OBJECTS=2",
        ),
        (
            {"download_max_bytes": "2500B"},
            "holds 3000 bytes, more than the download cap TUNEFORGE_DOWNLOAD_MAX_BYTES=2500",
        ),
    ],
)
def test_a_download_over_a_cap_is_refused_before_any_byte(
    s3: S3Service, dataset: str, tmp_path: Path, caps: dict[str, Any], message: str
) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(StorageError, match=message) as raised:
        materialize(dataset, cache, _settings(s3, tmp_path, **caps))
    assert "narrow the URI" in str(raised.value)
    assert not [p for p in cache.rglob("*") if p.is_file() and p.suffix != ".lock"]


def test_a_download_at_the_caps_passes(s3: S3Service, dataset: str, tmp_path: Path) -> None:
    settings = _settings(s3, tmp_path, download_max_objects=3, download_max_bytes=3000)
    folder = materialize(dataset, tmp_path / "cache", settings)
    assert sorted(p.name for p in folder.glob("*.png")) == ["0.png", "1.png", "2.png"]
