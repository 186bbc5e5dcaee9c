"""Package data: the first 1,000 merges of OpenAI's CLIP BPE (`vocab.json`, `merges.txt`).

Made by `tuneforge.assets.make_clip_bpe` from `bpe_simple_vocab_16e6.txt.gz` (MIT; see
`../LICENSE-CLIP-BPE.txt`). Token ids equal real CLIP's for every kept token; the
special tokens are `<|startoftext|>` = 1512 and `<|endoftext|>` = 1513 (1,514 tokens).
"""

from __future__ import annotations

from pathlib import Path

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
