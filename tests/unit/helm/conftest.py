"""Fixtures of the chart tests: the helm binary and a chart copy with stand-in subcharts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.helm.helmchart import HelmUnavailable, chart_copy, helm_binary


@pytest.fixture(scope="session")
def helm_bin() -> str:
    """The helm binary; skips the chart tests (loudly) only when none can be found."""
    try:
        return helm_binary()
    except HelmUnavailable as error:
        print(f"\n\n*** {error} ***\n")
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def chart(helm_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of helm/tuneforge with stand-in subcharts, ready for lint and template."""
    del helm_bin
    return chart_copy(tmp_path_factory.mktemp("chart"))
