"""The RayJob watch, not the resync timer, drives a job: run at the default resync interval.

The harness starts operators with a 2-second resync, which would hide a broken RayJob watch
(the timer would re-read every job soon enough). Here the operator keeps its default interval
(and the timer's equal initial delay), so a lifecycle that ends well inside it was driven by
watch events alone; the metrics confirm that no timer pass ran.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Callable

import pytest

from tests.fixtures._kube_cluster import KubeCluster
from tests.fixtures.kuberay_standin import KubeRayStandIn
from tests.integration.operator.harness import (
    OperatorProcess,
    condition,
    create_job,
    job_manifest,
    wait_for_condition,
)
from tuneforge_operator.settings import OperatorSettings

pytestmark = pytest.mark.integration
DEFAULT_RESYNC_S = float(OperatorSettings.model_fields["resync_seconds"].default)


def _reconciles(operator: OperatorProcess, trigger: str) -> float:
    with urllib.request.urlopen(operator.metrics_url, timeout=10) as response:
        metrics = response.read().decode()
    pattern = rf'reconcile_duration_seconds_count\{{trigger="{trigger}"\}} ([0-9.]+)'
    found = re.search(pattern, metrics)
    return float(found.group(1)) if found else 0.0


def test_the_rayjob_watch_drives_a_job_at_the_default_resync_interval(
    kube: KubeCluster,
    kube_namespace: str,
    start_operator: Callable[..., OperatorProcess],
    kuberay_standin: Callable[..., KubeRayStandIn],
) -> None:
    assert DEFAULT_RESYNC_S >= 30, "the argument below needs a long default interval"
    operator = start_operator(
        kube_namespace, {"TUNEFORGE_OPERATOR_RESYNC_SECONDS": f"{DEFAULT_RESYNC_S:g}"}
    )
    standin = kuberay_standin(kube_namespace, outcome="hold")
    created = time.monotonic()
    create_job(kube, kube_namespace, job_manifest("watched"))
    budget = DEFAULT_RESYNC_S / 3

    wait_for_condition(kube, kube_namespace, "watched", "Training", timeout_s=budget)
    finished = time.monotonic()
    standin.finish("watched", "succeed")
    job = wait_for_condition(kube, kube_namespace, "watched", "Succeeded", timeout_s=budget)
    reacted_s = time.monotonic() - finished
    total_s = time.monotonic() - created

    assert total_s < DEFAULT_RESYNC_S - 5, f"{total_s:.1f} s: a timer pass may have run"
    assert _reconciles(operator, "timer") == 0
    assert _reconciles(operator, "rayjob") >= 3  # Initializing, Running, RUNNING, Complete
    assert condition(job, "Training")["status"] == "False"
    print(f"watch-driven lifecycle: {total_s:.1f} s in all, {reacted_s:.1f} s from Complete")
