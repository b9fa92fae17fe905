#!/usr/bin/env python3
"""Reference features for tests/models/test_inception_fid.cpp, computed by pytorch-fid's own InceptionV3.

The network is pytorch_fid.inception.InceptionV3([3]) (block 3: the 2048-d final average pool, its default
resize to 299x299 bilinear and scaling to [-1, 1]) built with use_fid_inception=True, i.e. the FID-specific
Inception (FIDInceptionA/C/E_1/E_2 blocks). That code downloads the ported TensorFlow weights; here the download
(load_state_dict_from_url) is replaced by random weights, in sorted key order over the checkpoint's keys without
`fc.*` and `*.num_batches_tracked`, from one generator g = torch.Generator().manual_seed(SEED):
    conv.weight     torch.randn(shape, generator=g) * sqrt(2 / fan_in)
    bn.weight       torch.randn(shape, generator=g) * 0.1 + 1
    bn.bias         torch.randn(shape, generator=g) * 0.1
    bn.running_mean torch.randn(shape, generator=g) * 0.1
    bn.running_var  torch.rand(shape, generator=g) + 0.5
so the test regenerates the same weights with LibTorch's generator instead of committing a 95 MB file. Writes
  tests/models/data/inception-fid-expected.safetensors  uint8 [3,H,W] images `image.K` and float32 [K,2048]
                                                         `features` (pytorch-fid's get_activations: the images
                                                         as ToTensor gives them, x/255, one at a time)
  tests/models/data/inception-fid-expected.json         seed, key order, image names, torch version

    pip install --target DEPS --no-deps pytorch-fid torchvision==<the one matching torch> scipy numpy safetensors
    PYTHONPATH=DEPS python tools/refs/make_inception_fid_refs.py
"""
import json
import math
import os

import numpy as np
import torch
from safetensors.torch import save_file

import pytorch_fid
import pytorch_fid.inception as fid_inception

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "models", "data")
SEED = 2311


def random_state_dict(template):
    """Random weights for the keys of fid_inception_v3()'s Inception3 (fc and BN counters left as they are)."""
    sd = {k: v.clone() for k, v in template.items()}
    keys = sorted(k for k in sd if not k.startswith("fc.") and not k.endswith("num_batches_tracked"))
    g = torch.Generator().manual_seed(SEED)
    for k in keys:
        shape = sd[k].shape
        if k.endswith("conv.weight"):
            sd[k] = torch.randn(shape, generator=g) * math.sqrt(2.0 / (shape[1] * shape[2] * shape[3]))
        elif k.endswith("bn.weight"):
            sd[k] = torch.randn(shape, generator=g) * 0.1 + 1
        elif k.endswith("bn.bias") or k.endswith("bn.running_mean"):
            sd[k] = torch.randn(shape, generator=g) * 0.1
        elif k.endswith("bn.running_var"):
            sd[k] = torch.rand(shape, generator=g) + 0.5
        else:
            raise KeyError(k)
    return sd, keys


def images():
    rng = np.random.default_rng(23)
    y, x = np.mgrid[0:40, 0:56]
    smooth = np.stack([128 + 100 * np.sin(x / 5.0), 128 + 90 * np.cos(y / 3.0), (x * 4 + y * 2) % 256])
    smooth = np.clip(smooth + rng.normal(0, 8, smooth.shape), 0, 255).astype(np.uint8)
    noise = rng.integers(0, 256, (3, 64, 64)).astype(np.uint8)
    y, x = np.mgrid[0:120, 0:90]
    blobs = np.stack([(x > 45) * 200 + 20, ((x - 45) ** 2 + (y - 60) ** 2 < 900) * 230 + 10, y * 2]).astype(np.uint8)
    wide = rng.integers(0, 256, (3, 24, 400)).astype(np.uint8)  # up in height, down in width
    return [("smooth_40x56", smooth), ("noise_64x64", noise), ("blobs_120x90", blobs), ("wide_24x400", wide)]


def main():
    torch.set_num_threads(2)
    captured = {}

    def fake_download(url, progress=True):
        template = fid_inception._inception_v3(num_classes=1008, aux_logits=False, weights=None)
        template.Mixed_5b = fid_inception.FIDInceptionA(192, pool_features=32)
        template.Mixed_5c = fid_inception.FIDInceptionA(256, pool_features=64)
        template.Mixed_5d = fid_inception.FIDInceptionA(288, pool_features=64)
        template.Mixed_6b = fid_inception.FIDInceptionC(768, channels_7x7=128)
        template.Mixed_6c = fid_inception.FIDInceptionC(768, channels_7x7=160)
        template.Mixed_6d = fid_inception.FIDInceptionC(768, channels_7x7=160)
        template.Mixed_6e = fid_inception.FIDInceptionC(768, channels_7x7=192)
        template.Mixed_7b = fid_inception.FIDInceptionE_1(1280)
        template.Mixed_7c = fid_inception.FIDInceptionE_2(2048)
        sd, keys = random_state_dict(template.state_dict())
        captured["keys"] = keys
        return sd

    fid_inception.load_state_dict_from_url = fake_download
    model = fid_inception.InceptionV3([fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    tensors, names, feats = {}, [], []
    for k, (name, img) in enumerate(images()):
        tensors[f"image.{k}"] = torch.from_numpy(img).contiguous()
        names.append(name)
        with torch.no_grad():
            pred = model(torch.from_numpy(img)[None].float() / 255.0)[0]  # as fid_score.get_activations
        feats.append(pred.squeeze(3).squeeze(2)[0])
    tensors["features"] = torch.stack(feats).contiguous()
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "inception-fid-expected.safetensors")
    save_file(tensors, path)
    os.chmod(path, 0o644)
    meta = {"torch": torch.__version__, "pytorch_fid": pytorch_fid.__version__, "weights_seed": SEED,
            "weight_keys_in_order": captured["keys"], "images": names,
            "feature_stats": {"min": tensors["features"].min().item(), "max": tensors["features"].max().item(),
                              "mean": tensors["features"].mean().item()}}
    with open(os.path.join(OUT, "inception-fid-expected.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(meta["feature_stats"], len(captured["keys"]))


if __name__ == "__main__":
    main()
