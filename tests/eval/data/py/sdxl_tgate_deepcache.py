# SDXL with T-GATE and DeepCache (tgate's TgateSDXLDeepCacheLoader); no guidance_scale: SDXL's 5.0.
import torch
from diffusers import StableDiffusionXLPipeline
from tgate import TgateSDXLDeepCacheLoader

pipe = StableDiffusionXLPipeline.from_pretrained("stabilityai/stable-diffusion-xl-base-1.0", torch_dtype=torch.float16,
                                                 variant="fp16")
pipe = TgateSDXLDeepCacheLoader(pipe, cache_interval=3, cache_branch_id=0).to("cuda")

image = pipe.tgate("Astronaut in a jungle", gate_step=10, num_inference_steps=25).images[0]
