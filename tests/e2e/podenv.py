"""What a container's environment would be in its pod: `env` and `envFrom` resolved like the kubelet.

The end-to-end test runs the chart's containers as local processes (no kubelet here). To run
them with *the chart's* settings, it reads each container spec back from the test apiserver
and resolves it the way the kubelet does: `envFrom` first (Secrets and ConfigMaps, each key a
variable), then `env` in order, overriding (`value`, `valueFrom.fieldRef` for the pod's name
and namespace, `secretKeyRef`, `configMapKeyRef`). Secrets are read as the admin, as the
kubelet would; a missing non-optional source is an error naming it.
"""

from __future__ import annotations

import base64
from typing import Any

from tests.fixtures._kube_cluster import KubeCluster


class PodEnvError(RuntimeError):
    """A container's env refers to something the kubelet could not resolve."""


def _read_data(kube: KubeCluster, kind: str, namespace: str, name: str) -> dict[str, str] | None:
    plural = {"Secret": "secrets", "ConfigMap": "configmaps"}[kind]
    response = kube.request("GET", f"/api/v1/namespaces/{namespace}/{plural}/{name}")
    if response.status == 404:
        return None
    if not response.ok:
        raise PodEnvError(f"reading {kind} {namespace}/{name}: {response.message}")
    data = response.body.get("data") or {}
    if kind == "Secret":
        return {key: base64.b64decode(value).decode() for key, value in data.items()}
    return {key: str(value) for key, value in data.items()}


def _from_source(
    kube: KubeCluster, namespace: str, kind: str, ref: dict[str, Any], what: str
) -> dict[str, str]:
    data = _read_data(kube, kind, namespace, ref["name"])
    if data is None:
        if ref.get("optional"):
            return {}
        raise PodEnvError(f"{what}: {kind} {namespace}/{ref['name']} does not exist")
    return data


def _field(path: str, pod_name: str, namespace: str) -> str:
    fields = {"metadata.name": pod_name, "metadata.namespace": namespace}
    if path not in fields:
        raise PodEnvError(f"fieldRef {path} is not resolved by this test helper: add it")
    return fields[path]


def container_env(
    kube: KubeCluster, container: dict[str, Any], namespace: str, pod_name: str
) -> dict[str, str]:
    """The variables the container sets, resolved as the kubelet would in `namespace`."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
            if key in source:
                data = _from_source(kube, namespace, kind, source[key], f"envFrom {key}")
                env.update({prefix + name: value for name, value in data.items()})
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item:
            env[name] = str(item["value"])
            continue
        value_from = item.get("valueFrom") or {}
        if "fieldRef" in value_from:
            env[name] = _field(value_from["fieldRef"]["fieldPath"], pod_name, namespace)
            continue
        for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
            if key in value_from:
                ref = value_from[key]
                data = _from_source(kube, namespace, kind, ref, f"env {name}")
                if ref["key"] in data:
                    env[name] = data[ref["key"]]
                elif not ref.get("optional"):
                    raise PodEnvError(f"env {name}: {kind} {ref['name']} has no key {ref['key']}")
                break
        else:
            if value_from:
                raise PodEnvError(f"env {name}: unsupported valueFrom {sorted(value_from)}")
            env[name] = ""
    return env
