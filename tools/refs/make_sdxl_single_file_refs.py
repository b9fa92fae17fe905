#!/usr/bin/env python3
"""References for SDXL single-file checkpoints (tests/pipeline/test_single_file.cpp), in tests/pipeline/data/:

  tiny-sdxl-l2-unet/    a UNet for the tiny SDXL pipeline with SDXL base's exact block structure (3 levels,
                        2 resnets per down block and 3 per up block, DownBlock2D first, transformer depth
                        (1, 1, 2), text_time conditioning), made with diffusers (seeded random weights, small
                        widths). diffusers' SDXL conversion script hard-codes that structure, so the tiny
                        pipeline's own 1-layer UNet cannot go through it; the test puts this UNet into a copy
                        of tests/pipeline/data/tiny-sdxl (the "folder form").
  tiny-sdxl-original.tensors.json
                        every tensor of that folder form converted to the original (Stability / sgm) layout by
                        diffusers' own scripts/convert_diffusers_to_original_sdxl.py: "name": [shape, xxh3-64
                        of its float32 bytes], one per line. The checkpoint itself is not committed: the test
                        writes it with diffbench's inverse key table and checks it against this list.

How it was made (diffusers 0.42.1 and its repository's script at commit 58eb52c0, transformers 5.24,
torch 2.11 CPU, safetensors, xxhash):
    git show HEAD:scripts/convert_diffusers_to_original_sdxl.py > convert_sdxl.py   # diffusers' repo
    PYTHONPATH=DEPS python tools/refs/make_sdxl_single_file_refs.py convert_sdxl.py tests/pipeline/data
The script's own functions convert each component (its __main__ reads and writes fixed file names).
"""
import importlib.util
import json
import sys
from pathlib import Path

import torch
import xxhash
from diffusers import UNet2DConditionModel
from safetensors.torch import load_file


def main(script, data):
    spec = importlib.util.spec_from_file_location("convert", script)
    conv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conv)
    data = Path(data)
    tiny = data / "tiny-sdxl"
    cfg = json.load(open(tiny / "unet" / "config.json"))

    torch.manual_seed(1)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16, 16), layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 2, 4), use_linear_projection=True, transformer_layers_per_block=(1, 1, 2),
        addition_embed_type="text_time", addition_time_embed_dim=cfg["addition_time_embed_dim"],
        projection_class_embeddings_input_dim=cfg["projection_class_embeddings_input_dim"],
        cross_attention_dim=cfg["cross_attention_dim"], norm_num_groups=4)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.05 * torch.randn_like(p))
    unet.save_pretrained(data / "tiny-sdxl-l2-unet", safe_serialization=True)

    unet_sd = load_file(data / "tiny-sdxl-l2-unet" / "diffusion_pytorch_model.safetensors")
    vae_sd = load_file(tiny / "vae" / "diffusion_pytorch_model.safetensors")
    te_sd = load_file(tiny / "text_encoder" / "model.safetensors")
    te2_sd = load_file(tiny / "text_encoder_2" / "model.safetensors")
    sd = {}
    sd.update({"model.diffusion_model." + k: v for k, v in conv.convert_unet_state_dict(unet_sd).items()})
    sd.update({"first_stage_model." + k: v for k, v in conv.convert_vae_state_dict(vae_sd).items()})
    sd.update({"conditioner.embedders.0.transformer." + k: v
               for k, v in conv.convert_openai_text_enc_state_dict(te_sd).items()})
    sd.update({"conditioner.embedders.1.model." + k: v
               for k, v in conv.convert_openclip_text_enc_state_dict(te2_sd).items()})

    def entry(t):
        c = t.detach().to(torch.float32).contiguous()
        return [list(c.shape), xxhash.xxh3_64_hexdigest(c.numpy().tobytes())]

    lines = [f"{json.dumps(k)}: {json.dumps(entry(v))}" for k, v in sorted(sd.items())]
    (data / "tiny-sdxl-original.tensors.json").write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print(len(sd), "tensors")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
