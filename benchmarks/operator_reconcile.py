"""Operator throughput: 200 FineTuneJobs created at once -> time until all RayJobs exist.

Starts its own etcd + kube-apiserver + controller-manager (`_kube.py` beside this file),
runs `python -m tuneforge_operator` against it (one namespace, no MLflow, no KubeRay: only
the create path is measured), creates the jobs from 8 client threads (one keep-alive TLS
connection each, as kubectl or client-go would), and watches RayJobs with a streaming watch.

Latency per job = RayJob ADDED seen by the watch - the client's POST of the FineTuneJob
returned (the job exists from then on; the apiserver's own time to accept the POST is not
the operator's). `creationTimestamp` has one-second resolution, so both ends are taken on
this process's monotonic clock; the watch's delivery delay is included (an upper bound).
The latency from the POST's start is printed as well.

    scripts/netns-run .venv/bin/python benchmarks/operator_reconcile.py [--jobs 200]
        [--profile /tmp/operator.svg]   # py-spy flame graph of the operator during the burst
        [--split]   # also time when each job's status names its RayJob (a second watch)

Also prints, for the burst (first POST to last RayJob): the API server's request counts by
verb and resource with their mean time inside the server, and the CPU seconds of etcd,
kube-apiserver, the controller-manager, the operator and this client, with the load
average before it (the machine is shared: read latencies against them). Runtimes are read
with a cache of 0 s, as in the operator's integration tests (every burst reads the ConfigMap;
the default is 5 s).
Last line: `p95_s=... total_s=... rss_mb=...` (targets:
p95 <= 0.5 s, total <= 20 s, RSS <= 150 MB; RSS is the operator process's peak resident
set, VmHWM of the `python -m tuneforge_operator` process alone).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _kube import KubeControlPlane, start_control_plane
from _operator_process import JOBS, RAYJOBS, OperatorProcess, install_runtimes, job_manifest

_METRIC_LINE = re.compile(
    r"^apiserver_request_(?P<name>total|duration_seconds_sum)\{(?P<labels>[^}]*)\} (?P<value>\S+)$"
)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its descendants (a reaper may wrap the real one)."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            total += _cpu_s(current)
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        pending += [int(child) for child in children]
    return total


def _cluster_cpu_s(kube: KubeControlPlane) -> dict[str, float]:
    return {name: _tree_cpu_s(proc.pid) for name, proc in kube.processes.items()}


def _apiserver_requests(kube: KubeControlPlane) -> tuple[Counter[str], Counter[str]]:
    """Requests and their summed server-side seconds by `VERB resource[/subresource]`.

    From the API server's own metrics (`apiserver_request_total`, `..._duration_seconds_sum`);
    watches and lists are left out.
    """
    _, answer = kube.request("GET", "/metrics", accept="text/plain")
    text = answer if isinstance(answer, str) else ""
    counts: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    for line in text.splitlines():
        match = _METRIC_LINE.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("verb") in ("WATCH", "LIST") or not labels.get("resource"):
            continue
        sub = f"/{labels['subresource']}" if labels.get("subresource") else ""
        key = f"{labels['verb']} {labels['resource']}{sub}"
        if match["name"] == "total":
            counts[key] += int(float(match["value"]))
        else:
            seconds[key] += float(match["value"])  # type: ignore[assignment]
    return counts, seconds


def _watch(
    kube: KubeControlPlane,
    collection: str,
    seen: dict[str, float],
    expected: int,
    stop: threading.Event,
    arrived: Callable[[dict[str, Any]], bool],
) -> None:
    """Record when each object first satisfies `arrived` (on this process's clock)."""
    request = urllib.request.Request(f"{kube.host}{collection}?watch=1")
    request.add_header("Authorization", f"Bearer {kube.token}")
    with kube.opener.open(request, timeout=120) as stream:
        for line in stream:
            event = json.loads(line)
            if event.get("type") in ("ADDED", "MODIFIED") and arrived(event["object"]):
                seen.setdefault(event["object"]["metadata"]["name"], time.monotonic())
            if len(seen) >= expected or stop.is_set():
                return


class _KeepAliveClient(threading.local):
    """One persistent TLS connection per client thread, as kubectl or client-go keep one.

    (The test helper opens a connection per request: 200 extra TLS handshakes would load the
    API server with work no real client causes.)
    """

    def __init__(self, kube: KubeControlPlane) -> None:
        url = urllib.parse.urlsplit(kube.host)
        context = ssl.create_default_context(cafile=str(kube.ca_file))
        self._connection = http.client.HTTPSConnection(url.hostname, url.port, context=context)
        self._token = kube.token

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, str]:
        """POST JSON; return the status code and, on failure, the answer's text."""
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._connection.request("POST", path, body=json.dumps(body), headers=headers)
        response = self._connection.getresponse()
        text = response.read().decode(errors="replace")
        return response.status, "" if response.status < 300 else text[:500]


def _names_child(job: dict[str, Any]) -> bool:
    return bool((job.get("status") or {}).get("rayJobName"))


def _start_profiler(pid: int, output: Path, seconds: float) -> subprocess.Popen[bytes]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [py_spy, "record", "-p", str(pid), "-o", str(output), "-d", str(int(seconds))]
    command += ["-r", "200", "--nonblocking"]
    if output.suffix != ".svg":
        command += ["--format", "raw"]  # collapsed stacks, one per line, for grep and sort
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[int(fraction * (len(sorted_values) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200, help="FineTuneJobs to create at once")
    parser.add_argument("--timeout", type=float, default=180.0, help="give up after (s)")
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy profile of the operator: a flame graph (.svg) or collapsed stacks (other)",
    )
    parser.add_argument(
        "--split",
        action="store_true",
        help="also watch FineTuneJobs: split the latency at the status write naming the RayJob",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="operator-bench-"))
    kube = start_control_plane(work / "kube")
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
        print(f"operator log: {work}")

        seen: dict[str, float] = {}
        named: dict[str, float] = {}  # when the job's status first named its RayJob
        stop = threading.Event()
        watcher = threading.Thread(
            target=_watch,
            args=(kube, RAYJOBS.format(ns=namespace), seen, args.jobs, stop, lambda _: True),
            daemon=True,
        )
        watcher.start()
        if args.split:  # a second watch: more work for the API server and this process
            threading.Thread(
                target=_watch,
                args=(kube, JOBS.format(ns=namespace), named, args.jobs, stop, _names_child),
                daemon=True,
            ).start()
        time.sleep(0.5)
        profiler = _start_profiler(pid, args.profile, 20) if args.profile else None
        counts_before, seconds_before = _apiserver_requests(kube)
        cluster_cpu_before, load_before = _cluster_cpu_s(kube), os.getloadavg()[0]
        client_cpu_before = _cpu_s(os.getpid())
        names = [f"bench-{i:03d}" for i in range(args.jobs)]
        started: dict[str, float] = {}
        returned: dict[str, float] = {}

        client = _KeepAliveClient(kube)

        def create(name: str) -> None:
            started[name] = time.monotonic()
            status, message = client.post(JOBS.format(ns=namespace), job_manifest(name))
            returned[name] = time.monotonic()
            if status >= 300:
                raise RuntimeError(f"create {name}: {status} {message}")

        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(create, names))
        created_s = time.monotonic() - t0
        watcher.join(timeout=args.timeout)
        stop.set()
        missing = [n for n in names if n not in seen]
        if missing:
            raise SystemExit(f"{len(missing)} RayJobs never appeared (e.g. {missing[:3]})")
        client_cpu = _cpu_s(os.getpid()) - client_cpu_before
        counts_after, seconds_after = _apiserver_requests(kube)
        cluster_cpu = {
            name: cpu - cluster_cpu_before.get(name, 0.0)
            for name, cpu in _cluster_cpu_s(kube).items()
        }
        requests = counts_after - counts_before
        latencies = sorted(seen[n] - returned[n] for n in names)
        from_start = sorted(seen[n] - started[n] for n in names)
        total_s = max(seen.values()) - t0
        p50, p95 = statistics.median(latencies), _percentile(latencies, 0.95)
        rss = _peak_rss_mb(pid)
        cpu = _cpu_s(pid) - idle_cpu
        print(f"jobs={args.jobs} creates_took_s={created_s:.2f} (8 client threads)")
        print(
            f"create->RayJob latency from the POST's return: p50={p50:.3f}s p95={p95:.3f}s "
            f"max={latencies[-1]:.3f}s"
        )
        print(
            f"  from the POST's start: p50={statistics.median(from_start):.3f}s "
            f"p95={_percentile(from_start, 0.95):.3f}s max={from_start[-1]:.3f}s"
        )
        if args.split and len(named) == len(names):
            first = sorted(named[n] - returned[n] for n in names)
            then = sorted(seen[n] - named[n] for n in names)
            print(
                "  split: POST return -> status names the RayJob "
                f"p50={statistics.median(first):.3f}s p95={_percentile(first, 0.95):.3f}s; "
                f"-> RayJob p50={statistics.median(then):.3f}s p95={_percentile(then, 0.95):.3f}s"
            )
        print(
            f"operator RSS: idle={idle_rss:.0f} MB peak={rss:.0f} MB; CPU used {cpu:.1f} s "
            f"({1000 * cpu / args.jobs:.1f} ms per job)"
        )
        busy = ", ".join(
            f"{key}={count} ({1000 * (seconds_after[key] - seconds_before[key]) / count:.0f} ms)"
            for key, count in sorted(requests.items())
            if count
        )
        print(f"apiserver requests until the last RayJob (mean time inside the server): {busy}")
        used = ", ".join(f"{name} {cpu:.1f} s" for name, cpu in cluster_cpu.items())
        print(
            f"CPU over the {total_s:.1f} s burst: {used}, operator {cpu:.1f} s, "
            f"this client {client_cpu:.1f} s "
            f"(2 cores = {2 * total_s:.1f} s; load average before: {load_before:.2f})"
        )
        if profiler is not None:
            profiler.wait(timeout=60)
            print(f"profile: {args.profile}")
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
