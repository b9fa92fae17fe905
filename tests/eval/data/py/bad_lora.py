# expect-error: 5: set_adapters
from diffusers import StableDiffusionPipeline

pipe = StableDiffusionPipeline.from_pretrained("runwayml/stable-diffusion-v1-5")
pipe.set_adapters(["style"], adapter_weights=[0.5])
