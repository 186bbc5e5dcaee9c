"""Embedded mode: the whole journey on one machine (local job runner, SQLite MLflow, Ray)."""
