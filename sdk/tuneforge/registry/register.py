"""Registering an adapter folder: upload its files as run artifacts, create the model version."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tuneforge.contract import ADAPTER_ARTIFACT_PATH, ADAPTER_MANIFEST, AdapterManifest, Tag
from tuneforge.errors import RegistryError
from tuneforge.registry.mlflow_store import MlflowStore
from tuneforge.registry.results import RegisteredVersion
from tuneforge.registry.safety import check_artifact_names, checked_entries
from tuneforge.storage import S3Uri, is_s3_uri, local_path, minio_client


def register_adapter(
    store: MlflowStore,
    run_id: str,
    local_dir: str | Path,
    manifest: AdapterManifest,
    name: str,
    alias: str | None = None,
    tags: dict[str, str] | None = None,
) -> RegisteredVersion:
    """Upload the adapter folder as run artifacts and register it as a model version.

    Idempotent: a version of `name` tagged with the manifest's `job_uid` (or, without
    one, from the same run) is returned instead of registering again; the alias is
    (re)applied either way. UnsafeArtifactError when the folder holds anything but
    safetensors files and the manifest.
    """
    folder = Path(local_dir)
    files = adapter_files(folder, manifest)
    with store.client() as client:
        try:
            run = client.get_run(run_id)
        except Exception as error:
            raise RegistryError(f"no MLflow run {run_id!r} at {store.tracking_uri}") from error
        source = f"{run.info.artifact_uri.rstrip('/')}/{ADAPTER_ARTIFACT_PATH}"
        existing = _registered_before(store, client, name, run_id, source, manifest)
        if existing is None:
            _upload(store, client, run_id, files, manifest, source)
            _ensure_model(client, name)
            version_tags = {**version_tags_of(manifest), **(tags or {})}
            created = client.create_model_version(
                name, source=source, run_id=run_id, tags=version_tags
            )
            existing = RegisteredVersion(name, int(created.version), source, run_id)
        if alias:
            client.set_registered_model_alias(name, alias, str(existing.version))
    return existing


def adapter_files(folder: Path, manifest: AdapterManifest) -> list[Path]:
    """The files to upload; RegistryError / UnsafeArtifactError when the folder is not fit."""
    if not folder.is_dir():
        raise RegistryError(f"cannot register {folder}: not a directory")
    entries = checked_entries(folder, f"adapter folder {folder}")
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


def version_tags_of(manifest: AdapterManifest) -> dict[str, str]:
    """The tags a model version gets from its manifest (method, base model, job)."""
    tags = {Tag.METHOD: manifest.method, Tag.BASE_MODEL: manifest.base_model}
    if manifest.job_uid:
        tags[Tag.JOB_UID] = manifest.job_uid
    if manifest.job_name:
        tags[Tag.JOB_NAME] = manifest.job_name
    return tags


def _registered_before(
    store: MlflowStore,
    client: Any,
    name: str,
    run_id: str,
    source: str,
    manifest: AdapterManifest,
) -> RegisteredVersion | None:
    for version in sorted(store.versions(client, name), key=lambda v: int(v.version)):
        version_tags = version.tags or {}
        same_job = bool(manifest.job_uid) and version_tags.get(Tag.JOB_UID) == manifest.job_uid
        same_run = not manifest.job_uid and version.run_id == run_id and version.source == source
        if same_job or same_run:
            return RegisteredVersion(name, int(version.version), version.source, version.run_id)
    return None


def _ensure_model(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        with contextlib.suppress(MlflowException):  # created meanwhile: fine
            client.create_registered_model(name)


def _upload(
    store: MlflowStore,
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
            s3 = minio_client(store.settings)
            for path in sorted(staging.iterdir()):
                s3.fput_object(uri.bucket, uri.key(path.name), str(path))
        elif target is not None:
            target.mkdir(parents=True, exist_ok=True)
            for path in staging.iterdir():
                shutil.copyfile(path, target / path.name)
        else:  # mlflow-artifacts:/ (proxied server) and other schemes: MLflow's own client
            client.log_artifacts(run_id, str(staging), artifact_path=ADAPTER_ARTIFACT_PATH)
