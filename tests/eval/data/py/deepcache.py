# DeepCache as its README shows it.
import torch
from diffusers import StableDiffusionPipeline
from DeepCache import DeepCacheSDHelper

pipe = StableDiffusionPipeline.from_pretrained("runwayml/stable-diffusion-v1-5", torch_dtype=torch.float16).to("cuda:0")

helper = DeepCacheSDHelper(pipe=pipe)
helper.set_params(
    cache_interval=3,
    cache_branch_id=0,
)
helper.enable()

prompt = "a photo of an astronaut on a moon"
image = pipe(prompt, num_inference_steps=50, guidance_scale=7.5).images[0]
image.save("astronaut.png")
