#!/usr/bin/env bash
# `make demo`: the main job on the bundled default: DeepCache (interval 3, branch 0) against its
# baseline on the bundled demo model (assets/demo), scored by the bundled demo CLIP scorer on the
# 32 held-out demo prompts, on the CPU. Report: runs/demo/report.html (and report.md, report.json).
set -euo pipefail
bin=${1:-build/bin/diffbench}
root=$(cd "$(dirname "$0")/.." && pwd)
exec "$bin" eval "$root/examples/demo-deepcache.toml" --prompts demo --clip demo --force --out "$root/runs/demo"
