"""The `QualityGate` condition on a cluster: the trainer's verdict, read from the job's run.

The trainer records the gate's verdict as JSON in the run tag `QUALITY_GATE_TAG` before it
registers the version (`tuneforge_trainer.runner`). `QualityGateReader.verdict(run_id)` reads
it over MLflow's REST API (plain httpx, as `mlflow_reader` does); `record_quality_gate` writes
it into a computed status with the shared rule `tuneforge.api.apply_quality_gate`, so the
operator and embedded mode show the same condition and figures.

Hook (reconcile, after `new = compute_status(current, observed)`):
`await record_quality_gate(self._quality, new, run.run_id if run else None, generation)`.
"""

from __future__ import annotations

from typing import Any

import httpx

from tuneforge.api import (
    QUALITY_GATE_TAG,
    FineTuneJobStatus,
    QualityGateVerdict,
    apply_quality_gate,
)


class QualityGateReader:
    """Reads a run's quality-gate verdict from MLflow's REST API."""

    def __init__(self, tracking_uri: str, timeout_s: float = 5.0, token: str | None = None):
        """Ask the MLflow server at `tracking_uri` (bearer `token` when given)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.AsyncClient(
            base_url=tracking_uri.rstrip("/"), timeout=timeout_s, headers=headers, trust_env=False
        )

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()

    async def verdict(self, run_id: str) -> QualityGateVerdict | None:
        """The verdict tagged on `run_id`; None before the trainer recorded one.

        httpx.HTTPError when MLflow cannot be asked; ValueError when the tag is not a verdict.
        """
        response = await self._client.get("/api/2.0/mlflow/runs/get", params={"run_id": run_id})
        response.raise_for_status()
        return verdict_of_run(response.json().get("run", {}))


def verdict_of_run(run: dict[str, Any]) -> QualityGateVerdict | None:
    """The verdict in a run as MLflow's REST API returns it (`data.tags` as key/value pairs)."""
    tags = {t.get("key"): t.get("value") for t in run.get("data", {}).get("tags", [])}
    text = tags.get(QUALITY_GATE_TAG)
    return QualityGateVerdict.from_json(text) if text else None


async def record_quality_gate(
    reader: QualityGateReader | None,
    status: FineTuneJobStatus,
    run_id: str | None,
    generation: int | None,
) -> bool:
    """Put the run's verdict into `status` (`evaluation`, `QualityGate`); True when it changed.

    Nothing happens without a reader, a run, or a verdict yet; a status that already shows
    the verdict is not asked about again.
    """
    if reader is None or run_id is None or status.condition("QualityGate") is not None:
        return False
    verdict = await reader.verdict(run_id)
    if verdict is None:
        return False
    return apply_quality_gate(status, verdict, generation)
