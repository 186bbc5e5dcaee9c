"""The chart's pods run with the chart's environment only: a Secret missing a key fails them.

The end-to-end flow (test_yaml_to_image.py) runs the trainer's entrypoint and the Ray heads
with the env their pods would get and nothing of the test process's (`inherit_env=False`,
podray.py). Here the chart's S3 Secret in the team namespace loses its secret key, as a
platform team's typo would; the test process itself holds that key. The trainer pod, run the
way the end-to-end flow runs it, must fail at its pre-flight check naming the variable.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.podenv import container_env
from tests.e2e.release import chart_values, image_env, install
from tests.fixtures._kube_cluster import KubeCluster
from tests.fixtures._procs import free_port
from tests.fixtures.kuberay_standin import KubeRayStandIn
from tuneforge.api import FineTuneJob
from tuneforge.api.runtime import parse_runtimes
from tuneforge_operator.builder import build_rayjob

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "e2e" / "tiny-lora.yaml"
RAYJOBS = "/apis/ray.io/v1/namespaces/{ns}/rayjobs"


def _chart_object(docs: list[dict[str, Any]], kind: str, namespace: str, has: str) -> Any:
    (found,) = [
        d
        for d in docs
        if d["kind"] == kind
        and d["metadata"].get("namespace") == namespace
        and has in (d.get("stringData") or d.get("data") or {})
    ]
    return found


def test_a_secret_missing_a_key_fails_the_trainer_pod(
    kube: KubeCluster,
    s3: Any,
    mlflow_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    namespace = kube.create_namespace("tuneforge-system")
    jobs = kube.create_namespace("ml-team")
    manifest = yaml.safe_load(EXAMPLE.read_text())
    ports = {"health": free_port(), "metrics": free_port()}
    values = chart_values(
        jobs, s3, mlflow_server, ports, tmp_path / "cache", manifest["spec"]["baseModel"]["uri"]
    )
    release = install(kube, namespace, jobs, values, tmp_path / "chart")
    secret = _chart_object(release.docs, "Secret", jobs, "AWS_SECRET_ACCESS_KEY")
    path = f"/api/v1/namespaces/{jobs}/secrets/{secret['metadata']['name']}"
    typo = kube.rest.request(
        "PATCH",
        path,
        {"data": {"AWS_SECRET_ACCESS_KEY": None}},
        content_type="application/merge-patch+json",
    )
    assert typo.ok, typo.message
    for key, value in s3.env().items():  # what the old harness leaked into the pod
        monkeypatch.setenv(key, value)

    (runtimes,) = [  # the operator's runtimes ConfigMap, as the chart rendered it
        d
        for d in release.docs
        if d["kind"] == "ConfigMap"
        and (d["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "runtimes"
    ]
    runtime = parse_runtimes(runtimes["data"])["default"]
    assert not isinstance(runtime, str), runtime
    job = FineTuneJob.model_validate(
        {
            "metadata": {"name": "no-key", "namespace": jobs, "uid": "uid-no-key"},
            "spec": manifest["spec"],
        }
    )
    rayjob = build_rayjob(job, runtime)
    rayjob["metadata"].pop("ownerReferences", None)
    created = kube.request("POST", RAYJOBS.format(ns=jobs), rayjob)
    assert created.ok, created.message
    head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    pod_env = container_env(kube, head, jobs, "no-key-head")
    pod_env.update(image_env(tmp_path / "pod-home"))
    assert "AWS_SECRET_ACCESS_KEY" not in pod_env and "AWS_ACCESS_KEY_ID" in pod_env

    standin = KubeRayStandIn(kube, jobs, outcome="execute", env=pod_env, inherit_env=False)
    standin.start()
    try:
        deadline = time.monotonic() + 120
        while "Failed" not in [t[1] for t in standin.transitions if t[0] == "no-key"]:
            assert time.monotonic() < deadline, standin.entrypoint_log("no-key")[-3000:]
            time.sleep(0.5)
    finally:
        standin.stop()
    log = standin.entrypoint_log("no-key")
    assert "S3 credentials are missing" in log and "TUNEFORGE_S3_SECRET_KEY" in log, log[-3000:]
