"""KubeRay's RayJob submission on the test node: the submitter Job. IT IS NOT KUBERAY.

What KubeRay's RayJob controller (ray-operator/controllers/ray/rayjob_controller.go and
common/job.go, v1.5) does once the job's RayCluster is ready, for the default
`submissionMode: K8sJobMode`:

- `status.dashboardURL` is `<head-svc>.<namespace>.svc.cluster.local:8265` and `status.jobId`
  is `spec.jobId` or `<rayjob>-<random>`;
- a batch/v1 Job named after the RayJob, from `spec.submitterPodTemplate`: when container 0
  has no command, it runs `/bin/bash -ce -- "<GetK8sJobCommand>"`, which submits the
  entrypoint unless a job with that id exists (then it follows its logs):
  `if ray job status --address http://D ID >/dev/null 2>&1 ; then ray job logs --address
  http://D --follow ID ; else ray job submit --address http://D --metadata-json "<json>"
  --submission-id ID -- <entrypoint> ; fi`;
- the container's env gets `PYTHONUNBUFFERED=1`, `RAY_DASHBOARD_ADDRESS`,
  `RAY_JOB_SUBMISSION_ID`, and with token auth `RAY_AUTH_MODE`/`RAY_AUTH_TOKEN` from the
  cluster's Secret; `restartPolicy: Never`; `backoffLimit` from `submitterConfig` (default 2).

`ray job submit` without `--no-wait` streams the job's logs and exits 0 only when the job
SUCCEEDED, so the Job's outcome is the Ray job's.
"""

from __future__ import annotations

import copy
import json
import secrets
from typing import Any

from tests.cluster.kuberay_raycluster import DASHBOARD_PORT, auth_env, head_fqdn

SUBMITTER_BACKOFF_LIMIT = 2
"""KubeRay's default `submitterConfig.backoffLimit`."""


def dashboard_url(cluster: str, namespace: str) -> str:
    """KubeRay's `status.dashboardURL`: the head Service's FQDN and the dashboard port."""
    return f"{head_fqdn(cluster, namespace)}:{DASHBOARD_PORT}"


def new_job_id(rayjob_name: str) -> str:
    """KubeRay's generated submission id when `spec.jobId` is empty."""
    return f"{rayjob_name}-{secrets.token_hex(4)}"


def _go_quote(text: str) -> str:
    """Go's `strconv.Quote` for the ASCII JSON KubeRay quotes (backslash and double quote)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def submitter_command(dashboard: str, job_id: str, rayjob_spec: dict[str, Any]) -> str:
    """`GetK8sJobCommand` joined with spaces, as KubeRay passes it to `bash -ce`."""
    address = f"http://{dashboard}"
    words = ["if", "ray", "job", "status", "--address", address, job_id, ">/dev/null", "2>&1",
             ";", "then", "ray", "job", "logs", "--address", address, "--follow", job_id,
             ";", "else", "ray", "job", "submit", "--address", address]  # fmt: skip
    metadata = rayjob_spec.get("metadata") or {}
    if metadata:
        compact = json.dumps(metadata, separators=(",", ":"), sort_keys=True)
        words += ["--metadata-json", _go_quote(compact)]
    words += ["--submission-id", job_id]
    words += ["--", rayjob_spec["entrypoint"].strip(), ";", "fi"]
    return " ".join(words)


def submitter_job(
    rayjob: dict[str, Any], cluster: str, job_id: str, *, auth: bool
) -> dict[str, Any]:
    """The batch/v1 Job KubeRay creates to submit `rayjob` to the cluster `cluster`."""
    spec = rayjob["spec"]
    namespace = rayjob["metadata"]["namespace"]
    template = copy.deepcopy(spec["submitterPodTemplate"])
    container = template["spec"]["containers"][0]
    dashboard = dashboard_url(cluster, namespace)
    if not container.get("command"):
        container["command"] = ["/bin/bash", "-ce", "--"]
        container["args"] = [submitter_command(dashboard, job_id, spec)]
    env = [*container.get("env", []),
           {"name": "PYTHONUNBUFFERED", "value": "1"},
           {"name": "RAY_DASHBOARD_ADDRESS", "value": dashboard},
           {"name": "RAY_JOB_SUBMISSION_ID", "value": job_id}]  # fmt: skip
    if auth:
        env += auth_env(cluster)
    container["env"] = env
    template["spec"]["restartPolicy"] = "Never"
    name = rayjob["metadata"]["name"]
    backoff = (spec.get("submitterConfig") or {}).get("backoffLimit", SUBMITTER_BACKOFF_LIMIT)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "ray.io/originated-from-crd": "RayJob",
                "ray.io/originated-from-cr-name": name,
            },
        },  # fmt: skip
        "spec": {"backoffLimit": backoff, "template": template},
    }
