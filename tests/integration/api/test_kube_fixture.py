"""The `kube` fixture itself: a real apiserver with our CRDs, GC and ServiceAccounts working."""

from __future__ import annotations

import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.fixtures.kube import KubeCluster

pytestmark = pytest.mark.integration

CRD_NAMES = (
    "finetunejobs.tuneforge.io",
    "rayjobs.ray.io",
    "rayclusters.ray.io",
    "rayservices.ray.io",
)


def test_apiserver_is_v1_20_and_crds_are_established(kube: KubeCluster) -> None:
    version = kube.request("GET", "/version").body
    assert version["gitVersion"] == "v1.20.2", version
    ext = client.ApiextensionsV1Api(kube.api_client())
    names = {item.metadata.name for item in ext.list_custom_resource_definition().items}
    assert set(CRD_NAMES) <= names


def test_namespace_gets_a_default_service_account(kube: KubeCluster, kube_namespace: str) -> None:
    core = client.CoreV1Api(kube.api_client())
    account = core.read_namespaced_service_account("default", kube_namespace)
    assert account.secrets, "the token controller gave the default ServiceAccount no secret"


def test_owner_reference_garbage_collection(kube: KubeCluster, kube_namespace: str) -> None:
    core = client.CoreV1Api(kube.api_client())
    owner = core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "owner"}, "data": {"a": "b"}}
    )
    core.create_namespaced_config_map(
        kube_namespace,
        {
            "metadata": {
                "name": "child",
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "name": "owner",
                        "uid": owner.metadata.uid,
                    }
                ],
            }
        },
    )
    core.delete_namespaced_config_map("owner", kube_namespace)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            core.read_namespaced_config_map("child", kube_namespace)
        except ApiException as error:
            assert error.status == 404
            return
        time.sleep(0.2)
    pytest.fail("the garbage collector did not delete the owned ConfigMap within 60 s")


def test_service_account_kubeconfig_is_subject_to_rbac(
    kube: KubeCluster, kube_namespace: str
) -> None:
    from kubernetes import config

    path = kube.service_account_kubeconfig(kube_namespace, "reader")
    sa_core = client.CoreV1Api(config.new_client_from_config(config_file=str(path)))
    with pytest.raises(ApiException) as denied:
        sa_core.list_namespaced_config_map(kube_namespace)
    assert denied.value.status == 403
    assert f"system:serviceaccount:{kube_namespace}:reader" in denied.value.body

    rbac = client.RbacAuthorizationV1Api(kube.api_client())
    rbac.create_namespaced_role(
        kube_namespace,
        {
            "metadata": {"name": "cm-reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        kube_namespace,
        {
            "metadata": {"name": "cm-reader"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "cm-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": kube_namespace}],
        },
    )
    # The authorizer's RBAC cache follows the new binding within moments: poll, do not sleep.
    deadline = time.monotonic() + 30
    while not _can_list_config_maps(sa_core, kube_namespace):
        assert time.monotonic() < deadline, "the RoleBinding never took effect"
        time.sleep(0.2)


def _can_list_config_maps(core: client.CoreV1Api, namespace: str) -> bool:
    try:
        listed = core.list_namespaced_config_map(namespace)
    except ApiException as error:
        assert error.status == 403
        return False
    return isinstance(listed.items, list)
