"""Which community layout an adapter file is in, read from its safetensors header alone.

Accepted (see docs/serving.md, "Accepted adapter layouts"):

- `diffusers`: LoRA keys `unet.…` / `text_encoder.…` ending in `lora_A.weight`/`lora_B.weight`
  (peft), `lora.down.weight`/`lora.up.weight` (what `save_lora_weights` writes) or, for the
  text encoder, `lora_linear_layer.down.weight`/`.up.weight` (`convert_state_dict_to_diffusers`);
- `kohya`: kohya-ss / A1111 / ComfyUI LoRA keys `lora_unet_…` / `lora_te_…` / `lora_te1_…`
  with `.lora_down.weight`, `.lora_up.weight` and a per-module `.alpha`;
- `diffusers-embedding`: textual inversion as diffusers writes it, `{token: (n, dim)}`;
- `a1111-embedding`: an A1111 safetensors embedding, `emb_params` (or `string_to_param.*`).

Pickles (`.ckpt`, `.pt`, `.pth`, `.bin`) are refused before a byte is read, with the
one-line conversion to run. Everything else is refused naming a key that fits no layout.
No torch is imported here.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from tuneforge.base_fingerprint import read_header
from tuneforge.errors import TuneForgeError

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
_PICKLE_HINT = (
    'python -c "import torch, safetensors.torch as st; '
    "st.save_file({{k: v.contiguous() for k, v in torch.load('{name}', weights_only=True)"
    ".items() if hasattr(v, 'contiguous')}}, '{stem}.safetensors')\""
)
KOHYA_PREFIXES = ("lora_unet_", "lora_te_", "lora_te1_")
_KOHYA_SUFFIXES = (".lora_down.weight", ".lora_up.weight", ".alpha")
_DIFFUSERS_PREFIXES = ("unet.", "text_encoder.")
_DIFFUSERS_SUFFIXES = (
    ".lora_A.weight",
    ".lora_B.weight",
    ".lora.down.weight",
    ".lora.up.weight",
    ".lora_linear_layer.down.weight",
    ".lora_linear_layer.up.weight",
)
A1111_EMBEDDING_KEY = "emb_params"
A1111_PT_EMBEDDING_PREFIX = "string_to_param."


class AdapterFormatError(TuneForgeError, ValueError):
    """An adapter file that cannot be imported or exported as asked; the message says why."""


class Layout(str, Enum):
    """An adapter file's layout, as recorded in the `tuneforge.source_layout` tag."""

    DIFFUSERS = "diffusers"
    KOHYA = "kohya"
    DIFFUSERS_EMBEDDING = "diffusers-embedding"
    A1111_EMBEDDING = "a1111-embedding"

    @property
    def is_lora(self) -> bool:
        """Whether the file holds LoRA pairs (else textual-inversion vectors)."""
        return self in (Layout.DIFFUSERS, Layout.KOHYA)


def refuse_pickle(path: Path) -> None:
    """AdapterFormatError with the conversion command when `path` is a pickle."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        command = _PICKLE_HINT.format(name=path.name, stem=path.stem)
        raise AdapterFormatError(
            f"{path.name}: {path.suffix} files are pickles and are never loaded (they can run "
            f"code); convert it to safetensors first: {command}"
        )


def detect_layout(path: Path) -> Layout:
    """The layout of adapter file `path`; AdapterFormatError for pickles and unknown layouts."""
    refuse_pickle(path)
    if not path.is_file():
        raise AdapterFormatError(f"{path}: no such file")
    if path.suffix.lower() != ".safetensors":
        raise AdapterFormatError(
            f"{path.name}: only .safetensors adapter files are imported (got {path.suffix!r})"
        )
    try:
        header = read_header(path)
    except Exception as error:  # noqa: BLE001 - any parse failure means a bad file
        raise AdapterFormatError(f"{path.name} is not a valid safetensors file: {error}") from error
    return layout_of_keys(path.name, header)


def layout_of_keys(name: str, header: dict[str, dict[str, object]]) -> Layout:
    """The layout the tensor names (and shapes) in `header` follow."""
    keys = sorted(header)
    if not keys:
        raise AdapterFormatError(f"{name} holds no tensors")
    if A1111_EMBEDDING_KEY in header or any(k.startswith(A1111_PT_EMBEDDING_PREFIX) for k in keys):
        return Layout.A1111_EMBEDDING
    if all(k.startswith(KOHYA_PREFIXES) and k.endswith(_KOHYA_SUFFIXES) for k in keys):
        return Layout.KOHYA
    if all(k.startswith(_DIFFUSERS_PREFIXES) and k.endswith(_DIFFUSERS_SUFFIXES) for k in keys):
        return Layout.DIFFUSERS
    if all("." not in k and len(_shape(header[k])) in (1, 2) for k in keys):
        return Layout.DIFFUSERS_EMBEDDING
    odd = next((k for k in keys if not _is_lora_key(k)), keys[0])
    raise AdapterFormatError(
        f"{name}: key {odd!r} fits no accepted layout (diffusers/peft LoRA 'unet.…lora_A.weight', "
        "kohya/A1111 'lora_unet_…lora_down.weight' with '.alpha', diffusers or A1111 "
        "textual-inversion embeddings); LyCORIS (LoHa/LoKr), DoRA and SDXL files are not accepted"
    )


def _is_lora_key(key: str) -> bool:
    kohya = key.startswith(KOHYA_PREFIXES) and key.endswith(_KOHYA_SUFFIXES)
    return kohya or (key.startswith(_DIFFUSERS_PREFIXES) and key.endswith(_DIFFUSERS_SUFFIXES))


def _shape(entry: dict[str, object]) -> list[int]:
    shape = entry.get("shape")
    return [int(n) for n in shape] if isinstance(shape, list) else []
