"""Writes tests/pipeline/data/step_refs.safetensors (+ .json): per-step references for the
teacher-forced parity tests that the shared tiny-sd fixture does not hold. Not run by the build or CI.

Runs, on ../shared/fixtures/tiny-sd with its 4 reference prompts (tiny-sd-reference.json), seed 42,
one torch.Generator('cpu') for the batch, 128x128, guidance 7.5, float32 on the CPU:
  - NAME.latents_per_step for ToMe: tomesd.apply_patch(pipe, ratio=R, use_rand=False) with its other
    arguments at their defaults, 50 PNDM steps (NAME = pndm50.tome_r0.5_norand, pndm50.tome_r0.75_norand),
    with tomesd's argsort made stable (see below);
  - ddim20.noclip: DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False), 20 steps,
    free-running: final_latents and image (in [0,1], stored as float32). DDIM with clip_sample (what
    from_config of SD 1.5's PNDM config gives) is chaotic on the random tiny model; without it the run is
    not, so its final image can be compared end to end.
latents_per_step[i] = latents after scheduler step i (callback_on_step_end).

Usage: PYTHONPATH=<dir with diffusers, transformers, tomesd> python tools/refs/make_step_refs.py SHARED OUT_DIR
The versions that made the committed files (torch, diffusers, transformers, tomesd; CPU) are in the .json.
"""

import json
import os
import sys

import torch
import diffusers
import tomesd
import transformers
from diffusers import DDIMScheduler, StableDiffusionPipeline
from safetensors.torch import save_file

shared, out_dir = sys.argv[1], sys.argv[2]
fixtures = os.path.join(shared, "fixtures")
prompts = json.load(open(os.path.join(fixtures, "tiny-sd-reference.json")))["prompts"]
torch.set_num_threads(2)


def load():
    pipe = StableDiffusionPipeline.from_pretrained(os.path.join(fixtures, "tiny-sd"), safety_checker=None,
                                                   requires_safety_checker=False, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run(pipe, steps):
    recorded = []

    def on_step(p, i, t, kw):
        recorded.append(kw["latents"].detach().clone())
        return kw

    g = torch.Generator("cpu").manual_seed(42)
    out = pipe(prompts, num_inference_steps=steps, guidance_scale=7.5, height=128, width=128, generator=g,
               output_type="pt", callback_on_step_end=on_step)
    return torch.stack(recorded), out.images.float()


# tomesd ranks the source tokens with node_max.argsort(descending=True), an unstable sort: where
# similarity scores tie exactly (flat image regions), which tokens merge depends on the sort's order of
# tied keys, which differs between CPUs and sort implementations (on one CPU a teacher-forced step
# differed by 2.3e-3 from the same run with a stable sort). The reference is made with a stable sort
# (ties by token index), the order diffbench uses, so that every step is defined by the scores alone.
_argsort = torch.Tensor.argsort


def _stable_argsort(self, dim=-1, descending=False, stable=False):
    return _argsort(self, dim=dim, descending=descending, stable=True)


tensors = {}
for ratio in (0.5, 0.75):
    pipe = load()
    tomesd.apply_patch(pipe, ratio=ratio, use_rand=False)
    torch.Tensor.argsort = _stable_argsort
    per_step, image = run(pipe, 50)
    torch.Tensor.argsort = _argsort
    name = f"pndm50.tome_r{ratio}_norand"
    tensors[name + ".latents_per_step"] = per_step.contiguous()

pipe = load()
pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False)
per_step, image = run(pipe, 20)
tensors["ddim20.noclip.final_latents"] = per_step[-1].contiguous()
tensors["ddim20.noclip.image"] = image.contiguous()

os.makedirs(out_dir, exist_ok=True)
save_file(tensors, os.path.join(out_dir, "step_refs.safetensors"))
json.dump({"prompts": prompts, "seed": 42, "height": 128, "width": 128, "guidance": 7.5,
           "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                        "transformers": transformers.__version__, "tomesd": getattr(tomesd, "__version__", "0.1.3")},
           "made_by": "tools/refs/make_step_refs.py"},
          open(os.path.join(out_dir, "step_refs.json"), "w"), indent=1)
print({k: tuple(v.shape) for k, v in tensors.items()})
