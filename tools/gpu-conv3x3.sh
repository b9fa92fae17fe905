#!/usr/bin/env bash
# The split-K 3×3 convolution of issue 21's round 13 (tools/conv3x3/) against cuDNN
# on the device: builds it with nvcc for sm_90a and runs bench.py (errors, then µs per call). Needs only
# python3 with torch and nvcc; no build of diffbench. Usage (device): tools/gpu-conv3x3.sh   (lines start "==")
set -euo pipefail
cd "$(dirname "$0")/conv3x3"
out=${TMPDIR:-/tmp}/libconv3x3.so
nvcc -O3 -gencode arch=compute_90a,code=sm_90a -shared -Xcompiler -fPIC -o "$out" launch.cu
python3 bench.py "$out"
