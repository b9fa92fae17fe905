#!/usr/bin/env python3
"""The head-dim-40 attention experiments (launch.cu) against LibTorch's SDPA on the GPU, in one process:
first each variant's error against SDPA in float (and cuDNN's, for scale), then microseconds per call
(median-free: the mean of 30 calls after 3 warm-up calls, CUDA events) beside cuDNN's and FlashAttention's.
Shapes: SD 1.5's first level (8 heads, 2 = batch 1 with guidance): 512², 512² batch 4, 1024², ToMe 0.5's
merged counts, cross-attention to 77 tokens, odd lengths.
Usage: bench.py LIBHD40_SO [--timing-only] [--only 41,54,...]   (tools/gpu-attention-hd40.sh runs it on the device;
--only: those wgmma variants alone, beside cuDNN and FlashAttention)"""
import ctypes
import math
import subprocess
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

lib = ctypes.CDLL(sys.argv[1])
timing_only = "--timing-only" in sys.argv
probe = int(sys.argv[sys.argv.index("--probe") + 1]) if "--probe" in sys.argv else None
L3 = ctypes.c_longlong * 3
MMA = {1: "mma2x4", 7: "mma2x4f32"}
WG = {1: "wg2", 28: "wg2s3tilepacked", 29: "wg2s4tilepacked", 31: "lean-f32exp", 32: "lean-f16exp",
      33: "tilepacked-f16exp", 36: "lean-f16exp-3blocks", 37: "lean-f16exp-s4", 38: "lean-f16exp-pingpong",
      39: "lean-f32exp-pingpong", 40: "tma-s3", 41: "tma-s3-summma", 42: "tma-s4-summma", 43: "tma-s2-summma",
      44: "tma-summma-poly4", 45: "tma-summma-poly8", 46: "pipe-2blocks", 47: "pipe-1block", 48: "pipe-s4",
      49: "pipe-3wg", 50: "pipe-3wg-s4", 51: "halfpipe-s3", 52: "halfpipe-s4",
      53: "halfpipe-qsmem", 54: "qsmem-2blocks", 55: "qsmem-3blocks", 56: "qsmem-1wg-4blocks",
      57: "qsmem-1wg-5blocks", 58: "tensor-maps", 59: "tensor-maps-swapv", 60: "lean", 61: "lean-lazy",
      62: "lean-lazy-s4", 63: "tensor-maps-lean-lazy", 64: "tensor-maps-swapv-lean-lazy"}
WG_TIMING = {12: "wg2-loadsonly", 17: "wg2-productsonly", 27: "tilepack-alone", 30: "wg2s3tilepacked-loadsonly",
             34: "lean-f16exp-noPV", 35: "lean-nosoftmax"}


def run(kind, variant, q, k, v, swap=0):
    b, h, lq, d = q.shape
    lk = k.shape[2]
    o = torch.empty(b, lq, h, d, device=q.device, dtype=q.dtype)
    strides = [L3(t.stride(0), t.stride(1), t.stride(2)) for t in (q, k, v)]
    strides.append(L3(o.stride(0), o.stride(2), o.stride(1)))
    ptrs = [ctypes.c_void_p(t.data_ptr()) for t in (q, k, v, o)]
    tail = [b, h, lq, lk, ctypes.c_float(1.4426950408889634 / math.sqrt(d)),
            ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)]
    if kind == "mma":
        rc = lib.hd40_mma(variant, *ptrs, *strides, *tail)
    else:
        # the transposed V, or (variants 27-) K and Vᵀ packed: 11 (12 with the ones row) · 128 bytes a 8 keys
        vt = torch.empty(b * h * 96 * ((lk + 63) // 64 * 64), device=q.device, dtype=q.dtype)
        rc = lib.hd40_wgmma(variant, swap, *ptrs, ctypes.c_void_p(vt.data_ptr()), *strides, *tail)
    if rc != 0:
        raise RuntimeError(f"{kind} {variant}: error {rc}")
    return o.transpose(1, 2)


def make(b, h, lq, lk, fused, spread=1.0):
    g = torch.Generator(device="cuda").manual_seed(0)
    if fused:  # q, k, v as views of one [B, N, 3, H, 40] projection, as diffbench's fused QKV leaves them
        qkv = (torch.randn(b, lq, 3, h, 40, device="cuda", generator=g) * spread).half()
        return [qkv.select(2, i).transpose(1, 2) for i in range(3)]
    q = (torch.randn(b, lq, h, 40, device="cuda", generator=g) * spread).half().transpose(1, 2)
    kv = (torch.randn(b, lk, 2, h, 40, device="cuda", generator=g) * spread).half()
    return [q, kv.select(2, 0).transpose(1, 2), kv.select(2, 1).transpose(1, 2)]


def micros(fn, reps=30):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps * 1000


def err(out, ref):
    e = (out.float() - ref).abs()
    return f"{e.max().item():.1e}/{e.mean().item():.1e}"


def attempt(fn):
    """fn()'s result, or "failed" where the variant does not launch (a launch error is not sticky)."""
    try:
        return fn()
    except RuntimeError as ex:
        return f"failed ({ex})"


CASES = [("odd 1000x333", 1, 3, 1000, 333, False), ("ToMe 512² 2048", 2, 8, 2048, 2048, True),
         ("cross 4096x77", 2, 8, 4096, 77, False), ("512² b1 4096", 2, 8, 4096, 4096, True),
         ("512² b4 4096", 8, 8, 4096, 4096, True), ("1024² b1 16384", 2, 8, 16384, 16384, True),
         ("ToMe 1024² 8192", 2, 8, 8192, 8192, True)]
if probe is not None:  # one small call of a variant, in a process of its own (see RISKY)
    q, k, v = make(1, 3, 1000, 333, False)
    run("wgmma", probe, q, k, v)
    torch.cuda.synchronize()
    sys.exit(0)
print(f"== {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
# Variants that synchronise warpgroups with named barriers could hang the GPU: each first runs once in a
# child process with a time limit, and is left out if that does not end well.
RISKY = tuple(range(38, 65))
if "--only" in sys.argv:
    only = {int(x) for x in sys.argv[sys.argv.index("--only") + 1].split(",")}
    MMA = {}
    WG = {i: n for i, n in WG.items() if i in only}
    WG_TIMING = {i: n for i, n in WG_TIMING.items() if i in only}
    RISKY = tuple(i for i in RISKY if i in only)
for i in RISKY:
    try:
        ok = subprocess.run([sys.executable, __file__, sys.argv[1], "--probe", str(i)], timeout=60).returncode == 0
    except subprocess.TimeoutExpired:
        ok = False
    if not ok:
        print(f"== variant {i} ({WG.pop(i, '?')}) left out: its trial call failed or did not end", flush=True)
if not timing_only:
    q, k, v = make(1, 3, 1000, 333, False)
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
    print("== descriptor probe (max/mean error; the layout is read right where it is small): " +
          " ".join(f"swap{s} {err(run('wgmma', 1, q, k, v, s), ref)}" for s in (0, 1)), flush=True)
    for name, b, h, lq, lk, fused in CASES:
        for spread in (1.0, 3.0) if b * lq <= 2 * 4096 else ():
            q, k, v = make(b, h, lq, lk, fused, spread)
            ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
            with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                line = [f"cudnn {err(F.scaled_dot_product_attention(q, k, v), ref)}"]
            line += [f"{n} {attempt(lambda: err(run('mma', i, q, k, v), ref))}" for i, n in MMA.items()]
            line += [f"{n} {attempt(lambda: err(run('wgmma', i, q, k, v), ref))}" for i, n in WG.items()]
            print(f"== error {name} spread {spread}: " + " ".join(line), flush=True)
for name, b, h, lq, lk, fused in CASES:
    q, k, v = make(b, h, lq, lk, fused)
    t = {}
    for backend, label in ((SDPBackend.CUDNN_ATTENTION, "cudnn"), (SDPBackend.FLASH_ATTENTION, "flash")):
        with sdpa_kernel(backend):
            t[label] = micros(lambda: F.scaled_dot_product_attention(q, k, v))
    for i, n in MMA.items():
        t[n] = attempt(lambda: micros(lambda: run("mma", i, q, k, v)))
    for i, n in {**WG, **WG_TIMING}.items():
        t[n] = attempt(lambda: micros(lambda: run("wgmma", i, q, k, v)))
    flops = 4 * b * h * lq * lk * 40
    print(f"== time {name} (us): " + " ".join(f"{n} {x:.1f}" if isinstance(x, float) else f"{n} {x}"
                                               for n, x in t.items()) +
          f"; cudnn {flops / t['cudnn'] / 1e6:.0f} TFLOP/s", flush=True)
