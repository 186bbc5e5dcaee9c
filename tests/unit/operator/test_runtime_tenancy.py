"""A runtime as a namespace gets it: allowedNamespaces, the team's Secrets, experiment, scope."""

from __future__ import annotations

import json

from tuneforge.api.runtime import TENANCY_KEY, TrainingRuntime, parse_runtimes, runtimes_configmap
from tuneforge.tenancy import JOB_SCOPE_ENV, JobScope, parse_tenancy
from tuneforge_operator.runtimes import PlatformConfig, resolve_for

RUNTIME = TrainingRuntime.model_validate(
    {"image": "trainer:1", "s3SecretRef": "platform-s3", "mlflowSecretRef": "platform-mlflow"}
)
POLICY = """
namespaces:
  team-a:
    storagePrefixes: [s3://team-a]
    checkpointUri: s3://team-a/checkpoints
    s3SecretRef: team-a-s3
    serviceAccountName: team-a-trainer
"""


def test_the_team_gets_its_secrets_experiment_checkpoints_and_scope() -> None:
    tenancy = parse_tenancy(POLICY)
    assert tenancy is not None
    resolved = resolve_for(RUNTIME, tenancy.scope("team-a"))
    assert resolved.s3_secret_ref == "team-a-s3"
    assert resolved.mlflow_secret_ref == "platform-mlflow"  # not set for the team: the runtime's
    assert resolved.service_account_name == "team-a-trainer"
    assert resolved.env["TUNEFORGE_MLFLOW_EXPERIMENT"] == "tuneforge-team-a"
    assert resolved.env["TUNEFORGE_CHECKPOINT_URI"] == "s3://team-a/checkpoints"
    scope = JobScope.model_validate(json.loads(resolved.env[JOB_SCOPE_ENV]))
    assert scope == tenancy.scope("team-a")
    assert RUNTIME.env == {}  # the catalog's runtime is not changed


def test_without_tenancy_the_runtime_is_unchanged() -> None:
    assert resolve_for(RUNTIME, JobScope(namespace="team-a")) is RUNTIME


def test_runtimes_usable_by_a_namespace_and_the_tenancy_key_is_no_runtime() -> None:
    only_b = RUNTIME.model_copy(update={"allowed_namespaces": ["team-b"]})
    data = runtimes_configmap({"open": RUNTIME, "b-gpu": only_b}, "ops", tenancy=POLICY)["data"]
    assert TENANCY_KEY in data and TENANCY_KEY not in parse_runtimes(data)
    config = PlatformConfig(parse_runtimes(data), parse_tenancy(data[TENANCY_KEY]))
    assert config.usable("team-a") == ["open"]
    assert config.usable("team-b") == ["b-gpu", "open"]


def _job(**status: str) -> dict[str, object]:
    spec = {
        "method": "lora",
        "dataset": {"uri": "s3://team-a/dogs", "instancePrompt": "a photo of sks dog"},
        "output": {"registeredModel": "team-a.dogs"},
    }
    return {"metadata": {"name": "dogs", "namespace": "team-a"}, "spec": spec, "status": status}


def test_the_webhook_judges_new_jobs_and_spec_changes_before_the_rayjob() -> None:
    from tuneforge_operator.admission import tenancy_subject

    new, old = _job(), _job()
    created = tenancy_subject("CREATE", new, None)
    assert created is not None and created.output.registered_model == "team-a.dogs"
    assert tenancy_subject("UPDATE", new, old) is None  # kopf's annotations: no spec change
    moved = _job()
    moved["spec"]["output"] = {"registeredModel": "team-b.dogs"}  # type: ignore[index]
    assert tenancy_subject("UPDATE", moved, old) is not None
    assert tenancy_subject("UPDATE", moved, _job(rayJobName="dogs")) is None  # immutable now
    assert tenancy_subject("DELETE", None, old) is None
    deleting = {**moved, "metadata": {"name": "dogs", "deletionTimestamp": "2026-12-01T00:00:00Z"}}
    assert tenancy_subject("UPDATE", deleting, old) is None
    assert tenancy_subject("CREATE", {"spec": {"method": "nope"}}, None) is None  # review refuses
