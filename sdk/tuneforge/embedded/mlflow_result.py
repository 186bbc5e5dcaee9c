"""Find what a finished job left in MLflow: its run and the model version it registered."""

from __future__ import annotations

from tuneforge.api import MlflowStatus
from tuneforge.embedded.environment import local_artifact_root
from tuneforge.settings import Settings

JOB_UID_TAG = "tuneforge.job_uid"


def find_job_result(tracking_uri: str, job_uid: str, settings: Settings) -> MlflowStatus | None:
    """The job's MLflow run (tagged `tuneforge.job_uid`) and the newest version from it."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    with local_artifact_root(settings):
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        try:
            experiment_ids = [e.experiment_id for e in client.search_experiments()]
            runs = client.search_runs(
                experiment_ids,
                filter_string=f"tags.`{JOB_UID_TAG}` = '{job_uid}'",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
            if not runs:
                return None
            run_id = runs[0].info.run_id
            versions = client.search_model_versions(f"run_id = '{run_id}'")
        except MlflowException:
            return None
    if not versions:
        return MlflowStatus(run_id=run_id)
    newest = max(versions, key=lambda v: int(v.version))
    return MlflowStatus(run_id=run_id, model_name=newest.name, model_version=str(newest.version))
