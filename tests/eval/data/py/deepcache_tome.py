# DeepCache and ToMe together, ToMe patched first.
import torch
import tomesd
from diffusers import StableDiffusionPipeline
from DeepCache import DeepCacheSDHelper

pipe = StableDiffusionPipeline.from_pretrained("runwayml/stable-diffusion-v1-5", torch_dtype=torch.float16,
                                               safety_checker=None, requires_safety_checker=False)
pipe = pipe.to("cuda")
tomesd.apply_patch(pipe, ratio=0.5, max_downsample=1, sx=2, sy=2, use_rand=False)
helper = DeepCacheSDHelper(pipe)
helper.set_params(cache_interval=5, cache_branch_id=1)
helper.enable()
images = pipe(["a red bus", "a cat on a sofa"], num_inference_steps=50, guidance_scale=7.5).images
