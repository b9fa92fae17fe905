#!/usr/bin/env bash
# `make demo`: the main job on the default bundled with the project's test data. Until the bundled
# demo model lands (tools/train-demo.md), it evaluates DeepCache (interval 3, branch 0) against its
# baseline on the random-weight tiny-sd model and tiny-clip scorer from ../shared, with the default
# protocol (first caption of the first 32 COCO val images, batch 4, seed 42), on the CPU.
set -euo pipefail
bin=${1:-build/bin/diffbench}
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${DIFFBENCH_SHARED:-$root/../shared}
for need in "$shared/fixtures/tiny-sd/model_index.json" "$shared/fixtures/tiny-clip/config.json" \
            "$shared/data/captions_val2017.json"; do
  if [ ! -f "$need" ]; then
    echo "demo: needs $need (see ../shared/README.md)" >&2
    exit 2
  fi
done
spec=$root/examples/tiny-sd-deepcache.toml
if [ -n "${DIFFBENCH_SHARED:-}" ]; then  # point the spec at the given shared folder
  spec=$(mktemp --suffix=.toml)
  sed "s|^model = .*|model = \"$shared/fixtures/tiny-sd\"|" "$root/examples/tiny-sd-deepcache.toml" >"$spec"
fi
"$bin" eval "$spec" --prompts "coco:$shared/data/captions_val2017.json" --num-samples 32 --batch-size 4 \
  --clip "$shared/fixtures/tiny-clip" --max-quality-loss 100 --force --out "$root/runs/demo"
