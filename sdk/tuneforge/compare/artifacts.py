"""Reading a run's artifacts wherever they live: S3 (minio), a local folder, or MLflow's proxy.

Runs of a server whose artifacts live in S3 are read with the minio client, as the registry
and the trainer do (no boto3); embedded mode's runs keep theirs in a local folder; anything
else (`mlflow-artifacts:/`, a proxied server) goes through MLflow's own client.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from tuneforge.errors import StorageError
from tuneforge.registry.mlflow_store import MlflowStore
from tuneforge.settings import Settings
from tuneforge.storage import S3Uri, is_s3_uri, list_prefix, local_path, minio_client


class RunArtifacts:
    """One run's artifact folder: list a sub-folder, read a file's bytes."""

    def __init__(self, store: MlflowStore, run_id: str, artifact_uri: str) -> None:
        """The run's artifacts at `artifact_uri` (its `info.artifact_uri`)."""
        self.store = store
        self.run_id = run_id
        self.uri = artifact_uri.rstrip("/")
        self._local = None if is_s3_uri(self.uri) else local_path(self.uri)

    @property
    def settings(self) -> Settings:
        """The settings (S3 endpoint and credentials) the store was made with."""
        return self.store.settings

    def list(self, folder: str) -> list[str]:
        """Names of the files directly or deeper under `folder` (relative to it), sorted."""
        if is_s3_uri(self.uri):
            return list_prefix(f"{self.uri}/{folder}/", self.settings)
        if self._local is not None:
            root = self._local / folder
            if not root.is_dir():
                return []
            return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        with self.store.client() as client:
            return sorted(
                Path(info.path).name
                for info in client.list_artifacts(self.run_id, folder)
                if not info.is_dir
            )

    def read(self, path: str) -> bytes:
        """The bytes of the artifact at `path` (e.g. `evaluation/grids/prompts.txt`)."""
        if is_s3_uri(self.uri):
            uri = S3Uri.parse(f"{self.uri}/{path}")
            response: Any = None
            try:
                response = minio_client(self.settings).get_object(uri.bucket, uri.prefix)
                return bytes(response.read())
            except Exception as error:  # S3Error, connection errors
                raise StorageError(f"cannot read {self.uri}/{path}: {error}") from error
            finally:
                if response is not None:
                    response.close()
                    response.release_conn()
        if self._local is not None:
            return (self._local / path).read_bytes()
        with tempfile.TemporaryDirectory(prefix="tuneforge-compare-") as tmp:
            with self.store.client() as client:
                local = client.download_artifacts(self.run_id, path, tmp)
            return Path(local).read_bytes()
