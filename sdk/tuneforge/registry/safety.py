"""Which files may travel as adapter artifacts: safetensors weights and the manifest only."""

from __future__ import annotations

from pathlib import Path

from tuneforge.contract import ADAPTER_MANIFEST
from tuneforge.errors import UnsafeArtifactError


def is_allowed_artifact(file_name: str) -> bool:
    """Only safetensors weights and the manifest may travel as adapter artifacts."""
    return file_name == ADAPTER_MANIFEST or file_name.endswith(".safetensors")


def check_artifact_names(names: list[str], where: str) -> None:
    """UnsafeArtifactError naming every entry that is not allowed (pickles, subfolders...)."""
    refused = sorted(name for name in names if "/" in name or not is_allowed_artifact(name))
    if refused:
        raise UnsafeArtifactError(
            f"{where}: refusing {', '.join(refused)}: adapters hold only *.safetensors files "
            f"and {ADAPTER_MANIFEST} (never pickles such as .bin, .pt, .pkl)"
        )


def checked_entries(folder: Path, where: str) -> list[Path]:
    """The entries of a local adapter folder, sorted; UnsafeArtifactError for any other file."""
    entries = sorted(folder.iterdir())
    check_artifact_names([e.name + ("/" if e.is_dir() else "") for e in entries], where)
    return entries
