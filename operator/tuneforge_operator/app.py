"""The operator process: settings, logging, metrics, kopf registry and start-up."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import kopf

from tuneforge_operator.handlers import post_event, register
from tuneforge_operator.kubeapi import KubeApi
from tuneforge_operator.metrics import serve_metrics
from tuneforge_operator.mlflow_reader import MlflowReader
from tuneforge_operator.peering import ensure_peering
from tuneforge_operator.reconcile import Reconciler
from tuneforge_operator.runtimes import RuntimeCatalog
from tuneforge_operator.settings import OperatorSettings
from tuneforge_operator.webhook import register_webhook

ANNOTATION_PREFIX = "tuneforge.io"


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf's diff-base storage for an operator with no change handlers: nothing to keep.

    kopf deep-copies every watched object on every event to diff it against the last handled
    spec; only `on.create`/`on.update`/`on.resume`/`on.field` handlers use that diff, and we
    register none (`handlers.py` reacts to `generation`/`observedGeneration` instead). Adding
    such a handler requires kopf's `AnnotationsDiffBaseStorage` back.
    """

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        """An empty essence (no copy of the object)."""
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        """Nothing was stored."""
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        """Store nothing (no PATCH)."""


def build_registry(settings: OperatorSettings) -> kopf.OperatorRegistry:
    """A kopf registry with our handlers, login and start-up configuration."""
    operator_settings = settings
    registry = kopf.OperatorRegistry()
    reconciler_ref: list[Reconciler] = []
    peering_api: list[KubeApi] = []
    peering_problems = ["not checked yet (logging in)"]
    register(registry, settings, reconciler_ref)
    certificates = register_webhook(registry, settings) if settings.webhook_port else None

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # kopf's bookkeeping goes to annotations under our group, never into .status.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix=ANNOTATION_PREFIX
        )
        settings.persistence.diffbase_storage = NoDiffBase()
        settings.persistence.finalizer = f"{ANNOTATION_PREFIX}/finalizer"
        settings.peering.lifetime = operator_settings.peering_lifetime_seconds
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 300
        settings.execution.max_workers = 4  # threads for sync handlers (all ours are async)
        # With explicit namespaces (no globs), kopf need not list CRDs and Namespaces
        # cluster-wide: a namespace-scoped ServiceAccount may not, and kopf would retry the
        # 403s for about a minute before handling any job.
        if operator_settings.namespaces and not any(
            char in name for name in operator_settings.namespaces for char in "*?!"
        ):
            settings.scanning.disabled = True

    @kopf.on.login(registry=registry)
    async def login(settings: kopf.OperatorSettings, **kwargs: Any) -> kopf.ConnectionInfo | None:
        info = kopf.login_with_service_account(settings=settings, **kwargs)
        info = info or kopf.login_with_kubeconfig(settings=settings, **kwargs)
        if info is None:
            raise kopf.LoginError("No credentials: mount a service account or set KUBECONFIG")
        mlflow = (
            MlflowReader(
                operator_settings.mlflow_tracking_uri, token=operator_settings.mlflow_token
            )
            if operator_settings.mlflow_tracking_uri
            else None
        )
        api = KubeApi.from_connection(info)
        catalog = RuntimeCatalog(
            api,
            operator_settings.runtime_namespace,
            operator_settings.runtime_configmap,
            operator_settings.runtime_cache_seconds,
        )
        reconciler = Reconciler(
            api, catalog, mlflow, post_event, operator_settings.registration_grace_seconds
        )
        reconciler_ref[:] = [reconciler]
        if operator_settings.peering_name:
            peering_api[:] = [api]
            peering_problems[:] = await ensure_peering(
                api, operator_settings.peering_name, operator_settings.namespaces
            )
        if certificates is not None:
            await certificates.start(api)
        return info

    @kopf.on.probe(registry=registry, id="peering")
    async def peering(**_: Any) -> str:
        """`/healthz` says whether the peering object exists (kopf pauses until it does)."""
        if not operator_settings.peering_name:
            return "standalone"
        if peering_problems and peering_api:  # checked (and created) again until it exists
            peering_problems[:] = await ensure_peering(
                peering_api[0], operator_settings.peering_name, operator_settings.namespaces
            )
        return " | ".join(peering_problems) or f"ok: {operator_settings.peering_name}"

    return registry


def run(settings: OperatorSettings | None = None) -> None:
    """Run the operator until it is stopped (SIGTERM/SIGINT)."""
    settings = settings or OperatorSettings()
    kopf.configure(
        verbose=settings.verbose,
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL,
        log_refkey="object",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    serve_metrics(settings.metrics_port, settings.bind_address)
    liveness = (
        f"http://{settings.bind_address}:{settings.liveness_port}/healthz"
        if settings.liveness_port
        else None
    )
    kopf.run(
        registry=build_registry(settings),
        clusterwide=settings.clusterwide,
        namespaces=settings.namespaces,
        standalone=not settings.peering_name,
        peering_name=settings.peering_name or None,
        priority=settings.priority,
        liveness_endpoint=liveness,
    )
