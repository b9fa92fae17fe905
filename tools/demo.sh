#!/usr/bin/env bash
# `make demo`: the main job on the bundled default. Until the bundled demo model lands (issue 7),
# this generates the first COCO val captions with the random-weight tiny-sd fixture from ../shared.
set -euo pipefail
bin=${1:-build/bin/diffbench}
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${DIFFBENCH_SHARED:-$root/../shared}
model=$shared/fixtures/tiny-sd
captions=$shared/data/captions_val2017.json
if [ ! -f "$model/model_index.json" ] || [ ! -f "$captions" ]; then
  echo "demo: needs $model and $captions (see ../shared/README.md)" >&2
  exit 2
fi
out=$root/runs/demo-generate
"$bin" generate --model "$model" --prompts "coco:$captions" --num-samples 8 --steps 25 --batch-size 4 --force --out "$out"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print('images: %d  s/image: %.3f  UNet calls/image: %.0f  stages (s): %s' % (r['images'], r['seconds_per_image'], r['unet_calls_per_image'], {k: round(v, 3) for k, v in r['times'].items()}))" "$out/run.json"
