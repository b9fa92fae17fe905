# expect-error: 6: set_attn_processor
from diffusers import StableDiffusionPipeline
from diffusers.models.attention_processor import AttnProcessor2_0

pipe = StableDiffusionPipeline.from_pretrained("runwayml/stable-diffusion-v1-5")
pipe.unet.set_attn_processor(AttnProcessor2_0())
