"""S3 and MLflow for pods: SeaweedFS and an `mlflow server` on the test node's address.

Pods reach the node's address (tests/cluster/node_cluster.py, `NODE_IP`) over their bridge,
as they reach the apiserver; nothing listens on a machine-wide interface (the tier runs in a
private network namespace). The tiny model and the tiny image set are uploaded where the
cluster tier's jobs read them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.cluster.node_cluster import NODE_IP
from tests.fixtures.services import MlflowService, start_mlflow, start_seaweedfs

MODEL_URI = "s3://models/tiny-sd15"
DATASET_URI = "s3://datasets/tiny-toy/instance"


@contextmanager
def services_for_pods(root: Path) -> Iterator[MlflowService]:
    """Start both on the node's address, upload the inputs, and stop both at the end."""
    from tuneforge.assets.cache import cached_tiny_dataset, cached_tiny_model
    from tuneforge.settings import Settings
    from tuneforge.storage import ensure_bucket, upload_dir

    s3, s3_process = start_seaweedfs(root / "s3", host=NODE_IP)
    try:
        mlflow, mlflow_process = start_mlflow(root / "mlflow", s3, host=NODE_IP)
        try:
            settings = Settings(
                s3_endpoint=s3.url, s3_access_key=s3.access_key, s3_secret_key=s3.secret_key
            )
            inputs = ((MODEL_URI, cached_tiny_model()),
                      (DATASET_URI.rsplit("/", 1)[0], cached_tiny_dataset(resolution=64)))  # fmt: skip
            for uri, folder in inputs:
                ensure_bucket(uri, settings)
                upload_dir(folder, uri, settings)
            yield mlflow
        finally:
            mlflow_process.stop(grace_s=8)
    finally:
        s3_process.stop(grace_s=8)
