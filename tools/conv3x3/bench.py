#!/usr/bin/env python3
"""The split-K 3×3 convolution (conv3x3.cuh, built by launch.cu) against LibTorch's (cuDNN) on
the GPU, channels-last half, SD 1.5's few-pixel shapes: first the error of each against the convolution in
float, then microseconds per call (the mean of 50 calls after 5, CUDA events; ours is two kernels: the
slices, then their sum) for several slice counts (split-K).
Usage: bench.py LIBCONV3X3_SO   (tools/gpu-conv3x3.sh runs it on the device)"""
import ctypes
import sys

import torch
import torch.nn.functional as F

lib = ctypes.CDLL(sys.argv[1])
CL = torch.channels_last
SHAPES = [  # batch (2 = one image with guidance), in channels, size, out channels
    (2, 1280, 8, 1280), (2, 2560, 8, 1280), (1, 1280, 8, 1280), (8, 1280, 8, 1280), (8, 2560, 8, 1280),
    (2, 1280, 16, 1280), (2, 2560, 16, 1280), (2, 640, 32, 640)]
SPLITS = (8, 10, 13, 16)
VARIANTS = {0: "plain", 1: "prefetch", 2: "rotate", 3: "both", 7: "both-nosum", 8: "wg", 11: "wg-both",
            15: "wg-both-nosum"}


def ours(x, w, splits, variant=3):
    b, c, h, wd = x.shape
    n = w.shape[0]
    y = torch.empty(b, n, h, wd, device="cuda", dtype=torch.half, memory_format=CL)
    ws = torch.empty(splits * b * h * wd * n, device="cuda", dtype=torch.float)
    rc = lib.conv3x3_run(ctypes.c_void_p(x.data_ptr()), ctypes.c_void_p(w.data_ptr()), ctypes.c_void_p(y.data_ptr()),
                         ctypes.c_void_p(ws.data_ptr()),
                         ctypes.c_longlong(x.stride(0)), ctypes.c_longlong(x.stride(2)), ctypes.c_longlong(x.stride(3)),
                         b, c, h, wd, n, splits, variant, ctypes.c_void_p(torch.cuda.current_stream().cuda_stream))
    if rc != 0:
        raise RuntimeError(f"conv3x3_run: {rc}")
    return y


def micros(fn, reps=50):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(reps):
        fn()
    e.record()
    torch.cuda.synchronize()
    return s.elapsed_time(e) / reps * 1000


print(f"== {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
torch.backends.cudnn.benchmark = False
for b, c, size, n in SHAPES:
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(b, c, size, size, device="cuda", generator=g).half().contiguous(memory_format=CL)
    w = (torch.randn(n, c, 3, 3, device="cuda", generator=g) / (3 * c ** 0.5)).half().contiguous(memory_format=CL)
    ref = F.conv2d(x.float(), w.float(), padding=1)
    scale = ref.abs().max().item()
    lib_y = F.conv2d(x, w, padding=1)
    errs = [f"cudnn {(lib_y.float() - ref).abs().max().item() / scale:.1e}"]
    for sp in (1, 8, 13):
        for v in (0, 3, 8, 11):
            y = ours(x, w, sp, v)
            same = torch.equal(y, ours(x, w, sp, v))
            errs.append(f"s{sp}v{v} {(y.float() - ref).abs().max().item() / scale:.1e}{'' if same else ' (not repeatable)'}")
    t = [f"cudnn {micros(lambda: F.conv2d(x, w, padding=1)):.1f}"]
    if b * size * size > 128:
        SPLITS_HERE, VARIANTS_HERE = (13,), {3: "both", 11: "wg-both"}
    else:
        SPLITS_HERE, VARIANTS_HERE = SPLITS, VARIANTS
    t += [f"{vn}-s{sp} {micros(lambda: ours(x, w, sp, v)):.1f}" for v, vn in VARIANTS_HERE.items() for sp in SPLITS_HERE]
    name = f"[{b}, {c}, {size}²] -> {n}"
    print(f"== {name}: max error / max |y|: " + " ".join(errs), flush=True)
    print(f"== {name} (us): " + " ".join(t), flush=True)
