"""`tuneforge compare` on two real trained jobs, and the page in a real headless browser.

Two tiny LoRA jobs with `spec.evaluation` (2 prompts x 2 images, the tiny random CLIP and DINO
evaluators built locally) run side by side through embedded mode's runner
(`run_in_foreground`: the trainer's entry point, the job record and its status) against the
real services: the `mlflow server` whose artifacts live in S3 and the session's local Ray.
One is compared by its job name, the other by its registered version. Checked: one image per
grid cell, each cell the right row of what the trainer logged (pixel for pixel), the metrics
table against MLflow's figures with the paper's rows, data: URIs only; then Debian's chromium
(`--headless`, inside scripts/netns-run, no network) renders the page: the screenshot is not
blank and every image decoded (`data-images-loaded="N/N"`), while a copy with one broken image
reads `N-1/N`.

Run inside scripts/netns-run. Chromium: scripts/get-chromium.sh (or CHROMIUM_BIN).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat
from typer.testing import CliRunner

from tests.fixtures.trainer import make_trainer_job
from tests.unit.sdk.compare_page import Page, decode_png

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROMPTS = ["a photo of sks toy", "a sks toy on the beach"]
SIDE = 64  # the tiny jobs' resolution
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--metrics-recording-only",
    "--disable-default-apps",
    "--hide-scrollbars",
]
WINDOW = (1200, 1600)


@dataclass(frozen=True)
class Compared:
    """The two trained jobs and the report the CLI wrote about them."""

    home: Path
    refs: tuple[str, str]
    run_ids: tuple[str, str]
    report: Path
    cli_output: str


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium (CHROMIUM_BIN when set, else `chromium` on PATH).

    The test fails (never skips) naming the precondition when it is missing; module-scoped and
    asked for first, so that happens before any job trains.
    """
    named = os.environ.get("CHROMIUM_BIN")
    found = named or shutil.which("chromium")
    if not found or not os.access(found, os.X_OK):
        where = f"CHROMIUM_BIN={named} is not an executable" if named else "no `chromium` on PATH"
        pytest.fail(
            f"precondition: Debian's chromium is not installed ({where}): run "
            "scripts/get-chromium.sh (apt-get install -y chromium) outside the network "
            "namespace, or set CHROMIUM_BIN",
            pytrace=False,
        )
    return found


def _job(name: str, model_dir: Path, dataset_dir: Path, learning_rate: float, evaluators: Any):  # type: ignore[no-untyped-def]
    clip_dir, dino_dir = evaluators
    return make_trainer_job(
        "lora",
        model_dir,
        dataset_dir,
        name=name,
        training={"learningRate": learning_rate},
        evaluation={
            "prompts": PROMPTS,
            "imagesPerPrompt": 2,
            "steps": 2,
            "clipModel": str(clip_dir),
            "dinoModel": str(dino_dir),
        },
        output={"registeredModel": name},
    )


@pytest.fixture(scope="module")
def compared(
    services_env: dict[str, str],
    tiny_model_dir: Path,
    tiny_dataset_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Compared:
    """Two jobs trained here (embedded records, the services' MLflow and S3), then compared."""
    from tuneforge.assets.evaluators import cached_tiny_evaluators
    from tuneforge.cli.main import app
    from tuneforge.embedded.foreground import run_in_foreground
    from tuneforge.registry.mlflow_store import MlflowStore, ensure_experiment
    from tuneforge.settings import Settings

    home = tmp_path_factory.mktemp("compare-home")
    settings = Settings().model_copy(update={"home": home, "backend": "local"})
    evaluators = cached_tiny_evaluators()
    jobs = [
        _job(name, tiny_model_dir, tiny_dataset_dir, rate, evaluators)
        for name, rate in (("compare-fast", 5e-3), ("compare-slow", 1e-4))
    ]
    # The two trainer processes run side by side: each is single-threaded
    # (OMP_NUM_THREADS=1) and much of a job is Ray Train starting up, so two at once take
    # little longer than one on two cores. Each keeps its own record, MLflow run and model.
    # The experiment is created first: two trainers creating it at once on a fresh server
    # race (ensure_experiment: get, then create; the loser gets RESOURCE_ALREADY_EXISTS).
    with MlflowStore(settings).client() as client:
        ensure_experiment(client, settings)
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        finished = list(pool.map(lambda job: run_in_foreground(job, settings), jobs))
    run_ids = []
    for name, job in zip(("compare-fast", "compare-slow"), finished, strict=True):
        mlflow = job.status.mlflow if job.status is not None else None
        if not (mlflow and mlflow.run_id and mlflow.model_version == "1"):
            log = home / "jobs" / name / "output.log"
            tail = log.read_text()[-3000:] if log.is_file() else "(no log)"
            pytest.fail(f"job {name} did not train and register: {job.status}\n{tail}")
        run_ids.append(mlflow.run_id)
    refs = ("compare-fast", "compare-slow/1")  # a job by name, a registered version
    report = home / "report.html"
    result = CliRunner().invoke(
        app,
        ["compare", *refs, "-o", str(report)],
        env={"TUNEFORGE_HOME": str(home), "TUNEFORGE_BACKEND": "local"},
    )
    assert result.exit_code == 0, result.output
    return Compared(home, refs, (run_ids[0], run_ids[1]), report, result.output)


def _logged_grid(run_id: str, index: int) -> Image.Image:
    """The final grid the trainer logged for prompt `index` (base row above the final row)."""
    from tuneforge.compare.artifacts import RunArtifacts
    from tuneforge.registry.mlflow_store import MlflowStore
    from tuneforge.settings import Settings

    store = MlflowStore(Settings())
    with store.client() as client:
        uri = str(client.get_run(run_id).info.artifact_uri)
    assert uri.startswith("s3://")  # the services' server keeps artifacts in S3
    png = RunArtifacts(store, run_id, uri).read(f"evaluation/grids/prompt{index:02d}.png")
    return Image.open(io.BytesIO(png)).convert("RGB")


def test_the_report_shows_each_job_beside_the_base_model_with_the_figures(
    compared: Compared,
) -> None:
    from mlflow.tracking import MlflowClient

    from tuneforge.client import Client
    from tuneforge.compare import PAPER_ROWS
    from tuneforge.settings import Settings

    assert re.match(r"wrote .*report\.html \(\d+ KiB, 8 images, 2 prompts\): ", compared.cli_output)
    html = compared.report.read_text(encoding="utf-8")
    page = Page(html)
    labels = ["base model (before)", "job compare-fast", "compare-slow/1"]
    assert page.texts["grids"][0] == ["prompt", *labels]
    assert [row[0] for row in page.texts["grids"][1:]] == PROMPTS
    for index, row in enumerate(page.tables["grids"][1:]):
        assert [len(cell) for cell in row] == [0, 1, 1, 1]  # one image per grid cell
        base, fast, slow = (decode_png(cell[0]) for cell in row[1:])
        assert base.size == fast.size == slow.size == (2 * SIDE, SIDE)
        fast_grid = _logged_grid(compared.run_ids[0], index)
        slow_grid = _logged_grid(compared.run_ids[1], index)
        assert fast_grid.size == (2 * SIDE, 2 * SIDE)
        assert base.tobytes() == fast_grid.crop((0, 0, 2 * SIDE, SIDE)).tobytes()
        assert fast.tobytes() == fast_grid.crop((0, SIDE, 2 * SIDE, 2 * SIDE)).tobytes()
        assert slow.tobytes() == slow_grid.crop((0, SIDE, 2 * SIDE, 2 * SIDE)).tobytes()
        assert fast.tobytes() != slow.tobytes()  # two trainings, two results

    client = MlflowClient(tracking_uri=Settings().resolved_tracking_uri())
    by_label = {row[0]: row for row in page.texts["metrics"][1:]}
    for label, run_id in zip(labels[1:], compared.run_ids, strict=True):
        metrics = client.get_run(run_id).data.metrics
        row = by_label[label]
        assert row[1:3] == ["lora", "2"]
        for cell, key in zip(row[3:], ("eval/dino", "eval/clipI", "eval/clipT"), strict=True):
            assert cell.startswith(f"{metrics[key]:.4f}base "), (label, key, cell)
    for paper in PAPER_ROWS:
        assert by_label[paper.method][3:] == [
            f"{paper.dino:.3f}",
            f"{paper.clip_i:.3f}",
            f"{paper.clip_t:.3f}",
        ]
    assert len(page.curves) == 2
    assert page.urls and all(url.startswith("data:image/png;base64,") for url in page.urls)
    assert not re.search(r"(?:src|href)=\"(?!data:)", html)

    # The SDK returns the same report the CLI wrote.
    settings = Settings().model_copy(update={"home": compared.home, "backend": "local"})
    report = Client(settings).compare(*compared.refs)
    assert report.columns == tuple(labels)
    assert report.image_count == len(page.urls) == 8
    assert [run.run_id for run in report.runs] == list(compared.run_ids)


def _chromium(browser: str, *args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _images_loaded(dom: str) -> tuple[int, int]:
    match = re.search(r'<body[^>]*\bdata-images-loaded="(\d+)/(\d+)"', dom)
    assert match, f"the page's load script did not run: {dom[:300]!r}"
    return int(match.group(1)), int(match.group(2))


def test_a_headless_browser_shows_the_page_with_every_image_loaded(
    chromium: str, compared: Compared, tmp_path: Path
) -> None:
    assert os.environ.get("TUNEFORGE_IN_PRIVATE_NETNS") == "1", "run inside scripts/netns-run"
    url = compared.report.resolve().as_uri()
    shot = tmp_path / "shot.png"
    rendered = _chromium(
        chromium,
        f"--screenshot={shot}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        url,
        profile=tmp_path / "p1",
    )
    assert rendered.returncode == 0 and shot.is_file(), (chromium, rendered.stderr[-2000:])
    with Image.open(shot) as opened:
        screenshot = opened.convert("RGB")
    assert screenshot.size == WINDOW
    assert ImageStat.Stat(screenshot.convert("L")).stddev[0] > 10  # not a blank page
    colours = screenshot.getcolors(maxcolors=1 << 24)
    assert colours is not None and len(colours) > 1000  # the images drew, not just text

    dumped = _chromium(chromium, "--dump-dom", url, profile=tmp_path / "p2")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    assert _images_loaded(dumped.stdout) == (8, 8)

    # The same check on a copy with one image's data broken reads 7/8: it can fail.
    html = compared.report.read_text(encoding="utf-8")
    uri = re.search(r'src="(data:image/png;base64,[^"]+)"', html)
    assert uri is not None
    broken = tmp_path / "broken.html"
    broken.write_text(html.replace(uri.group(1), "data:image/png;base64,bm90IGEgcG5n", 1))
    dumped = _chromium(chromium, "--dump-dom", broken.as_uri(), profile=tmp_path / "p3")
    assert _images_loaded(dumped.stdout) == (7, 8)
