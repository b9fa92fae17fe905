# expect-error: 7: compile_unet
from diffusers import StableDiffusionPipeline
from speedups import compile_unet


def optimize(p):
    compile_unet(p.unet)


pipe = StableDiffusionPipeline.from_pretrained("runwayml/stable-diffusion-v1-5")
optimize(pipe)
