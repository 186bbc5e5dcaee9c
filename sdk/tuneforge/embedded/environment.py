"""How embedded mode configures the processes it starts (trainer, serving).

With no configuration, everything lives under `Settings.home` (`~/.tuneforge`):

    <home>/mlflow.db    MLflow tracking and model registry (SQLite)
    <home>/artifacts/   MLflow artifacts: adapters, validation images
    <home>/jobs/        job records and logs (see `tuneforge.embedded.records`)
    <home>/ray/         Ray's temporary files for embedded runs

Configured services (S3, an MLflow server, a Ray cluster) are passed through unchanged,
so the trainer and serving app see exactly the settings a cluster would give them.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from tuneforge.settings import Settings

#: MLflow reads the artifact root of a SQLite store from this (private) variable; without it
#: the root is `./mlruns` relative to whichever process first creates the store.
MLFLOW_ARTIFACT_ROOT_ENV = "_MLFLOW_SERVER_ARTIFACT_ROOT"

_PASSED_THROUGH = {
    "s3_endpoint": "TUNEFORGE_S3_ENDPOINT",
    "s3_access_key": "TUNEFORGE_S3_ACCESS_KEY",
    "s3_region": "TUNEFORGE_S3_REGION",
    "ray_address": "TUNEFORGE_RAY_ADDRESS",
}


def tracking_uri(settings: Settings) -> str:
    """The MLflow tracking URI in force: the configured one, else the SQLite store under home."""
    return settings.mlflow_tracking_uri or settings.embedded_tracking_uri()


def artifact_root(settings: Settings) -> Path:
    """Where a local MLflow store keeps artifacts."""
    return Path(settings.home).expanduser() / "artifacts"


def prepare_home(settings: Settings) -> Path:
    """Create the state directory (and its artifact folder); return it."""
    home = Path(settings.home).expanduser()
    artifact_root(settings).mkdir(parents=True, exist_ok=True)
    return home


def child_environment(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a trainer or serving process started by embedded mode."""
    env = dict(os.environ if base is None else base)
    home = prepare_home(settings)
    env["TUNEFORGE_HOME"] = str(home)
    env["TUNEFORGE_MLFLOW_TRACKING_URI"] = tracking_uri(settings)
    env["MLFLOW_TRACKING_URI"] = tracking_uri(settings)
    env.setdefault(MLFLOW_ARTIFACT_ROOT_ENV, str(artifact_root(settings)))
    for field, variable in _PASSED_THROUGH.items():
        value = getattr(settings, field)
        if value:
            env[variable] = str(value)
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


@contextlib.contextmanager
def local_artifact_root(settings: Settings) -> Iterator[None]:
    """While open, an in-process MLflow client on the SQLite store uses home's artifact root."""
    if settings.mlflow_tracking_uri:
        yield
        return
    prepare_home(settings)
    previous = os.environ.get(MLFLOW_ARTIFACT_ROOT_ENV)
    os.environ[MLFLOW_ARTIFACT_ROOT_ENV] = str(artifact_root(settings))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(MLFLOW_ARTIFACT_ROOT_ENV, None)
        else:
            os.environ[MLFLOW_ARTIFACT_ROOT_ENV] = previous
