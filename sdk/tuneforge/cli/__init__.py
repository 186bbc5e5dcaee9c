"""TuneForge CLI."""
