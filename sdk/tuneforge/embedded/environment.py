"""How embedded mode configures the processes it starts (trainer, serving).

With no configuration, everything lives under `Settings.home` (`~/.tuneforge`):

    <home>/mlflow.db    MLflow tracking and model registry (SQLite)
    <home>/artifacts/   MLflow artifacts: adapters, validation images
    <home>/jobs/        job records and logs (see `tuneforge.embedded.records`)
    <home>/ray/         Ray's temporary files for embedded runs

Configured services (S3, an MLflow server, a Ray cluster) are passed through unchanged,
so the trainer and serving app see exactly the settings a cluster would give them. The
local store's artifact root is given to MLflow explicitly (see `tuneforge.registry.mlflow_store`),
never through MLflow's private environment variables.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tuneforge.settings import Settings

_PASSED_THROUGH = {
    "s3_endpoint": "TUNEFORGE_S3_ENDPOINT",
    "s3_access_key": "TUNEFORGE_S3_ACCESS_KEY",
    "s3_region": "TUNEFORGE_S3_REGION",
    "ray_address": "TUNEFORGE_RAY_ADDRESS",
}
_RAY_ADDRESS_VARIABLES = ("TUNEFORGE_RAY_ADDRESS", "RAY_ADDRESS")
"""Where `Settings.ray_address` is read from."""


def tracking_uri(settings: Settings) -> str:
    """The MLflow tracking URI in force: the configured one, else the SQLite store under home."""
    return settings.resolved_tracking_uri()


def prepare_home(settings: Settings) -> Path:
    """Create the state directory, and the local MLflow store with the training experiment.

    The experiment is created here with its artifact location under home, so the trainer
    finds it by name and no MLflow default (`./mlruns`) applies. With a configured MLflow
    server nothing is created there.
    """
    from tuneforge.registry.mlflow_store import MlflowStore, ensure_experiment

    home = Path(settings.home).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    if settings.local_artifact_root() is not None:
        store = MlflowStore(settings)
        with store.client() as client:
            ensure_experiment(client, settings)
    return home


def child_environment(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a trainer or serving process started by embedded mode."""
    env = dict(os.environ if base is None else base)
    home = Path(settings.home).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    env["TUNEFORGE_HOME"] = str(home)
    env["TUNEFORGE_MLFLOW_TRACKING_URI"] = tracking_uri(settings)
    env["MLFLOW_TRACKING_URI"] = tracking_uri(settings)
    env["TUNEFORGE_MLFLOW_EXPERIMENT"] = settings.mlflow_experiment
    for field, variable in _PASSED_THROUGH.items():
        value = getattr(settings, field)
        if value:
            env[variable] = str(value)
    if not settings.ray_address:
        # The settings say "start a local Ray": an address inherited from this process's
        # environment (which Settings() would have read, but these settings do not hold)
        # must not make the child join another cluster.
        for variable in _RAY_ADDRESS_VARIABLES:
            env.pop(variable, None)
    if settings.s3_secret_key is not None:
        env["TUNEFORGE_S3_SECRET_KEY"] = settings.s3_secret_key.get_secret_value()
    if settings.s3_secure is not None:
        env["TUNEFORGE_S3_SECURE"] = "true" if settings.s3_secure else "false"
    for key, value in {
        "RAY_USAGE_STATS_ENABLED": "0",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "PYTHONUNBUFFERED": "1",
    }.items():
        env.setdefault(key, value)
    venv_bin = str(Path(sys.executable).parent)
    if venv_bin not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    return env
