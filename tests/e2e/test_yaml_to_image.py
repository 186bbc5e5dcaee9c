"""End to end: the platform team's path from a YAML manifest to a served image.

1. `helm template` the chart with a platform team's values; create its CRDs and objects (RBAC,
   Secrets, runtimes ConfigMap, operator Deployment, RayService) on the real test apiserver.
2. Run the operator from the chart's Deployment (command and env as the kubelet would resolve
   them), authenticated as the chart's ServiceAccount: every call it makes goes through RBAC.
3. Upload the tiny model and dataset to S3 and apply `examples/e2e/tiny-lora.yaml`.
4. The operator creates the RayJob; the KubeRay stand-in (KubeRay's controller cannot run
   here) runs its entrypoint with the env the RayJob's pod template resolves to, on the local
   Ray: real LoRA training, data from S3, checkpoints to S3, the adapter registered in MLflow.
5. The FineTuneJob reaches Succeeded=True with `status.mlflow.modelVersion`.
6. Serving: the RayService's `serveConfigV2` application (its import path and args) runs on
   Ray Serve on the same Ray, with the RayService pod env; it loads the adapter by
   `name@alias` and `POST /v1/generate` returns a PNG unlike the base model's for the same seed.

The operator, the trainer's entrypoint and the two Ray heads (training, serving; podray.py)
run with their pods' env only, nothing of this process's; the S3/MLflow variables of the test
services are also removed from this process's environment for the whole flow. So the
operator, the trainer, its workers and serving only know what the chart told them (a Secret
missing a key fails them: test_chart_env.py).
See docs/e2e.md. Slow (minutes): one Ray Train fit and one Serve application.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from tests.e2e.release import Release, chart_values, image_env, install, start_operator
from tests.e2e.serving import start_serving
from tests.e2e.training import TrainedJob, train_example_job
from tests.fixtures._kube_cluster import KubeCluster
from tests.fixtures._kube_rest import KubeRest
from tests.fixtures._procs import free_port
from tests.fixtures.serving import generate_png

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(1800),
]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "e2e" / "tiny-lora.yaml"
PROMPT = "a photo of sks toy"
SEED = 7


@pytest.fixture(scope="module")
def chart_only_env(s3: Any, mlflow_server: Any) -> Iterator[None]:
    """The test services' variables (and a shared Ray's, which `services_env` may have set for
    the session) removed from os.environ during this module. No shared Ray is started: each
    step runs its own with its pod's env (podray.py)."""
    keys = {*s3.env(), *mlflow_server.env(), "RAY_ADDRESS", "TUNEFORGE_RAY_ADDRESS"}
    with pytest.MonkeyPatch.context() as patch:
        for key in keys:
            patch.delenv(key, raising=False)
        yield


@pytest.fixture(scope="module")
def example_job() -> dict[str, Any]:
    """The FineTuneJob manifest as a user applies it."""
    return dict(yaml.safe_load(EXAMPLE.read_text()))


@pytest.fixture(scope="module")
def release(
    kube: KubeCluster,
    s3: Any,
    mlflow_server: Any,
    chart_only_env: None,
    example_job: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Release]:
    """The chart installed in a fresh `tuneforge-system-*` namespace, watching `ml-team-*`."""
    del chart_only_env
    work = tmp_path_factory.mktemp("e2e-release")
    namespace = kube.create_namespace("tuneforge-system")
    jobs_namespace = kube.create_namespace("ml-team")
    ports = {"health": free_port(), "metrics": free_port()}
    values = chart_values(
        jobs_namespace,
        s3,
        mlflow_server,
        ports,
        work / "serving-cache",
        example_job["spec"]["baseModel"]["uri"],
    )
    try:
        yield install(kube, namespace, jobs_namespace, values, work)
    finally:
        kube.delete_namespace(jobs_namespace)
        kube.delete_namespace(namespace)


@pytest.fixture(scope="module")
def operator(release: Release, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The chart's operator container as a process, running as the chart's ServiceAccount."""
    process, env = start_operator(release, tmp_path_factory.mktemp("e2e-operator"))
    try:
        yield process, env
    finally:
        process.stop(grace_s=10)


@pytest.fixture(scope="module")
def trained(
    release: Release,
    operator: Any,
    s3: Any,
    tiny_model_dir: Path,
    tiny_dataset_dir: Path,
    example_job: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> TrainedJob:
    """The example job applied, trained on Ray via the stand-in, and finished (any outcome)."""
    process, _ = operator
    return train_example_job(
        release,
        example_job,
        s3,
        tiny_model_dir,
        tiny_dataset_dir,
        tmp_path_factory.mktemp("e2e-trainer-pod"),
        operator_log=process.log_tail,
    )


@pytest.fixture(scope="module")
def serving_url(
    release: Release,
    trained: TrainedJob,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """The RayService's Serve application on a Ray head with the RayService pod's env, ready."""
    if not trained.succeeded:
        pytest.skip("training did not succeed (see test_example_job_trains_and_registers)")
    home = tmp_path_factory.mktemp("e2e-serving-pod")
    with start_serving(release, image_env(home), home) as url:
        yield url


def test_operator_runs_with_the_charts_rbac(release: Release, operator: Any) -> None:
    """The operator is alive as the chart's ServiceAccount, which is no admin."""
    process, env = operator
    assert process.popen.poll() is None, process.log_tail()
    config = yaml.safe_load(Path(env["KUBECONFIG"]).read_text())
    token = config["users"][0]["user"]["token"]
    as_operator = KubeRest(release.kube.host, token, release.kube.ca_file)
    secrets = f"/api/v1/namespaces/{release.jobs_namespace}/secrets"
    assert as_operator.request("GET", secrets).status == 403
    jobs = f"/apis/tuneforge.io/v1alpha1/namespaces/{release.jobs_namespace}/finetunejobs"
    assert as_operator.request("GET", jobs).status == 200


def test_example_job_trains_and_registers(
    trained: TrainedJob, release: Release, mlflow_server: Any
) -> None:
    """Succeeded=True with the MLflow model version that the alias points at."""
    assert trained.succeeded, trained.explain()
    status = trained.job["status"]
    model = trained.job["spec"]["output"]["registeredModel"]
    alias = trained.job["spec"]["output"]["alias"]
    assert status["mlflow"]["modelName"] == model
    version = status["mlflow"]["modelVersion"]
    assert version, trained.explain()
    rayjob = trained.rayjob
    owner = rayjob["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"]) == ("FineTuneJob", trained.job["metadata"]["uid"])
    assert rayjob["status"]["jobDeploymentStatus"] == "Complete"

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.tracking_uri)
    by_alias = client.get_model_version_by_alias(model, alias)
    assert str(by_alias.version) == str(version)
    run = client.get_run(by_alias.run_id)
    assert run.data.tags.get("tuneforge.job_uid") == trained.job["metadata"]["uid"]
    # The trainer knew S3 and MLflow only from the chart: its pod env names the services.
    assert trained.pod_env["TUNEFORGE_S3_ENDPOINT"] == release.values["s3"]["endpoint"]
    assert trained.pod_env["AWS_ACCESS_KEY_ID"] == release.values["s3"]["accessKeyId"]
    assert trained.pod_env["MLFLOW_TRACKING_URI"] == release.values["mlflowTracking"]["uri"]


def _generate(url: str, adapters: list[dict[str, Any]]) -> tuple[np.ndarray, httpx.Response]:
    body = {"prompt": PROMPT, "seed": SEED, "steps": 4, "width": 64, "height": 64,
            "adapters": adapters}  # fmt: skip
    return generate_png(url, body, timeout_s=180)


def test_served_adapter_changes_the_image(trained: TrainedJob, serving_url: str) -> None:
    """`name@alias` resolves to the trained version and changes the image under one seed."""
    output = trained.job["spec"]["output"]
    version = trained.job["status"]["mlflow"]["modelVersion"]
    started = time.monotonic()
    base, _ = _generate(serving_url, [])
    tuned, response = _generate(
        serving_url, [{"name": output["registeredModel"], "alias": output["alias"]}]
    )
    base_again, _ = _generate(serving_url, [])
    print(f"three generate calls took {time.monotonic() - started:.1f} s")
    assert response.headers["x-adapters"] == f"{output['registeredModel']}/{version}"
    assert np.array_equal(base, base_again), "the base image is not repeatable under one seed"
    difference = np.abs(base - tuned).mean()
    assert difference > 1.0, f"the adapter barely changed the image (mean |diff| {difference:.3f})"
