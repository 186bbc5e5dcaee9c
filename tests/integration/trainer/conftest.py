"""Fixtures shared by the learning tests of this folder (one base-model computation per run)."""

from tests.fixtures.heldout import heldout_base_losses, heldout_subject_dir

__all__ = ["heldout_base_losses", "heldout_subject_dir"]
