"""Benchmarks use the packages as a user would: no imports from `tests`, no private names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("tuneforge", "tuneforge_operator", "tuneforge_trainer", "tuneforge_serving")


def forbidden_imports(source: str) -> list[str]:
    """Imports of `tests` or of a private module or name (`_x`) of the four packages."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imports = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imports = [(node.module, alias.name) for alias in node.names]
        else:
            continue
        for module, name in imports:
            parts = module.split(".")
            if parts[0] == "tests" or (
                parts[0] in PACKAGES and any(part.startswith("_") for part in [*parts, name or ""])
            ):
                found.append((node.lineno, module + (f" import {name}" if name else "")))
    return [f"line {line}: {what}" for line, what in sorted(found)]


@pytest.mark.parametrize(
    "path", sorted((REPO_ROOT / "benchmarks").rglob("*.py")), ids=lambda p: p.name
)
def test_benchmark_imports_only_public_package_names(path: Path) -> None:
    assert forbidden_imports(path.read_text()) == []


def test_the_scan_finds_tests_and_private_names() -> None:
    source = (
        "import tests.fixtures.kube\n"
        "from tests.fixtures._kube_start import start_kube_cluster\n"
        "def f():\n"
        "    from tuneforge_trainer.loop import _Trainer\n"
        "import tuneforge._private\n"
        "from tuneforge.contract import AdapterRef\n"
        "from _kube import start_control_plane\n"
        "from . import sibling\n"
    )
    assert forbidden_imports(source) == [
        "line 1: tests.fixtures.kube",
        "line 2: tests.fixtures._kube_start import start_kube_cluster",
        "line 4: tuneforge_trainer.loop import _Trainer",
        "line 5: tuneforge._private",
    ]
