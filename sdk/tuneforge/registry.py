"""Adapters in the MLflow model registry: register, resolve, fetch, list, promote.

An adapter is an MLflow model version whose source is a run's `adapter/` artifact folder
holding only safetensors weights and `tuneforge-adapter.json` (DESIGN.md §4). Works with
an `mlflow server` whose artifacts live in S3 (files go straight to S3 with the minio
client) and with the embedded SQLite store (artifacts on local disk under home).

    registry = AdapterRegistry()                   # Settings() from TUNEFORGE_* variables
    registry.register(run_id, "out/adapter", manifest, "dogs", alias="prod")
    resolved = registry.resolve("dogs@prod")       # or "dogs/3", or "dogs" (latest)
    fetched = registry.fetch(resolved, Path("~/.cache/tuneforge").expanduser())
    fetched.path, fetched.manifest

mlflow is imported inside the methods: importing it takes seconds.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.adapter import ADAPTER_MANIFEST, AdapterManifest
from tuneforge.embedded.environment import local_artifact_root
from tuneforge.errors import (
    AdapterNotFoundError,
    RegistryError,
    UnsafeArtifactError,
)
from tuneforge.settings import Settings
from tuneforge.storage import (
    S3Uri,
    download_prefix,
    is_s3_uri,
    list_prefix,
    local_path,
    minio_client,
)

ARTIFACT_PATH = "adapter"
"""Run artifact folder that holds the adapter's files."""
JOB_UID_TAG = "tuneforge.job_uid"
METHOD_TAG = "tuneforge.method"
JOB_NAME_TAG = "tuneforge.job_name"
BASE_MODEL_TAG = "tuneforge.base_model"
_NOT_FOUND_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}
_REF_VERSION = re.compile(r"^(?P<name>.+)/(?P<version>[0-9]+)$")


@dataclass(frozen=True)
class RegisteredAdapter:
    """What `register` created (or found, when the job was registered before)."""

    name: str
    version: int
    source: str
    run_id: str


@dataclass(frozen=True)
class ResolvedAdapter:
    """One model version a reference points at."""

    name: str
    version: int
    source: str
    """Artifact URI of the adapter folder (s3://, a local path, mlflow-artifacts:/...)."""
    run_id: str | None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class FetchedAdapter:
    """An adapter's files on local disk, with its parsed manifest."""

    path: Path
    manifest: AdapterManifest
    name: str = ""
    version: int = 0


@dataclass(frozen=True)
class AdapterSummary:
    """A registered model as `list_adapters` shows it."""

    name: str
    latest_version: int | None
    aliases: dict[str, str] = field(default_factory=dict)
    """Alias -> version (as a string, like MLflow)."""
    versions: list[int] = field(default_factory=list)


def is_allowed_artifact(file_name: str) -> bool:
    """Only safetensors weights and the manifest may travel as adapter artifacts."""
    return file_name == ADAPTER_MANIFEST or file_name.endswith(".safetensors")


def check_artifact_names(names: list[str], where: str) -> None:
    """UnsafeArtifactError naming every entry that is not allowed (pickles, subfolders...)."""
    refused = sorted(name for name in names if "/" in name or not is_allowed_artifact(name))
    if refused:
        raise UnsafeArtifactError(
            f"{where}: refusing {', '.join(refused)}: adapters hold only *.safetensors files "
            f"and {ADAPTER_MANIFEST} (never pickles such as .bin, .pt, .pkl)"
        )


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """`name@alias`, `name/3` or `name` (latest; `models:/` prefix allowed) -> parts."""
    text = ref.removeprefix("models:/").strip()
    if "@" in text:
        name, _, alias = text.rpartition("@")
        if name and alias:
            return name, None, alias
    elif match := _REF_VERSION.match(text):
        return match["name"], int(match["version"]), None
    elif text:
        return text, None, None
    raise ValueError(f"invalid adapter reference {ref!r}: use name, name/VERSION or name@alias")


_MLFLOW_IMPORT_LOCK = threading.Lock()
_mlflow_imported = False


def _import_mlflow() -> None:
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


class AdapterRegistry:
    """The MLflow model registry, as TuneForge stores adapters in it."""

    def __init__(self, settings: Settings | None = None) -> None:
        """Use settings.mlflow_tracking_uri, else the embedded SQLite store under home."""
        self.settings = settings or Settings()
        self.tracking_uri = self.settings.mlflow_tracking_uri or (
            self.settings.embedded_tracking_uri()
        )

    # ------------------------------------------------------------------ plumbing

    @contextlib.contextmanager
    def _client(self) -> Iterator[Any]:
        _import_mlflow()
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        with local_artifact_root(self.settings):
            try:
                yield MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
            except MlflowException as error:
                if error.error_code in _NOT_FOUND_CODES:
                    raise
                raise RegistryError(
                    f"MLflow at {self.tracking_uri} failed: {error.message}"
                ) from error

    def check_reachable(self, timeout_s: float = 3.0) -> None:
        """Fail fast (one try, short timeout) with RegistryError when MLflow is unreachable."""
        if not self.tracking_uri.startswith(("http://", "https://")):
            with self._client() as client:
                client.search_registered_models(max_results=1)
            return
        _import_mlflow()
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

    def _versions(self, client: Any, name: str) -> list[Any]:
        escaped = name.replace("'", "\\'")
        return list(client.search_model_versions(f"name = '{escaped}'"))

    # ------------------------------------------------------------------ register

    def register(
        self,
        run_id: str,
        local_dir: str | Path,
        manifest: AdapterManifest,
        name: str,
        alias: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> RegisteredAdapter:
        """Upload the adapter folder as run artifacts and register it as a model version.

        Idempotent: a version of `name` tagged with the manifest's `job_uid` (or, without
        one, from the same run) is returned instead of registering again; the alias is
        (re)applied either way. UnsafeArtifactError when the folder holds anything but
        safetensors files and the manifest.
        """
        folder = Path(local_dir)
        files = self._adapter_files(folder, manifest)
        with self._client() as client:
            try:
                run = client.get_run(run_id)
            except Exception as error:
                raise RegistryError(f"no MLflow run {run_id!r} at {self.tracking_uri}") from error
            source = f"{run.info.artifact_uri.rstrip('/')}/{ARTIFACT_PATH}"
            existing = self._registered_before(client, name, run_id, source, manifest)
            if existing is None:
                self._upload(client, run_id, files, manifest, source)
                self._ensure_model(client, name)
                version_tags = {**self._tags(manifest), **(tags or {})}
                created = client.create_model_version(
                    name, source=source, run_id=run_id, tags=version_tags
                )
                existing = RegisteredAdapter(name, int(created.version), source, run_id)
            if alias:
                client.set_registered_model_alias(name, alias, str(existing.version))
        return existing

    def _adapter_files(self, folder: Path, manifest: AdapterManifest) -> list[Path]:
        if not folder.is_dir():
            raise RegistryError(f"cannot register {folder}: not a directory")
        entries = sorted(folder.iterdir())
        check_artifact_names(
            [e.name + ("/" if e.is_dir() else "") for e in entries], f"adapter folder {folder}"
        )
        names = {e.name for e in entries}
        if not any(n.endswith(".safetensors") for n in names):
            raise RegistryError(f"cannot register {folder}: it holds no .safetensors weights")
        missing = [f for f in manifest.files if f not in names]
        if missing:
            raise RegistryError(
                f"cannot register {folder}: the manifest lists {', '.join(missing)} "
                "which the folder does not hold"
            )
        check_artifact_names(list(manifest.files), f"manifest of {folder}")
        return entries

    @staticmethod
    def _tags(manifest: AdapterManifest) -> dict[str, str]:
        tags = {METHOD_TAG: manifest.method, BASE_MODEL_TAG: manifest.base_model}
        if manifest.job_uid:
            tags[JOB_UID_TAG] = manifest.job_uid
        if manifest.job_name:
            tags[JOB_NAME_TAG] = manifest.job_name
        return tags

    def _registered_before(
        self, client: Any, name: str, run_id: str, source: str, manifest: AdapterManifest
    ) -> RegisteredAdapter | None:
        for version in sorted(self._versions(client, name), key=lambda v: int(v.version)):
            version_tags = version.tags or {}
            same_job = bool(manifest.job_uid) and version_tags.get(JOB_UID_TAG) == manifest.job_uid
            same_run = (
                not manifest.job_uid and version.run_id == run_id and version.source == source
            )
            if same_job or same_run:
                return RegisteredAdapter(name, int(version.version), version.source, version.run_id)
        return None

    def _ensure_model(self, client: Any, name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            client.get_registered_model(name)
        except MlflowException:
            with contextlib.suppress(MlflowException):  # created meanwhile: fine
                client.create_registered_model(name)

    def _upload(
        self,
        client: Any,
        run_id: str,
        files: list[Path],
        manifest: AdapterManifest,
        source: str,
    ) -> None:
        with tempfile.TemporaryDirectory(prefix="tuneforge-register-") as staging_name:
            staging = Path(staging_name)
            for path in files:
                shutil.copyfile(path, staging / path.name)
            if not (staging / ADAPTER_MANIFEST).exists():
                (staging / ADAPTER_MANIFEST).write_text(manifest.model_dump_json(indent=2))
            target = local_path(source) if not is_s3_uri(source) else None
            if is_s3_uri(source):
                uri = S3Uri.parse(source)
                s3 = minio_client(self.settings)
                for path in sorted(staging.iterdir()):
                    s3.fput_object(uri.bucket, uri.key(path.name), str(path))
            elif target is not None:
                target.mkdir(parents=True, exist_ok=True)
                for path in staging.iterdir():
                    shutil.copyfile(path, target / path.name)
            else:  # mlflow-artifacts:/ (proxied server) and other schemes: MLflow's own client
                client.log_artifacts(run_id, str(staging), artifact_path=ARTIFACT_PATH)

    # ------------------------------------------------------------------ resolve / fetch

    def resolve(self, ref: str) -> ResolvedAdapter:
        """`name@alias`, `name/3` or `name` (latest version) -> the model version.

        AdapterNotFoundError naming the reference when the model, version or alias is missing.
        """
        from mlflow.exceptions import MlflowException

        name, number, alias = parse_ref(ref)
        with self._client() as client:
            try:
                if alias is not None:
                    version = client.get_model_version_by_alias(name, alias)
                elif number is not None:
                    version = client.get_model_version(name, str(number))
                else:
                    versions = self._versions(client, name)
                    if not versions:
                        raise self._not_found(ref, name, "has no registered versions")
                    version = max(versions, key=lambda v: int(v.version))
            except MlflowException as error:
                if error.error_code not in _NOT_FOUND_CODES:
                    raise
                what = f"has no alias {alias!r}" if alias else f"has no version {number}"
                raise self._not_found(ref, name, what) from None
            return ResolvedAdapter(
                name=name,
                version=int(version.version),
                source=str(version.source),
                run_id=version.run_id,
                aliases=tuple(sorted(getattr(version, "aliases", None) or ())),
            )

    def _not_found(self, ref: str, name: str, what: str) -> AdapterNotFoundError:
        return AdapterNotFoundError(
            f"adapter {ref!r} not found: registered model {name!r} {what} (or does not exist) "
            f"in {self.tracking_uri}; list adapters with `tuneforge adapters`",
            name=name,
            ref=ref,
        )

    def fetch(self, resolved: ResolvedAdapter, cache_dir: str | Path) -> FetchedAdapter:
        """The adapter's files under `cache_dir/<name>/<version>` (downloaded once).

        Every remote entry is checked before anything is downloaded: UnsafeArtifactError
        for anything but *.safetensors and tuneforge-adapter.json.
        """
        safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", resolved.name)
        target = Path(cache_dir) / safe_name / str(resolved.version)
        marker = target.parent / f"{resolved.version}.complete"
        if not (marker.is_file() and target.is_dir()):
            target.parent.mkdir(parents=True, exist_ok=True)
            # Download beside the target and rename: a half-fetched adapter is never used.
            staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".fetch-"))
            try:
                self._download(resolved, staging)
                shutil.rmtree(target, ignore_errors=True)
                staging.rename(target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            marker.write_text(resolved.source)
        return FetchedAdapter(target, self._read_manifest(target), resolved.name, resolved.version)

    def _download(self, resolved: ResolvedAdapter, staging: Path) -> None:
        where = f"adapter {resolved.name}/{resolved.version} ({resolved.source})"
        source = resolved.source
        target = local_path(source) if not is_s3_uri(source) else None
        if is_s3_uri(source):
            check_artifact_names(list_prefix(source, self.settings), where)
            download_prefix(source, staging, self.settings)
        elif target is not None:
            if not target.is_dir():
                raise RegistryError(f"{where}: the source folder does not exist")
            entries = sorted(target.iterdir())
            check_artifact_names([e.name + ("/" if e.is_dir() else "") for e in entries], where)
            for entry in entries:
                shutil.copyfile(entry, staging / entry.name)
        else:
            _import_mlflow()
            import mlflow.artifacts

            with local_artifact_root(self.settings):
                listing = mlflow.artifacts.list_artifacts(
                    artifact_uri=source, tracking_uri=self.tracking_uri
                )
                check_artifact_names(
                    [Path(i.path).name + ("/" if i.is_dir else "") for i in listing], where
                )
                for info in listing:
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=f"{source.rstrip('/')}/{Path(info.path).name}",
                        dst_path=str(staging),
                        tracking_uri=self.tracking_uri,
                    )
        if not (staging / ADAPTER_MANIFEST).is_file():
            raise RegistryError(f"{where} has no {ADAPTER_MANIFEST}: not a TuneForge adapter")

    @staticmethod
    def _read_manifest(folder: Path) -> AdapterManifest:
        manifest = AdapterManifest.model_validate_json((folder / ADAPTER_MANIFEST).read_text())
        check_artifact_names(list(manifest.files), f"manifest in {folder}")
        missing = [f for f in manifest.files if not (folder / f).is_file()]
        if missing:
            raise RegistryError(f"adapter in {folder} lacks files its manifest lists: {missing}")
        return manifest

    # ------------------------------------------------------------------ list / promote

    def list_adapters(self) -> list[AdapterSummary]:
        """Every registered model with its versions and aliases, sorted by name."""
        with self._client() as client:
            models: list[Any] = []
            token = None
            while True:
                page = client.search_registered_models(max_results=100, page_token=token)
                models.extend(page)
                token = page.token
                if not token:
                    break
            summaries = []
            for model in sorted(models, key=lambda m: m.name):
                numbers = sorted(int(v.version) for v in self._versions(client, model.name))
                aliases = {a: str(v) for a, v in (getattr(model, "aliases", None) or {}).items()}
                summaries.append(
                    AdapterSummary(model.name, max(numbers, default=None), aliases, numbers)
                )
        return summaries

    def promote(self, name: str, version: int | str, alias: str) -> ResolvedAdapter:
        """Point `alias` of `name` at `version`; AdapterNotFoundError if that version is missing."""
        resolved = self.resolve(f"{name}/{int(version)}")
        with self._client() as client:
            client.set_registered_model_alias(name, alias, str(resolved.version))
        return self.resolve(f"{name}@{alias}")
