"""What a real Ray keeps of the trainer's runtime_env: settings, never credentials.

Ray stores each job's `runtime_env` in its GCS job table, where anyone who reaches the
cluster (the state API, the dashboard) reads it. The trainer joins Ray with
`connect_ray`; this test joins the session's Ray head the same way, with credentials in
its environment, and searches the raw GCS job table for them.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "aws-secret-7c1f0e-never-in-gcs",
    "TUNEFORGE_S3_SECRET_KEY": "tf-secret-51aa2d-never-in-gcs",
    "MLFLOW_TRACKING_TOKEN": "mlflow-token-9be410-never-in-gcs",
    "MLFLOW_TRACKING_PASSWORD": "mlflow-password-0d3c77-never-in-gcs",
}
SETTING = ("TUNEFORGE_S3_REGION", "region-setting-2e8b91-forwarded")


def _gcs_job_table() -> bytes:
    """Every job entry of the GCS job table, serialized (runtime_env included)."""
    import ray._private.state as state

    accessor = state.state._connect_and_get_accessor()
    return b"".join(
        accessor.get_job_table(
            skip_submission_job_info_field=False, skip_is_running_tasks_field=True
        )
    )


def test_no_credential_reaches_rays_job_table(ray_cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    from tuneforge.settings import Settings
    from tuneforge_trainer.distributed import connect_ray

    for name, value in {**SECRETS, SETTING[0]: SETTING[1]}.items():
        monkeypatch.setenv(name, value)
    ray_cluster.disconnect()  # connect as the trainer does, with its runtime_env
    try:
        started = connect_ray(Settings(ray_address=ray_cluster.address), cpus_needed=1)
        assert not started

        @ray.remote(num_cpus=0)
        def worker_env(name: str) -> str | None:
            import os

            return os.environ.get(name)

        # The setting reaches the workers through the runtime_env ...
        assert ray.get(worker_env.remote(SETTING[0])) == SETTING[1]
        assert ray.get_runtime_context().runtime_env["env_vars"][SETTING[0]] == SETTING[1]
        table = _gcs_job_table()
        assert SETTING[1].encode() in table, "the check reads the table the env is stored in"
        # ... and no credential is in what Ray stored.
        leaked = [name for name, value in SECRETS.items() if value.encode() in table]
        assert not leaked, f"credentials in Ray's GCS job table: {leaked}"
    finally:
        ray.shutdown()
