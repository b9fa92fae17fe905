"""Writes the tiny random-weight SDXL pipeline tests/pipeline/data/tiny-sdxl/ and its reference tensors
tests/pipeline/data/sdxl_refs.safetensors (+ .json). Not run by the build or CI.

The pipeline is made with diffusers itself (StableDiffusionXLPipeline(...).save_pretrained), seeded random
weights, with the SDXL base structure at tiny widths:
  - text_encoder: transformers CLIPTextModel (hidden 32, 3 layers); text_encoder_2:
    CLIPTextModelWithProjection (hidden 32, 3 layers, projection 32); the UNet context is their penultimate
    hidden states concatenated (32 + 32 = 64), as SDXL's 768 + 1280 = 2048;
  - tokenizers: a small CLIP BPE vocabulary cut from the shared fixture's (its 512 byte tokens, the first 400
    merges, the two specials; CLIP's own id order), so the embedding tables stay small; tokenizer_2 pads
    with "!" as SDXL's does;
  - unet: channels (16, 24, 24), 1 layer per block, DownBlock2D + 2 CrossAttnDownBlock2D (SDXL's order), transformer_layers_per_block (1, 1, 2), per-block
    heads (2, 2, 4), use_linear_projection, addition_embed_type "text_time" with addition_time_embed_dim 8 and
    projection_class_embeddings_input_dim 6*8 + 32;
  - vae: 4 levels (8x), scaling_factor 0.13025, force_upcast true (SDXL's values);
  - scheduler: SDXL base's EulerDiscreteScheduler config (leading spacing, steps_offset 1).
References (float32 on the CPU, 2 prompts in one batch, one torch.Generator('cpu') seeded 42, the pipeline's
default size, guidance 5.0): prompt / pooled / negative embeddings, add_time_ids, one UNet call, and for
each run NAME the latents after every scheduler step (NAME.latents_per_step) and the images (NAME.image,
output_type="pt"): euler10, ddim10 (DDIMScheduler.from_config(config, clip_sample=False)) and euler10.rescale0.7
(guidance_rescale=0.7). negative_text.* holds encode_prompt's embeddings of a given negative prompt (encoded,
not zeroed), the path that force_zeros_for_empty_prompt = false takes for the empty one.

Usage: PYTHONPATH=<dir with diffusers, transformers> python tools/refs/make_sdxl_refs.py SHARED OUT_DIR
"""

import json
import os
import sys

import torch
import diffusers
import transformers
from diffusers import (AutoencoderKL, DDIMScheduler, EulerDiscreteScheduler, StableDiffusionXLPipeline,
                       UNet2DConditionModel)
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

shared, out_dir = sys.argv[1], sys.argv[2]
torch.set_num_threads(2)
model_dir = os.path.join(out_dir, "tiny-sdxl")
os.makedirs(model_dir, exist_ok=True)

# --- a small CLIP BPE vocabulary: CLIP's id order is 256 bytes, 256 bytes + </w>, one per merge, specials.
src_tok = os.path.join(shared, "fixtures", "tiny-sd", "tokenizer")
src_vocab = json.load(open(os.path.join(src_tok, "vocab.json")))
merges = open(os.path.join(src_tok, "merges.txt")).read().strip().split("\n")[1:401]
by_id = sorted(src_vocab.items(), key=lambda kv: kv[1])
vocab = {tok: i for i, (tok, _) in enumerate(by_id[:512])}
for m in merges:
    vocab.setdefault(m.replace(" ", ""), len(vocab))
for special in ("<|startoftext|>", "<|endoftext|>"):
    vocab[special] = len(vocab)
tok_src = os.path.join(out_dir, "_tok")
os.makedirs(tok_src, exist_ok=True)
json.dump(vocab, open(os.path.join(tok_src, "vocab.json"), "w"))
open(os.path.join(tok_src, "merges.txt"), "w").write("#version: 0.2\n" + "\n".join(merges) + "\n")
tokenizer = CLIPTokenizer(os.path.join(tok_src, "vocab.json"), os.path.join(tok_src, "merges.txt"), model_max_length=77)
tokenizer_2 = CLIPTokenizer(os.path.join(tok_src, "vocab.json"), os.path.join(tok_src, "merges.txt"), pad_token="!",
                            model_max_length=77)

# --- components (diffusers' own classes, seeded random weights)
torch.manual_seed(0)
text_cfg = dict(bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"], pad_token_id=1,
                hidden_size=32, intermediate_size=37, layer_norm_eps=1e-5, num_attention_heads=4,
                num_hidden_layers=3, vocab_size=len(vocab), hidden_act="gelu", projection_dim=32)
text_encoder = CLIPTextModel(CLIPTextConfig(**text_cfg))
text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**text_cfg))
unet = UNet2DConditionModel(
    sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 24, 24), layers_per_block=1,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=(2, 2, 4), use_linear_projection=True, transformer_layers_per_block=(1, 1, 2),
    addition_embed_type="text_time", addition_time_embed_dim=8, projection_class_embeddings_input_dim=6 * 8 + 32,
    cross_attention_dim=64, norm_num_groups=8)
vae = AutoencoderKL(
    block_out_channels=(8, 8, 16, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=1,
    sample_size=64, scaling_factor=0.13025, force_upcast=True)
# Non-trivial norms and biases (random init leaves them 1/0), so that every parameter is tested.
with torch.no_grad():
    for module in (unet, vae, text_encoder, text_encoder_2):
        for name, p in module.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.05 * torch.randn_like(p))
scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                   num_train_timesteps=1000, steps_offset=1, timestep_spacing="leading",
                                   interpolation_type="linear", prediction_type="epsilon", use_karras_sigmas=False)
pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                 tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler,
                                 force_zeros_for_empty_prompt=True)
pipe.save_pretrained(model_dir, safe_serialization=True)
pipe = StableDiffusionXLPipeline.from_pretrained(model_dir, torch_dtype=torch.float32)
pipe.set_progress_bar_config(disable=True)

prompts = ["A man is in a kitchen making pizzas.", "a red cube on top of a blue sphere"]
size = pipe.default_sample_size * pipe.vae_scale_factor
tensors = {}
with torch.no_grad():
    ids = pipe.tokenizer(prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    ids2 = pipe.tokenizer_2(prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    tensors["prompt.input_ids"] = ids.input_ids
    tensors["prompt.input_ids_2"] = ids2.input_ids
    embeds, neg, pooled, neg_pooled = pipe.encode_prompt(prompts, device="cpu", do_classifier_free_guidance=True)
    tensors["prompt.embeds"] = embeds
    tensors["prompt.pooled"] = pooled
    tensors["negative.embeds"] = neg
    tensors["negative.pooled"] = neg_pooled
    _, neg_text, _, neg_text_pooled = pipe.encode_prompt(prompts, device="cpu", do_classifier_free_guidance=True,
                                                         negative_prompt=["blurry", "ugly"])
    tensors["negative_text.embeds"] = neg_text
    tensors["negative_text.pooled"] = neg_text_pooled
    time_ids = torch.tensor([[size, size, 0, 0, size, size]], dtype=torch.float32)
    tensors["add_time_ids"] = time_ids
    g = torch.Generator("cpu").manual_seed(42)
    lat = torch.randn((2, 4, size // 8, size // 8), generator=g)
    tensors["unet.call.t500.sample"] = lat
    tensors["unet.call.t500.out"] = pipe.unet(lat, torch.tensor(500.0), encoder_hidden_states=embeds,
                                              added_cond_kwargs={"text_embeds": pooled,
                                                                 "time_ids": time_ids.repeat(2, 1)}).sample


def run(name, steps, **kw):
    recorded = []

    def on_step(p, i, t, k):
        recorded.append(k["latents"].detach().clone())
        return k

    g = torch.Generator("cpu").manual_seed(42)
    out = pipe(prompts, num_inference_steps=steps, guidance_scale=5.0, generator=g, output_type="pt",
               callback_on_step_end=on_step, **kw)
    tensors[name + ".latents_per_step"] = torch.stack(recorded).contiguous()
    tensors[name + ".image"] = out.images.float().contiguous()


euler_config = pipe.scheduler.config
run("euler10", 10)
run("euler10.rescale0.7", 10, guidance_rescale=0.7)
pipe.scheduler = DDIMScheduler.from_config(euler_config, clip_sample=False)
run("ddim10", 10)

save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out_dir, "sdxl_refs.safetensors"))
json.dump({"prompts": prompts, "negative_prompts": ["blurry", "ugly"], "seed": 42, "height": size, "width": size,
           "guidance": 5.0, "steps": 10,
           "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                        "transformers": transformers.__version__},
           "made_by": "tools/refs/make_sdxl_refs.py"},
          open(os.path.join(out_dir, "sdxl_refs.json"), "w"), indent=1)
print({k: tuple(v.shape) for k, v in tensors.items()})
