#!/usr/bin/env bash
# The issue's benchmark table in one go, on a GPU machine: prints the device, builds diffbench with the
# CUDA kernels (tools/gpu-build.sh) plus the pipeline tests, runs the fast-path PSNR tests (needs the
# tiny-sd fixtures under $DIFFBENCH_SHARED/fixtures), makes random SD1.5-topology fp16 weights and times
# baseline, DeepCache (3, 0), ToMe 0.5 and T-GATE (gate step 10) at batch 1 and 4 with `diffbench bench`.
#   tools/gpu-bench.sh CLIP_TOKENIZER_DIR [WORK_DIR]
set -uo pipefail
tok=${1:?usage: $0 CLIP_TOKENIZER_DIR [WORK_DIR]}
work=${2:-/tmp/diffbench-gpu-bench}
cd "$(dirname "$0")/.."
echo "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"
t0=$(date +%s)
TESTS=ON TARGETS="diffbench_cli test_pipeline" tools/gpu-build.sh build-gpu >"$work.build.log" 2>&1 ||
  { tail -20 "$work.build.log"; exit 1; }
echo "build $(( $(date +%s) - t0 )) s"
B=build-gpu/bin/diffbench
if [ -n "${DIFFBENCH_SHARED:-}" ]; then
  build-gpu/bin/test_pipeline --gtest_filter='FastPath*' 2>&1 | grep -E "PSNR|OK \]|FAILED|Failure"
fi
mkdir -p "$work"
tools/gpu-sd15-specs.sh "$B" "$work" "$tok" || exit 1
for s in baseline deepcache tome tgate; do
  for bs in 1 4; do
    runs=5; [ "$bs" = 4 ] && runs=3
    $B bench "$work/$s.toml" --batch-size "$bs" --runs "$runs" --warmup 1 --json >"$work/$s-bs$bs.json" 2>"$work/err.txt" ||
      { echo "$s batch $bs failed: $(tail -3 "$work/err.txt")"; continue; }
    tools/bench-line.py "$work/$s-bs$bs.json" "$s"
  done
done
