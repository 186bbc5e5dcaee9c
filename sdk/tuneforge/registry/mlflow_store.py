"""The MLflow tracking store the registry talks to: one client, errors mapped, no side channels.

With `Settings.mlflow_tracking_uri` unset, the store is embedded mode's SQLite file under
`Settings.home`; its artifacts live under `Settings.local_artifact_root()`. That root is given
to MLflow explicitly (when the store is created, and as each experiment's
`artifact_location`), never through environment variables.

mlflow is imported inside the functions: importing it takes seconds.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tuneforge.contract import AdapterRef
from tuneforge.errors import AdapterNotFoundError, RegistryError
from tuneforge.registry.retry import apply_mlflow_http_settings
from tuneforge.registry.sqlite_template import create_from_template
from tuneforge.settings import Settings

NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"})
"""MLflow error codes that mean "no such model, version or alias"."""

_MLFLOW_IMPORT_LOCK = threading.Lock()
_LOCAL_STORE_LOCK = threading.Lock()
_mlflow_imported = False


def import_mlflow() -> None:
    """Import mlflow's modules once, under a lock.

    mlflow is imported lazily (it is slow), but its package has import cycles: two threads
    importing it for the first time at once (e.g. concurrent requests in a serving replica)
    can see a partially initialised module. One lock makes the first import atomic.
    """
    global _mlflow_imported
    if _mlflow_imported:
        return
    with _MLFLOW_IMPORT_LOCK:
        if not _mlflow_imported:
            import mlflow.artifacts  # noqa: F401
            import mlflow.exceptions  # noqa: F401
            import mlflow.tracking  # noqa: F401
            import mlflow.utils.credentials  # noqa: F401
            import mlflow.utils.rest_utils  # noqa: F401

            _mlflow_imported = True


def prepare_local_store(settings: Settings) -> None:
    """Create embedded mode's SQLite store with its artifact root under home (once).

    MLflow's default experiment takes its artifact location from the store that creates the
    database, so the database is created here with `Settings.local_artifact_root()`: a copy of
    the migrated empty database cached per MLflow version (`sqlite_template`), which spares
    each new home MLflow's schema migrations. Nothing to do when an MLflow server is
    configured or the database exists.
    """
    root = settings.local_artifact_root()
    if root is None:
        return
    root.mkdir(parents=True, exist_ok=True)
    database = Path(settings.home) / "mlflow.db"
    if database.exists():
        return
    with _LOCAL_STORE_LOCK:
        if not database.exists():
            create_from_template(settings, database, root)


def experiment_artifact_location(settings: Settings, experiment: str) -> str | None:
    """`artifact_location` for a new experiment: under home's artifact root in embedded mode.

    None with a configured MLflow server, whose own default artifact root applies.
    """
    root = settings.local_artifact_root()
    if root is None:
        return None
    return str(root / re.sub(r"[^A-Za-z0-9._-]", "_", experiment))


def ensure_experiment(client: Any, settings: Settings, name: str | None = None) -> str:
    """The id of experiment `name` (default `Settings.mlflow_experiment`), created if missing."""
    from mlflow.exceptions import MlflowException

    name = name or settings.mlflow_experiment
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(
            client.create_experiment(
                name, artifact_location=experiment_artifact_location(settings, name)
            )
        )
    except MlflowException as error:
        # Two jobs starting together against a fresh server: the other one created it first.
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


class MlflowStore:
    """An MLflow tracking store and model registry at `Settings`' tracking URI."""

    def __init__(self, settings: Settings) -> None:
        """Use settings.mlflow_tracking_uri, else the embedded SQLite store under home.

        MLflow's HTTP client gets the retry bounds in `settings` (`apply_mlflow_http_settings`).
        """
        self.settings = settings
        self.tracking_uri = settings.resolved_tracking_uri()
        apply_mlflow_http_settings(settings)

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        """An `MlflowClient`; MLflow failures other than "not found" become RegistryError."""
        import_mlflow()
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        prepare_local_store(self.settings)
        try:
            yield MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        except MlflowException as error:
            if error.error_code in NOT_FOUND_CODES:
                raise
            raise RegistryError(f"MLflow at {self.tracking_uri} failed: {error.message}") from error

    @staticmethod
    def versions(client: Any, name: str) -> list[Any]:
        """Every model version of registered model `name`."""
        escaped = name.replace("'", "\\'")
        return list(client.search_model_versions(f"name = '{escaped}'"))

    def not_found(self, ref: AdapterRef | str, what: str) -> AdapterNotFoundError:
        """AdapterNotFoundError for `ref`, saying what is missing and how to list adapters."""
        parsed = ref if isinstance(ref, AdapterRef) else AdapterRef.parse(ref)
        return AdapterNotFoundError(
            f"adapter {str(ref)!r} not found: registered model {parsed.name!r} {what} "
            f"(or does not exist) in {self.tracking_uri}; list adapters with `tuneforge adapters`",
            name=parsed.name,
            ref=str(ref),
        )

    def check_reachable(self, timeout_s: float = 3.0) -> None:
        """Fail fast (one try, short timeout) with RegistryError when MLflow is unreachable."""
        if not self.tracking_uri.startswith(("http://", "https://")):
            with self.client() as client:
                client.search_registered_models(max_results=1)
            return
        import_mlflow()
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request

        try:
            response = http_request(  # type: ignore[no-untyped-call]
                get_default_host_creds(self.tracking_uri),  # type: ignore[no-untyped-call]
                "/api/2.0/mlflow/registered-models/search",
                "GET",
                max_retries=0,
                timeout=timeout_s,
                raise_on_status=False,
                params={"max_results": 1},
            )
        except Exception as error:  # connection refused, timeout, DNS
            raise RegistryError(
                f"MLflow at {self.tracking_uri} is unreachable ({type(error).__name__}): "
                "is the server running and TUNEFORGE_MLFLOW_TRACKING_URI right?"
            ) from error
        if response.status_code != 200:
            raise RegistryError(
                f"MLflow at {self.tracking_uri} answered HTTP {response.status_code} to a "
                "registry search: check the URI and credentials (MLFLOW_TRACKING_TOKEN/USERNAME)"
            )
