"""kopf's peering object: created when absent, or its absence said in the log and `/healthz`.

With a peering name kopf keeps every handler paused until the peering object exists (it
waits for the object's first watch event, silently). The chart ships the objects; an
operator started by hand would wait forever. So the operator creates the missing
`KopfPeering` in each watched namespace (a `ClusterKopfPeering` when cluster-wide) when its
RBAC allows, and otherwise says what it waits for and how to end the wait.
"""

from __future__ import annotations

import logging
from typing import Any

from tuneforge_operator.kubeapi import AlreadyExists, KubeApi, KubeApiError, peering_path

logger = logging.getLogger(__name__)
PATTERN_CHARS = "*?!"


def peering_targets(namespaces: list[str]) -> list[str | None]:
    """Where the peering objects are: each listed namespace, or `None` for cluster-wide.

    Namespace patterns (`team-*`) cannot be listed in advance: nothing is created for them.
    """
    if not namespaces:
        return [None]
    return [name for name in namespaces if not any(char in name for char in PATTERN_CHARS)]


def _describe(name: str, namespace: str | None) -> str:
    return f"KopfPeering {namespace}/{name}" if namespace else f"ClusterKopfPeering {name}"


def _manifest(name: str, namespace: str | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {
            "app.kubernetes.io/name": "tuneforge",
            "app.kubernetes.io/component": "operator",
        },
    }
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "kopf.dev/v1",
        "kind": "KopfPeering" if namespace else "ClusterKopfPeering",
        "metadata": metadata,
    }


def _refusal(name: str, namespace: str | None, error: KubeApiError) -> str:
    what = _describe(name, namespace)
    hint = (
        "the kopf.dev CRDs are not installed: apply operator/tuneforge_operator/crds/peering.yaml"
        if error.status == 404
        else f"apply it, or grant this operator `create` on {what.split()[0].lower()}s"
    )
    return (
        f"Paused: {what} is missing and the operator could not create it "
        f"({error.status} {error.reason}); no job is handled until it exists. To fix: {hint}, "
        "or set TUNEFORGE_OPERATOR_PEERING_NAME='' to run one replica standalone"
    )


async def ensure_peering(api: KubeApi, name: str, namespaces: list[str]) -> list[str]:
    """Create the missing peering objects; the problems left (logged), empty when none."""
    problems: list[str] = []
    for namespace in peering_targets(namespaces):
        what = _describe(name, namespace)
        try:
            if await api.get(peering_path(namespace, name)) is not None:
                continue
            await api.create(peering_path(namespace), _manifest(name, namespace))
            logger.info(f"Created {what}: the replicas of this operator meet there")
        except AlreadyExists:
            continue
        except KubeApiError as error:
            problems.append(_refusal(name, namespace, error))
            logger.error(problems[-1])
        except Exception as error:  # noqa: BLE001 - unreachable API server: checked again later
            problems.append(f"Could not check {what} ({error}); checked again at /healthz")
            logger.error(problems[-1])
    return problems
