"""Adapters in the community's layouts: import into the registry, export out of it.

    from tuneforge.adapters import import_adapter, export_adapter
    import_adapter("my_lora.safetensors", "my-style", base_model="./sd15", alias="prod")
    export_adapter("my-style@prod", "my_style_kohya.safetensors", "kohya")

Modules: `layouts` (detection from the header, pickle refusal), `lora_convert` (LoRA key
maps, on diffusers' own conversions), `embeddings` (textual inversion), `base_shapes` (the
base's layer shapes from its headers), `importer`, `exporter`. See docs/serving.md,
"Accepted adapter layouts".
"""

from tuneforge.adapters.exporter import ExportFormat, export_adapter
from tuneforge.adapters.importer import (
    ConvertedAdapter,
    ServingLimits,
    convert_adapter,
    import_adapter,
)
from tuneforge.adapters.layouts import AdapterFormatError, Layout, detect_layout

__all__ = [
    "AdapterFormatError",
    "ConvertedAdapter",
    "ExportFormat",
    "Layout",
    "ServingLimits",
    "convert_adapter",
    "detect_layout",
    "export_adapter",
    "import_adapter",
]
