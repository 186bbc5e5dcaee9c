"""The Kubernetes job backend: FineTuneJobs through the API server, logs from the Ray pods.

The operator turns each FineTuneJob into a KubeRay RayJob and keeps `status` current; this
backend only reads and writes FineTuneJobs, lists Events, and streams pod logs.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from typing import Any

from tuneforge.api import GROUP, PLURAL, VERSION, FineTuneJob, FineTuneJobStatus
from tuneforge.client.backend import JobEvent
from tuneforge.client.kubernetes_api import api_error, kubernetes_api_client
from tuneforge.client.kubernetes_logs import stream_job_logs
from tuneforge.errors import JobExistsError, JobNotFoundError
from tuneforge.settings import Settings

_STATUS_FIELDS = {f.alias or n for n, f in FineTuneJobStatus.model_fields.items()} | set(
    FineTuneJobStatus.model_fields
)


def job_from_object(obj: dict[str, Any]) -> FineTuneJob:
    """A FineTuneJob from an API object, ignoring status fields other controllers added."""
    data = dict(obj)
    status = data.get("status")
    if isinstance(status, dict):
        data["status"] = {k: v for k, v in status.items() if k in _STATUS_FIELDS}
    return FineTuneJob.model_validate(data)


def without_empty_strings(value: Any) -> Any:
    """Drop `""` fields (all are defaults): some API servers (1.20) reject empty strings."""
    if isinstance(value, dict):
        return {k: without_empty_strings(v) for k, v in value.items() if v != ""}
    if isinstance(value, list):
        return [without_empty_strings(v) for v in value]
    return value


class KubernetesBackend:
    """FineTuneJobs in one namespace of a Kubernetes cluster."""

    def __init__(
        self, settings: Settings, api_client: Any | None = None, namespace: str | None = None
    ) -> None:
        """Use `api_client` (default: from settings) in `namespace` (default: settings')."""
        from kubernetes.client import CoreV1Api, CustomObjectsApi

        self.settings = settings
        self.namespace = namespace or settings.namespace
        self.api_client = api_client if api_client is not None else kubernetes_api_client(settings)
        # The generated client's return types are `object`; our own types are applied on read.
        self.custom: Any = CustomObjectsApi(self.api_client)
        self.core: Any = CoreV1Api(self.api_client)

    def submit(self, job: FineTuneJob) -> str:
        """Create the FineTuneJob; return its name."""
        from kubernetes.client import ApiException

        body: dict[str, Any] = job.to_manifest()
        body["spec"] = without_empty_strings(body["spec"])
        body["metadata"]["namespace"] = self.namespace
        try:
            created: dict[str, Any] = self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, body
            )
        except ApiException as exc:
            if exc.status == 409:
                raise JobExistsError(
                    f"job {job.name!r} already exists in namespace {self.namespace!r}: delete it "
                    "first or choose another metadata.name"
                ) from None
            raise api_error(exc, f"creating job {job.name!r}") from None
        return str(created["metadata"]["name"])

    def get(self, name: str) -> FineTuneJob:
        """The FineTuneJob with its status."""
        return job_from_object(self._get_object(name))

    def list(self, selector: str | None = None) -> list[FineTuneJob]:
        """FineTuneJobs in the namespace matching the label selector."""
        from kubernetes.client import ApiException

        try:
            listing: dict[str, Any] = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, label_selector=selector or None
            )
        except ApiException as exc:
            raise api_error(exc, "listing jobs") from None
        items = sorted(listing.get("items", []), key=lambda o: o["metadata"]["name"])
        return [job_from_object(item) for item in items]

    def delete(self, name: str) -> None:
        """Delete the FineTuneJob (its RayJob goes with it through the owner reference)."""
        from kubernetes.client import ApiException

        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, propagation_policy="Background"
            )
        except ApiException as exc:
            if exc.status == 404:
                raise self._not_found(name) from None
            raise api_error(exc, f"deleting job {name!r}") from None

    def logs(self, name: str, follow: bool = True) -> Iterator[str]:
        """The training output: the RayJob's submitter pod, else its Ray head pod."""
        return stream_job_logs(self, name, follow)

    def events(self, name: str) -> builtins.list[JobEvent]:
        """Events about the FineTuneJob and its RayJob, oldest first."""
        from kubernetes.client import ApiException

        job = self.get(name)
        subjects = [("FineTuneJob", name)]
        if job.status is not None and job.status.ray_job_name:
            subjects.append(("RayJob", job.status.ray_job_name))
        events: list[tuple[str, JobEvent]] = []
        for kind, subject in subjects:
            try:
                listing = self.core.list_namespaced_event(
                    self.namespace,
                    field_selector=f"involvedObject.kind={kind},involvedObject.name={subject}",
                )
            except ApiException as exc:
                raise api_error(exc, f"listing events of {kind} {subject!r}") from None
            for item in listing.items:
                stamp = item.last_timestamp or item.event_time or item.first_timestamp
                when = stamp.strftime("%Y-%m-%dT%H:%M:%SZ") if stamp else None
                source = item.source.component if item.source and item.source.component else ""
                events.append(
                    (
                        when or "",
                        JobEvent(
                            type=item.type or "Normal",
                            reason=item.reason or "",
                            message=item.message or "",
                            time=when,
                            count=item.count or 1,
                            source=source or (item.reporting_component or ""),
                        ),
                    )
                )
        return [event for _, event in sorted(events, key=lambda pair: pair[0])]

    def ray_job(self, ray_job_name: str) -> dict[str, Any] | None:
        """The RayJob object, or None while it does not exist."""
        from kubernetes.client import ApiException

        try:
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
                "ray.io", "v1", self.namespace, "rayjobs", ray_job_name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise api_error(exc, f"reading RayJob {ray_job_name!r}") from None
        return obj

    def _get_object(self, name: str) -> dict[str, Any]:
        from kubernetes.client import ApiException

        try:
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                raise self._not_found(name) from None
            raise api_error(exc, f"reading job {name!r}") from None
        return obj

    def _not_found(self, name: str) -> JobNotFoundError:
        return JobNotFoundError(
            f"job {name!r} not found in namespace {self.namespace!r}: list jobs with "
            "`tuneforge list --backend kubernetes`"
        )
