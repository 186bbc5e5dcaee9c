"""Every manifest in examples/ is a valid FineTuneJob and survives model -> YAML/JSON -> model
unchanged; together they cover every method and strategy."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tuneforge.api import FineTuneJob, Method, Strategy, dump_job, load_job, load_jobs

EXAMPLES_DIR = Path(__file__).resolve().parents[3] / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.yaml"))


def _leaves(node: object, prefix: str = "") -> dict[str, object]:
    if isinstance(node, dict):
        out: dict[str, object] = {}
        for key, value in node.items():
            out.update(_leaves(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: node}


def _all_jobs() -> list[FineTuneJob]:
    return [load_job(path) for path in EXAMPLES]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_validates_and_round_trips(path: Path) -> None:
    job = load_job(path)
    as_yaml = dump_job(job)
    assert load_jobs(as_yaml) == [job]
    assert load_job(yaml.safe_load(dump_job(job, fmt="json"))) == job
    # Every field written in the file comes back from the model under the same name and value.
    dumped = _leaves(job.to_manifest())
    for key, value in _leaves(yaml.safe_load(path.read_text())).items():
        assert dumped.get(key, "<missing>") == value, f"{path.name}: {key}"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_is_commented(path: Path) -> None:
    lines = path.read_text().splitlines()
    assert lines[0].startswith("#"), f"{path.name} should open with a comment saying what it is"
    assert sum("#" in line for line in lines) >= 3


def test_examples_cover_every_method_and_strategy() -> None:
    jobs = _all_jobs()
    assert {job.spec.method for job in jobs} == set(Method)
    assert {job.spec.resources.strategy for job in jobs} == set(Strategy)
    dreambooth = [job.spec.dreambooth for job in jobs if job.spec.dreambooth is not None]
    assert any(d.prior_preservation for d in dreambooth)
    assert any(d.export_lora for d in dreambooth)
    assert any(job.spec.resources.workers > 1 for job in jobs)


def test_tiny_demo_example_uses_local_paths_and_cpu() -> None:
    job = load_job(EXAMPLES_DIR / "tiny-demo.yaml")
    assert job.spec.base_model.uri.startswith("./")
    assert job.spec.dataset.uri.startswith("./")
    assert job.spec.resources.gpus_per_worker == 0
    assert job.spec.dataset.resolution == 64
