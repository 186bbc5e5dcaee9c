"""Find what a finished job left in MLflow: its run and the model version it registered."""

from __future__ import annotations

from tuneforge.api import MlflowStatus
from tuneforge.contract import job_run_filter
from tuneforge.errors import RegistryError
from tuneforge.registry.mlflow_store import MlflowStore
from tuneforge.settings import Settings


def find_job_result(tracking_uri: str, job_uid: str, settings: Settings) -> MlflowStatus | None:
    """The job's MLflow run (tagged with its uid) and the newest version registered from it.

    `tracking_uri` overrides the one in `settings`. None when MLflow has no run for the job or
    cannot answer.
    """
    from mlflow.exceptions import MlflowException

    store = MlflowStore(settings.model_copy(update={"mlflow_tracking_uri": tracking_uri}))
    try:
        with store.client() as client:
            experiment_ids = [e.experiment_id for e in client.search_experiments()]
            runs = client.search_runs(
                experiment_ids,
                filter_string=job_run_filter(job_uid),
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
            if not runs:
                return None
            run_id = runs[0].info.run_id
            versions = client.search_model_versions(f"run_id = '{run_id}'")
    except (MlflowException, RegistryError):
        return None
    if not versions:
        return MlflowStatus(run_id=run_id)
    newest = max(versions, key=lambda v: int(v.version))
    return MlflowStatus(run_id=run_id, model_name=newest.name, model_version=str(newest.version))
