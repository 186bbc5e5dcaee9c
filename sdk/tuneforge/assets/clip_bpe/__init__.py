"""Package data: the first 1,000 merges of OpenAI's CLIP BPE (`vocab.json`, `merges.txt`),
and all of them (`merges-full.txt`, SD 1.5's tokenizer; its vocabulary is derived).

Made by `tuneforge.assets.make_clip_bpe` from `bpe_simple_vocab_16e6.txt.gz` (MIT; see
`../LICENSE-CLIP-BPE.txt`). Token ids equal real CLIP's for every kept token; the
special tokens are `<|startoftext|>` = 1512 and `<|endoftext|>` = 1513 (1,514 tokens).
"""

from __future__ import annotations

import json
from pathlib import Path

from tuneforge.assets.make_clip_bpe import read_merges, vocab_from_merges

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
MODEL_MAX_LENGTH = 77
"""CLIP's context length (SD 1.5's tokenizer `model_max_length`)."""
MERGE_COUNT = 1000
"""Merges kept from the full CLIP BPE (48,894)."""
VOCAB_SIZE = 256 * 2 + MERGE_COUNT + 2
"""Byte symbols, byte symbols with `</w>`, one per merge, and the two special tokens."""


def bpe_dir() -> Path:
    """The folder holding `vocab.json` and `merges.txt` (loadable by `CLIPTokenizer`)."""
    return Path(__file__).resolve().parent


FULL_MERGES_FILE = "merges-full.txt"
"""All 48,894 merges of OpenAI's CLIP BPE: the tokenizer of real CLIP ViT-L/14 and SD 1.5."""
FULL_VOCAB_SIZE = 49408
"""Real CLIP's vocabulary (`<|startoftext|>` = 49406, `<|endoftext|>` = 49407)."""


def write_full_bpe(dest: Path) -> None:
    """Write real CLIP's `vocab.json` and `merges.txt` (ids equal to OpenAI's) into `dest`."""
    source = bpe_dir() / FULL_MERGES_FILE
    vocab = vocab_from_merges(read_merges(source))
    if len(vocab) != FULL_VOCAB_SIZE:
        raise ValueError(f"{source}: {len(vocab)} tokens, expected {FULL_VOCAB_SIZE}")
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "vocab.json").write_text(
        json.dumps(vocab, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8"
    )
    (dest / "merges.txt").write_bytes(source.read_bytes())
