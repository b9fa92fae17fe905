"""Writes tests/models/data/other-configs/: a random UNet and VAE whose configs the shared tiny-sd
fixture does not cover (linear projections, per-block heads, transformer_layers_per_block,
per-block layers_per_block, conv_in/conv_out kernels, mid/resnet scale factors, a VAE with quant_conv
and no post_quant_conv), saved with save_pretrained, and io.safetensors with their inputs and outputs:
the UNet on a 9x13 latent (odd sizes: upsampling needs explicit output sizes), VAE encode (mean,
logvar) and decode. Not run by the build or CI.

Usage: PYTHONPATH=<dir with diffusers> python tools/refs/make_unet_vae_refs.py OUT_DIR
(made with torch 2.11 CPU, float32; the diffusers version is written to OUT_DIR/versions.json)
"""
import json
import os
import sys

import diffusers
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import save_file

out = sys.argv[1]
torch.manual_seed(0)


def perturb(m):
    # Random init leaves zero-initialised output projections; perturb every weight so each path counts.
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m.eval()


unet = perturb(UNet2DConditionModel(
    sample_size=16, in_channels=4, out_channels=4, flip_sin_to_cos=False, freq_shift=1,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(16, 24, 32, 32), layers_per_block=(1, 2, 1, 2), norm_num_groups=8,
    cross_attention_dim=24, attention_head_dim=(1, 2, 4, 4), transformer_layers_per_block=(1, 2, 1, 1),
    use_linear_projection=True, mid_block_scale_factor=1.5, resnet_out_scale_factor=1.25,
    conv_in_kernel=5, conv_out_kernel=1))
unet.save_pretrained(os.path.join(out, "unet"))
sample, t, ctx = torch.randn(2, 4, 9, 13), torch.tensor([999, 37]), torch.randn(2, 77, 24)
with torch.no_grad():
    unet_out = unet(sample, t, ctx).sample

vae = perturb(AutoencoderKL(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32, 32),
    down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
    layers_per_block=2, norm_num_groups=8, use_quant_conv=True, use_post_quant_conv=False))
vae.save_pretrained(os.path.join(out, "vae"))
image, z = torch.rand(1, 3, 24, 40) * 2 - 1, torch.randn(1, 4, 5, 7)
with torch.no_grad():
    dist = vae.encode(image).latent_dist
    decoded = vae.decode(z).sample
save_file({"unet.sample": sample, "unet.t": t, "unet.ctx": ctx, "unet.out": unet_out,
           "vae.image": image, "vae.mean": dist.mean.contiguous(), "vae.logvar": dist.logvar.contiguous(),
           "vae.z": z, "vae.decoded": decoded}, os.path.join(out, "io.safetensors"))
json.dump({"torch": torch.__version__, "diffusers": diffusers.__version__}, open(os.path.join(out, "versions.json"), "w"))
