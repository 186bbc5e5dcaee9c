"""The pure RayJob builder, on plain data."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.unit.operator.helpers import JOB_UID, job, runtime
from tuneforge.api.runtime import DEFAULT_MODEL_CACHE_PATH, TRAINER_CACHE_ENV
from tuneforge_operator.builder import (
    KUEUE_QUEUE_LABEL,
    MAX_RAYJOB_NAME,
    MODEL_CACHE_VOLUME,
    RAY_AUTH_OPTIONS,
    SUBMITTER_CONTAINER,
    TMP_VOLUME,
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
    assert container["resources"]["limits"] == {
        "cpu": "4",
        "memory": "16Gi",
        "amd.com/gpu": "1",
        "ephemeral-storage": "32Gi",
    }
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


def test_a_runtime_default_queue_applies_to_jobs_without_their_own() -> None:
    queued = runtime(queueName="gpu-queue")
    manifest = build_rayjob(job(), queued)
    assert manifest["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "gpu-queue"
    assert manifest["spec"]["suspend"] is True, "Kueue admits a queued RayJob by un-suspending it"
    own = build_rayjob(job(queueName="team-a-queue"), queued)
    assert own["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "team-a-queue"
    unqueued = build_rayjob(job(), runtime())
    assert unqueued["spec"]["suspend"] is False


def test_a_runtime_queue_name_must_be_a_kubernetes_name() -> None:
    with pytest.raises(ValueError, match="queueName|queue_name"):
        runtime(queueName="Team_A")


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


def _pods(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = manifest["spec"]["rayClusterSpec"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [group["template"]["spec"] for group in groups]


def _cache_volume(pod: dict[str, Any]) -> dict[str, Any]:
    (volume,) = [v for v in pod["volumes"] if v["name"] == MODEL_CACHE_VOLUME]
    return volume


def test_every_ray_pod_downloads_into_a_size_limited_empty_dir_by_default() -> None:
    pods = _pods(build_rayjob(job(), runtime()))
    assert len(pods) == 2  # head and workers
    for pod in pods:
        assert _cache_volume(pod) == {"name": MODEL_CACHE_VOLUME, "emptyDir": {"sizeLimit": "20Gi"}}
        (container,) = pod["containers"]
        mount = {"name": MODEL_CACHE_VOLUME, "mountPath": DEFAULT_MODEL_CACHE_PATH}
        assert mount in container["volumeMounts"]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env[TRAINER_CACHE_ENV] == DEFAULT_MODEL_CACHE_PATH


def test_the_trainer_reads_its_cache_where_the_volume_is_mounted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tuneforge.settings import Settings
    from tuneforge_trainer.trainer_settings import TrainerSettings

    the_runtime = runtime(
        modelCache={"mountPath": "/models", "sizeLimit": "50Gi"},
        ephemeralStorage={"limit": "64Gi"},
    )
    (container,) = _pods(build_rayjob(job(), the_runtime))[1]["containers"]
    for variable in container["env"]:
        monkeypatch.setenv(variable["name"], variable["value"])
    assert TrainerSettings().cache_dir(Settings()) == Path("/models")
    assert {"name": MODEL_CACHE_VOLUME, "mountPath": "/models"} in container["volumeMounts"]


@pytest.mark.parametrize(
    ("cache", "source"),
    [
        (
            {"persistentVolumeClaim": "sd-models"},
            {"persistentVolumeClaim": {"claimName": "sd-models"}},
        ),
        (
            {"hostPath": "/mnt/nvme/tuneforge"},
            {"hostPath": {"path": "/mnt/nvme/tuneforge", "type": "DirectoryOrCreate"}},
        ),
    ],
)
def test_a_runtime_can_name_a_claim_or_a_host_path_for_the_cache(
    cache: dict[str, str], source: dict[str, Any]
) -> None:
    for pod in _pods(build_rayjob(job(), runtime(modelCache=cache))):
        assert _cache_volume(pod) == {"name": MODEL_CACHE_VOLUME, **source}


def test_shm_stays_beside_the_cache_and_can_be_left_out() -> None:
    (head, _) = _pods(build_rayjob(job(), runtime()))
    assert {v["name"] for v in head["volumes"]} == {MODEL_CACHE_VOLUME, TMP_VOLUME, "dshm"}
    (head, _) = _pods(build_rayjob(job(), runtime(shmSize=None)))
    assert [v["name"] for v in head["volumes"]] == [MODEL_CACHE_VOLUME, TMP_VOLUME]
    mounts = [m["name"] for m in head["containers"][0]["volumeMounts"]]
    assert mounts == [MODEL_CACHE_VOLUME, TMP_VOLUME]


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        (
            {"modelCache": {"persistentVolumeClaim": "sd", "hostPath": "/mnt/sd"}},
            "either persistentVolumeClaim or hostPath",
        ),
        ({"env": {TRAINER_CACHE_ENV: "/elsewhere"}}, "modelCache.mountPath"),
        ({"modelCache": {"mountPath": "relative/cache"}}, "mount_path|mountPath"),
        ({"modelCache": {"sizeLimit": "40Gi"}}, "ephemeralStorage.limit 32Gi must exceed"),
        ({"ephemeralStorage": {"request": "64Gi"}}, "request 64Gi is above limit 32Gi"),
        ({"runAsUser": 0}, "run_as_user|runAsUser"),
    ],
)
def test_runtime_refuses_a_cache_it_cannot_mount(overrides: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        runtime(**overrides)


def _all_pods(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Head, workers and KubeRay's submitter."""
    return [*_pods(manifest), manifest["spec"]["submitterPodTemplate"]["spec"]]


def test_every_pod_runs_hardened() -> None:
    pods = _all_pods(build_rayjob(job(), runtime(runAsUser=2000, runAsGroup=3000)))
    assert len(pods) == 3
    for pod in pods:
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": 2000,
            "runAsGroup": 3000,
            "fsGroup": 3000,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        (container,) = pod["containers"]
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        # The root is read-only: /tmp (Ray's sessions, HOME) is an emptyDir.
        assert {"name": TMP_VOLUME, "emptyDir": {}} in pod["volumes"]
        assert {"name": TMP_VOLUME, "mountPath": "/tmp"} in container["volumeMounts"]
        assert {"name": "HOME", "value": "/tmp"} in container["env"]


def test_every_container_has_a_disk_request_and_limit_from_its_runtime() -> None:
    manifest = build_rayjob(job(), runtime(ephemeralStorage={"request": "2Gi", "limit": "40Gi"}))
    for pod in _pods(manifest):
        resources = pod["containers"][0]["resources"]
        assert resources["requests"]["ephemeral-storage"] == "2Gi"
        assert resources["limits"]["ephemeral-storage"] == "40Gi"
    submitter = manifest["spec"]["submitterPodTemplate"]["spec"]["containers"][0]
    assert submitter["resources"]["limits"]["ephemeral-storage"] == "1Gi"


def test_ray_clusters_use_token_auth_and_the_submitter_is_left_to_kuberay() -> None:
    manifest = build_rayjob(job(), runtime())
    assert (
        manifest["spec"]["rayClusterSpec"]["authOptions"] == RAY_AUTH_OPTIONS == {"mode": "token"}
    )
    template = manifest["spec"]["submitterPodTemplate"]
    (container,) = template["spec"]["containers"]
    assert container["name"] == SUBMITTER_CONTAINER
    assert container["image"] == "registry.example/tuneforge-trainer:0.1.0"
    assert "command" not in container  # KubeRay fills in `ray job submit ...`
    assert template["spec"]["restartPolicy"] == "Never"
    assert template["metadata"]["labels"]["tuneforge.io/job-name"] == job().metadata.name


def test_no_ray_pod_carries_a_secret_value() -> None:
    """Credentials reach the pods only as Secret references, never as literal env values."""
    manifest = build_rayjob(job(), runtime())
    for pod in _all_pods(manifest):
        (container,) = pod["containers"]
        names = {e["name"] for e in container["env"]}
        assert not {n for n in names if "SECRET" in n or "TOKEN" in n or "PASSWORD" in n}
