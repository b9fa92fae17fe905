#!/usr/bin/env bash
# Whether the text encoder's CUDA graphs (on by default since this script passed; DIFFBENCH_TEXT_GRAPHS=0
# turns them off) are safe and pay, in one device call: builds diffbench (tools/gpu-build.sh), makes random
# SD 1.5-topology fp16 weights with the bundled tokenizer, then runs RUNS fresh `bench` processes of
# DeepCache (3, 0) at batch 1 (the case that once failed when the capture overlapped the other components'
# first calls) and of the baseline at batch 1 and 4 with the graphs on and off, printing each failure's
# whole error; `generate` both ways, comparing the PNGs; and the evaluation protocol (32 COCO prompts, batch
# 4, DeepCache against its baseline, the bundled demo CLIP scorer on its own thread) with the graphs on.
#   tools/gpu-text-graphs.sh [RUNS] [WORK_DIR]   (summary lines start with "==")
set -uo pipefail
runs=${1:-6}
work=${2:-/tmp/diffbench-text-graphs}
cd "$(dirname "$0")/.."
echo "== device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader), $(nproc) cores"
mkdir -p "$work"
t0=$(date +%s)
TARGETS="diffbench_cli" tools/gpu-build.sh build-gpu >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; exit 1; }
echo "== build $(( $(date +%s) - t0 )) s"
B=$PWD/build-gpu/bin/diffbench
tools/gpu-sd15-specs.sh "$B" "$work" || exit 1
for v in 1 0; do
  rm -rf "$work/img$v"
  DIFFBENCH_TEXT_GRAPHS=$v $B generate --spec "$work/baseline.toml" --prompts demo --batch-size 4 --steps 20 \
    --out "$work/img$v" --quiet || echo "== generate with text graphs $v failed"
done
n=0 same=0
for f in "$work"/img1/*.png; do n=$((n + 1)); cmp -s "$f" "$work/img0/$(basename "$f")" && same=$((same + 1)); done
echo "== images: $same of $n byte-identical (text graphs on vs off)"
bench() {  # bench SPEC BATCH GRAPHS
  DIFFBENCH_TEXT_GRAPHS=$3 $B bench "$work/$1.toml" --batch-size "$2" --runs 5 --warmup 1 --json >"$work/b.json" 2>"$work/err.txt" ||
    { echo "== $1 b$2 text graphs $3 FAILED:"; grep -v '^\s*$' "$work/err.txt" | head -20; return; }
  tools/bench-line.py "$work/b.json" "$1, text graphs $3"
}
for i in $(seq "$runs"); do
  bench deepcache 1 1
  [ "$i" -le 2 ] && { bench deepcache 1 0; bench baseline 1 1; bench baseline 1 0; bench baseline 4 1; bench baseline 4 0; }
done
rm -rf "$work/eval"
DIFFBENCH_TEXT_GRAPHS=1 $B eval "$work/deepcache.toml" --clip demo --out "$work/eval" --quiet >"$work/eval.txt" 2>&1 ||
  { echo "== eval with text graphs FAILED (exit $?):"; grep -v '^\s*$' "$work/eval.txt" | tail -20; }
[ -f "$work/eval/report.json" ] && python3 -c "
import json; r = json.load(open('$work/eval/report.json')); print('== eval with text graphs: speedup', r.get('speedup'))"
