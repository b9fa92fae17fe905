# expect-error: 6: syntax error
from diffusers import StableDiffusionPipeline

pipe = StableDiffusionPipeline.from_pretrained("runwayml/stable-diffusion-v1-5")

image = pipe("a cat", num_inference_steps=50.images[0]
