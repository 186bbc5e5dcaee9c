"""What the registry returns: registered, resolved and fetched adapter versions, listings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tuneforge.contract import AdapterManifest, AdapterRef


@dataclass(frozen=True)
class RegisteredVersion:
    """The model version `register` created (or found, when the job was registered before)."""

    name: str
    """Registered model name."""
    version: int
    """Version number."""
    source: str
    """Artifact URI of the adapter folder."""
    run_id: str
    """MLflow run whose artifacts hold the adapter."""


@dataclass(frozen=True)
class ResolvedAdapter:
    """One model version a reference points at."""

    name: str
    """Registered model name."""
    version: int
    """Version number."""
    source: str
    """Artifact URI of the adapter folder (s3://, a local path, mlflow-artifacts:/...)."""
    run_id: str | None
    """MLflow run that produced it."""
    aliases: tuple[str, ...] = ()
    """Aliases pointing at this version."""

    @property
    def ref(self) -> AdapterRef:
        """`name/version` as a reference."""
        return AdapterRef(self.name, self.version)


@dataclass(frozen=True)
class FetchedAdapter:
    """An adapter's files on local disk, with its parsed manifest."""

    path: Path
    """Folder holding the weights and the manifest."""
    manifest: AdapterManifest
    """The parsed `tuneforge-adapter.json`."""
    name: str = ""
    """Registered model name."""
    version: int = 0
    """Version number."""


@dataclass(frozen=True)
class AdapterSummary:
    """A registered model as `list_adapters` shows it (serving's adapter listing)."""

    name: str
    """Registered model name."""
    latest_version: int | None
    """Highest version number (None without versions)."""
    aliases: dict[str, str] = field(default_factory=dict)
    """Alias -> version (as a string, like MLflow)."""
    versions: list[int] = field(default_factory=list)
    """Every version number, ascending."""


@dataclass(frozen=True)
class AdapterVersion:
    """One registered version of an adapter, as the SDK's `Client.adapters()` shows it."""

    version: str
    """Version number (as MLflow returns it, a string)."""
    aliases: tuple[str, ...] = ()
    """Aliases pointing at this version."""
    run_id: str | None = None
    """MLflow run that produced it."""
    source: str = ""
    """Artifact URI of the adapter files."""
    job_name: str | None = None
    """FineTuneJob that trained it (tag `tuneforge.job_name`), when known."""
    created: str | None = None
    """Creation time (RFC 3339)."""


@dataclass(frozen=True)
class RegisteredAdapter:
    """A registered model holding adapter versions, with every version's details."""

    name: str
    """Registered model name."""
    versions: tuple[AdapterVersion, ...] = field(default_factory=tuple)
    """Versions, newest first."""

    @property
    def aliases(self) -> dict[str, str]:
        """Alias → version."""
        return {alias: v.version for v in self.versions for alias in v.aliases}

    @property
    def latest(self) -> AdapterVersion | None:
        """The newest version."""
        return self.versions[0] if self.versions else None
