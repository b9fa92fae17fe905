# expect-error: 10: forward
from diffusers import StableDiffusionPipeline

pipe = StableDiffusionPipeline.from_pretrained("runwayml/stable-diffusion-v1-5")


def fast_forward(*args, **kwargs):
    return None

pipe.unet.forward = fast_forward
