#!/usr/bin/env python3
"""SD 1.5's 3x3 convolutions (channels-last fp16, padding 1) on a GPU, each timed as a CUDA graph of 20
calls (median of 5 replays, microseconds per call), at batch 2 and 8 (one and four images with guidance):
cuDNN as LibTorch calls it (heuristic choice), cuDNN with benchmark mode, cuDNN without the bias, and
the convolution as im2col (pad + 9 shifted slices concatenated) and a cuBLAS GEMM with the bias (addmm),
with the GEMM alone beside it. Issue 21's question: would anything beat cuDNN's convolutions?

  python3 tools/py-conv-probe.py          (needs torch with CUDA)
"""
import statistics

import torch
import torch.nn.functional as F

DEV = "cuda"
SHAPES = [(320, 320, 64), (640, 320, 64), (960, 320, 64), (320, 640, 32), (640, 640, 32), (1280, 640, 32),
          (960, 640, 32), (640, 1280, 16), (1280, 1280, 16), (2560, 1280, 16), (1920, 1280, 16), (1280, 1280, 8),
          (2560, 1280, 8)]


def graph_time(fn, reps=20):
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(reps):
            fn()
    times = []
    for _ in range(5):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) / reps * 1000)
    return statistics.median(times)


def im2col(x):  # [N,C,H,W] channels-last -> [N*H*W, 9*C], columns in (kh, kw, c) order
    n, c, h, w = x.shape
    p = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 1, 1, 1))
    return torch.cat([p[:, i:i + h, j:j + w, :] for i in range(3) for j in range(3)], dim=3).reshape(n * h * w, 9 * c)


def main():
    print("batch cin->cout size: cuDNN | cuDNN benchmark | cuDNN no bias | im2col+GEMM (GEMM alone) | max|diff| (us)")
    for n in (2, 8):
        for cin, cout, hw in SHAPES:
            x = torch.randn(n, cin, hw, hw, device=DEV, dtype=torch.half).contiguous(memory_format=torch.channels_last)
            w = (torch.randn(cout, cin, 3, 3, device=DEV, dtype=torch.half) * 0.02).contiguous(
                memory_format=torch.channels_last)
            b = torch.randn(cout, device=DEV, dtype=torch.half)
            wm = w.permute(0, 2, 3, 1).reshape(cout, 9 * cin)
            ref = F.conv2d(x, w, b, padding=1)
            y = torch.addmm(b, im2col(x), wm.t()).view(n, hw, hw, cout).permute(0, 3, 1, 2)
            err = (y.float() - ref.float()).abs().max().item()
            torch.backends.cudnn.benchmark = False
            heuristic = graph_time(lambda: F.conv2d(x, w, b, padding=1))
            no_bias = graph_time(lambda: F.conv2d(x, w, None, padding=1))
            torch.backends.cudnn.benchmark = True
            bench = graph_time(lambda: F.conv2d(x, w, b, padding=1))
            torch.backends.cudnn.benchmark = False
            gemm_path = graph_time(lambda: torch.addmm(b, im2col(x), wm.t()))
            cols = im2col(x)
            gemm = graph_time(lambda: torch.addmm(b, cols, wm.t()))
            print("N=%d %4d->%4d %2dx%2d  %6.1f | %6.1f | %6.1f | %6.1f (%6.1f) | %.3g" %
                  (n, cin, cout, hw, hw, heuristic, bench, no_bias, gemm_path, gemm, err))


if __name__ == "__main__":
    main()
