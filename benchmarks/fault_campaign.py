"""The operator SIGKILLed at random over many job lifecycles: duplicates, stuck jobs, lost Events.

Starts its own etcd + kube-apiserver + controller-manager (`_kube.py`), runs
`python -m tuneforge_operator` on one namespace at its default resync interval, and drives
RayJobs with a minimal KubeRay stand-in thread (KubeRay cannot run here): each RayJob goes
Initializing -> Running/PENDING -> Running/RUNNING -> Complete/SUCCEEDED, one step per poll.
FineTuneJobs are created one after another; after every third one the operator is killed
with SIGKILL after a random pause (0-0.6 s, while creates, status writes and RayJob events
are in flight) and started again; a few more kills follow the last create. Then it waits for
every job to succeed and for their final Events.

Counted at the end:
- `duplicates`: RayJobs beyond one per FineTuneJob (by controller owner uid);
- `stuck`: jobs not Succeeded=True by `--settle` seconds after the last kill;
- `missing_events` / `duplicate_events`: jobs with no / more than one `TrainingSucceeded`
  Event (the final Event of a kill right after the terminal status write is posted by the
  next operator's resync);
- `kills`, `lifecycles`, `total_s` (first create to the last job's final Event).

    scripts/netns-run .venv/bin/python benchmarks/fault_campaign.py [--jobs 100] [--seed 100]
    scripts/netns-run .venv/bin/python benchmarks/fault_campaign.py --quick   # 20 jobs

Last line: `lifecycles=... kills=... duplicates=... stuck=... missing_events=...
duplicate_events=... total_s=...` (target: 0 duplicates, 0 stuck, 0 missing, 0 duplicate).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _kube import KubeControlPlane, start_control_plane
from _operator_process import JOBS, RAYJOBS, OperatorProcess, install_runtimes, job_manifest

NEXT_STATE = {
    "": {"jobDeploymentStatus": "Initializing"},
    "Initializing": {"jobDeploymentStatus": "Running", "jobStatus": "PENDING"},
    "Running/PENDING": {"jobStatus": "RUNNING"},
    "Running/RUNNING": {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"},
}
"""The stand-in's RayJob status steps, keyed by `deployment[/jobStatus]`."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _merge_patch(plane: KubeControlPlane, path: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        plane.host + path, data=json.dumps(body).encode(), method="PATCH"
    )
    request.add_header("Authorization", f"Bearer {plane.token}")
    request.add_header("Content-Type", "application/merge-patch+json")
    with plane.opener.open(request, timeout=30):
        pass


class StandIn(threading.Thread):
    """Advances every RayJob of the namespace one status step per poll (see `NEXT_STATE`)."""

    def __init__(self, plane: KubeControlPlane, namespace: str, interval_s: float) -> None:
        """Drive RayJobs in `namespace`, polling every `interval_s`."""
        super().__init__(name="kuberay-standin", daemon=True)
        self.plane, self.namespace, self.interval_s = plane, namespace, interval_s
        self.halt = threading.Event()

    def run(self) -> None:
        """Poll until halted."""
        collection = RAYJOBS.format(ns=self.namespace)
        while not self.halt.is_set():
            status, answer = self.plane.request("GET", collection)
            for item in answer.get("items", []) if status == 200 else []:
                state = item.get("status") or {}
                key = state.get("jobDeploymentStatus", "")
                if key == "Running":
                    key += "/" + state.get("jobStatus", "")
                step = dict(NEXT_STATE.get(key, {}))
                if not step:
                    continue
                if key == "":
                    step["startTime"] = _now()
                if step.get("jobDeploymentStatus") == "Complete":
                    step["endTime"] = _now()
                name = item["metadata"]["name"]
                try:
                    _merge_patch(self.plane, f"{collection}/{name}/status", {"status": step})
                except OSError as error:
                    print(f"stand-in: {name}: {error}")
            self.halt.wait(self.interval_s)


def _kill(operator: OperatorProcess) -> None:
    os.kill(operator.pid, signal.SIGKILL)
    assert operator.service is not None
    operator.service.popen.wait(timeout=30)


def _succeeded(plane: KubeControlPlane, namespace: str) -> dict[str, bool]:
    items = plane.ok("GET", JOBS.format(ns=namespace)).get("items", [])
    done: dict[str, bool] = {}
    for item in items:
        conditions = (item.get("status") or {}).get("conditions") or []
        done[item["metadata"]["name"]] = any(
            c.get("type") == "Succeeded" and c.get("status") == "True" for c in conditions
        )
    return done


def _final_events(plane: KubeControlPlane, namespace: str) -> Counter[str]:
    items = plane.ok("GET", f"/api/v1/namespaces/{namespace}/events").get("items", [])
    return Counter(
        e["involvedObject"]["name"]
        for e in items
        if e.get("reason") == "TrainingSucceeded"
        and e.get("involvedObject", {}).get("kind") == "FineTuneJob"
    )


def _duplicates(plane: KubeControlPlane, namespace: str, uids: set[str]) -> int:
    items = plane.ok("GET", RAYJOBS.format(ns=namespace)).get("items", [])
    owners = Counter(
        ref["uid"]
        for item in items
        for ref in item["metadata"].get("ownerReferences") or []
        if ref.get("controller")
    )
    strays = sum(1 for uid in owners if uid not in uids)
    return sum(count - 1 for count in owners.values()) + strays


def campaign(plane: KubeControlPlane, work: Path, jobs: int, seed: int, settle_s: float) -> str:
    """Run the campaign on `plane`; return the result line."""
    namespace = plane.create_namespace("faults")
    install_runtimes(plane, namespace)
    operator = OperatorProcess(plane, namespace, work, {})  # default resync interval
    operator.start()
    standin = StandIn(plane, namespace, interval_s=0.3)
    standin.start()
    rng = random.Random(seed)
    names = [f"job-{i:03d}" for i in range(jobs)]
    uids: set[str] = set()
    kills = 0
    started = time.monotonic()
    for index, name in enumerate(names):
        created = plane.ok("POST", JOBS.format(ns=namespace), {**job_manifest(name)})
        uids.add(created["metadata"]["uid"])
        if index % 3 == 2:
            time.sleep(rng.uniform(0.0, 0.6))
            _kill(operator)
            kills += 1
            operator.start()
    for _ in range(4):
        time.sleep(rng.uniform(0.2, 1.5))
        _kill(operator)
        kills += 1
        operator.start()
    last_kill = time.monotonic()
    finished_at = last_kill
    while time.monotonic() - last_kill < settle_s:
        done = _succeeded(plane, namespace)
        events = _final_events(plane, namespace)
        if all(done.get(n) for n in names) and all(events[n] >= 1 for n in names):
            finished_at = time.monotonic()
            break
        time.sleep(1.0)
    else:
        finished_at = time.monotonic()
    time.sleep(5)  # an Event posted twice would show by now
    standin.halt.set()
    done = _succeeded(plane, namespace)
    events = _final_events(plane, namespace)
    operator.stop()
    stuck = [n for n in names if not done.get(n)]
    missing = [n for n in names if events[n] == 0]
    if stuck or missing:
        print(f"stuck: {stuck[:10]} missing final Event: {missing[:10]}")
    return (
        f"lifecycles={jobs} kills={kills} duplicates={_duplicates(plane, namespace, uids)} "
        f"stuck={len(stuck)} missing_events={len(missing)} "
        f"duplicate_events={sum(max(0, events[n] - 1) for n in names)} "
        f"total_s={finished_at - started:.0f}"
    )


def main() -> None:
    """Parse arguments, start the control plane, run the campaign, print the result line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--settle", type=float, default=240.0, help="seconds after the last kill")
    parser.add_argument("--quick", action="store_true", help="20 jobs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tuneforge-faults-") as tmp:
        work = Path(tmp)
        plane = start_control_plane(work / "kube")
        try:
            line = campaign(plane, work, 20 if args.quick else args.jobs, args.seed, args.settle)
        finally:
            plane.stop()
    print(line)


if __name__ == "__main__":
    main()
