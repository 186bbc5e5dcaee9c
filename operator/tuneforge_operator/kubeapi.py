"""A small, typed, asynchronous Kubernetes API client (aiohttp) for the few calls we make.

The `kubernetes` package is synchronous and untyped; kopf already gives us credentials
(`kopf.ConnectionInfo`, from a kubeconfig or the pod's service account). This wrapper turns
them into an `aiohttp.ClientSession` (kopf's own HTTP stack: no second one in the process)
and maps status codes to exceptions the reconciler understands: 404 -> `None`, 409 on
create -> `AlreadyExists`.

aiohttp rather than httpx: under a burst of a few hundred concurrent requests httpcore's
pool rescans every queued request on each completion and re-imports `sniffio` per call,
which cost the operator more CPU than the rest of a reconcile together.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import kopf

from tuneforge.api import GROUP, PLURAL, VERSION
from tuneforge_operator.builder import RAYJOB_GROUP, RAYJOB_PLURAL, RAYJOB_VERSION


class KubeApiError(Exception):
    """The API server refused a request."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message


class AlreadyExists(KubeApiError):
    """409 on create: the object is already there."""


def finetunejob_path(namespace: str, name: str, status: bool = False) -> str:
    """Path of one FineTuneJob (or its status subresource)."""
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"
    return f"{base}/status" if status else base


def rayjob_path(namespace: str, name: str | None = None) -> str:
    """Path of the RayJob collection, or of one RayJob."""
    base = f"/apis/{RAYJOB_GROUP}/{RAYJOB_VERSION}/namespaces/{namespace}/{RAYJOB_PLURAL}"
    return f"{base}/{name}" if name else base


def events_path(namespace: str) -> str:
    """Path of the core/v1 Event collection of a namespace."""
    return f"/api/v1/namespaces/{namespace}/events"


def peering_path(namespace: str | None, name: str | None = None) -> str:
    """Path of kopf's peering objects: `KopfPeering` in a namespace, else `ClusterKopfPeering`."""
    if namespace:
        base = f"/apis/kopf.dev/v1/namespaces/{namespace}/kopfpeerings"
    else:
        base = "/apis/kopf.dev/v1/clusterkopfpeerings"
    return f"{base}/{name}" if name else base


def configmap_path(namespace: str, name: str) -> str:
    """Path of one ConfigMap."""
    return f"/api/v1/namespaces/{namespace}/configmaps/{name}"


def _material(path: Any, data: Any, workdir: Path, name: str) -> str | None:
    if path:
        return str(path)
    if data:
        raw = data if isinstance(data, bytes) else data.encode()
        if not raw.lstrip().startswith(b"-----BEGIN"):
            raw = base64.b64decode(raw)
        target = workdir / name
        target.write_bytes(raw)
        target.chmod(0o600)
        return str(target)
    return None


def ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    """TLS settings for these credentials (CA, client certificate, or insecure)."""
    if info.insecure:
        return False
    workdir = Path(tempfile.mkdtemp(prefix="tuneforge-operator-"))
    ca = _material(info.ca_path, info.ca_data, workdir, "ca.crt")
    context = ssl.create_default_context(cafile=ca)
    cert = _material(info.certificate_path, info.certificate_data, workdir, "tls.crt")
    key = _material(info.private_key_path, info.private_key_data, workdir, "tls.key")
    if cert:
        context.load_cert_chain(cert, key)
    return context


class KubeApi:
    """GET, create and merge-patch of JSON objects, with errors mapped to exceptions."""

    def __init__(self, session: aiohttp.ClientSession, server: str) -> None:
        self._session, self._server = session, server.rstrip("/")

    @classmethod
    def from_connection(
        cls, info: kopf.ConnectionInfo, timeout_s: float = 10.0, max_connections: int = 20
    ) -> KubeApi:
        """A client for the credentials kopf logged in with (call inside the event loop)."""
        headers: dict[str, str] = {}
        if info.token:
            headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
        auth = aiohttp.BasicAuth(info.username, info.password or "") if info.username else None
        session = aiohttp.ClientSession(
            headers=headers,
            auth=auth,
            connector=aiohttp.TCPConnector(ssl=ssl_context(info), limit=max_connections),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            trust_env=info.trust_env,
        )
        return cls(session, info.server)

    async def aclose(self) -> None:
        """Close the connections."""
        await self._session.close()

    async def _request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> dict[str, Any] | None:
        data = None if body is None else json.dumps(body, separators=(",", ":"))
        headers = {"Content-Type": content_type} if data is not None else None
        async with self._session.request(
            method, self._server + path, data=data, headers=headers
        ) as response:
            text = await response.text()
            status = response.status
            phrase = response.reason or ""
        if status == 404 and method == "GET":
            return None
        if status >= 400:
            try:
                error = json.loads(text)
            except ValueError:
                error = {}
            error = error if isinstance(error, dict) else {}
            error_cls = AlreadyExists if status == 409 and method == "POST" else KubeApiError
            raise error_cls(
                status,
                str(error.get("reason", phrase)),
                str(error.get("message", text[:500])),
            )
        result = json.loads(text) if text else None
        return result if isinstance(result, dict) else None

    async def get(self, path: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        return await self._request("GET", path)

    async def create(self, collection_path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create an object; raises `AlreadyExists` on 409."""
        created = await self._request("POST", collection_path, body)
        return created or {}

    async def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        """JSON merge patch (RFC 7386)."""
        patched = await self._request("PATCH", path, patch, "application/merge-patch+json")
        return patched or {}
