"""The real apiserver, with the CRD from `tuneforge crd`, refuses every invalid FineTuneJob of
the shared table with 422 and a message naming the same field the pydantic models name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.kube import KubeCluster
from tests.unit.api.invalid_jobs import INVALID_CASES, InvalidCase, valid_manifest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def namespace(kube: KubeCluster) -> Iterator[str]:
    name = kube.create_namespace("crd-validation")
    yield name
    kube.delete_namespace(name)


def _jobs_path(namespace: str) -> str:
    return f"/apis/tuneforge.io/v1alpha1/namespaces/{namespace}/finetunejobs"


def test_the_starting_manifest_is_accepted(kube: KubeCluster, namespace: str) -> None:
    response = kube.request("POST", _jobs_path(namespace), valid_manifest("starting-point"))
    assert response.status == 201, response.message


@pytest.mark.parametrize("case", INVALID_CASES, ids=lambda c: c.id)
def test_apiserver_refuses_invalid_job_naming_the_field(
    kube: KubeCluster, namespace: str, case: InvalidCase
) -> None:
    response = kube.request("POST", _jobs_path(namespace), case.manifest())
    assert response.status == 422, (
        f"{case.id}: expected 422, got {response.status}: {response.message}"
    )
    assert case.field in response.message, (
        f"{case.id}: 422 does not name {case.field}: {response.message}"
    )
    # Nothing was stored.
    assert kube.request("GET", f"{_jobs_path(namespace)}/{case.id}").status == 404
