#!/usr/bin/env bash
# The weights and pipeline specs the tools/gpu-*.sh measurements share: random SD 1.5-topology fp16 weights
# (`diffbench init-random`, the tokenizer folder TOKENIZER_DIR, the bundled one by default) in WORK_DIR/sd15,
# and in WORK_DIR the specs baseline.toml (512², 50 PNDM steps, guidance 7.5, fp16, CUDA), deepcache.toml
# (3, 0), tome.toml (0.5), tgate.toml (gate step 10), baseline1024.toml / tome1024.toml at 1024², and fp8.toml /
# fp8-1024.toml (the baselines with dtype fp8: the UNet's token GEMMs in e4m3).
#   tools/gpu-sd15-specs.sh DIFFBENCH_BIN WORK_DIR [TOKENIZER_DIR]
set -euo pipefail
bin=${1:?usage: $0 DIFFBENCH_BIN WORK_DIR [TOKENIZER_DIR]}
work=${2:?usage: $0 DIFFBENCH_BIN WORK_DIR [TOKENIZER_DIR]}
tok=${3:-$(dirname "$0")/../assets/clip-tokenizer}
mkdir -p "$work"
rm -rf "$work/sd15"
"$bin" init-random --arch sd15 --tokenizer "$tok" --weights-dtype fp16 --out "$work/sd15" >/dev/null 2>&1 ||
  { echo "gpu-sd15-specs: init-random failed" >&2; exit 1; }
spec() {  # spec NAME SIZE [ACCELERATE LINES...]
  local name=$1 size=$2; shift 2
  {
    printf '[pipeline]\nmodel = "%s"\nsteps = 50\nguidance = 7.5\n' "$work/sd15"
    printf 'height = %s\nwidth = %s\ndtype = "fp16"\ndevice = "cuda"\n' "$size" "$size"
    if [ $# -gt 0 ]; then printf '[[accelerate]]\n'; printf '%s\n' "$@"; fi
  } >"$work/$name.toml"
}
spec baseline 512
spec deepcache 512 'method = "deepcache"' 'cache_interval = 3' 'cache_branch_id = 0'
spec tome 512 'method = "tome"' 'ratio = 0.5'
spec tgate 512 'method = "tgate"' 'gate_step = 10'
spec baseline1024 1024
spec tome1024 1024 'method = "tome"' 'ratio = 0.5'
sed 's/^dtype = "fp16"$/dtype = "fp8"/' "$work/baseline.toml" >"$work/fp8.toml"
sed 's/^dtype = "fp16"$/dtype = "fp8"/' "$work/baseline1024.toml" >"$work/fp8-1024.toml"
