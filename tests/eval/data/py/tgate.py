# T-GATE on Stable Diffusion as tgate's README shows it.
import torch
from diffusers import StableDiffusionPipeline
from tgate import TgateSDLoader

pipe = StableDiffusionPipeline.from_pretrained(
    "runwayml/stable-diffusion-v1-5",
    torch_dtype=torch.float16,
)

gate_step = 10
sp_interval = 5
fi_interval = 1
warm_up = 2
inference_step = 25
pipe = TgateSDLoader(pipe).to("cuda")

image = pipe.tgate(
    "Astronaut in a jungle, cold color palette, muted colors, detailed, 8k.",
    gate_step=gate_step,
    sp_interval=sp_interval,
    fi_interval=fi_interval,
    warm_up=warm_up,
    num_inference_steps=inference_step,
).images[0]
