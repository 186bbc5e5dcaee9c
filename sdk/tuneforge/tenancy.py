"""Tenancy: which storage, model names, runtimes, experiment and credentials a namespace may use.

A platform team that runs TuneForge for several teams writes one policy (Helm values
`tenancy`), rendered under the key `tenancy.yaml` of the `tuneforge-runtimes` ConfigMap. Each
watched namespace (a team) gets its own entry: the `s3://` and `hf://` prefixes its URIs may
name, the registered-model names it may create versions of and move aliases on, its MLflow
experiment, its checkpoint location and its own credential Secrets. Without the key tenancy
is off (one team, the platform's credentials, any bucket). With it, a namespace without an
entry may run nothing.

`job_refusals` is the one decision, pure: the admission webhook, the operator (when no webhook
runs) and the trainer (from the `JobScope` the operator hands it in `TUNEFORGE_JOB_SCOPE` while
a policy is in force) all call it, so a job is refused with the same words wherever it is
caught. Local paths are refused in cluster mode with or without a policy.
"""

from __future__ import annotations

import itertools
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from tuneforge.api.base import ApiModel
from tuneforge.api.runtime import TENANCY_KEY
from tuneforge.api.spec import FineTuneJobSpec, refuse_dot_segments

JOB_SCOPE_ENV = "TUNEFORGE_JOB_SCOPE"
"""Variable of every Ray container that carries the job's `JobScope` as JSON."""
STORAGE_SCHEMES = ("s3://", "hf://")
LOCAL_SCHEMES = ("/", "file://", "./")
_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


def _segments(uri: str) -> tuple[str, list[str]]:
    scheme = next((s for s in STORAGE_SCHEMES if uri.startswith(s)), "")
    return scheme, [part for part in uri[len(scheme) :].split("/") if part]


def uri_within(uri: str, prefix: str) -> bool:
    """True when `uri` lies under `prefix`, compared by whole path segments.

    `s3://team-a/data` is under `s3://team-a` and `s3://team-a/`, never under `s3://team`:
    a bucket or folder name is not a string prefix of another.
    """
    scheme, parts = _segments(uri)
    prefix_scheme, prefix_parts = _segments(prefix)
    return bool(scheme) and scheme == prefix_scheme and parts[: len(prefix_parts)] == prefix_parts


def _check_prefixes(value: list[str], field: str) -> list[str]:
    for prefix in value:
        scheme, parts = _segments(prefix)
        if not scheme or not parts:
            raise ValueError(
                f"{field}: {prefix!r} is not a storage prefix: write s3://bucket[/prefix] "
                "or hf://org[/name]"
            )
        refuse_dot_segments(prefix)
    return value


class TenantPolicy(ApiModel):
    """What one namespace (one team) may use."""

    storage_prefixes: list[str] = Field(min_length=1)
    """`s3://bucket[/prefix]` or `hf://org[/name]` under which every URI of the team's jobs
    must lie: `baseModel.uri`, `dataset.uri`, `dataset.classDataUri`, and its checkpoints."""
    base_model_prefixes: list[str] = Field(default_factory=list)
    """Further prefixes for `baseModel.uri` only (shared base models, e.g. `hf://stable-diffusion-v1-5`)."""
    model_name_prefixes: list[str] | None = None
    """Registered-model names the team's jobs may write (versions and aliases) start with one
    of these; unset means `<namespace>.`, `[]` allows only `modelNames`."""
    model_names: list[str] = Field(default_factory=list)
    """Registered-model names allowed besides the prefixes."""
    mlflow_experiment: str | None = Field(default=None, min_length=1)
    """The team's MLflow experiment; unset means `tuneforge-<namespace>`."""
    checkpoint_uri: str | None = None
    """Where the team's checkpoints go (`TUNEFORGE_CHECKPOINT_URI`); must lie under
    `storagePrefixes`. Unset keeps the runtime's, which must then lie there too."""
    s3_secret_ref: str | None = Field(default=None, pattern=_NAME)
    """Secret in the team's namespace with its own S3 credentials (replaces the runtime's)."""
    mlflow_secret_ref: str | None = Field(default=None, pattern=_NAME)
    """Secret in the team's namespace with its own MLflow credentials (replaces the runtime's)."""
    service_account_name: str | None = Field(default=None, pattern=_NAME)
    """ServiceAccount of the team's Ray pods (workload identity), replacing the runtime's."""

    @field_validator("storage_prefixes", "base_model_prefixes")
    @classmethod
    def _prefixes(cls, value: list[str], info: Any) -> list[str]:
        return _check_prefixes(value, info.field_name)

    @field_validator("model_name_prefixes")
    @classmethod
    def _no_empty_name_prefix(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not prefix for prefix in value):
            raise ValueError(
                "modelNamePrefixes: an empty prefix would allow every model name; "
                "write e.g. 'team-a.'"
            )
        return value

    @model_validator(mode="after")
    def _checkpoints_inside(self) -> TenantPolicy:
        uri = self.checkpoint_uri
        if uri is not None and not any(uri_within(uri, p) for p in self.storage_prefixes):
            raise ValueError(
                f"checkpointUri {uri!r} is outside storagePrefixes: put it under one of them"
            )
        return self

    def name_prefixes(self, namespace: str) -> list[str]:
        """The model-name prefixes in force (`<namespace>.` unless set)."""
        if self.model_name_prefixes is None:
            return [f"{namespace}."]
        return self.model_name_prefixes

    def experiment(self, namespace: str) -> str:
        """The team's MLflow experiment."""
        return self.mlflow_experiment or f"tuneforge-{namespace}"

    def allows_model(self, namespace: str, name: str) -> bool:
        """True when the team may write versions and aliases of registered model `name`."""
        return name in self.model_names or any(
            name.startswith(p) for p in self.name_prefixes(namespace)
        )


class Tenancy(ApiModel):
    """The whole policy: one entry per namespace."""

    namespaces: dict[str, TenantPolicy]
    """Namespace -> what it may use. A namespace not listed may run no job."""

    @model_validator(mode="after")
    def _teams_do_not_overlap(self) -> Tenancy:
        for (a, pa), (b, pb) in itertools.combinations(sorted(self.namespaces.items()), 2):
            for x, y in itertools.product(pa.storage_prefixes, pb.storage_prefixes):
                if uri_within(x, y) or uri_within(y, x):
                    raise ValueError(
                        f"namespaces.{a}.storagePrefixes {x!r} and namespaces.{b}."
                        f"storagePrefixes {y!r} overlap: give each team its own prefix (a "
                        "shared read-only base model goes in baseModelPrefixes)"
                    )
            for x, y in itertools.product(pa.name_prefixes(a), pb.name_prefixes(b)):
                if x.startswith(y) or y.startswith(x):
                    raise ValueError(
                        f"the model-name prefixes {x!r} ({a}) and {y!r} ({b}) overlap: "
                        "each team needs its own"
                    )
        return self

    def scope(self, namespace: str) -> JobScope:
        """What a job of `namespace` runs under."""
        return JobScope(namespace=namespace, tenancy=True, tenant=self.namespaces.get(namespace))


def parse_tenancy(text: str | None) -> Tenancy | None:
    """The policy in the ConfigMap's `tenancy.yaml` text; None when absent (tenancy off).

    ValueError naming the key and the field when the text is not a valid policy.
    """
    if text is None:
        return None
    try:
        return Tenancy.model_validate(yaml.safe_load(text))
    except (ValidationError, yaml.YAMLError) as error:
        raise ValueError(f"the tenancy policy ({TENANCY_KEY}) is invalid: {error}") from error


class JobScope(ApiModel):
    """What one job runs under: its namespace's policy, as the operator hands it to the trainer."""

    namespace: str
    """The job's namespace."""
    tenancy: bool = False
    """Whether a tenancy policy is in force."""
    tenant: TenantPolicy | None = None
    """The namespace's entry (None with tenancy on: the namespace may run nothing)."""
    cluster: bool = True
    """Cluster mode: local paths (`/…`, `file://`, `./`) are refused (embedded mode allows them)."""


MODEL_FIELDS = ("spec.baseModel.uri", "spec.evaluation.dinoModel", "spec.evaluation.clipModel")
"""URI fields that name a model: `baseModelPrefixes` cover them besides `storagePrefixes`."""


def _uri_fields(spec: FineTuneJobSpec) -> dict[str, str]:
    fields = {"spec.baseModel.uri": spec.base_model.uri, "spec.dataset.uri": spec.dataset.uri}
    if spec.dataset.class_data_uri:
        fields["spec.dataset.classDataUri"] = spec.dataset.class_data_uri
    evaluation = spec.evaluation
    if evaluation is not None:  # only the evaluators its metrics load
        metrics = {metric.value for metric in evaluation.metrics}
        if "dino" in metrics:
            fields["spec.evaluation.dinoModel"] = evaluation.dino_model
        if metrics & {"clipI", "clipT"}:
            fields["spec.evaluation.clipModel"] = evaluation.clip_model
    return fields


def _storage_refusals(
    scope: JobScope, tenant: TenantPolicy, fields: dict[str, str], checkpoint_uri: str | None
) -> list[str]:
    problems = []
    ns = scope.namespace
    if checkpoint_uri is not None:
        fields = {**fields, "TUNEFORGE_CHECKPOINT_URI": checkpoint_uri}
    for field, uri in fields.items():
        allowed = tenant.storage_prefixes
        if field in MODEL_FIELDS:
            allowed = allowed + tenant.base_model_prefixes
        if not any(uri_within(uri, prefix) for prefix in allowed):
            problems.append(
                f"{field} {uri!r} is outside namespace {ns}'s storage (tenancy rule "
                f"storagePrefixes: {', '.join(allowed)}): use a URI under one of them"
            )
    return problems


def scope_from_env(text: str | None, namespace: str | None) -> JobScope:
    """The scope in `TUNEFORGE_JOB_SCOPE` (set by the operator on every Ray container).

    Without it the trainer runs in embedded mode: tenancy off, local paths allowed. ValueError
    when the text is not a scope or names another namespace than the job's.
    """
    if not text:
        return JobScope(namespace=namespace or "default", cluster=False)
    try:
        scope = JobScope.model_validate_json(text)
    except ValidationError as error:
        raise ValueError(f"{JOB_SCOPE_ENV} is not a job scope: {error}") from error
    if namespace is not None and scope.namespace != namespace:
        raise ValueError(
            f"{JOB_SCOPE_ENV} is for namespace {scope.namespace}, the job is in {namespace}: "
            "the RayJob was not built by the operator for this job"
        )
    return scope


def job_refusals(
    spec: FineTuneJobSpec,
    scope: JobScope,
    runtime_namespaces: list[str] | None = None,
    checkpoint_uri: str | None = None,
    experiment: str | None = None,
) -> list[str]:
    """Every rule the job breaks in its namespace, one message each naming the field and rule.

    `runtime_namespaces` is the chosen runtime's `allowedNamespaces` (None: any namespace);
    `checkpoint_uri` and `experiment` are the checkpoint location and MLflow experiment in
    force, when known (the trainer knows them).
    """
    ns = scope.namespace
    fields = _uri_fields(spec)
    problems = []
    if scope.cluster:
        problems += [
            f"{field} {uri!r} is a local path, which only embedded mode (tuneforge run) "
            "reads: in a cluster use s3://bucket/prefix (or hf:// for a base model)"
            for field, uri in fields.items()
            if uri.startswith(LOCAL_SCHEMES)
        ]
    if runtime_namespaces is not None and ns not in runtime_namespaces:
        problems.append(
            f"spec.runtime {spec.runtime!r} is not allowed in namespace {ns} (tenancy rule: the "
            "runtime's allowedNamespaces): choose a runtime of your namespace or ask the "
            "platform team"
        )
    if not scope.tenancy:
        return problems
    tenant = scope.tenant
    if tenant is None:
        return problems + [
            f"namespace {ns} has no entry in the tenancy policy (tenancy rule: only listed "
            "namespaces run jobs): ask the platform team to add it to values `tenancy`"
        ]
    problems += _storage_refusals(scope, tenant, fields, checkpoint_uri)
    if experiment is not None and experiment != tenant.experiment(ns):
        problems.append(
            f"TUNEFORGE_MLFLOW_EXPERIMENT {experiment!r} is not namespace {ns}'s experiment "
            f"(tenancy rule mlflowExperiment: {tenant.experiment(ns)!r}): the runtime must not "
            "override it"
        )
    name = spec.output.registered_model
    if not tenant.allows_model(ns, name):
        scope_text = ", ".join(
            [f"names starting {p!r}" for p in tenant.name_prefixes(ns)] + tenant.model_names
        )
        alias = f" (and its alias {spec.output.alias!r})" if spec.output.alias else ""
        problems.append(
            f"spec.output.registeredModel {name!r}{alias} is outside namespace {ns}'s model "
            f"scope (tenancy rule modelNamePrefixes/modelNames: {scope_text or 'none'}): "
            "name a model of your team"
        )
    return problems
