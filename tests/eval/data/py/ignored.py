# Statements that do not change what is measured: listed, not translated.
import os
import sys
import time
import torch
from diffusers import DiffusionPipeline

torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.benchmark = True
pipe = DiffusionPipeline.from_pretrained("runwayml/stable-diffusion-v1-5", torch_dtype=torch.float16)
pipe = pipe.to("cuda")
pipe.enable_attention_slicing()
pipe.enable_vae_slicing()
pipe.enable_xformers_memory_efficient_attention()
pipe.set_progress_bar_config(disable=True)
pipe.unet = torch.compile(pipe.unet, mode="reduce-overhead", fullgraph=True)
pipe.unet.to(memory_format=torch.channels_last)
print("loaded", pipe)
t0 = time.time()
for prompt in ["a photo of a dog"]:
    image = pipe(prompt, num_inference_steps=50, guidance_scale=7.5).images[0]
    torch.cuda.synchronize()
    os.makedirs("out", exist_ok=True)
    image.save(os.path.join("out", "dog.png"))
print("seconds", time.time() - t0)
sys.exit(0)
