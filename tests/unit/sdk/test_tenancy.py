"""The tenancy decision (`tuneforge.tenancy.job_refusals`) and the policy's own checks."""

from __future__ import annotations

from typing import Any

import pytest

from tuneforge.api import FineTuneJobSpec
from tuneforge.tenancy import (
    JobScope,
    Tenancy,
    job_refusals,
    parse_tenancy,
    scope_from_env,
    uri_within,
)

POLICY = """
namespaces:
  team-a:
    storagePrefixes: [s3://team-a, s3://shared/team-a/]
    baseModelPrefixes: [hf://stable-diffusion-v1-5, s3://models/sd15]
    checkpointUri: s3://team-a/checkpoints
    s3SecretRef: team-a-s3
  team-b:
    storagePrefixes: [s3://team-b]
    modelNamePrefixes: []
    modelNames: [dogs]
    mlflowExperiment: b-runs
"""


def spec(**changes: Any) -> FineTuneJobSpec:
    """A LoRA spec of team-a that every rule admits, with `changes` (camelCase) on top."""
    wire: dict[str, Any] = {
        "method": "lora",
        "baseModel": {"uri": "hf://stable-diffusion-v1-5/stable-diffusion-v1-5"},
        "dataset": {"uri": "s3://team-a/dogs", "instancePrompt": "a photo of sks dog"},
        "output": {"registeredModel": "team-a.dogs", "alias": "production"},
    }
    for path, value in changes.items():
        section, _, key = path.partition(".")
        if key:
            wire.setdefault(section, {})[key] = value
        else:
            wire[section] = value
    return FineTuneJobSpec.model_validate(wire)


@pytest.fixture(scope="module")
def tenancy() -> Tenancy:
    policy = parse_tenancy(POLICY)
    assert policy is not None
    return policy


def test_prefixes_match_whole_segments() -> None:
    assert uri_within("s3://team-a/dogs", "s3://team-a")
    assert uri_within("s3://team-a/dogs", "s3://team-a/")
    assert uri_within("s3://team-a", "s3://team-a")
    assert not uri_within("s3://team-ab/dogs", "s3://team-a")
    assert not uri_within("s3://team/x", "s3://team-a")
    assert not uri_within("hf://team-a/x", "s3://team-a")
    assert not uri_within("/data/team-a", "s3://team-a")


def test_a_same_team_job_is_admitted(tenancy: Tenancy) -> None:
    assert job_refusals(spec(), tenancy.scope("team-a")) == []
    explicit = spec(
        **{"output.registeredModel": "dogs", "dataset.uri": "s3://team-b/x"},
        **{"baseModel.uri": "s3://team-b/base"},
    )
    assert (
        job_refusals(explicit, tenancy.scope("team-b"), ["team-b"], "s3://team-b/c", "b-runs") == []
    )


@pytest.mark.parametrize(
    ("field", "uri"),
    [
        ("dataset.uri", "s3://team-b/dogs"),
        ("dataset.uri", "s3://team-ab/dogs"),
        ("dataset.classDataUri", "s3://team-b/class"),
        ("baseModel.uri", "s3://team-b/private-base"),
    ],
)
def test_another_teams_storage_is_refused_naming_field_and_rule(
    tenancy: Tenancy, field: str, uri: str
) -> None:
    (problem,) = job_refusals(spec(**{field: uri}), tenancy.scope("team-a"))
    assert problem.startswith(f"spec.{field} {uri!r} is outside namespace team-a's storage")
    assert "tenancy rule storagePrefixes: s3://team-a, s3://shared/team-a/" in problem


def test_shared_base_model_prefixes_open_only_the_base_model(tenancy: Tenancy) -> None:
    scope = tenancy.scope("team-a")
    assert job_refusals(spec(**{"baseModel.uri": "s3://models/sd15/v1"}), scope) == []
    (problem,) = job_refusals(spec(**{"dataset.uri": "s3://models/sd15/v1"}), scope)
    assert problem.startswith("spec.dataset.uri")


def test_evaluator_models_are_models_checked_only_when_a_metric_loads_them(
    tenancy: Tenancy,
) -> None:
    scope = tenancy.scope("team-a")
    shared = {"dinoModel": "s3://models/sd15/dino", "clipModel": "s3://team-a/clip"}
    assert job_refusals(spec(evaluation={**shared, "metrics": ["dino", "clipT"]}), scope) == []
    foreign = {"dinoModel": "s3://team-b/dino", "clipModel": "s3://team-b/clip"}
    (problem,) = job_refusals(spec(evaluation={**foreign, "metrics": ["dino"]}), scope)
    assert problem.startswith("spec.evaluation.dinoModel 's3://team-b/dino' is outside")
    assert "s3://models/sd15" in problem  # baseModelPrefixes cover evaluator models too
    problems = job_refusals(spec(evaluation=foreign), scope)
    assert [p.split(" ")[0] for p in problems] == [
        "spec.evaluation.dinoModel",
        "spec.evaluation.clipModel",
    ]


def test_another_teams_model_and_alias_are_refused(tenancy: Tenancy) -> None:
    taken = spec(**{"output.registeredModel": "team-b.dogs"})
    (problem,) = job_refusals(taken, tenancy.scope("team-a"))
    assert "spec.output.registeredModel 'team-b.dogs' (and its alias 'production')" in problem
    assert "tenancy rule modelNamePrefixes/modelNames: names starting 'team-a.'" in problem
    team_b = spec(**{"dataset.uri": "s3://team-b/x", "baseModel.uri": "s3://team-b/base"})
    (listed,) = job_refusals(team_b, tenancy.scope("team-b"))
    assert "'team-a.dogs'" in listed and "modelNames: dogs" in listed


def test_a_runtime_of_other_namespaces_is_refused(tenancy: Tenancy) -> None:
    (problem,) = job_refusals(spec(), tenancy.scope("team-a"), runtime_namespaces=["team-b"])
    assert "spec.runtime 'default' is not allowed in namespace team-a" in problem
    assert "allowedNamespaces" in problem


def test_an_unlisted_namespace_runs_nothing(tenancy: Tenancy) -> None:
    (problem,) = job_refusals(spec(), tenancy.scope("team-c"))
    assert "namespace team-c has no entry in the tenancy policy" in problem


def test_checkpoints_and_experiment_in_force_are_checked(tenancy: Tenancy) -> None:
    scope = tenancy.scope("team-a")
    ok = job_refusals(
        spec(), scope, checkpoint_uri="s3://team-a/checkpoints/x", experiment="tuneforge-team-a"
    )
    assert ok == []
    shared = job_refusals(spec(), scope, checkpoint_uri="s3://tuneforge-checkpoints/runs")
    assert [p.split(" ")[0] for p in shared] == ["TUNEFORGE_CHECKPOINT_URI"]
    (wrong,) = job_refusals(spec(), scope, experiment="tuneforge")
    assert "tenancy rule mlflowExperiment: 'tuneforge-team-a'" in wrong


@pytest.mark.parametrize("uri", ["/data/dogs", "file:///data/dogs", "./dogs"])
def test_local_paths_only_in_embedded_mode(uri: str) -> None:
    local = spec(**{"dataset.uri": uri})
    (problem,) = job_refusals(local, JobScope(namespace="team-a"))
    assert problem.startswith(f"spec.dataset.uri {uri!r} is a local path")
    assert "use s3://bucket/prefix" in problem
    assert job_refusals(local, JobScope(namespace="team-a", cluster=False)) == []


def test_without_a_policy_any_bucket_and_name_pass() -> None:
    anything = spec(**{"dataset.uri": "s3://team-b/x", "output.registeredModel": "team-b.x"})
    assert job_refusals(anything, JobScope(namespace="team-a")) == []
    assert parse_tenancy(None) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "namespaces: {a: {storagePrefixes: [s3://x]}, b: {storagePrefixes: [s3://x/b]}}",
            "overlap",
        ),
        (
            "namespaces: {a: {storagePrefixes: [s3://a], modelNamePrefixes: [t]},"
            " b: {storagePrefixes: [s3://b], modelNamePrefixes: [team]}}",
            "model-name prefixes 't' (a) and 'team' (b) overlap",
        ),
        ("namespaces: {a: {storagePrefixes: [s3://a], modelNamePrefixes: ['']}}", "empty prefix"),
        ("namespaces: {a: {storagePrefixes: [team-a]}}", "not a storage prefix"),
        ("namespaces: {a: {storagePrefixes: []}}", "storagePrefixes"),
        (
            "namespaces: {a: {storagePrefixes: [s3://a], checkpointUri: s3://b/c}}",
            "outside storagePrefixes",
        ),
        ("namespaces: {a: {storagePrefixes: [s3://a], bukets: 1}}", "bukets"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="tenancy policy") as raised:
        parse_tenancy(text)
    assert message in str(raised.value)


def test_the_operators_scope_travels_to_the_trainer(tenancy: Tenancy) -> None:
    text = tenancy.scope("team-a").model_dump_json(by_alias=True, exclude_none=True)
    assert scope_from_env(text, "team-a") == tenancy.scope("team-a")
    with pytest.raises(ValueError, match="is for namespace team-a, the job is in team-b"):
        scope_from_env(text, "team-b")
    with pytest.raises(ValueError, match="TUNEFORGE_JOB_SCOPE is not a job scope"):
        scope_from_env("{", "team-a")
    embedded = scope_from_env(None, None)
    assert not embedded.cluster and not embedded.tenancy
