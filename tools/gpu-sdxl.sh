#!/usr/bin/env bash
# Issue 19's SDXL timing on a GPU machine, diffbench and diffusers side by side in one run: builds diffbench
# (tools/gpu-build.sh), makes a random-weight SDXL-base-topology fp16 folder with diffusers
# (tools/py-sdxl-bench.py make), then times one prompt at 1024x1024, 30 Euler steps, guidance 5.0, fp16, batch 1:
# `diffbench bench` (CUDA graphs), diffusers eager and diffusers with the UNet under torch.compile.
#   tools/gpu-sdxl.sh [WHEEL_DIR] [WORK_DIR]   (summary lines start with "=="; wheels: diffusers and its
#   pure-Python dependencies, installed first when the machine lacks diffusers)
set -uo pipefail
wheels=${1:-.whl}
work=${2:-/tmp/diffbench-sdxl}
cd "$(dirname "$0")/.."
echo "== device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader), $(nproc) cores"
python3 -c 'import diffusers' 2>/dev/null || python3 -m pip install -q --no-deps "$wheels"/*.whl >/dev/null 2>&1 ||
  python3 -m pip install -q --no-deps --break-system-packages "$wheels"/*.whl >/dev/null
mkdir -p "$work"
t0=$(date +%s)
python3 tools/clip-tokenizer-files.py assets/clip-tokenizer/bpe_simple_vocab_16e6.txt.gz "$work/tok" >/dev/null || exit 1
[ -d "$work/sdxl" ] || python3 tools/py-sdxl-bench.py make "$work/sdxl" "$work/tok" >"$work/make.log" 2>&1 &
made=$!
TARGETS="diffbench_cli" tools/gpu-build.sh build-gpu >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; exit 1; }
echo "== build $(( $(date +%s) - t0 )) s"
wait $made || { tail -5 "$work/make.log"; exit 1; }
grep parameters "$work/make.log" | sed 's/^/== /'
B=$PWD/build-gpu/bin/diffbench
cat "$work"/sdxl/*/*.safetensors >/dev/null
printf '[pipeline]\nmodel = "%s"\nsteps = 30\nguidance = 5.0\nheight = 1024\nwidth = 1024\ndtype = "fp16"\ndevice = "cuda"\n' \
  "$work/sdxl" >"$work/sdxl.toml"
$B bench "$work/sdxl.toml" --batch-size 1 --runs 5 --warmup 2 --json >"$work/bench.json" 2>"$work/bench.err" ||
  { tail -5 "$work/bench.err"; exit 1; }
python3 -c "import json,sys;j=json.load(open(sys.argv[1]));print('== diffbench sdxl batch 1: %.4f s/image median (p90 %.4f), first generation %.2f s, load %.2f s' % (j['seconds_per_image']['median'], j['seconds_per_image']['p90'], j['first_generation_s'], j['load_s']))" "$work/bench.json"
python3 tools/py-sdxl-bench.py time "$work/sdxl" 2>&1 | grep "^py_" | sed 's/^/== /'
timeout 300 python3 tools/py-sdxl-bench.py time "$work/sdxl" compile 2>&1 | grep "^py_" | sed 's/^/== /'
