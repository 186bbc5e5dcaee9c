"""Resolving a reference to a model version, and fetching its files into a local cache."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from tuneforge.contract import ADAPTER_MANIFEST, AdapterManifest, AdapterRef
from tuneforge.errors import RegistryError
from tuneforge.registry.mlflow_store import NOT_FOUND_CODES, MlflowStore, import_mlflow
from tuneforge.registry.results import FetchedAdapter, ResolvedAdapter
from tuneforge.registry.safety import check_artifact_names, checked_entries
from tuneforge.storage import download_prefix, is_s3_uri, list_prefix, local_path


def resolve_adapter(store: MlflowStore, ref: AdapterRef | str) -> ResolvedAdapter:
    """`name@alias`, `name/3` or `name` (latest version) -> the model version.

    AdapterNotFoundError naming the reference when the model, version or alias is missing.
    """
    import_mlflow()
    from mlflow.exceptions import MlflowException

    wanted = ref if isinstance(ref, AdapterRef) else AdapterRef.parse(ref)
    with store.client() as client:
        try:
            if wanted.alias is not None:
                version = client.get_model_version_by_alias(wanted.name, wanted.alias)
            elif wanted.version is not None:
                version = client.get_model_version(wanted.name, str(wanted.version))
            else:
                versions = store.versions(client, wanted.name)
                if not versions:
                    raise store.not_found(ref, "has no registered versions")
                version = max(versions, key=lambda v: int(v.version))
        except MlflowException as error:
            if error.error_code not in NOT_FOUND_CODES:
                raise
            what = (
                f"has no alias {wanted.alias!r}"
                if wanted.alias
                else f"has no version {wanted.version}"
            )
            raise store.not_found(ref, what) from None
        return ResolvedAdapter(
            name=wanted.name,
            version=int(version.version),
            source=str(version.source),
            run_id=version.run_id,
            aliases=tuple(sorted(getattr(version, "aliases", None) or ())),
        )


def fetch_adapter(
    store: MlflowStore, resolved: ResolvedAdapter, cache_dir: str | Path
) -> FetchedAdapter:
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
            _download(store, resolved, staging)
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        marker.write_text(resolved.source)
    return FetchedAdapter(target, read_manifest(target), resolved.name, resolved.version)


def read_manifest(folder: Path) -> AdapterManifest:
    """The folder's manifest; RegistryError when a file it lists is missing."""
    manifest = AdapterManifest.model_validate_json((folder / ADAPTER_MANIFEST).read_text())
    check_artifact_names(list(manifest.files), f"manifest in {folder}")
    missing = [f for f in manifest.files if not (folder / f).is_file()]
    if missing:
        raise RegistryError(f"adapter in {folder} lacks files its manifest lists: {missing}")
    return manifest


def _download(store: MlflowStore, resolved: ResolvedAdapter, staging: Path) -> None:
    where = f"adapter {resolved.ref} ({resolved.source})"
    source = resolved.source
    target = local_path(source) if not is_s3_uri(source) else None
    if is_s3_uri(source):
        check_artifact_names(list_prefix(source, store.settings), where)
        download_prefix(source, staging, store.settings)
    elif target is not None:
        if not target.is_dir():
            raise RegistryError(f"{where}: the source folder does not exist")
        for entry in checked_entries(target, where):
            shutil.copyfile(entry, staging / entry.name)
    else:
        _download_with_mlflow(store, source, staging, where)
    if not (staging / ADAPTER_MANIFEST).is_file():
        raise RegistryError(f"{where} has no {ADAPTER_MANIFEST}: not a TuneForge adapter")


def _download_with_mlflow(store: MlflowStore, source: str, staging: Path, where: str) -> None:
    """`mlflow-artifacts:/` (a proxied server) and other schemes: MLflow's own client."""
    import_mlflow()
    import mlflow.artifacts

    listing = mlflow.artifacts.list_artifacts(artifact_uri=source, tracking_uri=store.tracking_uri)
    check_artifact_names([Path(i.path).name + ("/" if i.is_dir else "") for i in listing], where)
    for info in listing:
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"{source.rstrip('/')}/{Path(info.path).name}",
            dst_path=str(staging),
            tracking_uri=store.tracking_uri,
        )
