# expect-error: 6: num_inference_steps
from diffusers import StableDiffusionPipeline

pipe = StableDiffusionPipeline.from_pretrained("runwayml/stable-diffusion-v1-5")
a = pipe("a cat", num_inference_steps=50)
b = pipe("a dog", num_inference_steps=25)
