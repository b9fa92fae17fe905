"""The Python stack's side of issue 21's denoiser table, in the same device call as diffbench's
(tools/gpu-denoiser.sh runs it when diffusers can be imported or wheels are given).

  python3 tools/py-denoiser-bench.py SD_DIR [--cases CASES] [--steps 50] [--device cuda] [--dtype fp16]

SD_DIR: a diffusers-layout SD 1.x folder (`diffbench init-random` writes one). CASES: comma-separated
METHOD:BATCH:SIZE:RUNS, METHOD one of baseline, deepcache (interval 3, branch 0, the DeepCache package),
tome (ratio 0.5, tomesd's defaults); default: the table's rows. Each case: one warm-up generation,
then RUNS timed ones (device-synchronised, eager diffusers, PNDM, guidance 7.5, the first demo prompt
repeated BATCH times, output_type "pil"); one line per case:
  py METHOD SIZE batch BATCH: MEDIAN s/batch median (min MIN, max MAX; RUNS runs)
Needs torch, diffusers and transformers, and DeepCache / tomesd for those cases.
"""
import argparse
import statistics
import time

DEFAULT_CASES = ("baseline:1:512:5,baseline:4:512:3,deepcache:1:512:5,deepcache:4:512:3,tome:1:512:5,tome:4:512:3,"
                 "baseline:1:1024:3,tome:1:1024:3")
PROMPT = "A man is in a kitchen making pizzas."


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sd_dir")
    ap.add_argument("--cases", default=DEFAULT_CASES)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="fp16", choices=("fp16", "fp32"))
    args = ap.parse_args()

    import torch
    from diffusers import StableDiffusionPipeline

    dtype = torch.float16 if args.dtype == "fp16" else torch.float32
    pipe = StableDiffusionPipeline.from_pretrained(args.sd_dir, torch_dtype=dtype, safety_checker=None,
                                                   requires_safety_checker=False).to(args.device)
    pipe.set_progress_bar_config(disable=True)

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    def generate(batch, size):
        g = torch.Generator(args.device).manual_seed(42)
        pipe([PROMPT] * batch, num_inference_steps=args.steps, guidance_scale=7.5, height=size, width=size,
             generator=g, output_type="pil")

    for case in args.cases.split(","):
        method, batch, size, runs = case.split(":")
        batch, size, runs = int(batch), int(size), int(runs)
        undo = None
        if method == "deepcache":
            from DeepCache import DeepCacheSDHelper
            helper = DeepCacheSDHelper(pipe=pipe)
            helper.set_params(cache_interval=3, cache_branch_id=0)
            helper.enable()
            undo = helper.disable
        elif method == "tome":
            import tomesd
            tomesd.apply_patch(pipe, ratio=0.5)
            undo = lambda: tomesd.remove_patch(pipe)  # noqa: E731
        elif method != "baseline":
            raise SystemExit(f"py-denoiser-bench: unknown method {method!r} in --cases")
        try:
            generate(batch, size)  # warm-up
            times = []
            for _ in range(runs):
                sync()
                t0 = time.perf_counter()
                generate(batch, size)
                sync()
                times.append(time.perf_counter() - t0)
        finally:
            if undo:
                undo()
        print(f"py {method} {size} batch {batch}: {statistics.median(times):.4f} s/batch median "
              f"(min {min(times):.4f}, max {max(times):.4f}; {runs} runs)", flush=True)


if __name__ == "__main__":
    main()
