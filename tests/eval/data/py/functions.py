# Settings inside functions, f-strings of constants, the device idiom and a main guard.
import time
import torch
from diffusers import StableDiffusionPipeline, EulerDiscreteScheduler
from DeepCache import DeepCacheSDHelper

ORG = "runwayml"
MODEL_ID = f"{ORG}/stable-diffusion-v1-5"
STEPS = 30
device = "cuda" if torch.cuda.is_available() else "cpu"


def load_pipeline(model_id=MODEL_ID):
    p = StableDiffusionPipeline.from_pretrained(model_id, torch_dtype=torch.float16)
    p.scheduler = EulerDiscreteScheduler.from_config(p.scheduler.config)
    return p.to(device)


def apply_optimizations(pipe, interval):
    helper = DeepCacheSDHelper(pipe=pipe)
    helper.set_params(cache_interval=interval, cache_branch_id=0)
    helper.enable()
    pipe.enable_attention_slicing()
    return helper


pipe = load_pipeline()
helper = apply_optimizations(pipe, 4)


def generate(prompts, seed=0):
    generator = torch.Generator(device).manual_seed(seed)
    start = time.perf_counter()
    images = pipe(prompts, num_inference_steps=STEPS, guidance_scale=7.0, generator=generator).images
    print(f"took {time.perf_counter() - start:.2f} s")
    return images


if __name__ == "__main__":
    for i, image in enumerate(generate(["a bowl of fruit"])):
        image.save(f"out_{i}.png")
