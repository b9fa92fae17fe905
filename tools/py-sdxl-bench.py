"""The Python stack's side of issue 19's SDXL timing, on a GPU machine (tools/gpu-sdxl.sh runs it).

  python3 tools/py-sdxl-bench.py make OUT_DIR TOKENIZER_DIR   # random-weight SDXL-base-topology fp16 folder
  python3 tools/py-sdxl-bench.py time SDXL_DIR [compile]       # diffusers eager (or the UNet under torch.compile)

The folder is made with diffusers' own classes and SDXL base's published configuration (UNet 2.6 B parameters:
channels 320/640/1280, transformer depths 1/2/10, heads 5/10/20 x 64, context 2048, text_time conditioning;
CLIP ViT-L and OpenCLIP ViT-bigG text encoders; the SD VAE with scaling factor 0.13025 and force_upcast),
weights from the classes' own random initialisation (seed 0), saved in fp16. Timing: one prompt, 1024x1024,
30 Euler steps, guidance 5.0, fp16 on cuda, median of 5 after 2 warm-up runs, images decoded to tensors
(output_type="pt"). Timings are printed as `name seconds`.
"""
import os
import statistics
import sys
import time

PROMPT = "A man is in a kitchen making pizzas."


def make(out, tokenizer_dir):
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer
    torch.manual_seed(0)
    vocab, merges = os.path.join(tokenizer_dir, "vocab.json"), os.path.join(tokenizer_dir, "merges.txt")
    tokenizer = CLIPTokenizer(vocab, merges, model_max_length=77)
    tokenizer_2 = CLIPTokenizer(vocab, merges, pad_token="!", model_max_length=77)
    with torch.device("cuda"):  # the random initialisation on the GPU: seconds instead of minutes
        text_encoder = CLIPTextModel(CLIPTextConfig(
            hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
            hidden_act="quick_gelu", projection_dim=768, vocab_size=49408))
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(
            hidden_size=1280, intermediate_size=5120, num_attention_heads=20, num_hidden_layers=32,
            hidden_act="gelu", projection_dim=1280, vocab_size=49408))
        unet = UNet2DConditionModel(
            sample_size=128, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280), layers_per_block=2,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(5, 10, 20), use_linear_projection=True, transformer_layers_per_block=(1, 2, 10),
            addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
            cross_attention_dim=2048, norm_num_groups=32)
        vae = AutoencoderKL(
            block_out_channels=(128, 256, 512, 512), in_channels=3, out_channels=3, latent_channels=4,
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=2, sample_size=1024, scaling_factor=0.13025, force_upcast=True)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       num_train_timesteps=1000, steps_offset=1, timestep_spacing="leading",
                                       interpolation_type="linear", prediction_type="epsilon")
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler,
                                     force_zeros_for_empty_prompt=True)
    pipe.to(torch.float16).save_pretrained(out, safe_serialization=True)
    print(f"unet parameters {sum(p.numel() for p in unet.parameters()) / 1e9:.3f} B")


def time_pipeline(sdxl_dir, compiled):
    import torch
    from diffusers import StableDiffusionXLPipeline
    pipe = StableDiffusionXLPipeline.from_pretrained(sdxl_dir, torch_dtype=torch.float16).to("cuda")
    pipe.set_progress_bar_config(disable=True)
    name = "py_sdxl_eager"
    if compiled:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.unet = torch.compile(pipe.unet, mode="reduce-overhead", fullgraph=True)
        name = "py_sdxl_unet_compiled"

    def once():
        g = torch.Generator("cuda").manual_seed(42)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        pipe(PROMPT, num_inference_steps=30, guidance_scale=5.0, height=1024, width=1024, generator=g,
             output_type="pt")
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    t0 = time.perf_counter()
    first = once()
    print(f"{name}_first_run {first:.3f} (compile included: {time.perf_counter() - t0:.1f} s)" if compiled else
          f"{name}_first_run {first:.3f}")
    once()
    runs = [once() for _ in range(5)]
    print(f"{name}_batch1 {statistics.median(runs):.4f} (runs {' '.join(f'{r:.4f}' for r in runs)})")


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "time":
        time_pipeline(sys.argv[2], len(sys.argv) > 3 and sys.argv[3] == "compile")
    else:
        sys.exit(__doc__)
