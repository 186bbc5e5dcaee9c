"""Estimating the time left from progress observations (the line parser is the contract's)."""

from __future__ import annotations

import pytest

from tuneforge.client.progress import EtaEstimator
from tuneforge.contract.progress import TrainingProgress


def test_eta_comes_from_the_recent_step_rate() -> None:
    estimator = EtaEstimator()
    first = estimator.observe(TrainingProgress(step=0, total_steps=10), now=100.0)
    assert first.eta_seconds is None  # one sample gives no rate
    later = estimator.observe(TrainingProgress(step=4, total_steps=10), now=108.0)
    assert later.eta_seconds == pytest.approx(12.0)  # 2 s/step, 6 steps left


def test_eta_reported_by_the_trainer_wins_and_restarts_reset_the_rate() -> None:
    estimator = EtaEstimator()
    estimator.observe(TrainingProgress(step=0, total_steps=10), now=0.0)
    reported = estimator.observe(TrainingProgress(step=5, total_steps=10, eta_seconds=1.0), now=5.0)
    assert reported.eta_seconds == 1.0
    restarted = estimator.observe(TrainingProgress(step=2, total_steps=10), now=6.0)
    assert restarted.eta_seconds is None  # the old samples were dropped
    resumed = estimator.observe(TrainingProgress(step=4, total_steps=10), now=10.0)
    assert resumed.eta_seconds == pytest.approx(12.0)


def test_no_eta_without_a_total() -> None:
    estimator = EtaEstimator()
    estimator.observe(TrainingProgress(step=0), now=0.0)
    assert estimator.observe(TrainingProgress(step=4), now=8.0).eta_seconds is None
