"""DreamBooth → LoRA extraction: an SVD of each trained weight's change, kept at low rank.

For every weight a full DreamBooth trained, the change ΔW = trained − base is flattened to a
matrix (Linear: as is; Conv2d: (out, in·kh·kw), 1x1 and 3x3 alike, as kohya-ss'
`extract_lora_from_models.py` does) and factored by its SVD on the CPU in fp64 (`low_rank`).
`rank` keeps that many singular directions; `energy` keeps the fewest whose squared singular
values hold that fraction of ‖ΔW‖²_F. With U_k Σ_k V_kᵀ kept, `up = U_k √Σ_k` and
`down = √Σ_k V_kᵀ` (scale 1), and the layer's relative reconstruction error is
‖ΔW − U_k Σ_k V_kᵀ‖_F / ‖ΔW‖_F.

Every layer serving's LoRA slots carry (by default every Linear and Conv2d of the UNet and
the text encoder: a LoCon) is extracted: attention, feed-forward, `proj_in`/`proj_out`, time
embedding, ResNet convolutions, samplers, `conv_in`/`conv_out`. Biases and norms (not a
LoRA's) and embeddings (no slot) are left out and listed in the report with why and how large
their change was. The LoRA is written by the
SDK's canonical writer (`write_canonical`: peft `lora_A`/`lora_B` keys, a conv's A as
(r, in, kh, kw) and B as (out, r, 1, 1), zero-padded to one rank), the file `adapters import`
writes for a kohya LoCon, which plain diffusers `load_lora_weights` reads too.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from tuneforge.adapters.importer import SERVING_LARGEST_RANK
from tuneforge.adapters.lora_convert import (
    COMPONENTS,
    LoraModules,
    LoraPair,
    write_canonical_section,
)
from tuneforge.api import ExtractLoraSpec
from tuneforge.contract import LORA_WEIGHTS, LoraSection

logger = logging.getLogger(__name__)

EXTRACTED_LORA_DIR = "extracted_lora"
"""Checkpoint subfolder holding the extracted LoRA and its manifest (registered as is)."""
EXTRACTION_REPORT_DIR = "lora_extraction"
"""Checkpoint subfolder (and run artifact folder) with the per-layer report."""
REPORT_JSON = "layers.json"
REPORT_CSV = "layers.csv"
EMBEDDING_SUFFIX = "embedding"
"""How SD's `nn.Embedding` modules are named (`token_embedding`, `position_embedding`): the
only 2-d weights of the UNet and text encoder that are not a Linear's."""


@dataclass(frozen=True)
class LowRank:
    """One layer's change at low rank: ΔW ≈ up @ down (convolutions reshaped back)."""

    down: torch.Tensor
    """(k, in) or, for a convolution, (k, in, kh, kw)."""
    up: torch.Tensor
    """(out, k) or (out, k, 1, 1)."""
    rank: int
    relative_error: float
    """‖ΔW − up·down‖_F / ‖ΔW‖_F (0 for a layer that did not change)."""


def kept_rank(singular: torch.Tensor, rank: int | None, energy: float | None) -> int:
    """How many singular directions to keep: `rank` (capped), or the fewest holding `energy`."""
    available = int(singular.numel())
    if rank is not None:
        return max(1, min(rank, available))
    assert energy is not None
    squares = singular.double() ** 2
    total = float(squares.sum())
    if total == 0.0:
        return 1
    held = torch.cumsum(squares, 0) / total
    return max(1, min(available, int((held < energy).sum()) + 1))


def low_rank(delta: torch.Tensor, rank: int | None = None, energy: float | None = None) -> LowRank:
    """Factor one weight change (Linear or Conv2d) by its SVD, on the CPU in fp64.

    The singular values and the vectors of the smaller side come from `eigh` of the smaller
    Gram matrix (p x p, p = min(out, in·kh·kw)); the other side's are ΔW's projection on them.
    The same factors as `torch.linalg.svd`, but one BLAS-3 product and a p x p eigenproblem
    instead of a bidiagonalisation (a (1280, 11520) conv at rank 64: 1.5-2 s against 17-63 s
    for fp32 `svd` on two shared cores).
    In fp64 an eigenvalue's error is ~1e-16·σ₁², so σ is exact far below fp32's resolution.
    """
    matrix = delta.detach().to("cpu", torch.float64).reshape(delta.shape[0], -1)
    wide = matrix.shape[0] <= matrix.shape[1]
    short = matrix if wide else matrix.T
    eigenvalues, vectors = torch.linalg.eigh(short @ short.T)  # ascending
    singular = eigenvalues.flip(0).clamp_min(0.0).sqrt()
    k = kept_rank(singular, rank, energy)
    basis = vectors.flip(1)[:, :k]
    root = singular[:k].sqrt()
    inverse = torch.where(root > 0, root, torch.inf).reciprocal()  # 0 for a null direction
    near = basis * root
    far = (inverse[:, None] * basis.T) @ short  # √Σ_k times the other side's vectors
    up, down = (near, far) if wide else (far.T, near.T)
    norm = float(torch.linalg.matrix_norm(matrix))
    residual = float(torch.linalg.matrix_norm(matrix - up @ down))
    error = residual / norm if norm > 0 else 0.0
    up, down = up.float(), down.float()
    if delta.ndim == 4:
        down = down.reshape(k, *delta.shape[1:])
        up = up.reshape(delta.shape[0], k, 1, 1)
    return LowRank(down.contiguous(), up.contiguous(), k, error)


@dataclass
class LayerReport:
    """One trained weight: extracted (with its rank and error) or left out (with why)."""

    name: str
    shape: list[int]
    delta_norm: float
    """‖ΔW‖_F."""
    extracted: bool
    rank: int | None = None
    relative_error: float | None = None
    reason: str | None = None


@dataclass
class Extraction:
    """The extracted LoRA (module pairs) and the report of every trained weight."""

    modules: LoraModules
    layers: list[LayerReport] = field(default_factory=list)

    @property
    def extracted(self) -> list[LayerReport]:
        """The layers in the LoRA."""
        return [layer for layer in self.layers if layer.extracted]

    def summary(self) -> dict[str, float]:
        """Mean and max relative error over extracted layers, the rank, and what was left out."""
        errors = [layer.relative_error or 0.0 for layer in self.extracted]
        left_out = [layer for layer in self.layers if not layer.extracted]
        total = sum(layer.delta_norm**2 for layer in self.layers)
        lost = sum(layer.delta_norm**2 for layer in left_out)
        return {
            "relative_error_mean": sum(errors) / len(errors),
            "relative_error_max": max(errors),
            "rank": float(self.modules.rank),
            "layers_extracted": float(len(errors)),
            "layers_left_out": float(len(left_out)),
            "left_out_energy_fraction": lost / total if total > 0 else 0.0,
        }


def served_module(name: str, ndim: int) -> tuple[str, str] | None:
    """`(component, module path)` when parameter `name` (`unet.….conv1.weight`) of `ndim`
    dimensions is a Linear's (2) or Conv2d's (4) weight, the layers serving's slots carry."""
    component, _, rest = name.partition(".")
    if not rest.endswith(".weight") or component not in COMPONENTS or ndim not in (2, 4):
        return None
    module = rest.removesuffix(".weight")
    if ndim == 2 and module.endswith(EMBEDDING_SUFFIX):
        return None
    return component, module


def _left_out_reason(name: str, tensor: torch.Tensor) -> str:
    if name.partition(".")[0] not in COMPONENTS:
        return f"not in the {' or '.join(COMPONENTS)}: serving's LoRA slots are on those only"
    if tensor.ndim == 2 and name.endswith(".weight"):
        return "embedding: serving's LoRA slots hold Linear and Conv2d layers only"
    return "bias or norm: a LoRA changes weight matrices only"


def extract(
    trained: Mapping[str, torch.Tensor], base: Mapping[str, torch.Tensor], spec: ExtractLoraSpec
) -> Extraction:
    """Extract the served layers of `trained` − `base` (both keyed `unet.…`/`text_encoder.…`)."""
    extraction = Extraction(LoraModules())
    for name in sorted(trained):
        if name not in base:
            raise KeyError(f"{name}: the base model has no such weight")
        delta = trained[name].detach().to("cpu", torch.float32) - base[name].detach().to(
            "cpu", torch.float32
        )
        norm = float(torch.linalg.vector_norm(delta))
        report = LayerReport(name, list(delta.shape), norm, extracted=False)
        served = served_module(name, delta.ndim)
        if served is None:
            report.reason = _left_out_reason(name, delta)
        else:
            factors = low_rank(delta, spec.rank, spec.energy)
            extraction.modules.pairs[served] = LoraPair(factors.down, factors.up)
            report.extracted, report.rank = True, factors.rank
            report.relative_error = factors.relative_error
        extraction.layers.append(report)
    if not extraction.modules.pairs:
        raise ValueError(
            "dreambooth.extractLora: the job trained no Linear or Conv2d weight of the "
            f"{' or '.join(COMPONENTS)}, the layers serving's LoRA slots carry"
        )
    return extraction


def write_extraction(extraction: Extraction, out_dir: Path) -> LoraSection:
    """Write the canonical `pytorch_lora_weights.safetensors`; returns its manifest section."""
    out_dir.mkdir(parents=True, exist_ok=True)
    section = write_canonical_section(extraction.modules, out_dir / LORA_WEIGHTS)
    if section.rank > SERVING_LARGEST_RANK:
        logger.warning(
            "dreambooth.extractLora: the extracted LoRA has rank %d, above serving's default "
            "largest slot rank %d: a server needs a hotswap.rankBuckets entry of at least %d",
            section.rank,
            SERVING_LARGEST_RANK,
            section.rank,
        )
    return section


def write_report(extraction: Extraction, spec: ExtractLoraSpec, folder: Path) -> Path:
    """`layers.json` (settings, summary, every layer) and `layers.csv` (every layer)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [asdict(layer) for layer in extraction.layers]
    document: dict[str, Any] = {
        "settings": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        "summary": extraction.summary(),
        "layers": rows,
    }
    (folder / REPORT_JSON).write_text(json.dumps(document, indent=2))
    with (folder / REPORT_CSV).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "shape": "x".join(str(d) for d in row["shape"])})
    return folder / REPORT_JSON


def read_summary(folder: Path) -> dict[str, float]:
    """The summary `write_report` wrote into `folder`."""
    summary = json.loads((folder / REPORT_JSON).read_text())["summary"]
    return {key: float(value) for key, value in summary.items() if math.isfinite(float(value))}


def base_weights(weights: Path, names: list[str]) -> dict[str, torch.Tensor]:
    """The base model's `names` (`unet.…`/`text_encoder.…`), loaded fresh from `weights`."""
    from tuneforge_trainer.components import load_components

    base = load_components(weights)
    found: dict[str, torch.Tensor] = {}
    for component in ("unet", "text_encoder"):
        wanted = {n.partition(".")[2] for n in names if n.startswith(f"{component}.")}
        if not wanted:
            continue
        for name, tensor in getattr(base, component).state_dict().items():
            if name in wanted:
                found[f"{component}.{name}"] = tensor
    return found
