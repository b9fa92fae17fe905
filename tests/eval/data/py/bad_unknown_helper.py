# expect-error: 9: my_fast_attention
import torch
from diffusers import StableDiffusionPipeline
from mytools import my_fast_attention

pipe = StableDiffusionPipeline.from_pretrained("runwayml/stable-diffusion-v1-5", torch_dtype=torch.float16)
pipe = pipe.to("cuda")

my_fast_attention(pipe)
image = pipe("a cat").images[0]
