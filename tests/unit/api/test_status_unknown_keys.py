"""Clients read FineTuneJobs whose status carries other controllers' keys."""

from tuneforge.api import FineTuneJob

JOB = {
    "apiVersion": "tuneforge.io/v1alpha1",
    "kind": "FineTuneJob",
    "metadata": {"name": "a"},
    "spec": {
        "method": "lora",
        "dataset": {"uri": "s3://data/a", "instancePrompt": "a photo of sks toy"},
        "output": {"registeredModel": "a"},
    },
    "status": {
        "rayJobName": "a-train",
        "kopf": {"progress": {"reconcile": {"retries": 1}}},
        "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Pending"}],
    },
}


def test_status_with_foreign_keys_is_readable_and_not_echoed() -> None:
    job = FineTuneJob.model_validate(JOB)
    assert job.status is not None
    assert job.status.ray_job_name == "a-train"
    assert "kopf" not in job.to_manifest(include_status=True)["status"]


def test_spec_still_refuses_unknown_fields() -> None:
    bad = {**JOB, "spec": {**JOB["spec"], "lorra": {"rank": 4}}}
    try:
        FineTuneJob.model_validate(bad)
    except ValueError as exc:
        assert "lorra" in str(exc)
    else:
        raise AssertionError("a misspelt spec field must be refused")
