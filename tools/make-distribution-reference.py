#!/usr/bin/env python3
"""Reference KID and FID values for tests/metrics/test_distribution.cpp, computed by torchmetrics
on given feature vectors (its feature extractor replaced by an identity module, so only the
distribution math is compared; the Inception network is not involved).

Writes tests/metrics/data/distribution-expected.safetensors (float64 `real` [40,16], `fake` [36,16])
and tests/metrics/data/distribution-expected.json.

    pip install --target DEPS torchmetrics safetensors   # torchmetrics needs only torch
    PYTHONPATH=DEPS python tools/make-distribution-reference.py

KID: KernelInceptionDistance(feature=identity, subsets=5, subset_size=20) (degree 3, gamma 1/16,
coef 1), torch.manual_seed(7) right before compute(), so the subsets are randperm draws of the
default CPU generator seeded with 7. Also poly_mmd on the first 20 rows of each set.
FID: FrechetInceptionDistance(feature=identity) on the same features.
"""
import json
import os

import torch
import torchmetrics
from safetensors.torch import save_file
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance, poly_mmd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "metrics", "data")


class Identity(torch.nn.Module):
    num_features = 16

    def forward(self, x):
        return x


def main():
    g = torch.Generator().manual_seed(23)
    real = torch.randn(40, 16, generator=g, dtype=torch.float64)
    mix = torch.randn(16, 16, generator=g, dtype=torch.float64) * 0.3 + torch.eye(16, dtype=torch.float64)
    fake = torch.randn(36, 16, generator=g, dtype=torch.float64) @ mix + 0.4

    kid = KernelInceptionDistance(feature=Identity(), subsets=5, subset_size=20)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    torch.manual_seed(7)
    kid_mean, kid_std = kid.compute()

    fid = FrechetInceptionDistance(feature=Identity())
    fid.update(real, real=True)
    fid.update(fake, real=False)

    ref = {
        "torch": torch.__version__,
        "torchmetrics": torchmetrics.__version__,
        "kid": {"subsets": 5, "subset_size": 20, "seed": 7, "mean": kid_mean.item(), "std": kid_std.item()},
        "poly_mmd_first20": poly_mmd(real[:20], fake[:20]).item(),
        "fid": fid.compute().item(),
    }
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "distribution-expected.safetensors")
    save_file({"real": real.contiguous(), "fake": fake.contiguous()}, path)
    os.chmod(path, 0o644)
    with open(os.path.join(OUT, "distribution-expected.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    print(ref)


if __name__ == "__main__":
    main()
