"""The trainer checks the tenancy rules again, from the scope the operator put in its env."""

from __future__ import annotations

import pytest

from tuneforge.api import FineTuneJob
from tuneforge.settings import Settings
from tuneforge.tenancy import parse_tenancy
from tuneforge_trainer.errors import InvalidTrainingInput
from tuneforge_trainer.preflight import check_tenancy

POLICY = parse_tenancy("namespaces: {team-a: {storagePrefixes: ['s3://team-a']}}")
assert POLICY is not None
SCOPE = POLICY.scope("team-a").model_dump_json(by_alias=True)


def job(dataset: str, model: str = "team-a.dogs", namespace: str = "team-a") -> FineTuneJob:
    return FineTuneJob.model_validate(
        {
            "metadata": {"name": "dogs", "namespace": namespace},
            "spec": {
                "method": "lora",
                "baseModel": {"uri": "s3://team-a/sd15"},
                "dataset": {"uri": dataset, "instancePrompt": "a photo of sks dog"},
                "output": {"registeredModel": model},
            },
        }
    )


def settings(**values: str) -> Settings:
    return Settings.model_validate({"mlflow_experiment": "tuneforge-team-a", **values})


def test_a_job_within_its_scope_passes() -> None:
    check_tenancy(job("s3://team-a/dogs"), settings(job_scope=SCOPE), "s3://team-a/ckpt")


@pytest.mark.parametrize(
    ("the_job", "checkpoints", "experiment", "message"),
    [
        (job("s3://team-b/dogs"), "s3://team-a/ckpt", None, "spec.dataset.uri 's3://team-b/dogs'"),
        (job("s3://team-a/d", model="team-b.x"), "s3://team-a/c", None, "model scope"),
        (job("s3://team-a/dogs"), "s3://shared/runs", None, "TUNEFORGE_CHECKPOINT_URI"),
        (job("s3://team-a/dogs"), "s3://team-a/c", "tuneforge", "mlflowExperiment"),
        (job("/data/dogs"), "s3://team-a/ckpt", None, "is a local path"),
        (job("s3://team-a/d", namespace="team-b"), "s3://team-a/c", None, "is for namespace"),
    ],
)
def test_what_admission_would_refuse_the_trainer_refuses_too(
    the_job: FineTuneJob, checkpoints: str, experiment: str | None, message: str
) -> None:
    values = {"job_scope": SCOPE} | ({"mlflow_experiment": experiment} if experiment else {})
    with pytest.raises(InvalidTrainingInput, match="tenancy|TUNEFORGE_JOB_SCOPE") as raised:
        check_tenancy(the_job, settings(**values), checkpoints)
    assert message in str(raised.value)


def test_embedded_mode_has_no_scope_and_reads_local_paths() -> None:
    check_tenancy(job("/data/dogs", model="anything"), settings(), "/tmp/ckpt")
