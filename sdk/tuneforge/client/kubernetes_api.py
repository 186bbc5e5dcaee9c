"""Talking to the Kubernetes API server: a configured client, and errors that say what failed.

Shared by the job backend (`kubernetes_backend`) and its log streaming (`kubernetes_logs`).
"""

from __future__ import annotations

import json
from typing import Any

from tuneforge.errors import BackendError, ConfigurationError
from tuneforge.settings import Settings


def kubernetes_api_client(settings: Settings) -> Any:
    """An API client from `settings.kubeconfig`, the in-cluster config, or ~/.kube/config."""
    from kubernetes import config

    try:
        if settings.kubeconfig:
            return config.new_client_from_config(config_file=settings.kubeconfig)  # type: ignore[no-untyped-call]
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            from kubernetes.client import ApiClient

            return ApiClient()
        except config.ConfigException:
            return config.new_client_from_config()  # type: ignore[no-untyped-call]
    except (config.ConfigException, FileNotFoundError) as exc:
        raise ConfigurationError(
            f"cannot configure the Kubernetes backend ({exc}): set TUNEFORGE_KUBECONFIG or "
            "KUBECONFIG to a kubeconfig file, run inside a cluster, or use the embedded backend "
            "(TUNEFORGE_BACKEND=local)"
        ) from exc


def api_error(exc: Any, what: str) -> BackendError:
    """A `BackendError` naming what failed, with the API server's status and message."""
    detail = getattr(exc, "body", None) or str(exc)
    try:
        detail = json.loads(detail).get("message", detail)
    except (TypeError, ValueError, AttributeError):
        pass
    return BackendError(f"{what}: {getattr(exc, 'status', '?')} {detail}")
