"""The operator image carries no torch stack: importing every operator module loads none."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = (
    "torch",
    "diffusers",
    "transformers",
    "peft",
    "accelerate",
    "ray",
    "tuneforge_trainer",
    "tuneforge_serving",
    "mlflow",
)
_PROBE = """
import importlib, json, pkgutil, sys
import tuneforge_operator
for module in pkgutil.walk_packages(tuneforge_operator.__path__, "tuneforge_operator."):
    importlib.import_module(module.name)
print(json.dumps(sorted(sys.modules)))
"""


def test_operator_imports_no_torch_stack_ray_or_mlflow() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert "tuneforge_operator.app" in loaded and "kopf" in loaded
    offenders = [m for m in loaded if m.split(".")[0] in FORBIDDEN]
    assert offenders == []
