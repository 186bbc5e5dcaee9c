"""Root pytest configuration: registers the fixture modules every component's tests share.

Each module under tests/fixtures owns one kind of fixture (real services, tiny assets,
the KubeRay stand-in, ...). Session-scoped services start once per test run.
"""

import importlib.util
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
for _key, _value in {
    "RAY_USAGE_STATS_ENABLED": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "RAY_AUTH_MODE": "disabled",
}.items():
    os.environ[_key] = _value

_FIXTURE_MODULES = [
    "tests.fixtures.services",
    "tests.fixtures.kube",
    "tests.fixtures.assets",
    "tests.fixtures.kuberay_standin",
    "tests.fixtures.serving",
    "tests.fixtures.trainer",
]
pytest_plugins = [name for name in _FIXTURE_MODULES if importlib.util.find_spec(name) is not None]
