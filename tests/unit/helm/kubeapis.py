"""The table of built-in Kubernetes APIs per minor version (fixtures/kube_apis.yaml)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

APIS: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parent / "fixtures" / "kube_apis.yaml").read_text()
)
TEST_APISERVER = (1, 20)
"""The minor of the development machine's test apiserver (v1.20.2, built from Debian)."""


def minor(version: str) -> tuple[int, int]:
    """(major, minor) of `1.21`, `v1.21.3` or `>=1.21.0-0`."""
    match = re.search(r"(\d+)\.(\d+)", version)
    if not match:
        raise ValueError(f"no Kubernetes version in {version!r}")
    return int(match.group(1)), int(match.group(2))


def api_of(doc: dict[str, Any]) -> str:
    """`group/version/Kind` of a manifest."""
    return f"{doc['apiVersion']}/{doc['kind']}"


def served_in(api: str, version: tuple[int, int]) -> bool:
    """Whether Kubernetes `version` serves this built-in `group/version/Kind`."""
    entry = APIS["builtin"][api]
    removed = entry.get("removed")
    return minor(entry["since"]) <= version and (removed is None or version < minor(removed))
