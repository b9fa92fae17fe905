#!/usr/bin/env python3
"""Reference PSNR and SSIM values for tests/metrics/test_fidelity.cpp, computed by torchmetrics.

Writes tests/metrics/data/fidelity-expected.safetensors (uint8 [3,H,W] image pairs `NAME.a`, `NAME.b`)
and tests/metrics/data/fidelity-expected.json ({"pairs": [{"name", "psnr", "ssim"}], versions}).

    pip install --target DEPS torchmetrics safetensors   # torchmetrics needs only torch
    PYTHONPATH=DEPS python tools/make-fidelity-reference.py

Per pair (batch of one image, so torchmetrics' batch reductions do not mix images):
  PSNR: torchmetrics' peak_signal_noise_ratio(data_range=255.0) on float64 pixels 0..255
        (identical images: +inf, stored as the string "inf");
  SSIM: torchmetrics' structural_similarity_index_measure(data_range=255.0) with its defaults
        (Gaussian kernel, sigma 1.5, kernel 11, k1 0.01, k2 0.03) on float64 pixels 0..255.
The data range is given (255) rather than left to torchmetrics' default None, which takes it from
the pixels' min/max and so would make an image's score depend on its content's range.
"""
import json
import os

import numpy as np
import torch
import torchmetrics
from safetensors.torch import save_file
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "metrics", "data")


def pairs():
    rng = np.random.default_rng(23)
    u8 = lambda x: np.clip(np.rint(x), 0, 255).astype(np.uint8)
    # random image and a noisy copy (non-square)
    a = rng.integers(0, 256, (3, 48, 64)).astype(np.uint8)
    yield "noise", a, u8(a.astype(np.float64) + rng.normal(0, 12, a.shape))
    # smooth picture and a shifted, darkened copy
    y, x = np.mgrid[0:40, 0:72]
    base = np.stack([128 + 100 * np.sin(x / 7.0), 128 + 100 * np.cos(y / 5.0), (x * 3 + y * 2) % 256]).astype(np.float64)
    shifted = np.roll(base, 2, axis=2) * 0.9
    yield "smooth_shift", u8(base), u8(shifted)
    # identical images: PSNR infinite, SSIM 1
    c = rng.integers(0, 256, (3, 32, 32)).astype(np.uint8)
    yield "identical", c, c.copy()
    # two flat images (zero variance): SSIM from the luminance term only
    yield "flat", np.full((3, 20, 24), 40, np.uint8), np.full((3, 20, 24), 200, np.uint8)
    # a small image (the 11x11 window reflects across most of it) with one changed block
    d = rng.integers(0, 256, (3, 13, 16)).astype(np.uint8)
    e = d.copy()
    e[:, 3:8, 4:10] = 255 - e[:, 3:8, 4:10]
    yield "small_block", d, e
    # a colour change of one shape, as an acceleration might do: a green disc turned blue
    img = np.full((3, 64, 64), 230, np.uint8)
    disc = (np.mgrid[0:64, 0:64][0] - 30) ** 2 + (np.mgrid[0:64, 0:64][1] - 34) ** 2 < 15 ** 2
    green, blue = img.copy(), img.copy()
    green[:, disc] = np.array([[40], [180], [60]], np.uint8)
    blue[:, disc] = np.array([[40], [60], [180]], np.uint8)
    yield "disc_colour", green, blue


def main():
    tensors, records = {}, []
    for name, a, b in pairs():
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        tensors[name + ".a"], tensors[name + ".b"] = ta.contiguous(), tb.contiguous()
        fa, fb = ta[None].double(), tb[None].double()
        psnr = peak_signal_noise_ratio(fb, fa, data_range=255.0).item()
        ssim = structural_similarity_index_measure(fb, fa, data_range=255.0).item()
        records.append({"name": name, "psnr": "inf" if np.isinf(psnr) else psnr, "ssim": ssim})
    os.makedirs(OUT, exist_ok=True)
    save_file(tensors, os.path.join(OUT, "fidelity-expected.safetensors"))
    os.chmod(os.path.join(OUT, "fidelity-expected.safetensors"), 0o644)
    meta = {"torch": torch.__version__, "torchmetrics": torchmetrics.__version__, "pairs": records}
    with open(os.path.join(OUT, "fidelity-expected.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    for r in records:
        print(r)


if __name__ == "__main__":
    main()
