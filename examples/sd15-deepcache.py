# DeepCache on Stable Diffusion 1.5 as DeepCache's README writes it; the same pipeline as
# examples/sd15-deepcache.toml. diffbench reads this file without running it:
#   diffbench eval examples/sd15-deepcache.py
#   diffbench import-py examples/sd15-deepcache.py     # the spec it becomes
import torch
from diffusers import StableDiffusionPipeline
from DeepCache import DeepCacheSDHelper

pipe = StableDiffusionPipeline.from_pretrained("runwayml/stable-diffusion-v1-5", torch_dtype=torch.float16)
pipe = pipe.to("cuda")

helper = DeepCacheSDHelper(pipe=pipe)
helper.set_params(cache_interval=3, cache_branch_id=0)
helper.enable()

if __name__ == "__main__":
    image = pipe("A man is in a kitchen making pizzas.", num_inference_steps=50, guidance_scale=7.5,
                 height=512, width=512).images[0]
    image.save("pizza.png")
