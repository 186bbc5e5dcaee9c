"""Convert OpenAI's CLIP BPE file into a truncated `vocab.json` + `merges.txt` pair.

A maintainer tool, not used at run time: it produced the files in
`tuneforge/assets/clip_bpe/` from `open_clip/bpe_simple_vocab_16e6.txt.gz` (MIT, see
`LICENSE-CLIP-BPE.txt`), which ships in the `open_clip_torch` wheel: the truncated pair for
the tiny model, and `merges-full.txt` (all 48,894 merges, renamed from `merges.txt` of a
`--merges 48894` run) for SD 1.5's tokenizer. To regenerate::

    pip download --no-deps open_clip_torch -d /tmp/oc
    unzip -o /tmp/oc/open_clip_torch-*.whl open_clip/bpe_simple_vocab_16e6.txt.gz -d /tmp/oc
    python -m tuneforge.assets.make_clip_bpe /tmp/oc/open_clip/bpe_simple_vocab_16e6.txt.gz \
        sdk/tuneforge/assets/clip_bpe --merges 1000

The slicing follows OpenAI's `SimpleTokenizer`: the merges are lines 1 .. 48,894 of the
file; the vocabulary is the 256 byte symbols, the same with `</w>`, one token per merge,
then `<|startoftext|>` and `<|endoftext|>`. Any prefix of the merges is a valid BPE whose
ids equal real CLIP's for every token it keeps (only the two special tokens move).
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

FULL_MERGE_COUNT = 49152 - 256 - 2
"""Number of merges OpenAI's tokenizer reads (lines 1 .. 48,894)."""
BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"


def bytes_to_unicode() -> dict[int, str]:
    """OpenAI's reversible map from bytes to printable unicode characters (GPT-2 and CLIP)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {byte: chr(code) for byte, code in zip(printable, codes, strict=True)}


def convert(source: Path, merge_count: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Return (vocab, merges) keeping the first `merge_count` merges of `source`."""
    if not 0 <= merge_count <= FULL_MERGE_COUNT:
        raise ValueError(f"merge_count must be in 0..{FULL_MERGE_COUNT}, got {merge_count}")
    lines = gzip.open(source).read().decode("utf-8").split("\n")
    merges: list[tuple[str, str]] = []
    for line in lines[1 : FULL_MERGE_COUNT + 1][:merge_count]:
        first, second = line.split()
        merges.append((first, second))
    return vocab_from_merges(merges), merges


def vocab_from_merges(merges: list[tuple[str, str]]) -> dict[str, int]:
    """The vocabulary OpenAI's tokenizer builds from a merge table (ids equal real CLIP's)."""
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [symbol + "</w>" for symbol in symbols]
    tokens += ["".join(pair) for pair in merges]
    tokens += [BOS_TOKEN, EOS_TOKEN]
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise ValueError("duplicate tokens in the BPE file: is it the CLIP BPE?")
    return vocab


def read_merges(path: Path) -> list[tuple[str, str]]:
    """The merge pairs of a `merges.txt` (its `#version` header skipped)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [(first, second) for first, second in (line.split() for line in lines[1:])]


def write(out_dir: Path, vocab: dict[str, int], merges: list[tuple[str, str]]) -> None:
    """Write `vocab.json` and `merges.txt` (with a `#version` header, no blank line)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(
        json.dumps(vocab, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8"
    )
    body = "\n".join(f"{first} {second}" for first, second in merges)
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + body + "\n", encoding="utf-8")


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="bpe_simple_vocab_16e6.txt.gz")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--merges", type=int, default=1000, help="merges to keep")
    args = parser.parse_args()
    vocab, merges = convert(args.source, args.merges)
    write(args.out_dir, vocab, merges)


if __name__ == "__main__":
    main()
