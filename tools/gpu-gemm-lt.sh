#!/usr/bin/env bash
# Issue 21's round-13 probe (tools/gemm-lt/bench.cu) on the device: cuBLASLt's heuristic first pick against
# the fastest of its first 16 algorithms for SD 1.5's batch-1 GEMMs, with the cuBLASLt that LibTorch loads
# (the PyPI wheel's, found beside torch). Needs nvcc and python3 with torch. Usage: tools/gpu-gemm-lt.sh
set -euo pipefail
cd "$(dirname "$0")/gemm-lt"
out=${TMPDIR:-/tmp}/gemm-lt
nvcc -O2 -o "$out" bench.cu -lcublasLt
site=$(python3 -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')
lib=$(dirname "$(find "$site/nvidia" -name 'libcublasLt.so*' | head -1)")
LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$out"
