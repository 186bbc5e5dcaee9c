"""Registered adapters in MLflow: listing models, versions and aliases, and promoting."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any

from tuneforge.embedded.environment import local_artifact_root, tracking_uri
from tuneforge.errors import AdapterNotFoundError, ConfigurationError
from tuneforge.settings import Settings


@dataclass(frozen=True)
class AdapterVersion:
    """One registered version of an adapter."""

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
    """A registered model holding adapter versions."""

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


def _iso(millis: int | None) -> str | None:
    if not millis:
        return None
    from datetime import datetime, timezone

    return datetime.fromtimestamp(millis / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class AdapterCatalog:
    """The MLflow model registry as the SDK shows it."""

    def __init__(self, settings: Settings) -> None:
        """Use the tracking URI in `settings` (embedded: the SQLite store under home)."""
        self.settings = settings
        self.uri = tracking_uri(settings)

    def _client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def list(self) -> list[RegisteredAdapter]:
        """Every registered model with its versions and aliases, by name."""
        from mlflow.exceptions import MlflowException

        with local_artifact_root(self.settings):
            client = self._client()
            try:
                models = client.search_registered_models(max_results=1000)
                result = []
                for model in sorted(models, key=lambda m: m.name):
                    versions = client.search_model_versions(f"name = '{model.name}'")
                    result.append(self._adapter(model, versions))
            except MlflowException as exc:
                raise ConfigurationError(
                    f"cannot read the MLflow registry at {self.uri}: {exc.message}"
                ) from exc
        return result

    def promote(self, model: str, version: str | int, alias: str) -> None:
        """Point `alias` of registered model `model` at `version`."""
        from mlflow.exceptions import MlflowException

        with local_artifact_root(self.settings):
            client = self._client()
            try:
                client.get_model_version(model, str(version))
            except MlflowException:
                raise AdapterNotFoundError(
                    f"no version {version} of registered model {model!r} in {self.uri}: "
                    "list them with `tuneforge adapters`"
                ) from None
            client.set_registered_model_alias(model, alias, str(version))

    @staticmethod
    def _adapter(model: Any, versions: builtins.list[Any]) -> RegisteredAdapter:
        aliases_by_version: dict[str, list[str]] = {}
        for alias, version in (getattr(model, "aliases", None) or {}).items():
            aliases_by_version.setdefault(str(version), []).append(alias)
        ordered: builtins.list[Any] = sorted(versions, key=lambda v: int(v.version), reverse=True)
        return RegisteredAdapter(
            name=model.name,
            versions=tuple(
                AdapterVersion(
                    version=str(v.version),
                    aliases=tuple(
                        sorted(
                            set(aliases_by_version.get(str(v.version), []))
                            | set(getattr(v, "aliases", None) or [])
                        )
                    ),
                    run_id=v.run_id,
                    source=v.source or "",
                    job_name=(v.tags or {}).get("tuneforge.job_name"),
                    created=_iso(v.creation_timestamp),
                )
                for v in ordered
            ),
        )
