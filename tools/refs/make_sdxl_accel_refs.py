"""References for the acceleration methods on the tiny SDXL pipeline (tests/accel/test_sdxl_methods.cpp):
tests/pipeline/data/sdxl_accel_refs.safetensors (+ .json), the images (NAME.image: output_type="pt", B x 3 x 64 x
64 in [0, 1]) and final latents (NAME.final_latents, from callback_on_step_end) of each run below, made with the methods' own Python packages on the committed folder
tests/pipeline/data/tiny-sdxl (tools/refs/make_sdxl_refs.py made it), float32 on the CPU: the 2 prompts of
sdxl_refs.json, one torch.Generator('cpu') seeded 42, 64x64, guidance 5.0, 10 steps, Euler (the folder's
scheduler) unless the run name starts with ddim10 (DDIMScheduler.from_config(config, clip_sample=False)).
A fresh pipeline is loaded for every run, so no patch outlives its run.

  euler10.deepcache_i3_b0, euler10.deepcache_i2_b3, ddim10.deepcache_i3_b0
        DeepCache's DeepCacheSDHelper(pipe).set_params(cache_interval, cache_branch_id); enable()
  euler10.tome_r0.5_default, euler10.tome_r0.5_md2, euler10.tome_r0.5_md4
        tomesd.apply_patch(pipe, ratio=0.5, use_rand=False, max_downsample=1 (tomesd's default), 2, 4).
        SDXL's first down block has no attention, so its least downsampled transformer blocks sit at 2x:
        with tomesd's default max_downsample=1 nothing is merged (the JSON's "tome_merges" counts, per run,
        the transformer-block calls in which tomesd's compute_merge merged tokens: 0 for the default).
  euler10.tgate_g4_sp2_fi1_w1
        tgate's TgateSDXLLoader(pipe).tgate(..., gate_step=4, sp_interval=2, fi_interval=1, warm_up=1). After
        the gate step it runs one branch with the *negative* prompt's embeddings and, as SDXL's added
        conditioning, the negative pooled embedding (zeros here: force_zeros_for_empty_prompt) and time ids.
  euler10.tgate_deepcache_g4
        tgate's TgateSDXLDeepCacheLoader(pipe, cache_interval=3, cache_branch_id=0).tgate(..., gate_step=4)
        (its other arguments at their defaults: sp_interval 5, fi_interval 1, warm_up 2).

How it was made (diffusers 0.42.1, transformers 5.24, torch 2.11 CPU; DeepCache 0.1.1, tomesd 0.1.3,
tgate 1.0.0 installed from PyPI with --no-deps, as they pin other torch versions):
    OMP_NUM_THREADS=1 PYTHONPATH=DEPS python tools/refs/make_sdxl_accel_refs.py tests/pipeline/data
"""
import json
import os
import sys

import torch
import diffusers
import tomesd
import tomesd.patch
import transformers
from diffusers import DDIMScheduler, StableDiffusionXLPipeline
from safetensors.torch import save_file

data = sys.argv[1]
torch.set_num_threads(1)
model_dir = os.path.join(data, "tiny-sdxl")
meta = json.load(open(os.path.join(data, "sdxl_refs.json")))
prompts = meta["prompts"]
common = dict(num_inference_steps=10, guidance_scale=5.0, output_type="pt")


def fresh(ddim=False):
    pipe = StableDiffusionXLPipeline.from_pretrained(model_dir, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    if ddim:
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False)
    return pipe


def gen():
    return torch.Generator("cpu").manual_seed(42)


def keep_last(name):
    """callback_on_step_end that records the latents after each step: NAME.final_latents is the last."""
    def on_step(p, i, t, k):
        tensors[name + ".final_latents"] = k["latents"].detach().clone().contiguous()
        return k
    return dict(callback_on_step_end=on_step)


tensors, merges = {}, {}


def deepcache(name, interval, branch, ddim=False):
    from DeepCache import DeepCacheSDHelper
    pipe = fresh(ddim)
    helper = DeepCacheSDHelper(pipe=pipe)
    helper.set_params(cache_interval=interval, cache_branch_id=branch)
    helper.enable()
    with torch.no_grad():
        tensors[name + ".image"] = pipe(prompts, generator=gen(), **common, **keep_last(name)).images.float().contiguous()
    helper.disable()


def tome(name, max_downsample):
    pipe = fresh()
    count = [0]
    original = tomesd.merge.bipartite_soft_matching_random2d

    def counting(*args, **kw):
        m, u = original(*args, **kw)
        if m is not tomesd.merge.do_nothing:
            count[0] += 1
        return m, u

    tomesd.patch.merge.bipartite_soft_matching_random2d = counting
    tomesd.apply_patch(pipe, ratio=0.5, use_rand=False, max_downsample=max_downsample)
    with torch.no_grad():
        tensors[name + ".image"] = pipe(prompts, generator=gen(), **common, **keep_last(name)).images.float().contiguous()
    tomesd.remove_patch(pipe)
    tomesd.patch.merge.bipartite_soft_matching_random2d = original
    merges[name] = count[0]


def tgate(name, **kw):
    from tgate import TgateSDXLLoader
    pipe = TgateSDXLLoader(fresh())
    with torch.no_grad():
        tensors[name + ".image"] = pipe.tgate(prompts, generator=gen(), **common, **keep_last(name), **kw).images.float().contiguous()


def tgate_deepcache(name, **kw):
    from tgate import TgateSDXLDeepCacheLoader
    pipe = TgateSDXLDeepCacheLoader(fresh(), cache_interval=3, cache_branch_id=0)
    with torch.no_grad():
        tensors[name + ".image"] = pipe.tgate(prompts, generator=gen(), **common, **keep_last(name), **kw).images.float().contiguous()


with torch.no_grad():
    name = "euler10"
    tensors["euler10.image"] = fresh()(prompts, generator=gen(), **common, **keep_last(name)).images.float().contiguous()
deepcache("euler10.deepcache_i3_b0", 3, 0)
deepcache("euler10.deepcache_i2_b3", 2, 3)
deepcache("ddim10.deepcache_i3_b0", 3, 0, ddim=True)
tome("euler10.tome_r0.5_default", 1)
tome("euler10.tome_r0.5_md2", 2)
tome("euler10.tome_r0.5_md4", 4)
tgate("euler10.tgate_g4_sp2_fi1_w1", gate_step=4, sp_interval=2, fi_interval=1, warm_up=1)
tgate_deepcache("euler10.tgate_deepcache_g4", gate_step=4)

save_file(tensors, os.path.join(data, "sdxl_accel_refs.safetensors"))
versions = {"torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__}
for pkg in ("DeepCache", "tomesd", "tgate"):
    from importlib.metadata import version
    versions[pkg] = version(pkg)
json.dump({"prompts": prompts, "seed": 42, "height": 64, "width": 64, "guidance": 5.0, "steps": 10,
           "tome_merges": merges, "versions": versions, "made_by": "tools/refs/make_sdxl_accel_refs.py"},
          open(os.path.join(data, "sdxl_accel_refs.json"), "w"), indent=1)
for k, v in tensors.items():
    base = tensors["euler10." + k.split(".")[-1]]
    print(k, tuple(v.shape), float((v - base).abs().max()))
print(merges)
