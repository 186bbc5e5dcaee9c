"""Fixtures of the cluster tier: a real single-node cluster with the locally built images.

`node_cluster` (session) starts etcd, the apiserver, controller-manager, scheduler, containerd,
kube-proxy and a kubelet (node_cluster.py), loads the pause and operator images, and at the end
tears everything down and fails loudly if anything is left on the machine.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import pytest

from tests.cluster.images import STALE_NOTICES, local_images, pause_image
from tests.cluster.node_cluster import NodeCluster, start_node_cluster
from tests.cluster.pod_services import services_for_pods
from tests.fixtures.services import MlflowService

_running: list[NodeCluster] = []
_startup_lines: list[str] = []


@pytest.fixture(scope="session")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeCluster]:
    """The running cluster; its teardown asserts that nothing is left behind."""
    images = [pause_image(), local_images("operator")["operator"]]
    cluster = start_node_cluster(tmp_path_factory.mktemp("node"), images)
    _running.append(cluster)
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in cluster.kube.startup_seconds.items())
    _startup_lines.append(f"node cluster start-up: {steps}")
    try:
        yield cluster
    finally:
        _running.remove(cluster)
        left = cluster.stop()
        if left:
            raise AssertionError("the cluster's teardown left things behind:\n" + "\n".join(left))


@pytest.fixture(scope="session")
def pod_services(
    node_cluster: NodeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowService]:
    """S3 and an `mlflow server` on the node's address with the tiny inputs (pod_services.py)."""
    with services_for_pods(tmp_path_factory.mktemp("pod-services")) as mlflow:
        yield mlflow


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """Attach the cluster's log tails to the report of a failing test that used it."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and _running and "node_cluster" in getattr(item, "fixturenames", ()):
        report.sections.append(("cluster services (log tails)", _running[-1].log_tails()))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print how long the cluster took to start and every stale image it ran."""
    for line in _startup_lines:
        terminalreporter.write_line(line)
    for line in STALE_NOTICES:
        terminalreporter.write_line(line, yellow=True, bold=True)
