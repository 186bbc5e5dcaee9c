"""The images' supply chain, statically: every base image default is pinned by digest, and every
package the images take from PyPI comes from a hashed lock (docker/requirements/*.lock, written
by `make lock`) that covers what pyproject.toml declares for that image.

No registry is reachable here, so these checks read the files; docs/security.md says how the
digests and locks are refreshed and what was verified against the registries.
"""

from __future__ import annotations

import re

import pytest
import tomllib
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.unit.helm.helmchart import REPO_ROOT
from tests.unit.helm.imagefiles import (
    IMAGE_NAMES,
    LOCK_DIR,
    arg_defaults,
    dockerfile,
    expand,
    installed_locks,
    instructions,
    makefile_lock_extras,
    parse_lock,
)

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
PROJECT_NAME = canonicalize_name(PYPROJECT["project"]["name"])
LOCK_NAMES = sorted(makefile_lock_extras())
# The images' platform: uv-managed (or the base's) CPython 3.11 on x86_64 Linux.
IMAGE_ENVIRONMENT = {
    **default_environment(),
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
}
# torch (and what only a CUDA torch pulls in) comes from torch's own index, never from a lock.
FROM_TORCH_INDEX = re.compile(r"torch|triton|nvidia-.*")
PINNED_REFERENCE = re.compile(r"[a-z0-9./_-]+:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}")


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_every_base_image_default_is_pinned_by_digest(name: str) -> None:
    text = dockerfile(name)
    defaults = arg_defaults(text)
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", text, re.M))
    references = re.findall(r"^FROM (\S+)", text, re.M)
    references += re.findall(r"^COPY --from=(\S+) ", text, re.M)
    assert references, f"Dockerfile.{name} has no FROM"
    for reference in references:
        image = expand(reference, defaults)
        if image in stages:
            continue
        assert PINNED_REFERENCE.fullmatch(image), (
            f"Dockerfile.{name}: {reference} defaults to {image!r}, not name:tag@sha256:<digest>"
        )
    assert "imagetools inspect" in text, f"Dockerfile.{name} does not say how to refresh digests"


def test_pinned_tags_agree_with_the_version_arguments() -> None:
    """With a digest the tag is only a label: a bumped version argument needs a new digest."""
    operator = arg_defaults(dockerfile("operator"))
    base_tag = operator["BASE_IMAGE"].split("@")[0].split(":")[1]
    assert base_tag.startswith(f"{operator['PYTHON_VERSION']}-"), base_tag
    for name in ("trainer", "serving"):
        defaults = arg_defaults(dockerfile(name))
        uv_tag = defaults["UV_IMAGE"].split("@")[0].split(":")[1]
        assert uv_tag == defaults["UV_VERSION"], f"Dockerfile.{name}: uv {uv_tag} != UV_VERSION"
    cuda = {arg_defaults(dockerfile(n))["CUDA_IMAGE"] for n in ("trainer", "serving")}
    assert len(cuda) == 1, f"the trainer and serving images pin different CUDA bases: {cuda}"


def test_the_makefile_compiles_exactly_the_locks_the_images_install() -> None:
    on_disk = sorted(path.stem for path in LOCK_DIR.glob("*.lock"))
    installed = sorted({lock for name in IMAGE_NAMES for lock in installed_locks(dockerfile(name))})
    assert LOCK_NAMES == on_disk == installed
    extras = PYPROJECT["project"]["optional-dependencies"]
    for lock, lock_extras in makefile_lock_extras().items():
        assert set(lock_extras) <= set(extras), f"{lock}.lock: unknown extras {lock_extras}"


@pytest.mark.parametrize("lock", LOCK_NAMES)
def test_every_locked_package_is_pinned_with_hashes(lock: str) -> None:
    locked = parse_lock(LOCK_DIR / f"{lock}.lock")
    assert len(locked) > 20, f"{lock}.lock holds only {sorted(locked)}"
    unhashed = sorted(name for name, package in locked.items() if not package.hashes)
    assert not unhashed, f"{lock}.lock: no --hash for {unhashed}"
    from_torch_index = sorted(name for name in locked if FROM_TORCH_INDEX.fullmatch(name))
    assert not from_torch_index, f"{lock}.lock must leave torch's index alone: {from_torch_index}"
    assert PROJECT_NAME not in locked, "the project itself is installed from the sources"


def _declared_requirements(extras: tuple[str, ...]) -> list[Requirement]:
    """pyproject's core dependencies plus these extras, self-references (`tuneforge[x]`) expanded."""
    optional = PYPROJECT["project"]["optional-dependencies"]
    pending = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    pending += [Requirement(r) for extra in extras for r in optional[extra]]
    declared: list[Requirement] = []
    seen_extras = set(extras)
    while pending:
        requirement = pending.pop()
        if requirement.marker and not requirement.marker.evaluate(IMAGE_ENVIRONMENT):
            continue
        if canonicalize_name(requirement.name) == PROJECT_NAME:
            for extra in sorted(requirement.extras - seen_extras):
                seen_extras.add(extra)
                pending += [Requirement(r) for r in optional[extra]]
            continue
        declared.append(requirement)
    return declared


@pytest.mark.parametrize("lock", LOCK_NAMES)
def test_lock_covers_every_requirement_pyproject_declares_for_the_image(lock: str) -> None:
    locked = parse_lock(LOCK_DIR / f"{lock}.lock")
    build_requires = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    declared = _declared_requirements(makefile_lock_extras()[lock]) + build_requires
    assert any(r.name == "torch" for r in declared) == (lock != "operator")
    problems = []
    for requirement in declared:
        name = canonicalize_name(requirement.name)
        if name == "torch":
            continue
        if name not in locked:
            problems.append(f"{requirement} is not in the lock")
        elif not requirement.specifier.contains(locked[name].version, prereleases=True):
            problems.append(f"{requirement} but the lock has {locked[name].version}")
    assert not problems, f"{lock}.lock (run `make lock`): " + "; ".join(problems)


def test_the_deepspeed_lock_adds_to_the_trainer_lock_without_changing_its_pins() -> None:
    trainer = parse_lock(LOCK_DIR / "trainer.lock")
    with_deepspeed = parse_lock(LOCK_DIR / "trainer-deepspeed.lock")
    changed = {n: (p.version, with_deepspeed.get(n)) for n, p in trainer.items()}
    changed = {n: v for n, v in changed.items() if v[1] is None or v[1].version != v[0]}
    assert not changed, f"trainer-deepspeed.lock drops or moves trainer.lock's pins: {changed}"
    assert "deepspeed" in with_deepspeed and "deepspeed" not in trainer


def test_build_in_is_pyprojects_build_system() -> None:
    lines = (LOCK_DIR / "build.in").read_text().splitlines()
    requirements = {str(Requirement(line)) for line in lines if line and not line.startswith("#")}
    assert requirements == set(PYPROJECT["build-system"]["requires"])


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_images_install_pypi_packages_only_from_their_hashed_lock(name: str) -> None:
    """Every install step is the torch step (its own index), a hashed lock (--require-hashes,
    --no-deps: the lock is the whole closure) or the project from its sources (--no-deps,
    --no-build-isolation: its build backend comes from the lock), then a dependency check."""
    steps = instructions(dockerfile(name))
    lock_steps, project_steps = [], []
    for index, step in enumerate(steps):
        for command in re.split(r"&&|;", step):
            if not re.search(r"\bpip install\b", command):
                continue
            if "--require-hashes" in command:
                assert "--no-deps" in command and re.search(r"-r docker/requirements/", command)
                lock_steps.append(index)
            elif re.search(r"\s\.(\s|$)", command):
                assert "--no-deps" in command and "--no-build-isolation" in command, command
                project_steps.append(index)
            else:
                assert "--index-url" in command and '"torch==${TORCH_VERSION}"' in command, (
                    f"Dockerfile.{name} installs from PyPI without the hashed lock: {command}"
                )
    assert lock_steps and project_steps
    assert lock_steps[0] < project_steps[0], "the lock must be installed before the project"
    for index in project_steps:
        assert "pip check" in steps[index], f"Dockerfile.{name}: no dependency check after {name}"
    copies = [s for s in steps if s.startswith("COPY docker/requirements/")]
    assert copies and all(
        f"{lock}.lock" in " ".join(copies) for lock in installed_locks(dockerfile(name))
    )


def test_the_build_context_carries_the_locks() -> None:
    """`.dockerignore` leaves docker/ out of the context but lets the locks in."""
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert "!docker/requirements" in lines
    assert lines.index("!docker/requirements") > lines.index("docker")
