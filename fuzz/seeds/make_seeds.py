#!/usr/bin/env python3
"""Writes the committed seed inputs of the libFuzzer targets (fuzz/seeds/<target>/), standard library only.

  python3 fuzz/seeds/make_seeds.py     # from the repository root; rewrites fuzz/seeds/{safetensors,png,tokenizer,spec}

tools/fuzz.sh adds the test data it finds at run time (tests/*/data/*.safetensors under 16 kB, examples/*.toml,
assets/demo's prompts and configs) to these. Each seed is small (a few kB at most) so that a 30 s run mutates
rather than parses.
"""
import gzip
import json
import os
import struct
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEEDS = os.path.join(ROOT, "fuzz", "seeds")


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))


# --- safetensors: u64 header length, JSON header, data (offsets relative to the data section) ---
def safetensors(tensors, metadata=None):
    header, blob = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def make_safetensors():
    f32 = lambda *v: struct.pack("<%df" % len(v), *v)
    write("safetensors", "diffusers-names.safetensors", safetensors([
        ("conv_in.bias", "F32", [2], f32(0.5, -1.0)),
        ("conv_in.weight", "F32", [2, 1, 1, 1], f32(1.0, 2.0)),
        ("time_embedding.linear_1.weight", "F16", [1, 2], struct.pack("<2e", 0.25, -2.0)),
        ("up_blocks.0.attentions.0.proj_in.weight", "BF16", [2], b"\x80\x3f\x00\x40"),
    ], {"format": "pt"}))
    write("safetensors", "all-dtypes.safetensors", safetensors([
        ("a.f64", "F64", [1], struct.pack("<d", 3.5)),
        ("b.i64", "I64", [2], struct.pack("<2q", -1, 49407)),
        ("c.i32", "I32", [1, 1], struct.pack("<i", 7)),
        ("d.i16", "I16", [1], struct.pack("<h", -3)),
        ("e.i8", "I8", [2], b"\x01\xff"),
        ("f.u8", "U8", [3], b"\x00\x80\xff"),
        ("g.bool", "BOOL", [2], b"\x00\x01"),
        ("h.empty", "F32", [0, 4], b""),
        ("i.scalar", "F32", [], f32(1.0)),
    ], {"format": "pt", "note": "seed"}))
    # A LoRA-style file (kohya names, an alpha scalar) with the tensors out of name order in the data.
    write("safetensors", "lora-kohya.safetensors", safetensors([
        ("lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight", "F32", [2, 1], f32(0.1, 0.2)),
        ("lora_unet_down_blocks_0_attentions_0_proj_in.alpha", "F32", [], f32(1.0)),
        ("lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", "F32", [1, 2], f32(0.3, 0.4)),
    ]))


# --- PNG: every colour type and bit depth read_png converts, interlaced and not ---
def png(width, height, depth, color_type, pixels, palette=None, trns=None, interlace=False):
    """pixels[y][x] is a tuple of samples (one per channel)."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]

    def row_bytes(row):
        if depth >= 8:
            fmt = ">" + ("B" if depth == 8 else "H") * (len(row) * channels)
            return struct.pack(fmt, *[s for px in row for s in px])
        bits, out = "", b""
        for px in row:
            bits += format(px[0], "0%db" % depth)
        bits += "0" * (-len(bits) % 8)
        return bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))

    raw = b""
    if interlace:  # Adam7: seven passes, each a small image of its own
        for x0, y0, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]:
            cols = range(x0, width, dx)
            if not cols:
                continue
            for y in range(y0, height, dy):
                raw += b"\x00" + row_bytes([pixels[y][x] for x in cols])
    else:
        for y in range(height):
            raw += b"\x00" + row_bytes(pixels[y])

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, int(interlace)))
    if palette:
        out += chunk(b"PLTE", b"".join(bytes(c) for c in palette))
    if trns is not None:
        out += chunk(b"tRNS", trns)
    return out + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def make_png():
    grid = lambda w, h, f: [[f(x, y) for x in range(w)] for y in range(h)]
    write("png", "rgb8.png", png(3, 2, 8, 2, grid(3, 2, lambda x, y: (40 * x, 90 * y, 200))))
    write("png", "rgba16-adam7.png", png(9, 9, 16, 6, grid(9, 9, lambda x, y: (7000 * x, 7000 * y, 1234, 65535 - 100 * x)), interlace=True))
    write("png", "grey1.png", png(10, 2, 1, 0, grid(10, 2, lambda x, y: ((x + y) % 2,))))
    write("png", "grey16.png", png(2, 2, 16, 0, grid(2, 2, lambda x, y: (30000 * x + 100 * y,))))
    write("png", "greyalpha8-adam7.png", png(5, 3, 8, 4, grid(5, 3, lambda x, y: (50 * x, 80 * y)), interlace=True))
    write("png", "palette2-trns.png", png(4, 3, 2, 3, grid(4, 3, lambda x, y: ((x + y) % 4,)),
                                          palette=[(255, 0, 0), (0, 255, 0), (0, 0, 255), (9, 9, 9)], trns=b"\x00\x80"))


# --- tokenizer: the first byte picks the mode (see fuzz/fuzz_tokenizer.cpp) ---
def make_tokenizer():
    tok = os.path.join(ROOT, "assets", "demo", "sd", "tokenizer")
    vocab = open(os.path.join(tok, "vocab.json"), encoding="utf-8").read()
    merges = open(os.path.join(tok, "merges.txt"), encoding="utf-8").read()
    texts = ["a red cube on a blue sphere", "<|startoftext|>two  CATS\t<|endoftext|>!!", "a café's “quotes” &amp; ﬁsh",
             "Ｆｕｌｌ－ｗｉｄｔｈ ἀλφα 日本 🙂 <start_of_text>x", "don't we'll 123,456.7 --- ..."]
    for i, text in enumerate(texts):
        write("tokenizer", "encode-%d" % i, "E" + text)
    write("tokenizer", "load-vocab-merges", "L" + vocab + "\0" + merges + "\0" + texts[0])
    pairs = [line.split(" ") for line in merges.splitlines()[1:] if line]
    vocab_obj = json.loads(vocab)
    tj = {"model": {"type": "BPE", "vocab": vocab_obj, "merges": [" ".join(p) for p in pairs]},
          "added_tokens": [{"id": vocab_obj["<|endoftext|>"], "content": "<|endoftext|>", "special": True}],
          "padding": {"pad_token": "<|endoftext|>"}}
    write("tokenizer", "load-tokenizer-json", "J" + json.dumps(tj, ensure_ascii=False) + "\0" + texts[1])
    tj["model"]["merges"] = pairs  # tokenizers >= 0.20 write [left, right] pairs
    write("tokenizer", "load-tokenizer-json-pairs", "J" + json.dumps(tj, ensure_ascii=False) + "\0" + texts[2])
    # open_clip's gzipped merges list: a short one in two gzip members (too few merges for CLIP's vocabulary)
    lines = ['"bpe_simple_vocab_16e6.txt#version: 0.2'] + [" ".join(p) for p in pairs[:40]]
    first, second = "\n".join(lines[:21]) + "\n", "\n".join(lines[21:]) + "\n"
    write("tokenizer", "load-bpe-gz", b"G" + gzip.compress(first.encode(), mtime=0) + gzip.compress(second.encode(), mtime=0))


# --- spec: TOML beyond examples/ (inline tables, LoRAs, several methods, multi-line strings) ---
def make_spec():
    write("spec", "everything.toml", """# every key of [pipeline], a LoRA and two methods
[pipeline]
model = "tiny-sd"
scheduler = "euler"
scheduler_options = { timestep_spacing = "trailing", use_karras_sigmas = false, steps_offset = 1 }
steps = 20
guidance = 7.5
guidance_rescale = 0.7
height = 64
width = 96
dtype = "fp32"
device = "cpu"
revision = 'main'
variant = "fp16"
cache_dir = "hub"
prediction_type = "v_prediction"
config = "configs/sd15"

[[lora]]
file = "style.safetensors"
scale = 0.8

[[accelerate]]
method = "deepcache"
cache_interval = 3
cache_branch_id = 0

[[accelerate]]
method = "tome"
ratio = 0.5
use_rand = false
""")
    write("spec", "strings.toml", '''[pipeline]
model = """
multi
line"""
scheduler = 'ddim' # a comment [= not a header
steps = 0x10
guidance = 1e0

[[accelerate]]
plugin = "plugins/libmine.so"
method = "mine"
"dotted.key" = "x"
''')


if __name__ == "__main__":
    make_safetensors()
    make_png()
    make_tokenizer()
    make_spec()
