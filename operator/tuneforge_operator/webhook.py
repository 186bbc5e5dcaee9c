"""The validating admission webhook served by the operator (kopf's webhook server, HTTPS).

`register_webhook` adds the `validate-finetunejob` handler (decisions in `admission.py`) and
configures kopf's server on `TUNEFORGE_OPERATOR_WEBHOOK_PORT`. The chart owns the
ValidatingWebhookConfiguration (its rules, `failurePolicy`, namespace selector); the operator
only fills in its `caBundle` when it manages the certificate itself (`webhook_tls.py`). With
cert-manager the certificate is mounted from cert-manager's Secret and cert-manager injects the
bundle; kopf re-reads the files when they change.

Besides the spec checks the webhook applies the tenancy rules (`tuneforge.tenancy`) from the
runtimes ConfigMap, read through its own `RuntimeCatalog` once the operator has logged in.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from typing import Any

import kopf

from tuneforge.api import GROUP, PLURAL, VERSION
from tuneforge_operator.admission import review, tenancy_subject
from tuneforge_operator.kubeapi import KubeApi, KubeApiError
from tuneforge_operator.runtimes import RuntimeCatalog
from tuneforge_operator.settings import OperatorSettings
from tuneforge_operator.webhook_tls import (
    CA_FILE,
    CERT_FILE,
    KEY_FILE,
    ensure_secret,
    patch_ca_bundle,
)

HANDLER_ID = "validate-finetunejob"
"""kopf serves the handler at `/<id>`: the ValidatingWebhookConfiguration's path."""
CHECK_INTERVAL_S = 60.0
"""How often the Secret and the `caBundle` are checked (renewal, a bundle wiped by an upgrade)."""
RETRY_S = 5.0
"""First retry after a failed provisioning (doubling up to `CHECK_INTERVAL_S`)."""
LOGIN_WAIT_S = 5.0
"""How long a review waits for the operator's login (its API client) before refusing."""
logger = logging.getLogger(__name__)


class _ServerAfterCertificates(kopf.WebhookServer):
    """kopf's server, started only once the certificate files exist."""

    def __init__(self, ready: asyncio.Event, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ready = ready

    async def __call__(self, fn: Any) -> AsyncIterator[Any]:
        """Wait for the certificate, then serve (and restart when its files change)."""
        await self._ready.wait()
        async for config in super().__call__(_with_request_namespace(fn)):
            yield config


def _with_request_namespace(fn: Any) -> Any:
    """kopf's callback, given objects whose `metadata.namespace` is filled from the request.

    On CREATE the API server may send the object without it (the namespace is in the URL);
    the tenancy rules are per namespace, so they need it.
    """

    async def call(request: dict[str, Any], **kwargs: Any) -> Any:
        payload = request.get("request") or {}
        namespace = payload.get("namespace")
        for key in ("object", "oldObject"):
            obj = payload.get(key)
            if namespace and isinstance(obj, dict):
                obj.setdefault("metadata", {}).setdefault("namespace", namespace)
        return await fn(request, **kwargs)

    return call


class SelfSignedCertificates:
    """Keeps the Secret, the files and the `caBundle` current (one task per process; it ends
    with the event loop)."""

    def __init__(self, settings: OperatorSettings, ready: asyncio.Event) -> None:
        self._settings, self._ready = settings, ready
        self._task: asyncio.Task[None] | None = None
        self._api: KubeApi | None = None

    async def start(self, api: KubeApi) -> None:
        """Keep the certificate current in the background (the server waits for the first).

        A failure is logged and retried (5 s, doubling up to a minute); it never holds up the
        reconciliation of jobs.
        """
        self._api = api
        if self._task is None:
            self._task = asyncio.create_task(self._keep_current(), name="webhook-certificates")

    async def refresh(self) -> None:
        """Create or renew the certificate if needed; write the files; patch the bundle."""
        assert self._api is not None
        s = self._settings
        material = await ensure_secret(
            self._api,
            s.webhook_namespace,
            s.webhook_secret,
            s.webhook_hosts,
            s.webhook_cert_days,
            dt.timedelta(days=s.webhook_renew_before_days),
        )
        material.write(s.webhook_cert_dir)
        if await patch_ca_bundle(self._api, s.webhook_configuration, material.ca_bundle):
            logger.info("Patched the caBundle of %s.", s.webhook_configuration)
        self._ready.set()

    async def _keep_current(self) -> None:
        retry_s = RETRY_S
        while True:
            try:
                await self.refresh()
            except Exception:  # a current certificate stays valid meanwhile
                logger.exception("Provisioning the webhook certificate failed; retrying.")
                await asyncio.sleep(retry_s)
                retry_s = min(retry_s * 2, CHECK_INTERVAL_S)
                continue
            retry_s = RETRY_S
            await asyncio.sleep(CHECK_INTERVAL_S)


class WebhookState:
    """What the webhook needs from the login: the runtimes catalog, and the certificate keeper
    when the operator signs (`start(api)` belongs in the login handler)."""

    def __init__(self, settings: OperatorSettings, keeper: SelfSignedCertificates | None) -> None:
        self._settings, self._keeper = settings, keeper
        self.catalog: RuntimeCatalog | None = None
        self._logged_in = asyncio.Event()

    async def start(self, api: KubeApi) -> None:
        """Read runtimes and tenancy through `api`; keep the certificate current."""
        s = self._settings
        self.catalog = RuntimeCatalog(
            api, s.runtime_namespace, s.runtime_configmap, s.runtime_cache_seconds
        )
        self._logged_in.set()
        if self._keeper is not None:
            await self._keeper.start(api)

    async def tenancy_refusal(self, operation: str, new: Any, old: Any) -> str | None:
        """The tenancy rules' refusal of this request, or None (fails closed before login)."""
        spec = tenancy_subject(operation, new, old)
        if spec is None:
            return None
        try:
            await asyncio.wait_for(self._logged_in.wait(), LOGIN_WAIT_S)
        except asyncio.TimeoutError:
            return "the operator is still starting (not logged in): retry in a few seconds"
        assert self.catalog is not None
        namespace = str(((new or {}).get("metadata") or {}).get("namespace") or "")
        try:
            refusals = await self.catalog.refusals(spec, namespace)
        except KubeApiError as error:  # fail closed, saying what the platform team must fix
            logger.error("Cannot read %s for the tenancy rules: %s", self.catalog.where, error)
            return (
                f"the tenancy rules cannot be checked: reading {self.catalog.where} failed "
                f"({error.status} {error.reason}); the platform team must let the operator's "
                "ServiceAccount get it and name it in TUNEFORGE_OPERATOR_RUNTIME_CONFIGMAP"
            )
        return "; ".join(refusals) or None


def register_webhook(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> WebhookState:
    """Add the webhook handler and server; return the state whose `start(api)` the login calls.

    The server waits for the certificate; with mounted certificates (cert-manager) there is
    nothing to keep.
    """
    operator_settings = settings
    ready = asyncio.Event()  # bound to the running loop on first use (Python >= 3.10)
    keeper = None
    if settings.webhook_certificates == "self-signed":
        keeper = SelfSignedCertificates(settings, ready)
    else:
        ready.set()  # mounted files: present before the process starts
    state = WebhookState(settings, keeper)

    @kopf.on.validate(
        GROUP, VERSION, PLURAL, id=HANDLER_ID, operations=["CREATE", "UPDATE"], registry=registry
    )
    async def validate_finetunejob(**kwargs: Any) -> None:
        operation, new, old = kwargs.get("operation") or "", kwargs.get("new"), kwargs.get("old")
        message = review(operation, new, old)
        if message is None:
            message = await state.tenancy_refusal(operation, new, old)
        if message is not None:
            raise kopf.AdmissionError(message, code=422)

    @kopf.on.startup(registry=registry)
    def configure_webhook_server(settings: kopf.OperatorSettings, **_: Any) -> None:
        directory = operator_settings.webhook_cert_dir
        settings.admission.server = _ServerAfterCertificates(
            ready,
            addr=operator_settings.bind_address,
            port=operator_settings.webhook_port,
            certfile=directory / CERT_FILE,
            pkeyfile=directory / KEY_FILE,
            cafile=directory / CA_FILE,
            file_check_interval=10.0,
        )
        settings.admission.managed = None  # the chart owns the configuration

    return state
