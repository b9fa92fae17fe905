# A scheduler swap (with an option carried over) and DeepCache, through module aliases.
import torch as th
import diffusers as d
import DeepCache

pipe = d.StableDiffusionPipeline.from_pretrained("runwayml/stable-diffusion-v1-5", torch_dtype=th.bfloat16)
pipe.scheduler = d.DDIMScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing")
pipe.to("cuda")

helper = DeepCache.DeepCacheSDHelper(pipe=pipe)
helper.set_params(cache_interval=2, cache_branch_id=0, skip_mode="uniform")
helper.enable()
out = pipe("a lighthouse at dusk", num_inference_steps=20, guidance_scale=6.0, height=512, width=512)
