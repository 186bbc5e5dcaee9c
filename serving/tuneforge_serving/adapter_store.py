"""Adapters staged in host memory: fetched from the registry (S3) once, parsed, kept in an LRU.

Layers, slowest first: the registry's S3 artifacts -> the on-disk cache
(`cache_dir/adapters/<name>/<version>`, written by the registry's `fetch`, reused across
restarts) -> parsed tensors in host
memory (`host_cache_size` adapters) -> the pipeline slots (engine). Every artifact is
checked here: safetensors only, made for this base model (fingerprint), its tensors as
its manifest describes them (`manifest_check`). Errors are ServingErrors with their HTTP
status.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from safetensors import safe_open

from tuneforge.contract import (
    ADAPTER_MANIFEST,
    LORA_WEIGHTS,
    TI_EMBEDDINGS,
    AdapterManifest,
    AdapterRef,
)
from tuneforge_serving.embedding_slots import StagedEmbeddings
from tuneforge_serving.errors import AdapterRejected, LimitExceeded, Unavailable, hide_cause
from tuneforge_serving.jobs import pinned_ref
from tuneforge_serving.lora_format import StagedLora, read_lora_file
from tuneforge_serving.manifest_check import check_embeddings, check_lora

if TYPE_CHECKING:
    from tuneforge.registry import FetchedAdapter, ResolvedAdapter

log = logging.getLogger(__name__)


class AdapterSource(Protocol):
    """The registry interface serving uses (tuneforge.registry.AdapterRegistry)."""

    def resolve(self, reference: AdapterRef | str) -> ResolvedAdapter: ...

    def fetch(self, resolved: ResolvedAdapter, cache_dir: Path) -> FetchedAdapter: ...


@dataclass
class StagedAdapter:
    """An adapter parsed into host memory, ready to be copied into a slot."""

    key: AdapterRef
    """The exact version (`name/3`)."""
    manifest: AdapterManifest
    lora: StagedLora | None
    embeddings: StagedEmbeddings | None

    @property
    def rank(self) -> int:
        """The LoRA's rank (0 for embeddings only): the smallest slot rank it needs."""
        return self.lora.rank if self.lora is not None else 0

    @property
    def nbytes(self) -> int:
        """Host memory the tensors take."""
        return (self.lora.nbytes if self.lora else 0) + (
            self.embeddings.nbytes if self.embeddings else 0
        )


def check_token_clash(staged: list[StagedAdapter]) -> None:
    """422 when two adapters of one request define the same textual-inversion token.

    (Across requests of a mixed batch the same token is fine: each prompt is rewritten with
    its own adapters' slot tokens only.)
    """
    owners: dict[str, str] = {}
    for adapter in staged:
        for token in adapter.embeddings.vectors if adapter.embeddings else {}:
            if token in owners:
                raise LimitExceeded(
                    f"adapters {owners[token]} and {adapter.key} both define the token "
                    f"{token!r}; use one of them per request"
                )
            owners[token] = str(adapter.key)


def adapter_info(staged: StagedAdapter, weight: float) -> dict[str, Any]:
    """An adapter as a generation response reports it."""
    return {
        "name": staged.key.name,
        "version": staged.key.version,
        "weight": weight,
        "method": staged.manifest.method,
        "tokens": sorted(staged.embeddings.vectors) if staged.embeddings else [],
    }


def read_embeddings(path: Path, name: str) -> StagedEmbeddings:
    """A textual-inversion file `{token: (n, dim) or (dim,)}` (safetensors only)."""
    if path.suffix != ".safetensors":
        raise AdapterRejected(f"adapter {name}: {path.name} is not a .safetensors file")
    staged = StagedEmbeddings()
    try:
        with safe_open(str(path), framework="pt") as handle:
            for token in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
                tensor = handle.get_tensor(token).float()
                staged.vectors[token] = tensor.unsqueeze(0) if tensor.ndim == 1 else tensor
    except Exception as error:  # noqa: BLE001 - any parse failure means a bad artifact
        raise AdapterRejected(
            f"adapter {name}: {path.name} is not valid safetensors: {error}"
        ) from error
    if not staged.vectors:
        raise AdapterRejected(f"adapter {name}: {path.name} holds no embeddings")
    return staged


def load_staged(
    key: AdapterRef, folder: Path, manifest: AdapterManifest, fingerprint: str
) -> StagedAdapter:
    """Parse a fetched adapter folder after checking base model, file types and manifest."""
    name = str(key)
    if manifest.base_model_fingerprint and manifest.base_model_fingerprint != fingerprint:
        raise AdapterRejected(
            f"adapter {name} was trained on another base model (fingerprint "
            f"{manifest.base_model_fingerprint}) than this server runs ({fingerprint}); "
            "use an adapter trained on this server's base model"
        )
    unsafe = [f for f in manifest.files if not f.endswith(".safetensors")]
    if unsafe:
        raise AdapterRejected(
            f"adapter {name}: refusing non-safetensors artifact(s) {unsafe}; export safetensors"
        )
    if manifest.full_model:
        raise AdapterRejected(
            f"adapter {name} is a full DreamBooth fine-tune (it replaces the UNet), not an "
            "adapter: serve its exported folder as a base model, serve the LoRA extracted "
            f"from it (dreambooth.extractLora registers it as {key.name}-lora), or "
            "train it with dreambooth.exportLora: true to get a LoRA this server can hot-swap"
        )
    if manifest.lora is None and manifest.embeddings is None:
        found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise AdapterRejected(
            f"adapter {name}: its manifest lists neither {LORA_WEIGHTS} nor {TI_EMBEDDINGS} "
            f"(files: {found})"
        )
    lora = embeddings = None
    if manifest.lora is not None:
        lora = read_lora_file(_listed(folder, LORA_WEIGHTS, name), manifest.lora.alpha, name)
        check_lora(lora, manifest.lora, name)
    if manifest.embeddings is not None:
        embeddings = read_embeddings(_listed(folder, TI_EMBEDDINGS, name), name)
        check_embeddings(embeddings, manifest.embeddings, name)
    return StagedAdapter(key=key, manifest=manifest, lora=lora, embeddings=embeddings)


def _listed(folder: Path, file_name: str, name: str) -> Path:
    """`folder/file_name`, which the manifest lists; AdapterRejected when it is missing."""
    path = folder / file_name
    if not path.is_file():
        raise AdapterRejected(f"adapter {name}: {file_name} is in its manifest but not fetched")
    return path


class AdapterStore:
    """Host-memory LRU of staged adapters over an on-disk cache of fetched artifacts."""

    def __init__(
        self, source: AdapterSource, cache_dir: Path, capacity: int, fingerprint: str
    ) -> None:
        self.source = source
        self.cache_dir = cache_dir
        self.capacity = capacity
        self.fingerprint = fingerprint
        self._staged: OrderedDict[AdapterRef, StagedAdapter] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[AdapterRef, threading.Lock] = {}
        self.hits = 0
        self.misses = 0

    def _fetch(self, key: AdapterRef, resolved: Any) -> tuple[Path, AdapterManifest]:
        """The adapter's folder in the disk cache (the registry downloads it once)."""
        from tuneforge.errors import TuneForgeError, UnsafeArtifactError

        try:
            fetched = self.source.fetch(resolved, self.cache_dir / "adapters")
        except UnsafeArtifactError as error:
            rejected = AdapterRejected(
                f"adapter {key} cannot be served: its artifacts hold files other than "
                f"*.safetensors and {ADAPTER_MANIFEST}, which are never loaded; ask for "
                "another version"
            )
            raise hide_cause(rejected, error) from error
        except TuneForgeError as error:  # storage or registry down; details name their address
            unavailable = Unavailable(f"adapter {key} could not be fetched now; retry later")
            raise hide_cause(unavailable, error) from error
        return Path(fetched.path), fetched.manifest

    def get(self, resolved: Any) -> StagedAdapter:
        """The staged adapter for a resolved registry entry (fetching and parsing on a miss)."""
        key = pinned_ref(resolved)
        with self._lock:
            staged = self._staged.get(key)
            if staged is not None:
                self._staged.move_to_end(key)
                self.hits += 1
                return staged
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one fetch per adapter even when many requests ask at once
            with self._lock:
                staged = self._staged.get(key)
                if staged is not None:
                    self.hits += 1
                    return staged
            folder, manifest = self._fetch(key, resolved)
            staged = load_staged(key, folder, manifest, self.fingerprint)
            with self._lock:
                self.misses += 1
                self._staged[key] = staged
                self._staged.move_to_end(key)
                while len(self._staged) > self.capacity:
                    evicted, _ = self._staged.popitem(last=False)
                    log.info("Evicted adapter from host memory", extra={"adapter": str(evicted)})
            return staged
