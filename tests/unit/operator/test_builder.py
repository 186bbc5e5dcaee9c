"""The pure RayJob builder, on plain data."""

from __future__ import annotations

import copy

import pytest

from tests.unit.operator.helpers import JOB_UID, job, runtime
from tuneforge_operator.builder import (
    KUEUE_QUEUE_LABEL,
    MAX_RAYJOB_NAME,
    build_rayjob,
    changed_immutable_fields,
    rayjob_name,
)
from tuneforge_operator.entrypoint import parse_entrypoint


def test_rayjob_is_owned_by_the_job_and_named_after_it() -> None:
    manifest = build_rayjob(job(), runtime())
    meta = manifest["metadata"]
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayJob")
    assert (meta["name"], meta["namespace"]) == ("dog", "team-a")
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "tuneforge.io/v1alpha1",
            "kind": "FineTuneJob",
            "name": "dog",
            "uid": JOB_UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["labels"]["tuneforge.io/job-uid"] == JOB_UID
    assert KUEUE_QUEUE_LABEL not in meta["labels"]


def test_builder_is_deterministic_and_does_not_touch_its_inputs() -> None:
    the_job, the_runtime = job(), runtime()
    before = copy.deepcopy(the_job.model_dump())
    assert build_rayjob(the_job, the_runtime) == build_rayjob(the_job, the_runtime)
    assert the_job.model_dump() == before


def test_entrypoint_carries_the_whole_job_without_server_metadata() -> None:
    the_job = job()
    the_job.metadata.annotations["kopf.zalando.org/last-handled-configuration"] = "{}"
    entrypoint = build_rayjob(the_job, runtime())["spec"]["entrypoint"]
    carried = parse_entrypoint(entrypoint)
    assert carried is not None
    assert carried["metadata"] == {
        "name": "dog",
        "namespace": "team-a",
        "uid": JOB_UID,
        "generation": 1,
    }
    assert carried["spec"] == the_job.spec.to_wire()
    assert carried["spec"]["training"]["maxSteps"] == 100


def test_cluster_shape_comes_from_resources_and_runtime() -> None:
    cluster = build_rayjob(job(), runtime())["spec"]["rayClusterSpec"]
    assert cluster["rayVersion"] == "2.60.0"
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    head_pod = head["template"]["spec"]
    assert "tolerations" not in head_pod and "nodeSelector" not in head_pod
    (workers,) = cluster["workerGroupSpecs"]
    assert workers["replicas"] == workers["minReplicas"] == workers["maxReplicas"] == 2
    assert workers["rayStartParams"] == {"num-cpus": "4", "num-gpus": "1"}
    pod = workers["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.example/tuneforge-trainer:0.1.0"
    assert container["resources"]["limits"] == {"cpu": "4", "memory": "16Gi", "amd.com/gpu": "1"}
    assert pod["nodeSelector"] == {"pool": "gpu"}
    assert pod["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["serviceAccountName"] == "trainer"
    assert container["envFrom"] == [
        {"secretRef": {"name": "s3-credentials"}},
        {"secretRef": {"name": "mlflow-credentials"}},
    ]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["HF_HUB_OFFLINE"] == "1"
    assert not [
        name for name in env if name.startswith("TUNEFORGE_JOB_")
    ]  # the JSON is the channel
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]


def test_cpu_job_asks_for_no_gpu() -> None:
    cluster = build_rayjob(job(resources={"workers": 1, "gpusPerWorker": 0}), runtime())["spec"][
        "rayClusterSpec"
    ]
    (workers,) = cluster["workerGroupSpecs"]
    assert "amd.com/gpu" not in workers["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert "num-gpus" not in workers["rayStartParams"]


def test_lifecycle_fields_pass_through() -> None:
    spec = build_rayjob(
        job(activeDeadlineSeconds=3600, backoffLimit=2, suspend=True, ttlSecondsAfterFinished=60),
        runtime(),
    )["spec"]
    assert spec["activeDeadlineSeconds"] == 3600
    assert spec["backoffLimit"] == 2
    assert spec["suspend"] is True
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] == 60
    assert "activeDeadlineSeconds" not in build_rayjob(job(), runtime())["spec"]


def test_queued_jobs_are_created_suspended_for_kueue() -> None:
    manifest = build_rayjob(job(queueName="team-a-queue"), runtime())
    assert manifest["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "team-a-queue"
    assert manifest["spec"]["suspend"] is True


@pytest.mark.parametrize("length", [1, 47, 48, 63])
def test_rayjob_name_fits_kuberay_limit(length: int) -> None:
    name = ("a" * (length - 1) + "b")[:length]
    result = rayjob_name(name)
    assert len(result) <= MAX_RAYJOB_NAME
    assert result == rayjob_name(name)
    assert (result == name) == (length <= MAX_RAYJOB_NAME)


def test_long_names_that_share_a_prefix_get_different_rayjobs() -> None:
    a, b = "x" * 60 + "aaa", "x" * 60 + "bbb"
    assert rayjob_name(a) != rayjob_name(b)


def test_only_suspend_may_change_after_start() -> None:
    applied = job().spec.to_wire()
    assert changed_immutable_fields(applied, job(suspend=True).spec.to_wire()) == []
    changed = job(method="lora", training={"maxSteps": 5}).spec.to_wire()
    assert changed_immutable_fields(applied, changed) == ["spec.training"]


def test_building_needs_a_job_read_from_the_api() -> None:
    no_uid = job()
    no_uid.metadata.uid = None
    with pytest.raises(ValueError, match="metadata.uid"):
        build_rayjob(no_uid, runtime())
