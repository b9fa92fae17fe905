#!/usr/bin/env python3
"""References for LoRA on SDXL (tests/pipeline/test_lora.cpp), in tests/pipeline/data/:

  tiny-sdxl-lora.peft.safetensors   a random LoRA (rank 4, lora_alpha 8, every attention projection of
                                    the UNet and of both text encoders) made with peft on the tiny SDXL
                                    folder (tests/pipeline/data/tiny-sdxl) and saved by diffusers'
                                    StableDiffusionXLPipeline.save_lora_weights (unet. / text_encoder. /
                                    text_encoder_2. names; alpha and rank in lora_adapter_metadata)
  tiny-sdxl-lora.kohya.safetensors  the same weights under kohya's SDXL names, written here: lora_unet_*
                                    (the UNet's diffusers module names flattened), lora_te1_* and lora_te2_*,
                                    with .lora_down / .lora_up / .alpha
  tiny-sdxl-lora-expected.safetensors  images and final latents of diffusers with each file loaded by
                                    load_lora_weights and fused with fuse_lora(lora_scale=0.7): "peft.image",
                                    "kohya.image", "peft.final_latents", "kohya.final_latents", and
                                    "base.image" without the LoRA; the 2 prompts of sdxl_refs.json, Euler 10
                                    steps, guidance 5.0, 64x64, seed 42 (one CPU generator for the batch)

How it was made (diffusers 0.42.1, peft 0.21.2, accelerate 1.15, transformers 5.24, torch 2.11 CPU):
    OMP_NUM_THREADS=1 PYTHONPATH=DEPS python tools/refs/make_sdxl_lora_refs.py tests/pipeline/data
"""
import json
import sys
from pathlib import Path

import torch
from diffusers import StableDiffusionXLPipeline
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file

# transformers 5.24 asks for peft >= 0.22, which PyPI does not have yet (0.21.2 is the newest); its
# LoRA code path works with 0.21.2, so its version check is switched off.
import transformers.integrations.peft as _tp  # noqa: E402

_tp.check_peft_version = lambda *a, **k: None

SCALE = 0.7


def run(pipe, prompts):
    last = {}

    def on_step(p, i, t, k):
        last["latents"] = k["latents"].detach().clone().contiguous()
        return k

    g = torch.Generator("cpu").manual_seed(42)
    out = pipe(prompts, num_inference_steps=10, guidance_scale=5.0, generator=g, output_type="pt",
               callback_on_step_end=on_step)
    return out.images.float().contiguous(), last["latents"]


def kohya_name(prefix, key):
    # "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight" -> kohya's flat name
    module, kind = key.rsplit(".lora_", 1)
    return prefix + "_" + module.replace(".", "_"), ("lora_down" if kind.startswith("A") else "lora_up")


def main(data):
    data = Path(data)
    folder = data / "tiny-sdxl"
    prompts = json.load(open(data / "sdxl_refs.json"))["prompts"]
    torch.manual_seed(0)
    torch.set_num_threads(1)
    pipe = StableDiffusionXLPipeline.from_pretrained(folder, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    base, _ = run(pipe, prompts)
    r, alpha = 4, 8
    unet_cfg = LoraConfig(r=r, lora_alpha=alpha, init_lora_weights=False, target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    text_cfg = LoraConfig(r=r, lora_alpha=alpha, init_lora_weights=False, target_modules=["q_proj", "k_proj", "v_proj", "out_proj"])
    pipe.unet.add_adapter(unet_cfg)
    pipe.text_encoder.add_adapter(text_cfg)
    pipe.text_encoder_2.add_adapter(text_cfg)
    unet_sd = get_peft_model_state_dict(pipe.unet)
    text_sd = get_peft_model_state_dict(pipe.text_encoder)
    text2_sd = get_peft_model_state_dict(pipe.text_encoder_2)
    StableDiffusionXLPipeline.save_lora_weights(
        data, unet_lora_layers=unet_sd, text_encoder_lora_layers=text_sd, text_encoder_2_lora_layers=text2_sd,
        unet_lora_adapter_metadata=unet_cfg.to_dict(), text_encoder_lora_adapter_metadata=text_cfg.to_dict(),
        text_encoder_2_lora_adapter_metadata=text_cfg.to_dict(), weight_name="tiny-sdxl-lora.peft.safetensors")
    kohya = {}
    for prefix, sd in (("lora_unet", unet_sd), ("lora_te1", text_sd), ("lora_te2", text2_sd)):
        for key, value in sd.items():
            if prefix != "lora_unet":
                key = "text_model." + key.replace("text_model.", "", 1)
            name, kind = kohya_name(prefix, key)
            kohya[f"{name}.{kind}.weight"] = value.contiguous()
            kohya[f"{name}.alpha"] = torch.tensor(float(alpha))
    save_file(kohya, data / "tiny-sdxl-lora.kohya.safetensors")

    refs = {"base.image": base}
    for kind in ("peft", "kohya"):
        p = StableDiffusionXLPipeline.from_pretrained(folder, torch_dtype=torch.float32)
        p.set_progress_bar_config(disable=True)
        p.load_lora_weights(data, weight_name=f"tiny-sdxl-lora.{kind}.safetensors")
        p.fuse_lora(lora_scale=SCALE)
        refs[f"{kind}.image"], refs[f"{kind}.final_latents"] = run(p, prompts)
    print("peft vs kohya max diff", (refs["peft.image"] - refs["kohya.image"]).abs().max().item(),
          "lora vs base", (refs["peft.image"] - base).abs().max().item(), "layers", len(kohya) // 3)
    save_file(refs, data / "tiny-sdxl-lora-expected.safetensors",
              metadata={"prompts": json.dumps(prompts), "lora_scale": str(SCALE), "steps": "10", "scheduler": "euler",
                        "guidance": "5.0", "size": "64x64", "seed": "42"})


if __name__ == "__main__":
    main(sys.argv[1])
