"""The chart fixtures (`helm_bin`, `chart`) shared with the unit chart tests."""

from tests.unit.helm.conftest import chart, helm_bin

__all__ = ["chart", "helm_bin"]
