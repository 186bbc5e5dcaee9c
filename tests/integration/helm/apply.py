"""Apply rendered chart objects to the test apiserver (what `helm install` would create).

Only the kinds the chart renders are mapped; anything else is an error naming the kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.fixtures._kube_cluster import KubeCluster
from tests.fixtures._kube_crds import install_crds
from tests.fixtures._kube_rest import KubeRest
from tests.unit.helm.helmchart import CHART_DIR
from tests.unit.helm.kubeapis import APIS, TEST_APISERVER, api_of, served_in

# kind -> (API prefix, plural, namespaced)
KINDS: dict[str, tuple[str, str, bool]] = {
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "Secret": ("/api/v1", "secrets", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Service": ("/api/v1", "services", True),
    "Pod": ("/api/v1", "pods", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies", True),
    "Ingress": ("/apis/networking.k8s.io/v1", "ingresses", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "ClusterKopfPeering": ("/apis/kopf.dev/v1", "clusterkopfpeerings", False),
    "KopfPeering": ("/apis/kopf.dev/v1", "kopfpeerings", True),
    "RayService": ("/apis/ray.io/v1", "rayservices", True),
    "RayJob": ("/apis/ray.io/v1", "rayjobs", True),
    "FineTuneJob": ("/apis/tuneforge.io/v1alpha1", "finetunejobs", True),
    "Event": ("/api/v1", "events", True),
}


def collection_path(kind: str, namespace: str | None = None) -> str:
    """The REST collection of this kind (in `namespace` when the kind is namespaced)."""
    if kind not in KINDS:
        raise KeyError(f"no REST mapping for kind {kind}: add it to KINDS")
    prefix, plural, namespaced = KINDS[kind]
    if namespaced:
        if not namespace:
            raise ValueError(f"{kind} is namespaced: give a namespace")
        return f"{prefix}/namespaces/{namespace}/{plural}"
    return f"{prefix}/{plural}"


def object_path(doc: dict[str, Any]) -> str:
    """The REST path of one object."""
    meta = doc["metadata"]
    return f"{collection_path(doc['kind'], meta.get('namespace'))}/{meta['name']}"


def create(rest: KubeRest, doc: dict[str, Any]) -> dict[str, Any]:
    """Create one object; raise with the server's message unless it answers 201."""
    response = rest.request(
        "POST", collection_path(doc["kind"], doc["metadata"].get("namespace")), doc
    )
    if response.status != 201:
        raise AssertionError(
            f"creating {doc['kind']}/{doc['metadata']['name']} -> {response.status}: {response.message}"
        )
    return dict(response.body)


def too_new_for_the_test_apiserver(doc: dict[str, Any]) -> bool:
    """Whether the 1.20 test apiserver cannot serve this built-in API (policy/v1
    PodDisruptionBudgets: the chart's minimum is 1.21); tests/unit/helm checks those offline."""
    api = api_of(doc)
    return api in APIS["builtin"] and not served_in(api, TEST_APISERVER)


def apply_all(kube: KubeCluster, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Create the objects as the admin, in an order that works; return them for cleanup.

    Objects whose API the 1.20 test apiserver does not serve are left out, each named on
    stdout (`too_new_for_the_test_apiserver`)."""
    order = list(KINDS)
    created = []
    servable = []
    for doc in docs:
        if too_new_for_the_test_apiserver(doc):
            print(
                f"not applied (the 1.20 test apiserver lacks {api_of(doc)}): {doc['metadata']['name']}"
            )
        else:
            servable.append(doc)
    for doc in sorted(servable, key=lambda d: order.index(d["kind"])):
        create(kube.rest, doc)
        created.append(doc)
    return created


def delete_all(kube: KubeCluster, docs: list[dict[str, Any]]) -> None:
    """Delete objects (cluster-scoped ones matter: namespaces take the rest with them)."""
    for doc in reversed(docs):
        kube.rest.request("DELETE", object_path(doc))


def install_chart_crds(kube: KubeCluster) -> None:
    """Install the chart's crds/ that the fixture has not installed yet (kopf peering)."""
    wanted = []
    for path in sorted((CHART_DIR / "crds").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            name = doc["metadata"]["name"]
            existing = kube.request(
                "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
            )
            if existing.status == 404:
                wanted.append(doc)
    if wanted:
        install_crds(kube.rest, wanted)


def as_service_account(kube: KubeCluster, namespace: str, name: str) -> KubeRest:
    """A REST client authenticated as `system:serviceaccount:<namespace>:<name>`."""
    return KubeRest(kube.host, kube.service_account_token(namespace, name), kube.ca_file)


def write_service_account_dir(kube: KubeCluster, namespace: str, name: str, folder: Path) -> Path:
    """A folder laid out like a pod's mounted ServiceAccount (token, ca.crt, namespace)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "token").write_text(kube.service_account_token(namespace, name))
    (folder / "ca.crt").write_bytes(kube.ca_file.read_bytes())
    (folder / "namespace").write_text(namespace)
    return folder
