"""Inputs (datasets, model folders) as local folders: one `materialize` for trainer and serving.

- a local path or `file://` URI is used where it is (`~` expanded);
- `s3://bucket/prefix` is downloaded once to `<cache>/s3/<bucket>/<prefix>`, under a file
  lock and with a `.tuneforge-complete` marker, so the workers of one node share one copy
  and a resumed job does not download again; object keys that would leave that folder
  (`..`, absolute) are refused (`tuneforge.storage.download_prefix`);
- `hf://` names a base model on the Hugging Face Hub: `tuneforge.base_model.resolve_base_model`
  fetches only the files a pipeline loads, at a revision; `materialize` refuses it.

Endpoints and credentials come from `Settings`, never from a job.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tuneforge.settings import Settings
from tuneforge.storage import download_prefix, is_s3_uri, local_path

COMPLETE_MARKER = ".tuneforge-complete"
"""File written into a downloaded folder once every object is there."""
HF_SCHEME = "hf://"


def materialize(uri: str, cache_dir: Path, settings: Settings) -> Path:
    """A local folder holding what `uri` names (downloading `s3://` once).

    An `s3://` URI naming one object gives a folder holding that object. ValueError for
    `hf://` (a base model: resolve it with `tuneforge.base_model.resolve_base_model`) and
    any other scheme; StorageError when nothing is at an `s3://` URI or a key is unsafe.
    """
    if is_s3_uri(uri):
        return _materialize_s3(uri, cache_dir, settings)
    if uri.startswith(HF_SCHEME):
        raise ValueError(
            f"{uri!r} names a Hub model: resolve base models with "
            "tuneforge.base_model.resolve_base_model (it fetches only the pipeline's files)"
        )
    path = local_path(uri)
    if path is None:
        raise ValueError(f"unsupported URI {uri!r}: use a local path or s3://bucket/prefix")
    return path.expanduser()


def s3_cache_dir(uri: str, cache_dir: Path) -> Path:
    """Where `materialize` keeps the download of `uri`."""
    rest = uri.removeprefix("s3://").strip("/")
    safe = "".join(char if char.isalnum() or char in "-_./" else "_" for char in rest)
    return cache_dir / "s3" / safe.replace("..", "_")


def _materialize_s3(uri: str, cache_dir: Path, settings: Settings) -> Path:
    dest = s3_cache_dir(uri, cache_dir)
    marker = dest / COMPLETE_MARKER
    lock = cache_dir / "locks" / (hashlib.sha256(uri.encode()).hexdigest()[:16] + ".lock")
    with _locked(lock):
        if not marker.exists():
            dest.mkdir(parents=True, exist_ok=True)
            download_prefix(uri, dest, settings)
            marker.write_text(uri)
    return dest


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
