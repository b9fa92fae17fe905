# expect-error: 7: num_inference_steps
import sys
from diffusers import StableDiffusionPipeline

pipe = StableDiffusionPipeline.from_pretrained("runwayml/stable-diffusion-v1-5")
steps = int(sys.argv[1])
image = pipe("a cat", num_inference_steps=steps).images[0]
