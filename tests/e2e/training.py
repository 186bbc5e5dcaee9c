"""Step 3-5 of the end-to-end flow: inputs to S3, the example FineTuneJob applied, the
RayJob's entrypoint run by the KubeRay stand-in on the local Ray, the job followed to the end.

The stand-in gets the environment the RayJob's head pod would have, and nothing of this
process's: its container spec read back from the apiserver and resolved against the job
namespace's Secrets (podenv.py), the image's PATH and locale, plus RAY_ADDRESS (set by
KubeRay's job submission) and HOME (the container's own). The Ray head it joins is started
with that same env (podray.py), so Train workers see only what the chart gave the pod.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.podenv import container_env
from tests.e2e.podray import pod_ray
from tests.e2e.release import Release, image_env
from tests.fixtures.kuberay_standin import KubeRayStandIn

RAYJOB_TIMEOUT_S = 180.0  # kopf may spend ~55 s scanning CRDs it may not list (see docs/e2e.md)
TRAINING_TIMEOUT_S = 900.0
JOBS = "/apis/tuneforge.io/v1alpha1/namespaces/{ns}/finetunejobs"
RAYJOBS = "/apis/ray.io/v1/namespaces/{ns}/rayjobs"


@dataclass
class TrainedJob:
    """The FineTuneJob and its RayJob as they stood when the job finished."""

    job: dict[str, Any]
    rayjob: dict[str, Any]
    pod_env: dict[str, str]
    entrypoint_log: str
    operator_log: str
    transitions: list[tuple[str, str, str]] = field(default_factory=list)

    def condition(self, type_: str) -> dict[str, Any]:
        """The job's condition of this type ({} when absent)."""
        for item in (self.job.get("status") or {}).get("conditions") or []:
            if item.get("type") == type_:
                return dict(item)
        return {}

    @property
    def succeeded(self) -> bool:
        """Whether the summary condition is Succeeded=True."""
        return self.condition("Succeeded").get("status") == "True"

    def explain(self) -> str:
        """Everything needed to see why the job did not succeed."""
        return (
            f"FineTuneJob status: {self.job.get('status')}\n"
            f"RayJob status: {self.rayjob.get('status')}\n"
            f"stand-in transitions: {self.transitions}\n"
            f"--- entrypoint log (tail) ---\n{self.entrypoint_log[-4000:]}\n"
            f"--- operator log (tail) ---\n{self.operator_log[-3000:]}"
        )


def upload_inputs(s3: Any, job: dict[str, Any], model_dir: Path, dataset_dir: Path) -> None:
    """Put the tiny model and dataset where the job's `s3://` URIs point."""
    from tuneforge.settings import Settings
    from tuneforge.storage import ensure_bucket, upload_dir

    settings = Settings(
        s3_endpoint=s3.url, s3_access_key=s3.access_key, s3_secret_key=s3.secret_key
    )
    model_uri = job["spec"]["baseModel"]["uri"]
    dataset_uri = job["spec"]["dataset"]["uri"]
    dataset_root = dataset_uri.rstrip("/").rsplit("/", 1)[0]
    for uri, folder in ((model_uri, model_dir), (dataset_root, dataset_dir)):
        ensure_bucket(uri, settings)
        upload_dir(folder, uri, settings)


def _wait(what: str, check: Callable[[], Any], timeout_s: float, context: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s:.0f} s waiting for {what}\n{context()}"
            )
        time.sleep(0.5)


def _finished(job: dict[str, Any] | None) -> bool:
    for item in ((job or {}).get("status") or {}).get("conditions") or []:
        if item.get("type") == "Succeeded" and item.get("status") in ("True", "False"):
            return True
    return False


def train_example_job(
    release: Release,
    manifest: dict[str, Any],
    s3: Any,
    model_dir: Path,
    dataset_dir: Path,
    pod_home: Path,
    operator_log: Callable[[], str],
) -> TrainedJob:
    """Apply the example, let operator + stand-in + trainer run it; return the finished state."""
    kube, namespace = release.kube, release.jobs_namespace
    name = manifest["metadata"]["name"]
    upload_inputs(s3, manifest, model_dir, dataset_dir)
    created = kube.request("POST", JOBS.format(ns=namespace), manifest)
    assert created.ok, f"applying {name}: {created.message}"
    applied = time.monotonic()

    def get(path: str) -> dict[str, Any] | None:
        response = kube.request("GET", path)
        return dict(response.body) if response.ok else None

    job_path = f"{JOBS.format(ns=namespace)}/{name}"
    rayjob_name = _wait(
        f"the operator to create the RayJob of {namespace}/{name}",
        lambda: ((get(job_path) or {}).get("status") or {}).get("rayJobName"),
        RAYJOB_TIMEOUT_S,
        lambda: f"job: {get(job_path)}\n--- operator log ---\n{operator_log()}",
    )
    print(f"e2e: FineTuneJob applied to RayJob named: {time.monotonic() - applied:.0f} s")
    rayjob_path = f"{RAYJOBS.format(ns=namespace)}/{rayjob_name}"
    rayjob = _wait(
        f"RayJob {rayjob_name}", lambda: get(rayjob_path), RAYJOB_TIMEOUT_S, operator_log
    )
    head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    pod_env = container_env(kube, head, namespace, f"{rayjob_name}-head")
    pod_env.update(image_env(pod_home))
    with pod_ray(pod_env, pod_home) as ray_address:
        pod_env["RAY_ADDRESS"] = ray_address
        standin = KubeRayStandIn(
            kube, namespace, outcome="execute", env=pod_env, inherit_env=False
        ).start()
        started = time.monotonic()
        try:
            job = _wait(
                f"FineTuneJob {name} to finish (Succeeded True or False)",
                lambda: (lambda j: j if _finished(j) else None)(get(job_path)),
                TRAINING_TIMEOUT_S,
                lambda: f"{standin.entrypoint_log(rayjob_name)[-4000:]}\n{operator_log()}",
            )
        finally:
            standin.stop()
    print(f"e2e: RayJob entrypoint to a finished FineTuneJob: {time.monotonic() - started:.0f} s")
    return TrainedJob(
        job=job,
        rayjob=get(rayjob_path) or rayjob,
        pod_env=pod_env,
        entrypoint_log=standin.entrypoint_log(rayjob_name),
        operator_log=operator_log(),
        transitions=list(standin.transitions),
    )
