"""Operator throughput: 200 FineTuneJobs created at once -> time until all RayJobs exist.

Starts its own etcd + kube-apiserver + controller-manager (the `kube` fixture's helper),
runs `python -m tuneforge_operator` against it (one namespace, no MLflow, no KubeRay: only
the create path is measured), creates the jobs from 8 threads, and watches RayJobs with a
streaming watch. Latency per job = RayJob ADDED seen - FineTuneJob POST started.

    scripts/netns-run .venv/bin/python benchmarks/operator_reconcile.py [--jobs 200]

Last line: `p95_s=... total_s=... rss_mb=...` (targets: p95 <= 0.5 s, total <= 20 s,
RSS <= 150 MB; RSS is the operator's peak resident set, VmHWM).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "sdk"), str(REPO_ROOT / "operator")]

from tests.fixtures._kube_start import start_kube_cluster  # noqa: E402
from tests.integration.operator.harness import (  # noqa: E402
    JOBS,
    RAYJOBS,
    OperatorProcess,
    install_runtimes,
    job_manifest,
)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _watch_rayjobs(
    kube, namespace: str, seen: dict[str, float], expected: int, stop: threading.Event
) -> None:
    request = urllib.request.Request(f"{kube.host}{RAYJOBS.format(ns=namespace)}?watch=1")
    request.add_header("Authorization", f"Bearer {kube.token}")
    with kube.rest._opener.open(request, timeout=120) as stream:
        for line in stream:
            event = json.loads(line)
            if event.get("type") == "ADDED":
                seen.setdefault(event["object"]["metadata"]["name"], time.monotonic())
            if len(seen) >= expected or stop.is_set():
                return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="operator-bench-"))
    kube = start_kube_cluster(work / "kube")
    operator: OperatorProcess | None = None
    try:
        namespace = kube.create_namespace("bench")
        install_runtimes(kube, namespace)
        operator = OperatorProcess(
            kube, namespace, work, {"TUNEFORGE_OPERATOR_RESYNC_SECONDS": "30"}
        )
        operator.start()
        pid = operator.pid
        idle_rss, idle_cpu = _peak_rss_mb(pid), _cpu_s(pid)
        print(f"operator pid {pid}: {Path(f'/proc/{pid}/cmdline').read_bytes()!r}")

        seen: dict[str, float] = {}
        stop = threading.Event()
        watcher = threading.Thread(
            target=_watch_rayjobs, args=(kube, namespace, seen, args.jobs, stop), daemon=True
        )
        watcher.start()
        time.sleep(0.5)
        names = [f"bench-{i:03d}" for i in range(args.jobs)]
        started: dict[str, float] = {}

        def create(name: str) -> None:
            started[name] = time.monotonic()
            response = kube.request("POST", JOBS.format(ns=namespace), job_manifest(name))
            if not response.ok:
                raise RuntimeError(f"create {name}: {response.message}")

        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(create, names))
        created_s = time.monotonic() - t0
        watcher.join(timeout=args.timeout)
        stop.set()
        missing = [n for n in names if n not in seen]
        if missing:
            raise SystemExit(f"{len(missing)} RayJobs never appeared (e.g. {missing[:3]})")
        latencies = sorted(seen[n] - started[n] for n in names)
        total_s = max(seen.values()) - t0
        p50 = statistics.median(latencies)
        p95 = latencies[int(0.95 * (len(latencies) - 1))]
        rss = _peak_rss_mb(pid)
        cpu = _cpu_s(pid) - idle_cpu
        print(f"jobs={args.jobs} creates_took_s={created_s:.2f} (8 client threads)")
        print(f"create->RayJob latency: p50={p50:.3f}s p95={p95:.3f}s max={latencies[-1]:.3f}s")
        print(f"operator RSS: idle={idle_rss:.0f} MB peak={rss:.0f} MB; CPU used {cpu:.1f} s")
        print(
            f"targets: p95<=0.5s {'OK' if p95 <= 0.5 else 'MISSED'}, total<=20s "
            f"{'OK' if total_s <= 20 else 'MISSED'}, rss<=150MB {'OK' if rss <= 150 else 'MISSED'}"
        )
        print(f"p95_s={p95:.3f} total_s={total_s:.2f} rss_mb={rss:.0f}")
    finally:
        if operator is not None:
            operator.stop()
        kube.stop()


if __name__ == "__main__":
    main()
