"""Models and datasets as local folders: local paths as they are, `s3://` downloaded once.

Downloads go to `<cache>/s3/<bucket>/<prefix>` under a file lock, with a `.complete` marker,
so the workers of one node share one copy and a resumed job does not download again.
Endpoints and credentials come from `tuneforge.settings.Settings`, never from the job.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tuneforge.settings import Settings

COMPLETE_MARKER = ".tuneforge-complete"


def local_path(uri: str) -> Path | None:
    """The path of a local URI (`/x`, `./x`, `file:///x`); None for remote ones."""
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    if uri.startswith(("/", "./")):
        return Path(uri)
    return None


def is_s3(uri: str) -> bool:
    """Whether `uri` is an `s3://` URI."""
    return uri.startswith("s3://")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def s3_cache_dir(uri: str, cache_dir: Path) -> Path:
    """Where `uri` is cached."""
    rest = uri.removeprefix("s3://").strip("/")
    safe = "".join(char if char.isalnum() or char in "-_./" else "_" for char in rest)
    return cache_dir / "s3" / safe.replace("..", "_")


def materialize(uri: str, cache_dir: Path, settings: Settings) -> Path:
    """A local folder holding what `uri` names (downloading `s3://` and `hf://` once)."""
    path = local_path(uri)
    if path is not None:
        return path
    if is_s3(uri):
        from tuneforge.storage import download_prefix

        dest = s3_cache_dir(uri, cache_dir)
        marker = dest / COMPLETE_MARKER
        lock = cache_dir / "locks" / (hashlib.sha256(uri.encode()).hexdigest()[:16] + ".lock")
        with _locked(lock):
            if not marker.exists():
                dest.mkdir(parents=True, exist_ok=True)
                download_prefix(uri, dest, settings)
                marker.write_text(uri)
        return dest
    if uri.startswith("hf://"):
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(uri.removeprefix("hf://"), cache_dir=str(cache_dir / "hf")))
    raise ValueError(
        f"unsupported URI {uri!r}: use a local path, s3://bucket/prefix or hf://org/name"
    )
