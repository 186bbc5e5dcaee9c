"""Reads the image build inputs: Dockerfile instructions and build-argument defaults, the hashed
locks under docker/requirements/ and which extras `make lock` compiles each of them from.

Shared by tests/unit/helm/test_dockerfiles.py and tests/unit/helm/test_image_locks.py.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import NamedTuple

from tests.unit.helm.helmchart import REPO_ROOT

DOCKER = REPO_ROOT / "docker"
LOCK_DIR = DOCKER / "requirements"
IMAGE_NAMES = ("operator", "trainer", "serving")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def dockerfile(name: str) -> str:
    return (DOCKER / f"Dockerfile.{name}").read_text()


def instructions(text: str) -> list[str]:
    """Instructions with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [
        line.strip()
        for line in joined.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def arg_defaults(text: str) -> dict[str, str]:
    """`ARG NAME=default` of a Dockerfile (the first default of each name)."""
    defaults: dict[str, str] = {}
    for name, value in re.findall(r"^ARG ([A-Za-z_][A-Za-z0-9_]*)=(\S*)$", text, re.M):
        defaults.setdefault(name, value)
    return defaults


def expand(value: str, defaults: dict[str, str]) -> str:
    """`value` with every `${NAME}`/`$NAME` replaced by its default, to a fixed point."""
    pattern = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
    for _ in range(10):
        expanded = pattern.sub(lambda m: defaults[m.group(1) or m.group(2)], value)
        if expanded == value:
            return value
        value = expanded
    raise AssertionError(f"{value!r}: build arguments refer to each other in a loop")


def installed_locks(text: str) -> list[str]:
    """Names of the locks a Dockerfile's RUN steps install (`-r docker/requirements/NAME.lock`)."""
    steps = [s for s in instructions(text) if s.startswith("RUN ")]
    return re.findall(r"-r docker/requirements/([a-z-]+)\.lock", " ".join(steps))


class LockedPackage(NamedTuple):
    version: str
    hashes: tuple[str, ...]


def parse_lock(path: Path) -> dict[str, LockedPackage]:
    """A `--generate-hashes` requirements file: canonical name -> version and sha256 hashes.

    Fails on any requirement that is not `name==version` with only `--hash=sha256:` options.
    """
    from packaging.utils import canonicalize_name

    joined = re.sub(r"\\\n\s*", " ", path.read_text())
    locked: dict[str, LockedPackage] = {}
    for line in joined.splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        requirement, *options = shlex.split(line)
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", requirement)
        assert match, f"{path.name}: {requirement!r} is not pinned as name==version"
        hashes = []
        for option in options:
            assert option.startswith("--hash=sha256:"), f"{path.name}: unexpected {option!r}"
            digest = option.removeprefix("--hash=sha256:")
            assert SHA256_HEX.fullmatch(digest), f"{path.name}: malformed hash {option!r}"
            hashes.append(digest)
        name = canonicalize_name(match.group(1))
        assert name not in locked, f"{path.name}: {name} is locked twice"
        locked[name] = LockedPackage(match.group(2), tuple(hashes))
    return locked


def makefile_lock_extras() -> dict[str, tuple[str, ...]]:
    """Lock name -> the pyproject extras `make lock` compiles it from (`name:extra,extra`)."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    recipe = makefile.split("\nlock:", 1)[1]
    loop = re.search(r"for image in ([^;]+);", recipe)
    assert loop, "the Makefile's lock target no longer loops over `image:extras` pairs"
    pairs = [item.split(":") for item in loop.group(1).split()]
    return {name: tuple(extras.split(",")) for name, extras in pairs}
