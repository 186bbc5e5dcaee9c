"""Every manifest in examples/ is accepted by the real apiserver and read back with nothing
pruned: every field we sent comes back with the same value, and the models agree on the rest
(the defaults the apiserver filled in are the models' defaults)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.kube import KubeCluster
from tuneforge.api import FineTuneJob, load_job

pytestmark = pytest.mark.integration

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "examples").glob("*.yaml"))


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_leaves(value, f"{prefix}.{key}" if prefix else key))
        return out
    return {prefix: node}


@pytest.fixture(scope="module")
def namespace(kube: KubeCluster) -> Iterator[str]:
    name = kube.create_namespace("examples")
    yield name
    kube.delete_namespace(name)


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_is_accepted_and_read_back_unpruned(
    kube: KubeCluster, namespace: str, path: Path
) -> None:
    sent = yaml.safe_load(path.read_text())
    sent["metadata"]["namespace"] = namespace
    jobs = f"/apis/tuneforge.io/v1alpha1/namespaces/{namespace}/finetunejobs"
    created = kube.request("POST", jobs, sent)
    assert created.status == 201, f"{path.name}: {created.status} {created.message}"

    stored = kube.request("GET", f"{jobs}/{sent['metadata']['name']}").body
    stored_leaves = _leaves(stored["spec"])
    for key, value in _leaves(sent["spec"]).items():
        assert key in stored_leaves, f"{path.name}: spec.{key} was pruned by the apiserver"
        assert stored_leaves[key] == value, f"{path.name}: spec.{key} changed"
    for key in ("labels", "annotations"):
        assert stored["metadata"].get(key, {}) | sent["metadata"].get(key, {}) == stored[
            "metadata"
        ].get(key, {})

    # Defaults the apiserver applied are the ones the models apply.
    expected = load_job(path).spec
    assert FineTuneJob.model_validate(stored).spec == expected
