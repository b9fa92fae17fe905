# from-imports renamed, a scheduler from the model's folder passed to from_pretrained, a variant.
import torch as th
from diffusers import AutoPipelineForText2Image as Auto, EulerAncestralDiscreteScheduler as EA
import tomesd as tm

model_id = "runwayml/stable-diffusion-v1-5"
sched = EA.from_pretrained(model_id, subfolder="scheduler")
pipe = Auto.from_pretrained(model_id, scheduler=sched, torch_dtype=th.float16, variant="fp16", use_safetensors=True,
                            revision="main", local_files_only=True)
pipe.to("cuda", th.float16)
pipe.set_progress_bar_config(disable=True)
tm.apply_patch(pipe.unet, 0.6, use_rand=False)
images = [pipe(p, num_inference_steps=25).images[0] for p in ["a", "b"]]
