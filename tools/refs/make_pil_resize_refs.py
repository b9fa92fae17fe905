"""Writes tests/metrics/data/pil_resize.safetensors: in<i>/out<i> uint8 [3,H,W] pairs, each `out` being
Pillow's Image.resize(in, (w, h), Image.BICUBIC) for random sizes (up and down, odd ratios), the resize
CLIP preprocessing uses. Not run by the build or CI.

Usage: PYTHONPATH=<dir with pillow> python tools/refs/make_pil_resize_refs.py OUT_FILE
(the Pillow version is stored in the file's metadata)
"""
import sys

import numpy as np
import PIL
import torch
from PIL import Image
from safetensors.torch import save_file

rng = np.random.default_rng(3)
tensors = {}
cases = [((37, 53), (24, 24)), ((24, 24), (61, 40)), ((300, 180), (224, 373)), ((17, 9), (5, 3)),
         ((64, 64), (64, 64)), ((45, 120), (30, 80)), ((8, 200), (13, 57)), ((101, 99), (33, 224))]
for i, ((h, w), (oh, ow)) in enumerate(cases):
    arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    out = np.asarray(Image.fromarray(arr).resize((ow, oh), Image.BICUBIC))
    tensors[f"in{i}"] = torch.from_numpy(arr).permute(2, 0, 1).contiguous()
    tensors[f"out{i}"] = torch.from_numpy(out.copy()).permute(2, 0, 1).contiguous()
save_file(tensors, sys.argv[1], metadata={"pillow": PIL.__version__})
