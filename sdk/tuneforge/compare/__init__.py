"""`tuneforge compare`: jobs and registered versions side by side, as one HTML page.

    from tuneforge.compare import compare_runs
    report = compare_runs(["lora-job", "toy/3"], settings, get_job=client.get)
    report.write("report.html")

`Client.compare` and the CLI's `compare` call `compare_runs`. Modules: `sources` (references
to MLflow runs, their figures and grids), `artifacts` (reading a run's files), `images` (the
cells), `plots` (matplotlib curves), `report` (the page).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tuneforge.compare.report import (
    DEFAULT_IMAGE_SIZE,
    PAPER_ROWS,
    ComparisonReport,
    check_writable,
    render_report,
)
from tuneforge.compare.sources import CompareError, JobGetter, RunData, read_run, resolve_ref
from tuneforge.registry.mlflow_store import MlflowStore
from tuneforge.settings import Settings


def compare_runs(
    refs: Sequence[str],
    settings: Settings,
    get_job: JobGetter,
    *,
    output: str | Path | None = None,
    image_size: int = DEFAULT_IMAGE_SIZE,
) -> ComparisonReport:
    """The report comparing `refs` (job names, `NAME/VERSION`, `NAME@ALIAS`), in that order.

    With `output`, the page is also written there (checked before anything is read).
    JobNotFoundError / AdapterNotFoundError for an unknown reference; CompareError for a run
    without evaluation figures or an output that cannot be written.
    """
    if not refs:
        raise CompareError("nothing to compare: name at least one job or NAME/VERSION")
    if output is not None:
        check_writable(output)
    store = MlflowStore(settings)
    resolved = [resolve_ref(ref, store, get_job) for ref in refs]
    report = render_report([read_run(r, store) for r in resolved], image_size=image_size)
    if output is not None:
        report.write(output)
    return report


__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "PAPER_ROWS",
    "CompareError",
    "ComparisonReport",
    "RunData",
    "compare_runs",
    "render_report",
]
