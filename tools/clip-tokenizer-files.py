#!/usr/bin/env python3
"""Writes a Hugging Face CLIPTokenizer folder's vocab.json + merges.txt from OpenAI CLIP's BPE merges list,
bpe_simple_vocab_16e6.txt.gz (MIT licence, OpenAI), as diffbench derives them in memory
(ClipTokenizer::from_dir) and `diffbench init-random` writes them:
    python3 tools/clip-tokenizer-files.py assets/clip-tokenizer/bpe_simple_vocab_16e6.txt.gz OUT_DIR

The vocabulary is CLIP's: the 256 byte symbols, the same with "</w>", one token per merge, then
<|startoftext|> and <|endoftext|> (49,408 ids); the first 48,894 merges are used. Used by the GPU scripts
whose Python side (transformers' CLIPTokenizer) needs the files.
"""
import gzip
import json
import sys
from pathlib import Path


def byte_symbols():
    # GPT-2 / CLIP byte-to-unicode table: printable bytes map to themselves, the rest to 256 + n.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in printable] + [chars[b] for b in range(256) if b not in printable]


def main(src, out):
    lines = gzip.open(src, "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False), encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8")
    print(f"{len(tokens)} tokens, {len(merges)} merges -> {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
