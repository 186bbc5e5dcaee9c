"""MLflow down while a job finishes: a real `mlflow server` stopped and started again.

The trainer's registration (`AdapterRegistry.register`, the call `tuneforge_trainer.runner`
makes after training) retries within `tuneforge.registry.retry.RetryPolicy`; the operator
reports `AdapterRegistered=Unknown/MlflowUnavailable` meanwhile and `Succeeded` once the
version exists. When the bound is spent the error names the URI and where the adapter stays.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from tests.fixtures._procs import free_port
from tests.fixtures.kuberay_standin import KubeRayStandIn
from tests.fixtures.services import MlflowService, S3Service, start_mlflow
from tests.integration.operator.harness import (
    OperatorProcess,
    condition,
    create_job,
    get_job,
    job_manifest,
    wait_for_condition,
)
from tuneforge.contract import ADAPTER_MANIFEST, LORA_WEIGHTS, AdapterManifest, Tag
from tuneforge.registry import AdapterRegistry, ensure_experiment
from tuneforge.registry.retry import RegistryUnavailableError
from tuneforge.settings import Settings

pytestmark = pytest.mark.integration
StartOperator = Callable[..., OperatorProcess]
StartStandIn = Callable[..., KubeRayStandIn]


def _adapter(folder: Path, uid: str) -> AdapterManifest:
    folder.mkdir(parents=True)
    save_file({"lora.down.weight": np.ones((4, 8), dtype=np.float32)}, str(folder / LORA_WEIGHTS))
    manifest = AdapterManifest(
        method="lora",
        base_model="/models/tiny-sd",
        files=[LORA_WEIGHTS],
        lora={"rank": 4, "alpha": 4.0, "target_modules": ["to_q"]},
        job_name="outage",
        job_uid=uid,
    )
    (folder / ADAPTER_MANIFEST).write_text(manifest.model_dump_json())
    return manifest


def _settings(s3: S3Service, tracking_uri: str, home: Path, **retry: Any) -> Settings:
    return Settings(
        home=home,
        mlflow_tracking_uri=tracking_uri,
        s3_endpoint=s3.url,
        s3_access_key=s3.access_key,
        s3_secret_key=s3.secret_key,
        **retry,
    )


@pytest.fixture
def restartable_mlflow(s3: S3Service, tmp_path: Path) -> Iterator[Any]:
    """An own `mlflow server` (the session one must stay up) that the test may stop and start."""

    class Server:
        root = tmp_path / "mlflow"
        port = free_port()
        service: MlflowService
        process: Any = None

        def start(self) -> None:
            self.service, self.process = start_mlflow(self.root, s3, port=self.port)

        def stop(self) -> None:
            self.process.stop(grace_s=8)
            self.process = None

    server = Server()
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.stop()


def test_a_job_finishing_while_mlflow_is_down_registers_when_it_returns(
    kube: Any,
    kube_namespace: str,
    start_operator: StartOperator,
    kuberay_standin: StartStandIn,
    restartable_mlflow: Any,
    s3: S3Service,
    tmp_path: Path,
) -> None:
    uri = restartable_mlflow.service.tracking_uri
    start_operator(kube_namespace, {"TUNEFORGE_OPERATOR_MLFLOW_TRACKING_URI": uri})
    standin = kuberay_standin(kube_namespace, outcome="hold")
    uid = create_job(kube, kube_namespace, job_manifest("outage", model="sks-outage"))["metadata"][
        "uid"
    ]
    wait_for_condition(kube, kube_namespace, "outage", "Training")
    settings = _settings(
        s3,
        uri,
        tmp_path / "home",
        registry_retry_attempts=100,
        registry_retry_backoff_s=0.5,
        registry_retry_max_backoff_s=1.0,
        registry_retry_total_s=120,
    )
    registry = AdapterRegistry(settings)
    with registry.store.client() as client:  # the trainer's run, made before training
        experiment = ensure_experiment(client, settings, f"outage-{kube_namespace}")
        run_id = client.create_run(experiment, tags={Tag.JOB_UID: uid}).info.run_id
    manifest = _adapter(tmp_path / "adapter", uid)

    restartable_mlflow.stop()
    standin.finish("outage", "succeed")
    registered: list[Any] = []
    registering = threading.Thread(
        target=lambda: registered.append(
            registry.register(run_id, tmp_path / "adapter", manifest, "sks-outage", alias="c")
        )
    )
    registering.start()
    job = wait_for_condition(
        kube, kube_namespace, "outage", "AdapterRegistered", "Unknown", 30, "MlflowUnavailable"
    )
    adapter = condition(job, "AdapterRegistered") or {}
    assert adapter["reason"] == "MlflowUnavailable" and uri in adapter["message"], adapter
    time.sleep(4)  # several failed attempts while the job waits, neither failed nor succeeded
    assert registering.is_alive()
    assert (condition(get_job(kube, kube_namespace, "outage"), "Succeeded") or {}).get(
        "status"
    ) == "Unknown"

    down_for = time.monotonic()
    restartable_mlflow.start()
    registering.join(timeout=60)
    assert registered, "registration did not finish within 60 s of MLflow's return"
    assert (registered[0].name, registered[0].version) == ("sks-outage", 1)
    done = wait_for_condition(kube, kube_namespace, "outage", "Succeeded", timeout_s=30)
    assert done["status"]["mlflow"]["modelVersion"] == "1"
    assert time.monotonic() - down_for < 60
    with registry.store.client() as client:
        versions = client.search_model_versions("name = 'sks-outage'")
        assert [v.tags.get(Tag.JOB_UID) for v in versions] == [uid]  # one version, no duplicate
        assert client.get_model_version_by_alias("sks-outage", "c").version == "1"


def test_registration_gives_up_within_its_bound_naming_the_uri_and_the_adapter(
    s3: S3Service, tmp_path: Path
) -> None:
    """Nothing listens: MLflow's own retries are bounded too (its defaults take minutes)."""
    uri = f"http://127.0.0.1:{free_port()}"
    settings = _settings(
        s3,
        uri,
        tmp_path / "home",
        registry_retry_attempts=3,
        registry_retry_backoff_s=0.2,
        registry_retry_total_s=30,
    )
    manifest = _adapter(tmp_path / "adapter", "uid-down")
    started = time.monotonic()
    with pytest.raises(RegistryUnavailableError) as raised:
        AdapterRegistry(settings).register(
            "run-1", tmp_path / "adapter", manifest, "sks-down", kept_at="s3://ckpt/final"
        )
    elapsed = time.monotonic() - started
    message = str(raised.value)
    assert uri in message and "s3://ckpt/final" in message, message
    assert "failed 3 time(s)" in message and "TUNEFORGE_REGISTRY_RETRY_ATTEMPTS=3" in message
    assert "run the same job again" in message
    assert "Connection refused" in message, message  # what MLflow said, not a wrapper's reading
    assert raised.value.attempts == 3
    # MLflow's defaults (7 retries, backoff factor 2) sleep over 120 s per attempt alone.
    assert elapsed < 60, f"{elapsed:.1f} s: MLflow's own HTTP retries were not bounded"


def test_a_refusal_is_not_retried(
    s3: S3Service, mlflow_server: MlflowService, tmp_path: Path
) -> None:
    """Only "did not answer" is retried: a run that does not exist fails at once."""
    settings = _settings(
        s3, mlflow_server.tracking_uri, tmp_path / "home", registry_retry_backoff_s=30
    )
    manifest = _adapter(tmp_path / "adapter", "uid-refused")
    started = time.monotonic()
    with pytest.raises(Exception) as raised:
        AdapterRegistry(settings).register("no-such-run", tmp_path / "adapter", manifest, "x")
    assert not isinstance(raised.value, RegistryUnavailableError)
    assert time.monotonic() - started < 10
