"""Adapters staged in host memory: fetched from the registry (S3) once, parsed, kept in an LRU.

Layers, slowest first: the registry's S3 artifacts -> the on-disk cache
(`cache_dir/adapters/<name>/<version>`, written by the registry's `fetch`, reused across
restarts) -> parsed tensors in host
memory (`host_cache_size` adapters) -> the pipeline slots (engine). Every artifact is
checked here: safetensors only, made for this base model (fingerprint), within the
hot-swap contract. Errors are ServingErrors with their HTTP status.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from safetensors import safe_open

from tuneforge.adapter import LORA_WEIGHTS, TI_EMBEDDINGS, AdapterManifest
from tuneforge_serving.embedding_slots import StagedEmbeddings
from tuneforge_serving.errors import AdapterRejected, LimitExceeded, Unavailable
from tuneforge_serving.lora_format import StagedLora, read_lora_file

log = logging.getLogger(__name__)


class ResolvedLike(Protocol):
    """What the registry's `resolve` returns (tuneforge.registry.ResolvedAdapter)."""

    name: str
    version: int


class FetchedLike(Protocol):
    """What the registry's `fetch` returns (tuneforge.registry.FetchedAdapter)."""

    path: Path
    manifest: AdapterManifest


class AdapterSource(Protocol):
    """The registry interface serving uses (tuneforge.registry.AdapterRegistry)."""

    def resolve(self, reference: str) -> Any: ...

    def fetch(self, resolved: Any, cache_dir: Path) -> Any: ...


@dataclass(frozen=True, order=True)
class AdapterKey:
    """One adapter version."""

    name: str
    version: int

    def __str__(self) -> str:
        return f"{self.name}/{self.version}"


@dataclass
class StagedAdapter:
    """An adapter parsed into host memory, ready to be copied into a slot."""

    key: AdapterKey
    manifest: AdapterManifest
    lora: StagedLora | None
    embeddings: StagedEmbeddings | None

    @property
    def nbytes(self) -> int:
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
    key: AdapterKey, folder: Path, manifest: AdapterManifest, fingerprint: str
) -> StagedAdapter:
    """Parse a fetched adapter folder after checking base model and file types."""
    name = str(key)
    if manifest.base_model_fingerprint and manifest.base_model_fingerprint != fingerprint:
        raise AdapterRejected(
            f"adapter {name} was trained on base model {manifest.base_model!r} (fingerprint "
            f"{manifest.base_model_fingerprint}); this server runs fingerprint {fingerprint}"
        )
    unsafe = [f for f in manifest.files if not f.endswith(".safetensors")]
    if unsafe:
        raise AdapterRejected(
            f"adapter {name}: refusing non-safetensors artifact(s) {unsafe}; export safetensors"
        )
    lora_path, ti_path = folder / LORA_WEIGHTS, folder / TI_EMBEDDINGS
    lora = read_lora_file(lora_path, manifest.alpha, name) if lora_path.is_file() else None
    embeddings = read_embeddings(ti_path, name) if ti_path.is_file() else None
    if lora is None and embeddings is None and manifest.method == "dreambooth":
        raise AdapterRejected(
            f"adapter {name} is a full DreamBooth fine-tune (it replaces the UNet), not an "
            "adapter: serve its exported folder as a base model, or train it with "
            "dreambooth.exportLora: true to get a LoRA this server can hot-swap"
        )
    if lora is None and embeddings is None:
        found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise AdapterRejected(
            f"adapter {name}: neither {LORA_WEIGHTS} nor {TI_EMBEDDINGS} found (files: {found})"
        )
    return StagedAdapter(key=key, manifest=manifest, lora=lora, embeddings=embeddings)


class AdapterStore:
    """Host-memory LRU of staged adapters over an on-disk cache of fetched artifacts."""

    def __init__(
        self, source: AdapterSource, cache_dir: Path, capacity: int, fingerprint: str
    ) -> None:
        self.source = source
        self.cache_dir = cache_dir
        self.capacity = capacity
        self.fingerprint = fingerprint
        self._staged: OrderedDict[AdapterKey, StagedAdapter] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[AdapterKey, threading.Lock] = {}
        self.hits = 0
        self.misses = 0

    def _fetch(self, key: AdapterKey, resolved: Any) -> tuple[Path, AdapterManifest]:
        """The adapter's folder in the disk cache (the registry downloads it once)."""
        from tuneforge.errors import TuneForgeError, UnsafeArtifactError

        try:
            fetched = self.source.fetch(resolved, self.cache_dir / "adapters")
        except UnsafeArtifactError as error:
            raise AdapterRejected(f"adapter {key}: {error}") from error
        except TuneForgeError as error:
            raise Unavailable(f"adapter {key} could not be fetched: {error}") from error
        return Path(fetched.path), fetched.manifest

    def get(self, resolved: Any) -> StagedAdapter:
        """The staged adapter for a resolved registry entry (fetching and parsing on a miss)."""
        key = AdapterKey(resolved.name, int(resolved.version))
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

    def staged_keys(self) -> list[AdapterKey]:
        """Adapters in host memory, least recently used first."""
        with self._lock:
            return list(self._staged)

    def host_bytes(self) -> int:
        with self._lock:
            return sum(s.nbytes for s in self._staged.values())
