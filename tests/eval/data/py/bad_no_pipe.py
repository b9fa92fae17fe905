# expect-error: 0: no pipeline
import torch

def build():
    from diffusers import StableDiffusionPipeline
    return StableDiffusionPipeline.from_pretrained("runwayml/stable-diffusion-v1-5")

print(torch.__version__)
