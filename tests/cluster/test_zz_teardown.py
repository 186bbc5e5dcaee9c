"""Tearing the cluster down leaves the machine as it was.

This module runs last in the tier (its name sorts last): it stops the session's cluster itself
and checks the result; the fixture's own teardown then has nothing left to do.
"""

from __future__ import annotations

import pytest

from tests.cluster import host_state
from tests.cluster.node_cluster import NodeCluster

pytestmark = pytest.mark.cluster


def test_teardown_restores_sysctls_and_leaves_no_process_mount_cgroup_or_rule(
    node_cluster: NodeCluster,
) -> None:
    before = node_cluster.snapshot
    during = host_state.read_sysctls()
    # The kubelet really changed the machine (so restoring is not vacuous).
    assert during["kernel.panic"] == "10" and during["kernel.panic_on_oops"] == "1", during
    assert host_state.cgroup_pids(node_cluster.cgroup_name), "no pod process in the node's cgroups"
    mount_namespace = node_cluster.mount_namespace
    assert host_state.mount_namespace_pids(mount_namespace)
    processes = [p.popen for p in node_cluster.node_processes.values()]
    processes += [p.popen for p in node_cluster.kube.processes.values()]

    left = node_cluster.stop()

    assert left == []
    assert host_state.read_sysctls() == before.sysctls
    assert not host_state.mount_namespace_pids(mount_namespace), "the node's mounts outlive it"
    assert not host_state.cgroup_dirs(node_cluster.cgroup_name)
    assert all(p.poll() is not None for p in processes), "a cluster process is still running"
