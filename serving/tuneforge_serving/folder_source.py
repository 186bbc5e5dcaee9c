"""`FolderAdapterSource`: the registry interface over local adapter folders (no MLflow, no S3).

The engine takes any adapter source with the registry's `resolve` and `fetch`; this one
serves folders that hold `tuneforge-adapter.json` and weights, registered in memory as
versions 1, 2, … of a name. Tests, benchmarks and in-process experiments use it where the
MLflow registry would be in the way.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from tuneforge.contract import ADAPTER_MANIFEST, AdapterManifest, AdapterRef

if TYPE_CHECKING:
    from tuneforge.registry import AdapterSummary, FetchedAdapter, ResolvedAdapter


class FolderAdapterSource:
    """`name` -> versions of local folders; `resolve` and `fetch` like `AdapterRegistry`."""

    def __init__(self) -> None:
        self.versions: dict[str, list[Path]] = {}
        self.fetches = 0

    def add(self, name: str, folder: Path) -> int:
        """Register `folder` as the next version of `name`; returns the version."""
        self.versions.setdefault(name, []).append(folder)
        return len(self.versions[name])

    def resolve(self, reference: AdapterRef | str) -> ResolvedAdapter:
        """`name` (latest) or `name/VERSION`; AdapterNotFoundError otherwise (no aliases)."""
        from tuneforge.errors import AdapterNotFoundError
        from tuneforge.registry import ResolvedAdapter

        ref = reference if isinstance(reference, AdapterRef) else AdapterRef.parse(reference)
        folders = self.versions.get(ref.name)
        if not folders or ref.alias is not None or not 0 < (ref.version or 1) <= len(folders):
            raise AdapterNotFoundError(f"adapter '{ref}' is not registered")
        number = ref.version or len(folders)
        return ResolvedAdapter(
            name=ref.name, version=number, source=str(folders[number - 1]), run_id=None
        )

    def list_adapters(self) -> list[AdapterSummary]:
        """Every name with its versions (no aliases)."""
        from tuneforge.registry import AdapterSummary

        return [
            AdapterSummary(name, len(folders), {}, list(range(1, len(folders) + 1)))
            for name, folders in sorted(self.versions.items())
        ]

    def fetch(self, resolved: ResolvedAdapter, cache_dir: Path) -> FetchedAdapter:
        """Copy the version's folder to `cache_dir/<name>/<version>` and read its manifest."""
        from tuneforge.registry import FetchedAdapter

        self.fetches += 1
        target = Path(cache_dir) / resolved.name / str(resolved.version)
        shutil.copytree(resolved.source, target, dirs_exist_ok=True)
        manifest = AdapterManifest.model_validate_json((target / ADAPTER_MANIFEST).read_text())
        return FetchedAdapter(target, manifest, resolved.name, resolved.version)
