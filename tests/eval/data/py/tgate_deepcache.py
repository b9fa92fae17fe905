# T-GATE with DeepCache (tgate's TgateSDDeepCacheLoader).
import torch
from diffusers import StableDiffusionPipeline
from tgate import TgateSDDeepCacheLoader

pipe = StableDiffusionPipeline.from_pretrained("runwayml/stable-diffusion-v1-5", torch_dtype=torch.float16)
pipe = TgateSDDeepCacheLoader(pipe, cache_interval=3, cache_branch_id=0).to("cuda")

image = pipe.tgate("Astronaut in a jungle", gate_step=10, num_inference_steps=25).images[0]
