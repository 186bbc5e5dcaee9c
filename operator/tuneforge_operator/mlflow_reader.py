"""Read a job's training progress and registered version from MLflow's REST API.

Plain HTTP (httpx) instead of the MLflow client keeps the operator image small. The trainer
tags its run and its model version with `Tag.JOB_UID` = the FineTuneJob's uid and logs the
metrics `Metric.STEP`, `Metric.LOSS` and `Metric.IMAGES_PER_S` (`tuneforge.contract`).
"""

from __future__ import annotations

from typing import Any

import httpx

from tuneforge.api import QUALITY_GATE_TAG
from tuneforge.api.status_rules import RunObservation
from tuneforge.contract import Metric, Tag, job_run_filter


class MlflowUnavailable(Exception):
    """MLflow could not be asked (unreachable, or it answered with an error)."""


def _quote(value: str) -> str:
    return "'" + value.replace("'", "\\'") + "'"


class MlflowReader:
    """Looks up a job's run and model version by the `Tag.JOB_UID` tag."""

    def __init__(self, tracking_uri: str, timeout_s: float = 5.0, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.AsyncClient(
            base_url=tracking_uri.rstrip("/"), timeout=timeout_s, headers=headers, trust_env=False
        )

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._client.request(method, f"/api/2.0/mlflow/{path}", **kwargs)
        except httpx.HTTPError as error:
            raise MlflowUnavailable(
                f"MLflow at {self._client.base_url} is unreachable: {error}"
            ) from error
        if response.status_code >= 400:
            raise MlflowUnavailable(
                f"MLflow {path} answered {response.status_code}: {response.text[:300]}"
            )
        body = response.json()
        return body if isinstance(body, dict) else {}

    async def _experiment_ids(self) -> list[str]:
        ids: list[str] = []
        token: str | None = None
        while True:
            payload: dict[str, Any] = {"max_results": 1000}
            if token:
                payload["page_token"] = token
            body = await self._call("POST", "experiments/search", json=payload)
            ids += [str(e["experiment_id"]) for e in body.get("experiments", [])]
            token = body.get("next_page_token")
            if not token:
                return ids

    async def _find_run(self, job_uid: str) -> dict[str, Any] | None:
        experiment_ids = await self._experiment_ids()
        if not experiment_ids:
            return None
        body = await self._call(
            "POST",
            "runs/search",
            json={
                "experiment_ids": experiment_ids,
                "filter": job_run_filter(job_uid),
                "max_results": 1,
                "order_by": ["attributes.start_time DESC"],
            },
        )
        runs = body.get("runs", [])
        return runs[0] if runs else None

    async def _find_version(self, job_uid: str, model_name: str, run_id: str | None) -> str | None:
        body = await self._call(
            "GET",
            "model-versions/search",
            params={"filter": f"name = {_quote(model_name)}", "max_results": 1000},
        )
        best: int | None = None
        for version in body.get("model_versions", []):
            tags = {t.get("key"): t.get("value") for t in version.get("tags", [])}
            if tags.get(Tag.JOB_UID) == job_uid or (run_id and version.get("run_id") == run_id):
                if version.get("status", "READY") == "READY":
                    number = int(version["version"])
                    best = number if best is None else max(best, number)
        return None if best is None else str(best)

    async def observe(self, job_uid: str, model_name: str) -> RunObservation:
        """The job's latest metrics and registered version (empty when nothing is logged yet)."""
        run = await self._find_run(job_uid)
        metrics: dict[str, dict[str, Any]] = {}
        tags: dict[str, str] = {}
        run_id: str | None = None
        if run is not None:
            run_id = run.get("info", {}).get("run_id")
            metrics = {m["key"]: m for m in run.get("data", {}).get("metrics", [])}
            tags = {t.get("key"): t.get("value") for t in run.get("data", {}).get("tags", [])}
        step_metric = metrics.get(Metric.STEP)
        loss_metric = metrics.get(Metric.LOSS)
        step: int | None = None
        if step_metric is not None:
            step = int(float(step_metric["value"]))
        elif loss_metric is not None:
            step = int(loss_metric.get("step", 0))
        throughput = metrics.get(Metric.IMAGES_PER_S)
        return RunObservation(
            run_id=run_id,
            step=step,
            loss=float(loss_metric["value"]) if loss_metric is not None else None,
            images_per_s=float(throughput["value"]) if throughput is not None else None,
            model_version=await self._find_version(job_uid, model_name, run_id),
            quality_gate=tags.get(QUALITY_GATE_TAG),
        )
