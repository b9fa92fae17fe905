"""The Python stack's side of issue 17's end-to-end table, on a GPU machine (tools/gpu-loading.sh runs it).

  python3 tools/py-loading-bench.py make-vitg DIR TOKENIZER_DIR   # random-weight open_clip ViT-g-14 folder (float32 file)
  python3 tools/py-loading-bench.py load SD_DIR                   # UNet file -> GPU, whole pipeline -> GPU
  python3 tools/py-loading-bench.py generate SD_DIR OUT.png       # one prompt, 50 steps, 512x512 (time the process)
  python3 tools/py-loading-bench.py score VITG_DIR IMAGES_DIR N   # build ViT-g-14 + load, then score N images
  python3 tools/py-loading-bench.py protocol SD_DIR VITG_DIR PROMPTS_JSONL OUT_DIR  # the evaluation protocol

Needs torch, safetensors, diffusers and open_clip_torch (and DeepCache for `protocol`). Timings are printed as `name seconds`.
"""
import json
import os
import shutil
import sys
import time


def now():
    import torch
    torch.cuda.synchronize()
    return time.perf_counter()


def make_vitg(out, tokenizer):
    import open_clip
    import torch
    from safetensors.torch import save_file
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-g-14", pretrained=None, device="cuda")  # open_clip's own random init
    os.makedirs(out, exist_ok=True)
    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(out, "open_clip_model.safetensors"))
    cfg = {"model_cfg": open_clip.get_model_config("ViT-g-14"),
           "preprocess_cfg": {"mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD),
                              "interpolation": "bicubic", "resize_mode": "shortest"}}
    with open(os.path.join(out, "open_clip_config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    for name in ("vocab.json", "merges.txt", "bpe_simple_vocab_16e6.txt.gz"):  # either layout diffbench reads
        if os.path.exists(os.path.join(tokenizer, name)):
            shutil.copy(os.path.join(tokenizer, name), out)


def load(sd_dir):
    import torch
    from safetensors.torch import load_file
    torch.zeros(1, device="cuda")  # CUDA context first, as diffbench's numbers exclude it too
    unet = os.path.join(sd_dir, "unet", "diffusion_pytorch_model.safetensors")
    for i in range(2):
        t0 = now()
        sd = load_file(unet, device="cuda")
        print(f"py_unet_load_file_cuda_{i} {now() - t0:.3f}")
        del sd
    from diffusers import StableDiffusionPipeline
    for i in range(2):
        t0 = now()
        pipe = StableDiffusionPipeline.from_pretrained(sd_dir, torch_dtype=torch.float16, safety_checker=None).to("cuda")
        print(f"py_pipeline_from_pretrained_cuda_{i} {now() - t0:.3f}")
        del pipe


def generate(sd_dir, out_png):
    t_start = time.perf_counter()
    import torch
    from diffusers import StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(sd_dir, torch_dtype=torch.float16, safety_checker=None).to("cuda")
    t_loaded = now()
    g = torch.Generator("cuda").manual_seed(42)
    image = pipe("A man is in a kitchen making pizzas.", num_inference_steps=50, guidance_scale=7.5,
                 height=512, width=512, generator=g).images[0]
    t_gen = now()
    image.save(out_png)
    print(f"py_generate_in_process imports+load {t_loaded - t_start:.3f} generation {t_gen - t_loaded:.3f}")


def score(vitg_dir, images_dir, n):
    import open_clip
    import torch
    from PIL import Image
    from safetensors.torch import load_file
    t0 = time.perf_counter()
    cfg = json.load(open(os.path.join(vitg_dir, "open_clip_config.json")))
    model = open_clip.create_model("ViT-g-14", pretrained=None)  # random init on the CPU, as open_clip builds it
    t1 = time.perf_counter()
    model.load_state_dict(load_file(os.path.join(vitg_dir, "open_clip_model.safetensors")))
    model = model.half().cuda().eval()
    t2 = now()
    preprocess = open_clip.image_transform(224, is_train=False)
    tok = open_clip.get_tokenizer("ViT-g-14")
    files = sorted(os.listdir(images_dir))[:n]
    prompts = ["A man is in a kitchen making pizzas."] * len(files)
    with torch.no_grad():
        imgs = torch.stack([preprocess(Image.open(os.path.join(images_dir, f)).convert("RGB")) for f in files]).half().cuda()
        fi = model.encode_image(imgs).float()
        ft = model.encode_text(tok(prompts).cuda()).float()
        s = 100 * (fi / fi.norm(dim=-1, keepdim=True) * ft / ft.norm(dim=-1, keepdim=True)).sum(-1)
    t3 = now()
    print(f"py_vitg_build_random_init {t1 - t0:.3f} load_to_gpu_fp16 {t2 - t1:.3f} score_{len(files)} {t3 - t2:.3f} (mean {s.mean().item():.2f}) config_width {cfg['model_cfg']['vision_cfg']['width']}")


def protocol(sd_dir, vitg_dir, prompts_file, out):
    """What `diffbench eval deepcache.toml --baseline sd15.toml --num-samples 32 --batch-size 4 --clip vitg` does,
    written as a user of the Python stack would: the first caption of the first 32 COCO images, batch 4, seed 42,
    50 PNDM steps, baseline then DeepCache (3, 0), every image saved as a PNG and CLIP-scored by ViT-g-14."""
    t_start = time.perf_counter()
    import open_clip
    import torch
    from DeepCache import DeepCacheSDHelper
    from diffusers import StableDiffusionPipeline
    from PIL import Image
    from safetensors.torch import load_file
    prompts = [json.loads(line)["prompt"] for line in open(prompts_file) if line.strip()][:32]
    t = {"imports": time.perf_counter() - t_start}
    t0 = time.perf_counter()
    pipe = StableDiffusionPipeline.from_pretrained(sd_dir, torch_dtype=torch.float16, safety_checker=None).to("cuda")
    pipe.set_progress_bar_config(disable=True)
    t["pipeline_load"] = now() - t0
    t0 = time.perf_counter()
    model = open_clip.create_model("ViT-g-14", pretrained=None)  # random init on the CPU, as open_clip builds it
    model.load_state_dict(load_file(os.path.join(vitg_dir, "open_clip_model.safetensors")))
    model = model.half().cuda().eval()
    preprocess = open_clip.image_transform(224, is_train=False)
    tok = open_clip.get_tokenizer("ViT-g-14")
    t["scorer_build_and_load"] = now() - t0

    def run(name):
        os.makedirs(os.path.join(out, name), exist_ok=True)
        g = torch.Generator("cuda").manual_seed(42)
        images, t0 = [], now()
        for i in range(0, len(prompts), 4):
            images += pipe(prompts[i:i + 4], num_inference_steps=50, guidance_scale=7.5, height=512, width=512,
                           generator=g).images
        t[name + "_generation"] = now() - t0
        t0 = time.perf_counter()
        for i, im in enumerate(images):
            im.save(os.path.join(out, name, "%06d.png" % i))
        t[name + "_pngs"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with torch.no_grad():
            clip = []
            for i in range(0, len(images), 4):
                x = torch.stack([preprocess(im) for im in images[i:i + 4]]).half().cuda()
                fi = model.encode_image(x).float()
                ft = model.encode_text(tok(prompts[i:i + 4]).cuda()).float()
                clip += (100 * (fi / fi.norm(dim=-1, keepdim=True) * ft / ft.norm(dim=-1, keepdim=True)).sum(-1)).tolist()
        t[name + "_clip"] = now() - t0
        return sum(clip) / len(clip)

    base = run("baseline")
    helper = DeepCacheSDHelper(pipe=pipe)
    helper.set_params(cache_interval=3, cache_branch_id=0)
    helper.enable()
    cand = run("deepcache")
    t["total_in_process"] = time.perf_counter() - t_start
    print("py_protocol " + " ".join("%s %.2f" % kv for kv in t.items()) + " clip %.3f %.3f speedup %.3f" % (
        base, cand, t["baseline_generation"] / t["deepcache_generation"]))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make-vitg":
        make_vitg(sys.argv[2], sys.argv[3])
    elif cmd == "load":
        load(sys.argv[2])
    elif cmd == "generate":
        generate(sys.argv[2], sys.argv[3])
    elif cmd == "score":
        score(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "protocol":
        protocol(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
