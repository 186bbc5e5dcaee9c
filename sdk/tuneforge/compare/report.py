"""The compare report: one self-contained HTML page (every image a data: URI, no links out).

Sections: the metrics table (each job/version's final DINO, CLIP-I and CLIP-T with the base
model's in brackets, then the DreamBooth paper's rows as a reference), the loss and metric
curves (matplotlib PNGs), and one row per prompt with the base model's images ("before") and
each job/version's images side by side. A small inline script marks `<body>` with
`data-images-loaded="N/M"` once the page has loaded (M images, N decoded), which is what
a headless browser reads to check the page.
"""

from __future__ import annotations

import html
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tuneforge.api import EvalMetric
from tuneforge.compare.images import data_uri, grid_height, last_row
from tuneforge.compare.plots import loss_curves, metric_curves
from tuneforge.compare.sources import CompareError, RunData

DEFAULT_IMAGE_SIZE = 256
"""Largest side, in pixels, of one generated image in the report (bigger ones are scaled)."""


@dataclass(frozen=True)
class PaperRow:
    """A row of the DreamBooth paper's table (Ruiz et al., 2023, Table 1)."""

    method: str
    dino: float
    clip_i: float
    clip_t: float


PAPER_ROWS = (
    PaperRow("DreamBooth (Stable Diffusion)", 0.668, 0.803, 0.305),
    PaperRow("Textual Inversion (Stable Diffusion)", 0.569, 0.780, 0.255),
)
PAPER_NOTE = (
    "Reference: the DreamBooth paper's figures (Ruiz et al., 2023, Table 1) for real Stable "
    "Diffusion with the real evaluators (DINO ViT-S/16, CLIP ViT-B/32), its 30 subjects, 25 "
    "prompts and 4 images per prompt. They are not comparable to figures of the tiny test model "
    "or other data and settings: compare your jobs with each other."
)
METRIC_HEADERS = {EvalMetric.DINO: "DINO", EvalMetric.CLIP_I: "CLIP-I", EvalMetric.CLIP_T: "CLIP-T"}

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:22px}h2{font-size:18px;margin-top:28px}
table{border-collapse:collapse}td,th{border:1px solid #d5d9e0;padding:6px 8px;vertical-align:top}
th{background:#f3f5f8;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
tbody.paper td,tbody.paper th{color:#5b6270;font-style:italic;background:#fafafa}
.small{font-size:12px;color:#5b6270}.cell img{display:block;image-rendering:pixelated}
#curves img{max-width:100%;height:auto}.prompt{max-width:220px}.missing{color:#a33}
"""
LOADED_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute("data-images-loaded", loaded.length + "/" + images.length);
});
"""
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


@dataclass(frozen=True)
class ComparisonReport:
    """A rendered report: the HTML page and what it shows."""

    html: str
    runs: tuple[RunData, ...]
    prompts: tuple[str, ...]
    """Rows of the side-by-side section, in order."""
    columns: tuple[str, ...]
    """Columns of the side-by-side section: base model columns first, then each job/version."""
    image_count: int
    """`<img>` elements in the page (the cells with images and the curves)."""

    def write(self, path: str | Path) -> Path:
        """Write the page to `path` (replaced atomically); CompareError when it cannot be."""
        target = check_writable(path)
        try:
            with tempfile.NamedTemporaryFile(
                "w", encoding="utf-8", dir=target.parent, prefix=".compare-", delete=False
            ) as handle:
                handle.write(self.html)
            os.replace(handle.name, target)
        except OSError as error:
            raise CompareError(f"cannot write the report to {path}: {error.strerror}") from None
        return target


def check_writable(path: str | Path) -> Path:
    """`path` as an absolute file path that can be written; CompareError saying why not."""
    target = Path(path).expanduser().absolute()
    if target.is_dir():
        raise CompareError(f"cannot write the report to {path}: it is a folder (name a .html file)")
    folder = target.parent
    if not folder.is_dir():
        raise CompareError(f"cannot write the report to {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise CompareError(f"cannot write the report to {path}: permission denied")
    return target


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _figure(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _base_runs(runs: Sequence[RunData]) -> list[RunData]:
    """One run per distinct base model that logged base ("before") images."""
    seen: dict[str, RunData] = {}
    for run in runs:
        if run.base_grids and run.base_model not in seen:
            seen[run.base_model] = run
    return list(seen.values())


def _base_label(run: RunData, several: bool) -> str:
    return "base model (before)" + (f": {run.base_model}" if several and run.base_model else "")


def _metrics_table(runs: Sequence[RunData], bases: Sequence[RunData]) -> str:
    headers = "".join(f"<th>{METRIC_HEADERS[m]}</th>" for m in EvalMetric)
    rows = []
    for base in bases:
        cells = "".join(f'<td class="num">{_figure(base.before(m))}</td>' for m in EvalMetric)
        label = _base_label(base, len(bases) > 1)
        rows.append(
            f"<tr><th>{_esc(label)}</th><td>step 0 of {_esc(base.label)}</td><td></td>{cells}</tr>"
        )
    for run in runs:
        cells = "".join(
            f'<td class="num">{_figure(run.final(m))}'
            f'<div class="small">base {_figure(run.before(m))}</div></td>'
            for m in EvalMetric
        )
        rows.append(
            f"<tr><th>{_esc(run.label)}</th><td>{_esc(run.method or '—')}</td>"
            f'<td class="num">{run.steps}</td>{cells}</tr>'
        )
    paper = "".join(
        f"<tr><th>{_esc(row.method)}</th><td>paper</td><td></td>"
        + "".join(f'<td class="num">{v:.3f}</td>' for v in (row.dino, row.clip_i, row.clip_t))
        + "</tr>"
        for row in PAPER_ROWS
    )
    return (
        '<table id="metrics"><thead><tr><th>job / version</th><th>method</th><th>steps</th>'
        f"{headers}</tr></thead><tbody>{''.join(rows)}</tbody>"
        f'<tbody class="paper"><tr><td colspan="6" class="small">{_esc(PAPER_NOTE)}</td></tr>'
        f"{paper}</tbody></table>"
    )


def _union_prompts(runs: Sequence[RunData]) -> list[str]:
    prompts: list[str] = []
    for run in runs:
        prompts += [p for p in run.prompts if p not in prompts]
    return prompts


def _cell(run: RunData, prompt: str, grids: dict[int, bytes], size: int, what: str) -> str:
    index = run.prompts.index(prompt) if prompt in run.prompts else None
    if index is None or index not in grids:
        return '<td class="cell missing small">no images for this prompt</td>'
    row_height = None  # a step-0 grid is one row: all of it
    if grids is not run.base_grids and index in run.base_grids:
        row_height = grid_height(run.base_grids[index])
    cell = last_row(grids[index], row_height, size)
    width, height = cell.shown
    alt = f"{what}: {prompt}"
    return (
        f'<td class="cell"><img src="{cell.uri}" width="{width}" height="{height}" '
        f'alt="{_esc(alt)}"></td>'
    )


def _grid_table(
    runs: Sequence[RunData], bases: Sequence[RunData], prompts: Sequence[str], size: int
) -> str:
    several = len(bases) > 1
    head = "".join(f"<th>{_esc(_base_label(b, several))}</th>" for b in bases)
    head += "".join(f"<th>{_esc(r.label)}</th>" for r in runs)
    body = []
    for prompt in prompts:
        cells = [_cell(b, prompt, b.base_grids, size, _base_label(b, several)) for b in bases]
        cells += [_cell(r, prompt, r.final_grids, size, r.label) for r in runs]
        body.append(f'<tr><th class="prompt">{_esc(prompt)}</th>{"".join(cells)}</tr>')
    return (
        f'<table id="grids"><thead><tr><th>prompt</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def render_report(
    runs: Sequence[RunData], image_size: int = DEFAULT_IMAGE_SIZE
) -> ComparisonReport:
    """The page for `runs` (in the order given)."""
    if not runs:
        raise CompareError("nothing to compare: name at least one job or NAME/VERSION")
    bases = _base_runs(runs)
    prompts = _union_prompts(runs)
    curves = [
        (title, png)
        for title, png in (("Training loss", loss_curves(runs)), ("Metrics", metric_curves(runs)))
        if png is not None
    ]
    curve_html = "".join(
        f'<figure><img src="{data_uri(png)}" alt="{_esc(title)}"></figure>' for title, png in curves
    )
    sources = "".join(
        f"<li>{_esc(r.label)}: MLflow run <code>{_esc(r.run_id)}</code>"
        + (f", base <code>{_esc(r.base_model)}</code>" if r.base_model else "")
        + "</li>"
        for r in runs
    )
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = "TuneForge compare: " + ", ".join(r.label for r in runs)
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>{_esc(title)}</title><style>{STYLE}</style></head>\n"
        '<body data-images-loaded="pending">'
        f'<h1>{_esc(title)}</h1><p class="small">Generated {generated}.</p><ul>{sources}</ul>'
        '<h2>Metrics</h2><p class="small">Final figures (the last evaluated step); the base '
        "model's (step 0) below each. Higher is better; all lie in [-1, 1].</p>"
        f"{_metrics_table(runs, bases)}"
        f'<h2>Curves</h2><div id="curves">{curve_html}</div>'
        '<h2>Images per prompt</h2><p class="small">Same prompts and seeds in every column: the '
        "base model before training, then each job/version at its last evaluated step.</p>"
        f"{_grid_table(runs, bases, prompts, image_size)}"
        f"<script>{LOADED_SCRIPT}</script></body></html>\n"
    )
    return ComparisonReport(
        html=page,
        runs=tuple(runs),
        prompts=tuple(prompts),
        columns=tuple([_base_label(b, len(bases) > 1) for b in bases] + [r.label for r in runs]),
        image_count=page.count("<img "),
    )
