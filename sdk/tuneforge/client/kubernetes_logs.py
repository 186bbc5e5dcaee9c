"""Streaming a FineTuneJob's training output from the pods KubeRay creates.

KubeRay runs the entrypoint from a submitter Job (pods labelled `job-name=<rayjob>`) that
follows the Ray job's logs, so that pod's log is the training output; when there is none
(other submission modes), the Ray head pod's log is the next best thing. While neither is
running, `follow=True` waits instead of returning nothing; lines are streamed in chunks and
never held in memory as a whole.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Protocol

from tuneforge.api import FineTuneJob
from tuneforge.client.kubernetes_api import api_error
from tuneforge.errors import JobNotFoundError

POLL_INTERVAL_S = 1.0
CHUNK_BYTES = 16 * 1024
_READABLE_PHASES = ("Running", "Succeeded", "Failed")


class JobPods(Protocol):
    """What log streaming needs of the job backend: its jobs, their RayJobs, the core API."""

    namespace: str
    """Namespace of the jobs and their pods."""
    core: Any
    """A `kubernetes.client.CoreV1Api`."""

    def get(self, name: str) -> FineTuneJob:
        """The FineTuneJob (raises `JobNotFoundError`)."""
        ...

    def ray_job(self, ray_job_name: str) -> dict[str, Any] | None:
        """The RayJob object, or None while it does not exist."""
        ...


def stream_job_logs(backend: JobPods, name: str, follow: bool) -> Iterator[str]:
    """Lines of the job's training output (see the module docstring)."""
    backend.get(name)  # JobNotFoundError now, not at the first `next()` after a wait
    return _stream(backend, name, follow)


def _stream(backend: JobPods, name: str, follow: bool) -> Iterator[str]:
    streamed: set[str] = set()
    while True:
        try:
            job = backend.get(name)
        except JobNotFoundError:
            return  # deleted while we followed it
        pod = find_log_pod(backend, job.status.ray_job_name if job.status else None)
        if pod is not None and pod not in streamed:
            streamed.add(pod)
            yield from pod_log_lines(backend.core, backend.namespace, pod, follow)
            if not follow:
                return
            continue
        if not follow or (job.status is not None and job.status.is_finished()):
            return
        time.sleep(POLL_INTERVAL_S)


def find_log_pod(backend: JobPods, ray_job_name: str | None) -> str | None:
    """The readable pod holding the job's output: the submitter's, else the Ray head's."""
    from kubernetes.client import ApiException

    if not ray_job_name:
        return None
    selectors = [f"job-name={ray_job_name}", f"batch.kubernetes.io/job-name={ray_job_name}"]
    ray_job = backend.ray_job(ray_job_name)
    cluster = ((ray_job or {}).get("status") or {}).get("rayClusterName")
    if cluster:
        selectors.append(f"ray.io/cluster={cluster},ray.io/node-type=head")
    for selector in selectors:
        try:
            pods: list[Any] = backend.core.list_namespaced_pod(
                backend.namespace, label_selector=selector
            ).items
        except ApiException as exc:
            raise api_error(exc, f"listing pods {selector!r} of RayJob {ray_job_name!r}") from None
        readable = [
            p
            for p in pods
            if p.metadata is not None
            and p.status is not None
            and p.status.phase in _READABLE_PHASES
        ]
        if readable:
            newest = max(readable, key=lambda p: str(p.metadata.creation_timestamp or ""))
            return str(newest.metadata.name)
    return None


def pod_log_lines(core: Any, namespace: str, pod: str, follow: bool) -> Iterator[str]:
    """Stream one pod's log line by line (chunked reads, partial lines kept until complete).

    Raises `BackendError` when the API server cannot serve the log (e.g. the node's kubelet
    is unreachable, or RBAC forbids `pods/log`).
    """
    from kubernetes.client import ApiException

    try:
        response = core.read_namespaced_pod_log(
            pod, namespace, follow=follow, _preload_content=False
        )
    except ApiException as exc:
        raise api_error(
            exc,
            f"reading the log of pod {pod!r} in namespace {namespace!r} (the API server fetches "
            "it from the kubelet of the pod's node; `kubectl logs` fails the same way)",
        ) from None
    pending = b""
    try:
        for chunk in response.stream(CHUNK_BYTES):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode("utf-8", errors="replace").rstrip("\r")
        if pending:
            yield pending.decode("utf-8", errors="replace")
    finally:
        response.release_conn()
