"""Generated DreamBooth class images, shared by every job that would render the same pixels.

A set of generated class images is a pure function of a `ClassImageKey`: the base model's
weights (`tuneforge.base_fingerprint`), the class prompt, resolution, count, first seed, and
how they are rendered (sampling scheduler and its config, steps, guidance scale, precision,
device kind, diffusers version). Sets live under the cache root (`<checkpoint storage>/
class-images`, S3 or a local folder, hence inside the team's own storage prefix):

    <root>/<sha256 of the key's canonical JSON>/manifest.json      the key in clear + file list
    <root>/<sha256 …>/<run>/generated-NNNNN.png (+ .json records)  what job <run> rendered

Each job renders into its own `<run>/` folder, so racing jobs never overwrite each other's
images; the manifest is written last, in one atomic write (an S3 PUT, or a rename locally),
and names the files of one complete folder with their sizes and sha256. A folder is trusted
only through a manifest whose key matches and whose every file is there with its hash; a
folder without one (an interrupted upload) is never read. Two racing jobs both render and
both publish: the last manifest wins, and either one describes a complete set.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from tuneforge.adapters.importer import file_sha256
from tuneforge.errors import StorageError
from tuneforge.settings import Settings
from tuneforge.storage import download_prefix, is_s3_uri, local_path, upload_dir

MANIFEST = "manifest.json"
CACHE_FOLDER = "class-images"
"""The cache root's name under the checkpoint storage."""
CLASS_IMAGES_TAG = "tuneforge.class_images"
"""MLflow run tag: `reused` (taken from the cache) or `generated` (rendered by this job)."""
CLASS_IMAGES_KEY_TAG = "tuneforge.class_images_key"
"""MLflow run tag: the cache key (sha256 of the key's canonical JSON)."""
CLASS_IMAGES_URI_TAG = "tuneforge.class_images_uri"
"""MLflow run tag: the cache folder of the set the job trained on."""
SCHEMA = 1


class ClassImageKey(BaseModel):
    """Everything that decides the pixels of a generated class-image set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA
    base_fingerprint: str
    """`tuneforge.base_fingerprint.base_model_fingerprint` of the base weights."""
    class_prompt: str
    resolution: int
    count: int
    """Images in the set (image `i` is seeded `seed + i`)."""
    seed: int
    steps: int
    guidance_scale: float
    scheduler: dict[str, object]
    """The sampling scheduler's class and config (private `_` keys left out)."""
    precision: str
    """`training.mixedPrecision`: the autocast the images are rendered under."""
    device: str
    """Device kind (`cpu`, `cuda`): the same seeds render slightly different pixels."""
    diffusers: str
    """diffusers' version (its schedulers and pipeline decide the pixels too)."""

    def canonical(self) -> str:
        """The key as canonical JSON (sorted keys, no spaces)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        """sha256 of `canonical()`: the cache folder's name."""
        return hashlib.sha256(self.canonical().encode()).hexdigest()


class CachedFile(BaseModel):
    """One file of a published set."""

    path: str
    """Relative to the key's folder: `<run>/generated-NNNNN.png`."""
    size: int = Field(ge=0)
    sha256: str


class CacheManifest(BaseModel):
    """`manifest.json`: the key in clear and every file of the set."""

    key: ClassImageKey
    files: list[CachedFile]
    generated_by: str
    """The run (`<job>-<uid hash>`) that rendered the set."""


def generated_name(index: int) -> str:
    """The file name of generated class image `index`."""
    return f"generated-{index:05d}.png"


class ClassImageCache:
    """The cache folder of one key under `root` (an `s3://` prefix or a local folder)."""

    def __init__(self, root: str, key: ClassImageKey, settings: Settings):
        self.key = key
        self.settings = settings
        self.uri = f"{root.rstrip('/')}/{key.digest()}"

    def run_uri(self, run: str) -> str:
        """Where job `run` uploads what it renders."""
        return f"{self.uri}/{run}"

    def read_manifest(self) -> CacheManifest | None:
        """The published manifest, or None (absent, unreadable, or for another key)."""
        with tempfile.TemporaryDirectory(prefix="tuneforge-class-manifest-") as tmp:
            try:
                download_prefix(f"{self.uri}/{MANIFEST}", tmp, self.settings)
                manifest = CacheManifest.model_validate_json((Path(tmp) / MANIFEST).read_text())
            except (StorageError, OSError, ValueError):
                return None
        return manifest if manifest.key == self.key else None

    def fetch(self, dest: Path) -> CacheManifest | None:
        """Download a complete published set into `dest` (emptied first); None when there is
        none, or when any listed file is missing or differs from its size and hash."""
        manifest = self.read_manifest()
        if manifest is None:
            return None
        listed = {PathParts.name(item.path) for item in manifest.files}
        if any(generated_name(i) not in listed for i in range(self.key.count)):
            return None
        runs = {PathParts.run(item.path) for item in manifest.files}
        if len(runs) != 1 or None in runs:
            return None
        (run,) = runs
        assert run is not None
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        try:
            download_prefix(self.run_uri(run), dest, self.settings)
        except StorageError:
            return None
        for item in manifest.files:
            path = dest / PathParts.name(item.path)
            if not path.is_file() or path.stat().st_size != item.size:
                return None
            if file_sha256(path) != item.sha256:
                return None
        for extra in [p for p in dest.iterdir() if p.name not in listed]:
            extra.unlink()  # left by an earlier, interrupted attempt of that run
        return manifest

    def publish(self, run: str, folder: Path, names: list[str]) -> CacheManifest:
        """Write the manifest of `names` in `folder` (as uploaded to `run_uri(run)`): last,
        atomically. Call only once every file is uploaded."""
        files = [
            CachedFile(
                path=f"{run}/{name}",
                size=(folder / name).stat().st_size,
                sha256=file_sha256(folder / name),
            )
            for name in sorted(names)
        ]
        manifest = CacheManifest(key=self.key, files=files, generated_by=run)
        text = manifest.model_dump_json(indent=1) + "\n"
        with tempfile.TemporaryDirectory(prefix="tuneforge-class-manifest-") as tmp:
            staged = Path(tmp) / MANIFEST
            staged.write_text(text)
            if is_s3_uri(self.uri):
                upload_dir(tmp, self.uri, self.settings)  # one PUT: atomic on S3
            else:
                target = local_path(self.uri)
                assert target is not None
                target.mkdir(parents=True, exist_ok=True)
                partial = target / f".{MANIFEST}.{os.getpid()}.part"
                shutil.copyfile(staged, partial)
                partial.replace(target / MANIFEST)  # a rename: atomic on POSIX
        return manifest


class PathParts:
    """`<run>/<name>` paths of a manifest, checked (no other depth, no `..`)."""

    @staticmethod
    def run(path: str) -> str | None:
        parts = path.split("/")
        if len(parts) != 2 or any(part in ("", ".", "..") for part in parts):
            return None
        return parts[0]

    @staticmethod
    def name(path: str) -> str:
        return path.rsplit("/", 1)[-1]
