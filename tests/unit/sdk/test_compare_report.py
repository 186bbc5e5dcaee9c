"""The compare report's page from figures and grids in memory (no MLflow): its cells, table,
curves and self-containment, read back with the standard library's HTML parser and Pillow.

Grids are built as the trainer logs them (tuneforge_trainer.evaluation.grids): step 0 is one
row (the base model's images), a later step the base row above that step's row. Each row is
one flat colour here, so a test can tell which row a cell shows.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from tests.unit.sdk.compare_page import Page, decode_png
from tuneforge.api import EvalMetric
from tuneforge.compare import PAPER_ROWS, CompareError, RunData, render_report
from tuneforge.compare.plots import loss_curves, metric_curves
from tuneforge.compare.report import check_writable
from tuneforge.compare.sources import Point, is_version_ref

BASE = (200, 30, 30)
SIDE = 64


def _row(colour: tuple[int, int, int], images: int = 2, side: int = SIDE) -> Image.Image:
    return Image.new("RGB", (images * side, side), colour)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _grid(*rows: Image.Image) -> bytes:
    grid = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)))
    top = 0
    for row in rows:
        grid.paste(row, (0, top))
        top += row.height
    return _png(grid)


def _run(
    label: str,
    colour: tuple[int, int, int],
    prompts: tuple[str, ...],
    final: float,
    side: int = SIDE,
) -> RunData:
    histories = {
        "loss": [Point(1, 0.5), Point(2, 0.4), Point(3, 0.3)],
        **{
            m.mlflow_key: [Point(0, 0.1 + i / 100), Point(3, final + i / 100)]
            for i, m in enumerate(EvalMetric)
        },
    }
    base_row, own_row = _row(BASE, side=side), _row(colour, side=side)
    return RunData(
        ref=label,
        label=label,
        run_id=f"run-{label}",
        method="lora",
        base_model="/models/tiny",
        steps=3,
        prompts=prompts,
        histories=histories,
        final_grids={i: _grid(base_row, own_row) for i in range(len(prompts))},
        base_grids={i: _grid(base_row) for i in range(len(prompts))},
    )


def test_one_image_per_cell_the_metrics_table_with_the_paper_rows_and_curves() -> None:
    prompts = ("a sks toy in the snow", "a red sks toy")
    runs = [
        _run("job lora-a", (20, 160, 20), prompts, 0.6),
        _run("toy/2", (20, 20, 180), prompts, 0.7),
    ]
    report = render_report(runs)
    page = Page(report.html)

    header, *rows = page.tables["grids"]
    assert len(header) == 4 and not any(header)  # prompt, base, two runs: text headers
    assert page.texts["grids"][0][1:] == ["base model (before)", "job lora-a", "toy/2"]
    assert [texts[0] for texts in page.texts["grids"][1:]] == list(prompts)
    for row in rows:
        assert [len(cell) for cell in row] == [0, 1, 1, 1]  # one image per grid cell
    assert report.columns == ("base model (before)", "job lora-a", "toy/2")
    assert report.prompts == prompts

    table = page.texts["metrics"]
    assert table[0] == ["job / version", "method", "steps", "DINO", "CLIP-I", "CLIP-T"]
    by_label = {row[0]: row for row in table[1:]}
    assert by_label["base model (before)"][3:] == ["0.1000", "0.1100", "0.1200"]
    assert by_label["job lora-a"][3] == "0.6000base 0.1000"
    assert by_label["toy/2"][5] == "0.7200base 0.1200"
    for paper in PAPER_ROWS:
        figures = [f"{v:.3f}" for v in (paper.dino, paper.clip_i, paper.clip_t)]
        assert by_label[paper.method][1] == "paper" and by_label[paper.method][3:] == figures
    assert [(p.dino, p.clip_i, p.clip_t) for p in PAPER_ROWS] == [
        (0.668, 0.803, 0.305),
        (0.569, 0.780, 0.255),
    ]
    note = next(row[0] for row in table if row[0].startswith("Reference"))
    assert "real Stable Diffusion" in note and "not comparable" in note

    assert len(page.curves) == 2  # loss, metrics
    assert all(decode_png(uri).width > 300 for uri in page.curves)
    # Self-contained: every URL is a data: URI, and the browser is told to load nothing else.
    assert page.urls and all(url.startswith("data:image/png;base64,") for url in page.urls)
    assert report.image_count == len(page.urls) == 2 + 3 * len(prompts)
    assert "default-src 'none'; img-src data:" in report.html
    assert page.body_attrs["data-images-loaded"] == "pending"
    assert "naturalWidth > 0" in report.html


def test_a_jobs_cell_is_its_final_row_and_the_base_cell_the_step0_images() -> None:
    report = render_report([_run("job a", (20, 160, 20), ("p",), 0.5)])
    base_cell, job_cell = Page(report.html).tables["grids"][1][1:]
    base, job = decode_png(base_cell[0]), decode_png(job_cell[0])
    assert base.size == job.size == (2 * SIDE, SIDE)  # one row of two images, not the grid
    assert base.getpixel((5, 5)) == BASE
    assert job.getpixel((5, 5)) == (20, 160, 20) and job.getpixel((2 * SIDE - 1, SIDE - 1)) == (
        20,
        160,
        20,
    )


def test_prompts_a_run_lacks_get_a_note_and_large_images_are_scaled() -> None:
    first = _run("job a", (20, 160, 20), ("p1", "p2"), 0.5, side=512)
    second = _run("job b", (20, 20, 180), ("p2", "p3"), 0.5, side=512)
    report = render_report([first, second], image_size=128)
    page = Page(report.html)
    rows = {
        texts[0]: cells
        for texts, cells in zip(page.texts["grids"][1:], page.tables["grids"][1:], strict=True)
    }
    assert list(rows) == ["p1", "p2", "p3"]
    assert [len(c) for c in rows["p1"]] == [0, 1, 1, 0]
    assert [len(c) for c in rows["p3"]] == [0, 0, 0, 1]  # the base row comes from job a
    assert "no images for this prompt" in report.html
    assert decode_png(rows["p2"][2][0]).size == (2 * 128, 128)


def test_rows_over_128_px_high_are_embedded_as_jpeg_and_smaller_ones_exactly() -> None:
    run = _run("job a", (20, 160, 20), ("p",), 0.5, side=512)
    base_cell, job_cell = Page(render_report([run]).html).tables["grids"][1][1:]
    job = decode_png(job_cell[0], mime="image/jpeg")
    assert job.size == (2 * 256, 256)
    assert all(abs(a - b) <= 3 for a, b in zip(job.getpixel((9, 9)), (20, 160, 20), strict=True))
    assert decode_png(base_cell[0], mime="image/jpeg").size == (2 * 256, 256)


def test_runs_on_different_base_models_get_a_base_column_each() -> None:
    other = _run("job b", (20, 20, 180), ("p",), 0.5)
    other = RunData(**{**other.__dict__, "base_model": "/models/other"})
    report = render_report([_run("job a", (20, 160, 20), ("p",), 0.5), other])
    assert report.columns == (
        "base model (before): /models/tiny",
        "base model (before): /models/other",
        "job a",
        "job b",
    )


def test_curves_are_drawn_only_from_what_was_logged() -> None:
    run = _run("job a", (1, 2, 3), ("p",), 0.5)
    png = loss_curves([run])
    assert png is not None and Image.open(io.BytesIO(png)).format == "PNG"
    silent = RunData(ref="x", label="x", run_id="r")
    assert loss_curves([silent]) is None and metric_curves([silent]) is None
    assert metric_curves([run]) is not None


def test_the_output_is_checked_and_written_whole(tmp_path: Path) -> None:
    with pytest.raises(CompareError, match=r"folder .*missing does not exist"):
        check_writable(tmp_path / "missing" / "r.html")
    with pytest.raises(CompareError, match="it is a folder"):
        check_writable(tmp_path)
    report = render_report([_run("job a", (1, 2, 3), ("p",), 0.5)])
    written = report.write(tmp_path / "r.html")
    assert written.read_text(encoding="utf-8") == report.html
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]  # no temporary file left
    with pytest.raises(CompareError, match="nothing to compare"):
        render_report([])


def test_version_references_are_told_from_job_names() -> None:
    assert is_version_ref("toy/3") and is_version_ref("toy@production")
    assert not is_version_ref("my-job-1")
