#!/usr/bin/env bash
# Issue 17's end-to-end targets in one go on a GPU machine, diffbench and the Python stack side by side:
# builds diffbench (tools/gpu-build.sh), makes random-weight SD 1.5-topology fp16 weights (`init-random`)
# and a random-weight open_clip ViT-g-14 scorer (float32 file, by tools/py-loading-bench.py), warms the
# page cache, then times: the UNet and the whole pipeline into GPU memory, `generate` (one prompt, 50
# steps) from process start to the PNG, the evaluation protocol (32 COCO prompts, batch 4, baseline +
# DeepCache (3, 0), ViT-g-14 scorer) and `score` of 32 images with ViT-g-14; then the same with diffusers,
# safetensors, open_clip and DeepCache (installed beforehand when the machine lacks them), the protocol
# written as a diffusers user would (tools/py-loading-bench.py protocol), twice (PY_PROTOCOL_RUNS).
#   tools/gpu-loading.sh CLIP_TOKENIZER_DIR [WORK_DIR]   (summary lines start with "==")
set -uo pipefail
tok=${1:?usage: $0 CLIP_TOKENIZER_DIR [WORK_DIR]}
work=${2:-/tmp/diffbench-loading}
cd "$(dirname "$0")/.."
echo "== device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader), $(nproc) cores"
mkdir -p "$work"
t0=$(date +%s)
# The scorer's random weights are made while diffbench builds.
python3 tools/py-loading-bench.py make-vitg "$work/vitg" "$tok" >"$work/make-vitg.log" 2>&1 &
vitg=$!
TARGETS="diffbench_cli" tools/gpu-build.sh build-gpu >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; exit 1; }
echo "== build $(( $(date +%s) - t0 )) s"
B=$PWD/build-gpu/bin/diffbench
tools/gpu-sd15-specs.sh "$B" "$work" "$tok" || exit 1
wait $vitg || { tail -5 "$work/make-vitg.log"; exit 1; }
ls -la "$work/sd15/unet" "$work/vitg" | grep safetensors
cat "$work"/sd15/*/*.safetensors "$work"/vitg/*.safetensors >/dev/null  # page cache warm, as the targets say

now() { date +%s.%N; }
dt() { python3 -c "print(round($2 - $1, 2))"; }
gen() {  # gen NAME [ENV=VALUE]: one `generate` process; start-to-PNG from the PNG's own timestamp
  local name=$1; shift
  rm -rf "$work/$name"; local s; s=$(now)
  env "$@" $B generate --spec "$work/baseline.toml" --prompt "A man is in a kitchen making pizzas." --out "$work/$name" \
    --quiet || return 1
  local e; e=$(now)
  python3 - "$work/$name" "$s" "$e" <<'PY'
import json, os, sys
d, s, e = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
r = json.load(open(os.path.join(d, "run.json"))); j = r["settings"]; l = j["load_s"]; w = j["wall_clock_s"]; t = r["times"]
png = os.stat(os.path.join(d, "000000.png")).st_mtime_ns / 1e9
print("== diffbench generate %s: process start to PNG %.2f s (to exit %.2f): set-up %.2f, load %.2f [tokenizer %.2f, text %.2f, unet %.2f, vae %.2f, device wait %.2f], generation %.2f [text %.3f, denoise %.3f, vae %.3f]" % (
    os.path.basename(d), png - s, e - s, w["process_setup"], w["load"], l["tokenizer_s"], l["text_encoder_s"], l["unet_s"],
    l["vae_s"], l.get("device_warm_up_wait_s", 0), w["generation"], t["text_encoder_s"], t["denoise_s"], t["vae_decode_s"]))
PY
}
for i in 1 2 3 4; do gen "gen$i" || exit 1; done  # the first process on a fresh machine pays one-time costs
# The text encoder and VAE on the caller's thread (their first calls one after another): time and images.
gen gen-one-thread DIFFBENCH_COMPONENT_THREADS=0 || exit 1
cmp -s "$work/gen4/000000.png" "$work/gen-one-thread/000000.png" && same=identical || same=DIFFERENT
echo "== generate's PNG with the components on their own threads vs on one thread: $same"
# Peak host memory of a whole `generate` process (the weights go to the GPU through 64 MiB staging buffers).
python3 -c 'import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
print("== generate peak host RSS %.0f MiB (largest file %.0f MiB), exit %d" % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1719125304 / 2**20, r.returncode))' \
  $B generate --spec "$work/baseline.toml" --prompt "A man is in a kitchen making pizzas." --out "$work/gen-rss" --quiet
for threads in 1 0 1; do  # the first generation with the components' first calls at once, and one after another
  DIFFBENCH_COMPONENT_THREADS=$threads $B bench "$work/baseline.toml" --batch-size 1 --runs 5 --warmup 1 --json \
    >"$work/bench.json" 2>/dev/null &&
    python3 -c "import json,sys;j=json.load(open(sys.argv[1]));print('== bench batch 1 (component threads %s): %.4f s/image, first generation %.2f s, load %.2f s' % (sys.argv[2], j['seconds_per_image']['median'], j['first_generation_s'], j['load_s']))" \
      "$work/bench.json" $threads
done
for i in 1 2 3; do
  rm -rf "$work/eval$i"; s=$(now)
  # Its log lines, stamped with the seconds since the process started (where the time after the report goes).
  $B eval "$work/deepcache.toml" --baseline "$work/baseline.toml" --num-samples 32 --batch-size 4 --clip "$work/vitg" \
    --out "$work/eval$i" 2> >(python3 -u -c 'import sys, time
for line in sys.stdin: print("%6.2f %s" % (time.time() - float(sys.argv[1]), line.rstrip()))' "$s" >"$work/eval$i.log") \
    >/dev/null; rc=$?  # exit 1: random weights score 0, so the quality loss is undefined
  e=$(now)
  echo "== diffbench eval #$i: $(dt $s $e) s end to end (exit $rc)"
  grep "^Wall clock" "$work/eval$i/report.md"
  grep -E "warm-up batch 1 took|report files" "$work/eval$i.log" | sed 's/^/   log /'
  python3 - "$work/eval$i/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print('   baseline reused, timed again:', r.get('baseline_reuse', {}).get('reproduction'))
ev = sorted((s, s + d, side[0]) for side in ('baseline', 'candidate')
            for s, d in zip(r[side].get('batch_start_s', []), r[side]['batch_seconds']))
print('   between timed batches (s):', ' '.join('%s%.3f' % (a[2], b[0] - a[1]) for a, b in zip(ev, ev[1:])))
PY
  sleep 0.5; tail -3 "$work/eval$i.log" | sed 's/^/   log /'
done
# eval's PSNR and SSIM ran on the GPU; `score --against` computes them on the CPU from the PNGs.
$B score --images "$work/eval1/candidate" --against "$work/eval1/baseline" --metrics psnr,ssim --json >"$work/fid-cpu.json" &&
  python3 - "$work/eval1/report.json" "$work/fid-cpu.json" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))["metrics"]; c = json.load(open(sys.argv[2]))  # score: psnr, ssim at the top
for m in ("psnr", "ssim"):
    a, b = g[m]["per_image"], c[m]["per_image"]
    print("== eval %s on the GPU vs score on the CPU: %d images, max |difference| %.3g (mean %.6f)" % (
        m, len(a), max(abs(x - y) for x, y in zip(a, b)), g[m]["mean"]))
PY
for i in 1 2 3; do
  s=$(now)
  $B score --images "$work/eval1/baseline" --prompts coco2017-val --num-samples 32 --clip "$work/vitg" --device cuda --json \
    >"$work/score$i.json" || echo "score failed"
  e=$(now)
  echo "== diffbench score 32 images ViT-g-14 #$i: $(dt $s $e) s whole process, clip_score $(python3 -c "import json;print(round(json.load(open('$work/score$i.json'))['clip_score'],3))")"
done
python3 -c 'import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
print("== score peak host RSS %.0f MiB (scorer file 5214 MiB), exit %d" % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, r.returncode))' \
  $B score --images "$work/eval1/baseline" --prompts coco2017-val --num-samples 32 --clip "$work/vitg" --device cuda
echo "== python (diffusers $(python3 -c 'import diffusers;print(diffusers.__version__)'), safetensors $(python3 -c 'import safetensors;print(safetensors.__version__)'))"
python3 tools/py-loading-bench.py load "$work/sd15" 2>&1 | grep "^py_" | sed 's/^/== /'
s=$(now)
python3 tools/py-loading-bench.py generate "$work/sd15" "$work/py.png" 2>&1 | grep "^py_" | sed 's/^/== /'
echo "== python generate: process start to PNG $(dt $s $(now)) s"
python3 tools/py-loading-bench.py score "$work/vitg" "$work/eval1/baseline" 32 2>&1 | grep "^py_" | sed 's/^/== /'
for i in $(seq 1 "${PY_PROTOCOL_RUNS:-2}"); do
  rm -rf "$work/py-protocol"; s=$(now)
  python3 tools/py-loading-bench.py protocol "$work/sd15" "$work/vitg" assets/prompts/coco2017-val-first-captions.jsonl \
    "$work/py-protocol" 2>&1 | grep "^py_" | sed 's/^/== /'
  echo "== python protocol #$i: $(dt $s $(now)) s end to end"
done
