"""What the trainer puts in Ray's `runtime_env`: settings yes, secrets never.

Ray stores a job's `runtime_env` in its GCS and returns it from its state API, so any
credential there is readable by whoever can reach the cluster.
"""

from __future__ import annotations

import pytest

from tuneforge_trainer.distributed import forwarded_env, is_forwarded

SECRET = "s3cr3t-value-never-in-runtime-env"
SECRET_NAMES = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SESSION_TOKEN",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "TUNEFORGE_S3_SECRET_KEY",
    "TUNEFORGE_S3_ACCESS_KEY",
    "TUNEFORGE_SERVING_AUTH_TOKEN",
    "HF_TOKEN",
)
SETTINGS = {
    "TUNEFORGE_S3_ENDPOINT": "http://127.0.0.1:9000",
    "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
    "AWS_DEFAULT_REGION": "us-east-1",
    "HF_HUB_OFFLINE": "1",
    "TUNEFORGE_TRAINER_CACHE": "/var/cache/tuneforge",
    "DO_NOT_TRACK": "true",
}


@pytest.fixture
def service_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRET_NAMES:
        monkeypatch.setenv(name, SECRET)
    for name, value in SETTINGS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("UNRELATED_VARIABLE", "x")


def test_no_secret_value_is_forwarded(service_env: None) -> None:
    env = forwarded_env()
    assert SECRET not in repr(env)
    assert not set(SECRET_NAMES) & set(env)


def test_non_secret_settings_still_travel(service_env: None) -> None:
    env = forwarded_env()
    assert {name: env.get(name) for name in SETTINGS} == SETTINGS
    assert "UNRELATED_VARIABLE" not in env
    assert env["OMP_NUM_THREADS"] == "1"


@pytest.mark.parametrize("name", ["TUNEFORGE_Db_Password", "MLFLOW_TRACKING_AUTH_HEADER"])
def test_secret_markers_match_whatever_the_case(name: str) -> None:
    assert not is_forwarded(name)
