#!/usr/bin/env python3
"""References for the LoRA tests (tests/pipeline/test_lora.cpp), in tests/pipeline/data/:

  tiny-sd-lora.peft.safetensors    a random LoRA (rank 4, lora_alpha 8, every attention projection of the
                                   UNet and the text encoder) made with peft on the tiny test pipeline and
                                   saved by diffusers' save_lora_weights (diffusers/PEFT key names; alpha and
                                   rank in the file's lora_adapter_metadata)
  tiny-sd-lora.kohya.safetensors   the same weights under kohya / A1111 names (lora_unet_*, lora_te_*,
                                   .lora_down / .lora_up / .alpha), written here
  tiny-sd-lora-expected.safetensors  images of diffusers with each file loaded by load_lora_weights and
                                   fused with fuse_lora(lora_scale=0.7): "peft.image", "kohya.image" (the
                                   two agree to 1e-6), and "base.image" without the LoRA; 2 prompts, PNDM
                                   20 steps, guidance 7.5, 64x64, seed 42 (one CPU generator for the batch)

How it was made (diffusers 0.42.1, peft 0.21.2, accelerate, transformers 5.24, torch 2.11 CPU, from PyPI):
    OMP_NUM_THREADS=1 PYTHONPATH=DEPS python tools/refs/make_lora_refs.py ../shared/fixtures/tiny-sd tests/pipeline/data
"""
import json
import sys
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file

# transformers 5.24 asks for peft >= 0.22, which PyPI does not have yet (0.21.2 is the newest); its
# LoRA code path works with 0.21.2, so its version check is switched off.
import transformers.integrations.peft as _tp  # noqa: E402

_tp.check_peft_version = lambda *a, **k: None

PROMPTS = ["A man is in a kitchen making pizzas.", "A red bus on a street"]
SCALE = 0.7


def images(pipe):
    g = torch.Generator("cpu").manual_seed(42)
    out = pipe(PROMPTS, num_inference_steps=20, guidance_scale=7.5, height=64, width=64, generator=g, output_type="pt")
    return out.images.float().contiguous()


def kohya_name(prefix, key):
    # "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight" -> kohya's flat name
    module, kind = key.rsplit(".lora_", 1)
    return prefix + "_" + module.replace(".", "_"), ("lora_down" if kind.startswith("A") else "lora_up")


def main(folder, out):
    out = Path(out)
    torch.manual_seed(0)
    pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, torch_dtype=torch.float32)
    base = images(pipe)
    r, alpha = 4, 8
    unet_cfg = LoraConfig(r=r, lora_alpha=alpha, init_lora_weights=False, target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    text_cfg = LoraConfig(r=r, lora_alpha=alpha, init_lora_weights=False, target_modules=["q_proj", "k_proj", "v_proj", "out_proj"])
    pipe.unet.add_adapter(unet_cfg)
    pipe.text_encoder.add_adapter(text_cfg)
    unet_sd = get_peft_model_state_dict(pipe.unet)
    text_sd = get_peft_model_state_dict(pipe.text_encoder)
    StableDiffusionPipeline.save_lora_weights(out, unet_lora_layers=unet_sd, text_encoder_lora_layers=text_sd,
                                              unet_lora_adapter_metadata=unet_cfg.to_dict(),
                                              text_encoder_lora_adapter_metadata=text_cfg.to_dict(),
                                              weight_name="tiny-sd-lora.peft.safetensors")
    kohya = {}
    for prefix, sd in (("lora_unet", unet_sd), ("lora_te", text_sd)):
        for key, value in sd.items():
            name, kind = kohya_name(prefix, key if prefix == "lora_unet" else "text_model." + key.replace("text_model.", "", 1))
            kohya[f"{name}.{kind}.weight"] = value.contiguous()
            kohya[f"{name}.alpha"] = torch.tensor(float(alpha))
    save_file(kohya, out / "tiny-sd-lora.kohya.safetensors")

    refs = {"base.image": base}
    for kind in ("peft", "kohya"):
        p = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, torch_dtype=torch.float32)
        p.load_lora_weights(out, weight_name=f"tiny-sd-lora.{kind}.safetensors")
        p.fuse_lora(lora_scale=SCALE)
        refs[f"{kind}.image"] = images(p)
    print("peft vs kohya max diff", (refs["peft.image"] - refs["kohya.image"]).abs().max().item(),
          "lora vs base", (refs["peft.image"] - base).abs().max().item())
    save_file(refs, out / "tiny-sd-lora-expected.safetensors",
              metadata={"prompts": json.dumps(PROMPTS), "lora_scale": str(SCALE), "steps": "20", "scheduler": "pndm",
                        "guidance": "7.5", "size": "64x64", "seed": "42"})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
