"""Fixtures for the operator's integration tests (real kube-apiserver + controller-manager)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures._kube_cluster import KubeCluster
from tests.integration.operator.harness import OperatorProcess, install_runtimes


@pytest.fixture
def start_operator(
    kube: KubeCluster, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., OperatorProcess]]:
    """Factory: `start_operator(namespace, extra_env=None)` -> a running operator subprocess.

    Installs the test runtime ConfigMap in the namespace first. Stopped after the test; its
    log is printed when the test fails.
    """
    started: list[OperatorProcess] = []

    def start(
        namespace: str, extra_env: dict[str, str] | None = None, runtimes: bool = True
    ) -> OperatorProcess:
        if runtimes:
            install_runtimes(kube, namespace)
        log_dir = tmp_path / f"operator-{len(started)}"  # replicas side by side: own logs
        log_dir.mkdir(exist_ok=True)
        operator = OperatorProcess(kube, namespace, log_dir, extra_env).start()
        started.append(operator)
        return operator

    yield start
    for operator in started:
        operator.stop()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(operator.log())


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Remember each phase's report on the item (for printing operator logs on failure)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)
