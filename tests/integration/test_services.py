"""The shared test services work as other suites expect (tests/fixtures/services.py)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures._procs import LOOPBACK, ManagedProcess, ServiceStartError, free_port
from tests.fixtures.services import MLFLOW_ARTIFACT_BUCKET, MlflowService, RayCluster, S3Service

pytestmark = pytest.mark.integration


def test_s3_round_trip_with_checked_credentials(s3: S3Service) -> None:
    assert s3.endpoint.startswith(f"{LOOPBACK}:")
    assert s3.url == f"http://{s3.endpoint}"
    bucket = s3.make_bucket("services-smoke")
    assert s3.make_bucket("services-smoke") == bucket  # idempotent
    client = s3.client()
    payload = b"hello seaweed" * 1000
    client.put_object(bucket, "a/b.txt", io.BytesIO(payload), len(payload))
    response = client.get_object(bucket, "a/b.txt")
    try:
        assert response.read() == payload
    finally:
        response.close()
        response.release_conn()

    from minio import Minio
    from minio.error import S3Error

    intruder = Minio(s3.endpoint, access_key=s3.access_key, secret_key="wrong", secure=False)
    with pytest.raises(S3Error):
        intruder.list_buckets()


def test_s3_env_feeds_tuneforge_settings(s3: S3Service, monkeypatch: pytest.MonkeyPatch) -> None:
    from tuneforge.settings import Settings

    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.s3_host_and_secure() == (s3.endpoint, False)
    assert settings.s3_access_key == s3.access_key
    assert settings.s3_secret_key is not None
    assert settings.s3_secret_key.get_secret_value() == s3.secret_key


def test_mlflow_server_records_runs_with_s3_artifact_root(mlflow_server: MlflowService) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.tracking_uri)
    experiment_id = client.create_experiment("services-smoke")
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "loss", 0.5, step=1)
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(1, 0.5)]
    assert run.info.artifact_uri.startswith(f"s3://{MLFLOW_ARTIFACT_BUCKET}/")
    assert mlflow_server.s3.client().bucket_exists(MLFLOW_ARTIFACT_BUCKET)
    assert mlflow_server.env()["MLFLOW_TRACKING_URI"] == mlflow_server.tracking_uri


def test_start_failure_reports_the_log(tmp_path) -> None:  # type: ignore[no-untyped-def]
    script = "import sys; print('boom: bad flag'); sys.exit(3)"
    process = ManagedProcess("broken", [sys.executable, "-c", script], tmp_path / "broken.log")
    with pytest.raises(ServiceStartError, match=r"(?s)exited with code 3.*boom: bad flag"):
        process.wait_ready(lambda: False, timeout_s=30, what="never")


def test_free_ports_are_unique() -> None:
    ports = {free_port() for _ in range(50)}
    assert len(ports) == 50


def test_services_env_sets_everything(services_env: dict[str, str]) -> None:
    from tuneforge.settings import Settings

    expected = {
        "TUNEFORGE_S3_ENDPOINT",
        "TUNEFORGE_S3_ACCESS_KEY",
        "TUNEFORGE_S3_SECRET_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "MLFLOW_S3_ENDPOINT_URL",
        "MLFLOW_TRACKING_URI",
        "TUNEFORGE_MLFLOW_TRACKING_URI",
        "RAY_ADDRESS",
        "TUNEFORGE_RAY_ADDRESS",
    }
    assert expected <= services_env.keys()
    assert all(os.environ[key] == services_env[key] for key in expected)
    settings = Settings()
    assert settings.mlflow_tracking_uri == services_env["MLFLOW_TRACKING_URI"]
    assert settings.ray_address == services_env["RAY_ADDRESS"]


def test_ray_cluster_runs_tasks_and_child_processes_join(ray_cluster: RayCluster) -> None:
    import ray

    ray_cluster.connect()
    ray_cluster.connect()  # idempotent
    assert ray.cluster_resources()["CPU"] == ray_cluster.num_cpus

    @ray.remote
    def node_ip() -> str:
        return str(ray.util.get_node_ip_address())

    assert ray.get(node_ip.remote()) == LOOPBACK

    child = (
        "import ray; ray.init(); print('CPUS', int(ray.cluster_resources()['CPU'])); ray.shutdown()"
    )
    result = subprocess.run(
        [sys.executable, "-c", child],
        env={**os.environ, **ray_cluster.env()},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert f"CPUS {ray_cluster.num_cpus}" in result.stdout, result.stderr[-3000:]


def test_ray_train_two_worker_torch_trainer(ray_cluster: RayCluster) -> None:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    def train_loop(config: dict[str, int]) -> None:
        # Defined here so Ray pickles it by value (workers cannot import test modules).
        import tempfile

        import torch
        import torch.distributed as dist
        from ray import train

        context = train.get_context()
        value = torch.tensor([float(context.get_world_rank() + 1)])
        dist.all_reduce(value)
        metrics = {"sum": float(value.item()), "world": context.get_world_size()}
        with tempfile.TemporaryDirectory() as folder:
            # Train V2 keeps metrics only with a checkpoint: rank 0 reports a tiny one.
            checkpoint = None
            if context.get_world_rank() == 0:
                (Path(folder) / "sum.txt").write_text(str(metrics["sum"]))
                checkpoint = train.Checkpoint.from_directory(folder)
            train.report(metrics, checkpoint=checkpoint)

    ray_cluster.connect()
    trainer = TorchTrainer(
        train_loop,
        scaling_config=ScalingConfig(num_workers=2, use_gpu=False),
        run_config=RunConfig(storage_path=str(ray_cluster.temp_dir / "train"), name="smoke"),
    )
    result = trainer.fit()
    assert result.error is None
    assert result.metrics == {"sum": 3.0, "world": 2}  # ranks 0 and 1 all-reduced: 1 + 2
    assert result.checkpoint is not None
    with result.checkpoint.as_directory() as folder:
        assert (Path(folder) / "sum.txt").read_text() == "3.0"


def test_ray_serve_starts_and_answers(ray_cluster: RayCluster) -> None:
    import urllib.request

    from ray import serve

    ray_cluster.connect()
    port = free_port()
    serve.start(http_options={"host": LOOPBACK, "port": port})

    @serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.5})
    class Echo:
        async def __call__(self, request) -> str:  # type: ignore[no-untyped-def]
            return "echo:" + request.query_params.get("q", "")

    try:
        serve.run(Echo.bind(), name="smoke", route_prefix="/smoke")
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/smoke?q=hi", timeout=30) as resp:
            assert resp.read() == b"echo:hi"
    finally:
        serve.shutdown()
