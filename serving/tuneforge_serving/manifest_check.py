"""The manifest must describe the tensors it ships with: serving checks one against the other.

A mismatch means the manifest and the weights were not written together (or the manifest
was edited), so the adapter is refused (422) rather than served with the wrong scale,
modules or tokens.
"""

from __future__ import annotations

from tuneforge.contract import EmbeddingsSection, LoraSection
from tuneforge_serving.embedding_slots import StagedEmbeddings
from tuneforge_serving.errors import AdapterRejected
from tuneforge_serving.lora_format import StagedLora


def _targets(path: str, targets: list[str]) -> bool:
    """Whether module `path` is one of `targets` (name suffixes, as peft matches them)."""
    return any(path == target or path.endswith(f".{target}") for target in targets)


def check_lora(staged: StagedLora, section: LoraSection, name: str) -> None:
    """AdapterRejected unless ranks, UNet modules and text-encoder presence match `section`."""
    for (component, path), module in sorted(staged.modules.items()):
        rank = int(module.a.shape[0])
        if rank != section.rank:
            raise AdapterRejected(
                f"adapter {name}: its manifest says LoRA rank {section.rank}, but "
                f"{component}.{path} has rank {rank}"
            )
        if component == "unet" and not _targets(path, section.target_modules):
            raise AdapterRejected(
                f"adapter {name}: unet module {path!r} is not among the manifest's "
                f"target_modules {section.target_modules}"
            )
    has_text_encoder = any(component == "text_encoder" for component, _ in staged.modules)
    if has_text_encoder != section.text_encoder:
        found = "holds" if has_text_encoder else "holds no"
        raise AdapterRejected(
            f"adapter {name}: its manifest says text_encoder={section.text_encoder}, but the "
            f"LoRA file {found} text-encoder layers"
        )


def check_embeddings(staged: StagedEmbeddings, section: EmbeddingsSection, name: str) -> None:
    """AdapterRejected unless the embeddings file holds exactly the manifest's tokens."""
    in_file, in_manifest = set(staged.vectors), set(section.tokens)
    if in_file != in_manifest:
        raise AdapterRejected(
            f"adapter {name}: its manifest lists tokens {sorted(in_manifest)}, but the "
            f"embeddings file holds {sorted(in_file)}"
        )
