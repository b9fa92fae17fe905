#!/usr/bin/env bash
# The head-dim-40 attention experiments of issue 21's round 11 (tools/attention-hd40/, docs/performance.md)
# on the device: builds them with nvcc for sm_90a and runs bench.py (errors against LibTorch's SDPA in
# float, then microseconds per call beside cuDNN's). Needs only python3 with torch and nvcc; no build of
# diffbench. Usage (device): tools/gpu-attention-hd40.sh [--timing-only] [--only 41,54,...]   (lines start "==")
set -euo pipefail
cd "$(dirname "$0")/attention-hd40"
out=${TMPDIR:-/tmp}/libhd40.so
nvcc -O3 -gencode arch=compute_90a,code=sm_90a -shared -Xcompiler -fPIC -o "$out" launch.cu
python3 bench.py "$out" "$@"
