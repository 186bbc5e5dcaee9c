"""The base model's layer shapes, read from safetensors headers (no weights loaded, no torch).

An imported adapter is checked against these before it is registered, so a LoRA made for
another architecture (SDXL, SD 2.x) is refused at import time, naming the first layer whose
shape differs, instead of at the first request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuneforge.base_fingerprint import read_header
from tuneforge.base_model import ResolvedBaseModel, component_weight_files
from tuneforge.sd15_keys import (
    TEXT_ENCODER_PREFIX,
    TEXT_MODEL_PREFIX,
    UNET_PREFIX,
    UnetLayout,
    text_encoder_original_name,
)

TOKEN_EMBEDDING = "embeddings.token_embedding.weight"
"""The text encoder's input embedding (vocabulary x dim), without `text_model.`."""


class ShapeMismatch(ValueError):
    """A layer of the adapter does not fit the base model (the message names it)."""


@dataclass
class BaseShapes:
    """Tensor shapes of a base model's UNet and text encoder, under diffusers' names."""

    unet: dict[str, list[int]]
    text_encoder: dict[str, list[int]]
    """Text-encoder names without `text_model.` (transformers 4 and 5 layouts alike)."""
    text_model_prefix: bool
    """Whether the base's own text-encoder names start with `text_model.`."""

    @classmethod
    def of(cls, base: ResolvedBaseModel) -> BaseShapes:
        """Read the shapes of a diffusers folder or a single-file (original layout) checkpoint."""
        if base.single_file:
            return cls._single_file(read_header(base.path))
        files = {path.parent.name: path for path in component_weight_files(base.path, base.variant)}
        unet = _shapes(read_header(files["unet"]))
        raw_text = _shapes(read_header(files["text_encoder"]))
        prefixed = any(name.startswith(TEXT_MODEL_PREFIX) for name in raw_text)
        text = {name.removeprefix(TEXT_MODEL_PREFIX): shape for name, shape in raw_text.items()}
        return cls(unet=unet, text_encoder=text, text_model_prefix=prefixed)

    @classmethod
    def _single_file(cls, header: dict[str, Any]) -> BaseShapes:
        shapes = _shapes(header)
        return cls(
            unet=_OriginalNames(shapes, UNET_PREFIX, UnetLayout().original_name),
            text_encoder=_OriginalNames(shapes, TEXT_ENCODER_PREFIX, text_encoder_original_name),
            text_model_prefix=False,
        )

    def weight_shape(self, component: str, module: str) -> list[int] | None:
        """Shape of `module.weight` in `component`, None when the base has no such layer."""
        table = self.unet if component == "unet" else self.text_encoder
        name = module if component == "unet" else module.removeprefix(TEXT_MODEL_PREFIX)
        return table.get(f"{name}.weight")

    def module_path(self, component: str, module: str) -> str:
        """`module` spelt the way the base's own weights spell it (`text_model.` or not)."""
        if component != "text_encoder":
            return module
        bare = module.removeprefix(TEXT_MODEL_PREFIX)
        return TEXT_MODEL_PREFIX + bare if self.text_model_prefix else bare

    def embedding_dim(self) -> int:
        """Width of the text encoder's token embedding."""
        shape = self.text_encoder.get(TOKEN_EMBEDDING)
        if not shape:
            raise ShapeMismatch("the base model's text encoder has no token embedding")
        return int(shape[1])

    def check_layer(self, component: str, module: str, update: tuple[int, ...]) -> None:
        """ShapeMismatch unless `component.module`'s weight has the LoRA update's shape:
        `(out, in)` for a Linear, `(out, in, kh, kw)` for a Conv2d."""
        shape = self.weight_shape(component, module)
        if shape is None:
            raise ShapeMismatch(
                f"{component}.{module}: the base model has no such layer (a LoRA for another "
                "architecture, e.g. SDXL or SD 2.x?)"
            )
        if tuple(shape) != update:
            lora, layer = ("x".join(str(n) for n in dims) for dims in (update, shape))
            axes = "out x in" if len(update) == 2 else "out x in x kh x kw"
            raise ShapeMismatch(
                f"{component}.{module}: the LoRA is {lora} ({axes}) but the base layer is "
                f"{layer}; the adapter was made for another base model"
            )

    def check_linear(self, component: str, module: str, out_in: tuple[int, int]) -> None:
        """ShapeMismatch unless `component.module` is a Linear layer of shape `out_in`."""
        self.check_layer(component, module, out_in)


class _OriginalNames(dict[str, list[int]]):
    """A single-file checkpoint's shapes, looked up by diffusers name."""

    def __init__(self, shapes: dict[str, list[int]], prefix: str, rename: Any) -> None:
        super().__init__()
        self._shapes, self._prefix, self._rename = shapes, prefix, rename

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self._shapes.get(self._prefix + self._rename(name), default)
        except (KeyError, ValueError, IndexError):
            return default


def _shapes(header: dict[str, Any]) -> dict[str, list[int]]:
    return {name: [int(n) for n in entry["shape"]] for name, entry in header.items()}
