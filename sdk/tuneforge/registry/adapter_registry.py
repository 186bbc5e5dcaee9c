"""`AdapterRegistry`: the one object trainer, serving and SDK use to reach adapters in MLflow."""

from __future__ import annotations

from pathlib import Path

from tuneforge.contract import ADAPTER_ARTIFACT_PATH, AdapterManifest, AdapterRef
from tuneforge.registry.fetch import fetch_adapter, resolve_adapter
from tuneforge.registry.listing import describe_adapters, list_adapters, promote_adapter
from tuneforge.registry.mlflow_store import MlflowStore
from tuneforge.registry.register import register_adapter
from tuneforge.registry.results import (
    AdapterSummary,
    FetchedAdapter,
    RegisteredAdapter,
    RegisteredVersion,
    ResolvedAdapter,
)
from tuneforge.registry.retry import RetryPolicy
from tuneforge.settings import Settings


class AdapterRegistry:
    """The MLflow model registry, as TuneForge stores adapters in it."""

    def __init__(self, settings: Settings | None = None) -> None:
        """Use settings.mlflow_tracking_uri, else the embedded SQLite store under home."""
        self.settings = settings or Settings()
        self.store = MlflowStore(self.settings)
        self.tracking_uri = self.store.tracking_uri

    def check_reachable(self, timeout_s: float = 3.0) -> None:
        """Fail fast (one try, short timeout) with RegistryError when MLflow is unreachable."""
        self.store.check_reachable(timeout_s)

    def register(
        self,
        run_id: str,
        local_dir: str | Path,
        manifest: AdapterManifest,
        name: str,
        alias: str | None = None,
        tags: dict[str, str] | None = None,
        kept_at: str | None = None,
        artifact_path: str = ADAPTER_ARTIFACT_PATH,
    ) -> RegisteredVersion:
        """Upload the adapter folder as run artifacts and register it as a model version.

        Idempotent per job (`manifest.job_uid`) or, without one, per run; see
        `tuneforge.registry.register.register_adapter`. While MLflow does not answer, the
        whole registration is repeated within `RetryPolicy.from_settings(settings)`; then
        RegistryUnavailableError names the URI and where the adapter stays (`kept_at`, e.g.
        the checkpoint it came from; default the folder). `artifact_path`: the run's artifact
        folder for the files (`adapter`; a second adapter of the same run needs its own).
        """
        return RetryPolicy.from_settings(self.settings).call(
            lambda: register_adapter(
                self.store, run_id, local_dir, manifest, name, alias, tags, artifact_path
            ),
            self.tracking_uri,
            f"registering {name!r} from run {run_id}",
            kept_at or str(local_dir),
        )

    def resolve(self, ref: AdapterRef | str) -> ResolvedAdapter:
        """`name@alias`, `name/3` or `name` (latest version) -> the model version."""
        return resolve_adapter(self.store, ref)

    def fetch(self, resolved: ResolvedAdapter, cache_dir: str | Path) -> FetchedAdapter:
        """The adapter's files under `cache_dir/<name>/<version>` (downloaded once, checked)."""
        return fetch_adapter(self.store, resolved, cache_dir)

    def list_adapters(self) -> list[AdapterSummary]:
        """Every registered model with its version numbers and aliases, sorted by name."""
        return list_adapters(self.store)

    def describe_adapters(self) -> list[RegisteredAdapter]:
        """Every registered model with each version's details, sorted by name."""
        return describe_adapters(self.store)

    def promote(self, name: str, version: int | str, alias: str) -> ResolvedAdapter:
        """Point `alias` of `name` at `version`; AdapterNotFoundError if that version is missing."""
        return promote_adapter(self.store, name, version, alias)
