#!/usr/bin/env bash
# Runs `diffbench train-demo --device cuda` on a GPU machine whose Python has torch 2.11 (+cu130),
# with the diffbench binary built on the development machine (it links the torch wheel's
# libtorch_cuda, so the same binary runs there). See tools/train-demo.md.
#
#   tools/train-demo-gpu.sh run   DIR [train-demo options]   train in the foreground (log: DIR.log)
#   tools/train-demo-gpu.sh start DIR [train-demo options]   the same, detached (survives the calling command)
#   tools/train-demo-gpu.sh status DIR                      the log's last lines; "done" once DIR exists
#   tools/train-demo-gpu.sh pack DIR                        DIR as .tgz pieces of 15 MiB into $OUT, plus the log
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${DIFFBENCH_BIN:-$root/build/bin/diffbench}
cmd=${1:?usage: $0 run|start|status|pack DIR [options]}
dir=${2:?usage: $0 run|start|status|pack DIR [options]}
shift 2

setup_libs() {
  # The torch wheel's libraries there, and libpng / libutf8proc copied from here into .device/libs.
  local torchlib
  torchlib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null)
  export LD_LIBRARY_PATH="$root/build/lib:$root/.device/libs:$torchlib:${LD_LIBRARY_PATH:-}"
}

case "$cmd" in
  run)
    setup_libs
    set -o pipefail
    "$bin" train-demo --out "$dir" --device "${DEMO_DEVICE:-cuda}" "$@" 2>&1 | tee "$dir.log"
    ;;
  start)
    setup_libs
    setsid nohup "$bin" train-demo --out "$dir" --device "${DEMO_DEVICE:-cuda}" "$@" >"$dir.log" 2>&1 </dev/null &
    echo "started (pid $!); log: $dir.log"
    ;;
  status)
    tail -n 8 "$dir.log" || true
    if [ -f "$dir/train.json" ]; then echo done; fi
    ;;
  pack)
    : "${OUT:?pack writes into \$OUT}"
    tar -C "$(dirname "$dir")" -czf - "$(basename "$dir")" | split -b 15m - "$OUT/demo.tgz.part-"
    cp "$dir.log" "$OUT/train-demo.log" 2>/dev/null || true
    cp "$dir/train.json" "$OUT/train.json"
    ls -l "$OUT"
    ;;
  *)
    echo "unknown command $cmd (run, start, status or pack)" >&2
    exit 2
    ;;
esac
