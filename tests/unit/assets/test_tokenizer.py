"""The packaged CLIP BPE: real CLIP ids, max length 77, a clean merges file."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tuneforge.assets import MODEL_MAX_LENGTH, VOCAB_SIZE, bpe_dir, load_tiny_tokenizer

# Ids from OpenAI's full CLIP vocabulary (49,408 tokens); a prefix of the merges keeps them.
REAL_CLIP_IDS = {"a</w>": 320, "photo</w>": 1125, "of</w>": 539, "the</w>": 518, "red</w>": 736}


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return load_tiny_tokenizer()


def test_vocab_is_the_first_1000_merges_in_clip_order() -> None:
    vocab = json.loads((bpe_dir() / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == VOCAB_SIZE == 1514
    assert sorted(vocab.values()) == list(range(VOCAB_SIZE))
    assert vocab["!"] == 0 and vocab["!</w>"] == 256  # byte symbols, then the same with </w>
    assert vocab["<|startoftext|>"] == 1512 and vocab["<|endoftext|>"] == 1513
    for token, real_id in REAL_CLIP_IDS.items():
        assert vocab[token] == real_id, token


def test_merges_file_has_header_and_no_blank_line() -> None:
    lines = (bpe_dir() / "merges.txt").read_text(encoding="utf-8").split("\n")
    assert lines[0] == "#version: 0.2"
    assert lines[-1] == ""  # one trailing newline, nothing after it
    body = lines[1:-1]
    assert len(body) == 1000
    assert all(len(line.split(" ")) == 2 for line in body)
    assert body[:2] == ["i n", "t h"]


def test_tokenizer_max_length_and_special_tokens(tokenizer: Any) -> None:
    tok = tokenizer
    assert tok.model_max_length == MODEL_MAX_LENGTH == 77
    assert tok.bos_token_id == 1512 and tok.eos_token_id == 1513
    assert tok.pad_token_id == 1513
    assert len(tok) == VOCAB_SIZE


def test_common_words_are_single_tokens_with_real_clip_ids(tokenizer: Any) -> None:
    ids = tokenizer("a photo of a").input_ids
    assert ids == [1512, 320, 1125, 539, 320, 1513]
    # Words past the first 1,000 merges split into pieces but still round-trip.
    assert len(tokenizer("dog").input_ids) > 3


@pytest.mark.parametrize(
    "text",
    [
        "a photo of sks toy, rotated left, on a blue background",
        "The Quick   Brown fox!",
        "naïve café — 日本語 🙂 it's 2024",
    ],
)
def test_round_trip(tokenizer: Any, text: str) -> None:
    ids = tokenizer(text).input_ids
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    assert decoded.replace(" ", "") == text.lower().replace(" ", "")


def test_padding_and_truncation_to_77(tokenizer: Any) -> None:
    batch = tokenizer(["a photo", "photo " * 200], padding="max_length", truncation=True)
    assert [len(ids) for ids in batch.input_ids] == [77, 77]
    assert batch.input_ids[0][3:] == [1513] * 74
    assert batch.input_ids[1][-1] == 1513
