#!/usr/bin/env bash
# Issue 21's GEMM probe (tools/gemm-lt/bench.cu) on the device: what LibTorch runs against the fastest of
# cuBLASLt's first 16 algorithms for SD 1.5's GEMMs (1, 2, 8 images a call), with the cuBLAS(Lt) LibTorch loads
# (the PyPI wheel's, found beside torch). Needs nvcc and python3 with torch.
# Usage: tools/gpu-gemm-lt.sh [--after-producer] [--in-graph]   (the probe's output: stdout; make-table.py
# reads it)
set -euo pipefail
cd "$(dirname "$0")/gemm-lt"
out=${TMPDIR:-/tmp}/gemm-lt
nvcc -O2 -o "$out" bench.cu -lcublasLt -lcublas
site=$(python3 -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')
lib=$(dirname "$(find "$site/nvidia" -name 'libcublasLt.so*' | head -1)")
LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$out" "$@"
