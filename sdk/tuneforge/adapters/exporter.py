"""`tuneforge adapters export`: a registered LoRA -> one file in a community layout.

`kohya` writes the kohya-ss / A1111 / ComfyUI layout (`lora_unet_…`, `lora_te_…`, per-module
`.alpha`) with diffusers' `convert_state_dict_to_kohya`; `diffusers` copies the registered
`pytorch_lora_weights.safetensors` as is. `write_kohya` is the one kohya writer: the trainer's
`output.formats: [diffusers, kohya]` calls it too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tuneforge.adapters.layouts import AdapterFormatError
from tuneforge.adapters.lora_convert import to_kohya
from tuneforge.contract import LORA_WEIGHTS, TI_EMBEDDINGS, AdapterFormat
from tuneforge.registry import AdapterRegistry
from tuneforge.settings import Settings

ExportFormat = AdapterFormat
"""Layouts `export` writes: the contract's adapter layouts."""


def write_kohya(weights: Path, alpha: float, target: Path) -> Path:
    """Write the kohya/A1111 layout of diffusers LoRA file `weights` to `target`; returns it.

    `alpha`: the LoRA's alpha (the manifest's), used where the file's metadata names none.
    """
    from safetensors.torch import save_file

    save_file(to_kohya(weights, alpha), str(target))
    return target


def export_adapter(
    ref: str,
    out: str | Path,
    export_format: ExportFormat | str = ExportFormat.KOHYA,
    *,
    settings: Settings | None = None,
) -> Path:
    """Write registered adapter `ref` (`name`, `name@alias`, `name/3`) to `out` in `export_format`.

    AdapterFormatError for an adapter with no LoRA (embeddings are already in the layout
    A1111 and diffusers read: export them with `--format diffusers`) or a full fine-tune.
    """
    settings = settings or Settings()
    try:
        fmt = ExportFormat(export_format)
    except ValueError:
        choices = ", ".join(f.value for f in ExportFormat)
        raise AdapterFormatError(f"--format {export_format!r}: use one of {choices}") from None
    registry = AdapterRegistry(settings)
    fetched = registry.fetch(registry.resolve(ref), Path(settings.home) / "cache" / "adapters")
    manifest = fetched.manifest
    target = Path(out).expanduser()
    if target.suffix != ".safetensors":
        raise AdapterFormatError(f"-o {target}: the exported file must end in .safetensors")
    target.parent.mkdir(parents=True, exist_ok=True)
    if manifest.lora is None:
        if fmt is ExportFormat.DIFFUSERS and manifest.embeddings is not None:
            shutil.copyfile(fetched.path / TI_EMBEDDINGS, target)
            return target
        raise AdapterFormatError(
            f"{ref} holds no LoRA (method {manifest.method}); only LoRA adapters export to "
            "kohya; textual-inversion embeddings export with --format diffusers"
        )
    if fmt is ExportFormat.DIFFUSERS:
        shutil.copyfile(fetched.path / LORA_WEIGHTS, target)
        return target
    return write_kohya(fetched.path / LORA_WEIGHTS, manifest.lora.alpha, target)
