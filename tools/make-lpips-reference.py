#!/usr/bin/env python3
"""Reference LPIPS values for tests/metrics/test_lpips.cpp, computed by the `lpips` package.

The network is lpips.LPIPS(net='alex', version='0.1', pnet_rand=True) whose parameters are then
replaced, in sorted key order (the `lins.*` duplicates left out), by
    weight: torch.randn(shape, generator=g) * 0.05 (linear heads: its absolute value), bias: randn * 0.01
with g = torch.Generator().manual_seed(2024), so the test regenerates the same weights with LibTorch's
generator instead of committing a 10 MB file. Writes
  tests/metrics/data/lpips-expected.safetensors     uint8 [3,H,W] image pairs `NAME.a`, `NAME.b`;
  tests/metrics/data/lpips-expected.json            {"pairs": [{"name", "lpips"}]}: the package's
                                                     forward on the images scaled to [-1, 1] (x/127.5 - 1).

    pip install --target DEPS --no-deps lpips torchvision==<the one matching torch> safetensors
    PYTHONPATH=DEPS python tools/make-lpips-reference.py

For real LPIPS weights the same conversion applies to lpips.LPIPS(net='alex') (ImageNet AlexNet from
torchvision): save_file({k: v.contiguous() for k, v in m.state_dict().items() if not k.startswith('lins.')}).
"""
import json
import os

import numpy as np
import torch
import lpips
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "metrics", "data")


def main():
    torch.manual_seed(0)
    model = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False).eval()
    g = torch.Generator().manual_seed(2024)
    params = dict(model.named_parameters())
    keys = []
    with torch.no_grad():
        for k in sorted(params):
            if k.startswith("lins."):
                continue
            keys.append(k)
            w = torch.randn(params[k].shape, generator=g) * (0.05 if k.endswith("weight") else 0.01)
            params[k].copy_(w.abs() if k.startswith("lin") else w)
    rng = np.random.default_rng(5)
    pairs = []
    a = rng.integers(0, 256, (3, 64, 64)).astype(np.uint8)
    pairs.append(("noise", a, np.clip(a.astype(np.int32) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)))
    y, x = np.mgrid[0:48, 0:80]
    smooth = np.stack([128 + 100 * np.sin(x / 6.0), 128 + 90 * np.cos(y / 4.0), (x * 3 + y) % 256]).astype(np.uint8)
    pairs.append(("smooth_shift", smooth, np.roll(smooth, 3, axis=2)))
    pairs.append(("identical", smooth, smooth.copy()))
    tensors, records = {}, []
    for name, p, q in pairs:
        tensors[name + ".a"], tensors[name + ".b"] = torch.from_numpy(p).contiguous(), torch.from_numpy(q).contiguous()
        with torch.no_grad():
            d = model(torch.from_numpy(p)[None].float() / 127.5 - 1, torch.from_numpy(q)[None].float() / 127.5 - 1)
        records.append({"name": name, "lpips": d.item()})
    os.makedirs(OUT, exist_ok=True)
    tensors = {k: v.clone() for k, v in tensors.items()}  # "identical" shares the smooth image
    save_file(tensors, os.path.join(OUT, "lpips-expected.safetensors"))
    os.chmod(os.path.join(OUT, "lpips-expected.safetensors"), 0o644)
    meta = {"torch": torch.__version__, "weights_seed": 2024, "weight_keys_in_order": keys, "pairs": records}
    with open(os.path.join(OUT, "lpips-expected.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(keys, records)


if __name__ == "__main__":
    main()
