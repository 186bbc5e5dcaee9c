"""Tests for the tiny assets (tuneforge.assets, `tuneforge assets`)."""
