"""The locally built TuneForge images (scripts/images/build.sh) and the pause image.

`make images` builds them outside the private network namespace; tests only look them up
(TUNEFORGE_IMAGES_CACHED_ONLY=1), so a missing image fails with the command that builds it.
With TUNEFORGE_IMAGES_ALLOW_STALE=1 (development only) a miss uses the newest cached archive,
built from other sources; every such use is printed and listed in `STALE_NOTICES` (the tier's
summary repeats them).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "images" / "build.sh"
PAUSE_SCRIPT = REPO_ROOT / "scripts" / "cluster" / "pause-image.sh"
IMAGE_NAMES = ("operator", "trainer", "serving")
LOOKUP_TIMEOUT_S = 600.0
# What podman needs on this machine, which lacks CAP_SYS_RESOURCE (docs/pods.md).
PODMAN_ULIMITS = ("--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096")
STALE_NOTICES: list[str] = []
"""build.sh's "STALE IMAGE: ..." lines: images used although built from other sources."""


@dataclass(frozen=True)
class LocalImage:
    """One image in podman's storage and its `podman save` archive."""

    name: str
    reference: str
    archive: Path
    size_mb: int

    @property
    def repository(self) -> str:
        """The reference without its tag (`localhost/tuneforge-operator`)."""
        return self.reference.rsplit(":", 1)[0]

    @property
    def tag(self) -> str:
        """The tag: a hash of everything the image was built from."""
        return self.reference.rsplit(":", 1)[1]


def _run_script(script: Path, *args: str) -> str:
    env = dict(os.environ, TUNEFORGE_IMAGES_CACHED_ONLY="1")
    result = subprocess.run(
        ["bash", str(script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=LOOKUP_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{script.relative_to(REPO_ROOT)} {' '.join(args)} failed ({result.returncode}): "
            f"build the images with `make images` first.\n{result.stderr[-3000:]}"
        )
    for line in result.stderr.splitlines():
        if "STALE IMAGE:" in line and line not in STALE_NOTICES:
            print(line)
            STALE_NOTICES.append(line)
    return result.stdout


def local_images(*names: str) -> dict[str, LocalImage]:
    """The built images by name (all three when none are named); never builds them."""
    found: dict[str, LocalImage] = {}
    for line in _run_script(BUILD_SCRIPT, *(names or IMAGE_NAMES)).splitlines():
        name, reference, archive, size_mb = line.split()
        found[name] = LocalImage(name, reference, Path(archive), int(size_mb))
    return found


def pause_image() -> LocalImage:
    """The sandbox image every pod starts with (busybox sleeping forever)."""
    reference, archive = _run_script(PAUSE_SCRIPT).split()
    return LocalImage("pause", reference, Path(archive), Path(archive).stat().st_size // 10**6)


def podman_run(image: LocalImage, *command: str, entrypoint: str | None = None) -> str:
    """Run a throw-away container without a network and return its output (raises on failure)."""
    args = ["podman", "run", "--rm", "--network", "none", *PODMAN_ULIMITS]
    if entrypoint is not None:
        args += ["--entrypoint", entrypoint]
    result = subprocess.run(
        [*args, image.reference, *command],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise AssertionError(
            f"{image.reference} {' '.join(command)} exited {result.returncode}:\n{output[-3000:]}"
        )
    return output
