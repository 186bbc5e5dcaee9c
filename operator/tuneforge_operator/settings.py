"""Operator process settings, from the environment (prefix `TUNEFORGE_OPERATOR_`)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _service_account_namespace() -> str:
    if _SA_NAMESPACE.exists():
        return _SA_NAMESPACE.read_text().strip()
    return "tuneforge-system"


class OperatorSettings(BaseSettings):
    """Where to watch, where MLflow is, and how the process exposes itself."""

    model_config = SettingsConfigDict(env_prefix="TUNEFORGE_OPERATOR_", extra="ignore")

    namespaces: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Namespaces to watch (JSON list or comma-separated); empty watches the whole cluster."""
    runtime_namespace: str = Field(
        default_factory=_service_account_namespace,
        validation_alias=AliasChoices("TUNEFORGE_OPERATOR_RUNTIME_NAMESPACE", "POD_NAMESPACE"),
    )
    """Namespace of the `tuneforge-runtimes` ConfigMap: the operator's own (`POD_NAMESPACE`,
    else its service account's, else `tuneforge-system`)."""
    runtime_configmap: str = "tuneforge-runtimes"
    """Name of the ConfigMap holding the training runtimes."""
    runtime_cache_seconds: float = Field(default=5.0, ge=0)
    """How long a read of the runtimes ConfigMap is reused."""
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "TUNEFORGE_OPERATOR_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"
        ),
    )
    """MLflow server to read progress and versions from (http(s) URL); unset skips both."""
    mlflow_token: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TUNEFORGE_OPERATOR_MLFLOW_TOKEN", "MLFLOW_TRACKING_TOKEN"),
    )
    """Bearer token for MLflow (optional)."""
    resync_seconds: float = Field(default=30.0, gt=0)
    """Interval of the level-triggered timer that re-reads RayJob and MLflow for each job; it
    also retries a blocked job, with backoff 5, 10, 20 ... s up to this interval."""
    registration_grace_seconds: float = Field(default=120.0, ge=0)
    """How long after training succeeds the model version may take to appear in MLflow."""
    metrics_port: int = Field(default=8080, ge=0, le=65535)
    """Prometheus metrics port (0 disables)."""
    liveness_port: int = Field(default=8081, ge=0, le=65535)
    """kopf liveness endpoint port, at `/healthz` (0 disables)."""
    bind_address: str = "0.0.0.0"
    """Address the metrics and liveness servers listen on."""
    peering_name: str | None = "tuneforge"
    """kopf peering object: replicas with it pause except the highest priority one.
    Unset (empty) runs standalone (one replica only)."""
    priority: int = Field(default_factory=lambda: random.randint(1, 2**30))
    """Peering priority; random by default so that two replicas never tie (a tie pauses both)."""
    peering_lifetime_seconds: int = Field(default=60, ge=5)
    """How long a silent replica is considered alive (a killed leader blocks others this long)."""
    webhook_port: int = Field(default=0, ge=0, le=65535)
    """HTTPS port of the validating admission webhook (0 disables it; the chart uses 9443)."""
    webhook_certificates: Literal["self-signed", "mounted"] = "self-signed"
    """`self-signed`: the operator creates and renews a CA and certificate in `webhook_secret`
    and patches the `caBundle` of `webhook_configuration`; `mounted`: `tls.crt`/`tls.key` are
    mounted in `webhook_cert_dir` (cert-manager) and their bundle is injected by others."""
    webhook_cert_dir: Path = Path("/tmp/tuneforge-webhook")
    """Where the webhook's `tls.crt`, `tls.key` and `ca.crt` are (written, or mounted)."""
    webhook_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Names (and IPs) the API server reaches the webhook at, e.g. the Service's
    `tuneforge-webhook.tuneforge-system.svc` (comma-separated); the certificate's SANs."""
    webhook_namespace: str = Field(
        default_factory=_service_account_namespace,
        validation_alias=AliasChoices("TUNEFORGE_OPERATOR_WEBHOOK_NAMESPACE", "POD_NAMESPACE"),
    )
    """Namespace of the webhook's certificate Secret: the operator's own."""
    webhook_secret: str = "tuneforge-webhook-tls"
    """Secret holding the self-signed CA and serving certificate (shared by the replicas)."""
    webhook_configuration: str = "tuneforge-webhook"
    """ValidatingWebhookConfiguration whose `caBundle` the operator sets (self-signed only)."""
    webhook_cert_days: int = Field(default=90, ge=2, le=3650)
    """Validity of the self-signed serving certificate."""
    webhook_renew_before_days: int = Field(default=30, ge=1)
    """Renew the serving certificate this long before it expires (checked every minute)."""
    log_format: str = Field(default="json", pattern="^(json|text)$")
    """`json` (one object per line, with the object reference) or `text`."""
    verbose: bool = False
    """Debug logging."""

    @field_validator("namespaces", "webhook_hosts", mode="before")
    @classmethod
    def _split_namespaces(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _webhook_needs_hosts(self) -> OperatorSettings:
        if self.webhook_port and self.webhook_certificates == "self-signed":
            if not self.webhook_hosts:
                raise ValueError(
                    "TUNEFORGE_OPERATOR_WEBHOOK_HOSTS is empty: name the webhook Service's DNS "
                    "names (e.g. tuneforge-webhook.tuneforge-system.svc) for its certificate"
                )
        return self

    @property
    def clusterwide(self) -> bool:
        """True when no namespace is listed."""
        return not self.namespaces
