#!/usr/bin/env bash
# Issue 21's denoiser table on a GPU machine: `diffbench bench` for baseline, DeepCache (3, 0), ToMe 0.5 and
# T-GATE (gate step 10) at batch 1 and 4, the baseline and ToMe 0.5 at 1024², with UNFUSED=1 the baseline
# with the fused attention projections off (DIFFBENCH_FUSED_QKV=0), an eager batch-1 profile summed by
# kernel and one of ToMe 0.5 at 1024² (PROFILE_OUT gets the summaries). Random SD 1.5-topology fp16
# weights, 50 PNDM steps, guidance 7.5. When WORK_DIR has no baseline.toml yet (tools/gpu-loading.sh
# leaves one), it builds diffbench (tools/gpu-build.sh) and makes the weights and the specs itself
# (tools/gpu-sd15-specs.sh), so one device call gives the table. Diffusers beside it, in the same call
# (tools/py-denoiser-bench.py: eager diffusers, DeepCache, tomesd on the same weights), when python3 can
# import diffusers or PY_WHEELS (default .whl/) holds the wheels it lacks (diffusers, DeepCache, tomesd,
# importlib_metadata: carry the folder); PY=0 skips that.
#   tools/gpu-denoiser.sh WORK_DIR [PROFILE_OUT]   (summary lines start with "==")
set -uo pipefail
work=${1:?usage: $0 WORK_DIR [PROFILE_OUT]}
prof=${2:-$work}
cd "$(dirname "$0")/.."
B=$PWD/build-gpu/bin/diffbench
if [ ! -f "$work/baseline.toml" ]; then
  mkdir -p "$work"
  t0=$(date +%s)
  TARGETS="diffbench_cli" tools/gpu-build.sh build-gpu >"$work/build.log" 2>&1 ||
    { tail -30 "$work/build.log"; exit 1; }
  echo "== build $(( $(date +%s) - t0 )) s"
  tools/gpu-sd15-specs.sh "$B" "$work" || exit 1
fi
echo "== device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"
bench() {  # bench LABEL SPEC BATCH RUNS [ENV=VALUE...]
  local label=$1 spec=$2 bs=$3 runs=$4; shift 4
  env "$@" $B bench "$work/$spec.toml" --batch-size "$bs" --runs "$runs" --warmup 1 --json >"$work/b.json" 2>"$work/err.txt" ||
    { echo "== $label batch $bs failed: $(tail -3 "$work/err.txt")"; return; }
  tools/bench-line.py "$work/b.json" "$label"
}
for bs in 1 4; do
  runs=5; [ "$bs" = 4 ] && runs=3
  bench baseline baseline "$bs" "$runs"
  [ "${UNFUSED:-0}" = 1 ] && bench "baseline unfused-qkv" baseline "$bs" "$runs" DIFFBENCH_FUSED_QKV=0
  bench "deepcache 3,0" deepcache "$bs" "$runs"
  bench "tome 0.5" tome "$bs" "$runs"
  bench "tgate 10" tgate "$bs" "$runs"
done
bench "baseline 1024" baseline1024 1 3
[ "${UNFUSED:-0}" = 1 ] && bench "baseline 1024 unfused" baseline1024 1 3 DIFFBENCH_FUSED_QKV=0
bench "tome 0.5 1024" tome1024 1 3
# Eager batch-1 profile (graphs off so kernels are traced one by one): GPU time by kernel name.
profiles=on; [ "${UNFUSED:-0}" = 1 ] && profiles="on off"
for f in $profiles; do
  v=1; [ $f = off ] && v=0
  DIFFBENCH_FUSED_QKV=$v $B bench "$work/baseline.toml" --batch-size 1 --runs 1 --warmup 1 --no-cuda-graphs \
    --profile "$work/trace-$f.json" --json >/dev/null 2>&1 || { echo "== profile $f failed"; continue; }
  tools/trace-kernels.py "$work/trace-$f.json" "fused qkv $f" >"$prof/kernels-b1-$f.txt"
  head -1 "$prof/kernels-b1-$f.txt" | sed 's/^/== profile /'
  python3 tools/trace-ops.py "$work/trace-$f.json" "" 30 >"$prof/ops-b1-$f.txt" 2>&1 || true
  rm -f "$work/trace-$f.json"
done
# ToMe 0.5 at 1024², eager, by kernel: where the merge's own kernels stand against the attention's.
if $B bench "$work/tome1024.toml" --batch-size 1 --runs 1 --warmup 1 --no-cuda-graphs \
  --profile "$work/trace-tome.json" --json >/dev/null 2>&1; then
  tools/trace-kernels.py "$work/trace-tome.json" "tome 0.5 1024" 60 >"$prof/kernels-tome1024.txt"
  head -1 "$prof/kernels-tome1024.txt" | sed 's/^/== profile /'
else
  echo "== profile tome 1024 failed"
fi
rm -f "$work/trace-tome.json"
# The Python stack on the same weights, eager diffusers (0 = skip).
if [ "${PY:-1}" != 0 ]; then
  wheels=${PY_WHEELS:-.whl}
  if ! python3 -c 'import diffusers' 2>/dev/null && ls "$wheels"/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$work/site" \
      "$wheels"/*.whl >"$work/pip.log" 2>&1 && export PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  if python3 -c 'import diffusers' 2>/dev/null; then
    echo "== python: diffusers $(python3 -c 'import diffusers; print(diffusers.__version__)'), torch $(python3 -c \
      'import torch; print(torch.__version__)')"
    python3 tools/py-denoiser-bench.py "$work/sd15" 2>"$work/py.err" | sed 's/^/== /' ||
      echo "== python bench failed: $(tail -3 "$work/py.err")"
  else
    echo "== python: no diffusers (and no wheels in $wheels), skipped"
  fi
fi
