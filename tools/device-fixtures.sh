#!/usr/bin/env bash
# Makes room for the tiny-sd fixtures in one device call, whose copy of the tree (tracked files plus what
# `carry` names) is limited to 64 MiB: the tracked tree alone is about 56 MB, of which the demo model
# (assets/demo/sd and its CLIP scorer assets/demo/clip) is 36, and tiny-sd with its reference run is about 37.
# For one call the demo model leaves the index (git rm --cached, the files stay here; the demo prompts stay)
# and is ignored through .git/info/exclude, and the fixtures
# are copied into .device/shared/fixtures (git-ignored), so that the fast-path tests (test_pipeline,
# FastPath.*: the CUDA images against the CPU float32 reference) can run there.
#   tools/device-fixtures.sh prepare     (here; prints the carry list and DIFFBENCH_SHARED to use)
#   run: carry [".deps", ".device"], command
#        DIFFBENCH_SHARED=$PWD/.device/shared TEST_BIN=test_pipeline TEST_FILTER='FastPath.*' AB_ENV=NAME
#        tools/gpu-ab.sh 1 /tmp/ab      (or TESTS=ON tools/gpu-build.sh, then the test binary)
#   tools/device-fixtures.sh restore     (here, right after the call: the index as it was; never commit between)
# Tests that need the demo model (the demo, the end-to-end command tests) cannot run in such a call; the demo
# prompts (--prompts demo, what tools/gpu-ab.sh compares images on) can.
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${DIFFBENCH_SHARED:-../shared}
copy=.device/shared/fixtures
exclude=.git/info/exclude
lines=(/assets/demo/sd/ /assets/demo/clip/)
fixtures=(tiny-sd tiny-sd-reference.json tiny-sd-reference.safetensors tiny-sd-tgate-reference.json
          tiny-sd-tgate-reference.safetensors)

case "${1:-}" in
  prepare)
    if [ -n "$(git status --porcelain -- assets/demo)" ]; then
      echo "device-fixtures: assets/demo has changes or is already out of the index (run restore first)" >&2
      exit 2
    fi
    for f in "${fixtures[@]}"; do
      [ -e "$shared/fixtures/$f" ] || { echo "device-fixtures: $shared/fixtures/$f is missing" >&2; exit 2; }
    done
    git rm -r -q --cached assets/demo/sd assets/demo/clip
    for line in "${lines[@]}"; do grep -qxF "$line" "$exclude" 2>/dev/null || echo "$line" >>"$exclude"; done
    rm -rf "$copy" && mkdir -p "$copy"
    for f in "${fixtures[@]}"; do cp -r "$shared/fixtures/$f" "$copy/"; done
    tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
    extra=$(du -cb "$copy" .deps 2>/dev/null | tail -1 | cut -f1)
    echo "tracked tree $((tree / 1000000)) MB + .device/shared and .deps $((extra / 1000000)) MB (limit 67 MB)"
    echo 'carry [".deps", ".device"]; on the device: DIFFBENCH_SHARED=$PWD/.device/shared'
    echo "afterwards: tools/device-fixtures.sh restore"
    ;;
  restore)
    git reset -q -- assets/demo
    if [ -f "$exclude" ]; then
      for line in "${lines[@]}"; do
        grep -vxF "$line" "$exclude" >"$exclude.tmp" || true
        mv "$exclude.tmp" "$exclude"
      done
    fi
    rm -rf .device/shared
    git status --short -- assets/demo
    ;;
  *)
    echo "usage: tools/device-fixtures.sh prepare|restore" >&2
    exit 2
    ;;
esac
