#!/usr/bin/env bash
# Times the working tree against the base revision that tools/ab-before.sh put into .ab-before/, in one
# device call and one build folder: swaps the base's files in, builds (tools/gpu-build.sh), keeps that
# libdiffbench.so, swaps the working tree's files back and builds again (only what changed recompiles);
# the "before" runs load the kept library through LD_LIBRARY_PATH (the binaries' RUNPATH yields to it).
# Then, on random SD 1.5-topology fp16 weights (512², 50 PNDM steps, guidance 7.5): TEST_FILTER's tests of
# TEST_BIN (default test_models; several: "test_models test_accel") if set (TESTS=ON), `generate
# --prompts demo` of the spec AB_GENERATE (default baseline; batch AB_GENERATE_BATCH, default 4) both ways
# with PSNR/SSIM of after against before, and ROUNDS rounds of `bench` (median of RUNS, seconds per batch) of AB_CASES (default
# "baseline:1:5 deepcache:1:5": SPEC:BATCH:RUNS, the specs of tools/gpu-sd15-specs.sh) and, in the first
# round, AB_CASES_ONCE (default "baseline:4:3"), before and after in turn; with AB_1024=1 also the
# baseline at 1024² once each.
# With AB_ENV=NAME instead, a fast path behind its switch: one build of the working tree, "before" run with
# NAME=0 and "after" with NAME=1 (no .ab-before needed). AB_ENV="NAME1 NAME2 ..." times them cumulatively:
# all at 0 ("before"), then NAME1=1 ("+NAME1"), then NAME1=1 NAME2=1 ("+NAME2"), ...; images and PSNR of
# each against the one before it.
#   tools/ab-before.sh BASE_REV                       (here)
#   TEST_FILTER='GroupNormKernel.*' tools/gpu-ab.sh [ROUNDS] [WORK_DIR]
#                                                    (device: carry [".deps", ".ab-before"]; lines start "==")
#   AB_ENV=DIFFBENCH_SUBPIXEL_UPSAMPLE AB_1024=1 tools/gpu-ab.sh   (device: carry [".deps"])
set -uo pipefail
rounds=${1:-2}
work=${2:-/tmp/diffbench-ab}
cd "$(dirname "$0")/.."
ab_env=${AB_ENV:-}
if [ -z "$ab_env" ] && [ ! -f .ab-before/BASE ]; then
  echo "gpu-ab: no .ab-before/ (run tools/ab-before.sh BASE_REV first) and no AB_ENV" >&2
  exit 2
fi
rm -rf "$work" && mkdir -p "$work/before" "$work/after"
read -r -a switches <<<"$ab_env"
variants=(before after)
if [ ${#switches[@]} -gt 1 ]; then
  variants=(before); for n in "${switches[@]}"; do variants+=("+$n"); done
fi
if [ -n "$ab_env" ]; then what="before = every one of $ab_env at 0, then each at 1 in turn, cumulatively"
else what="before = $(cat .ab-before/BASE), after = the working tree"; fi
echo "== device: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader), $(nproc) cores; $what"
swap_in_before() {
  (cd .ab-before/files && find . -type f) | while read -r f; do
    if [ -e "$f" ]; then mkdir -p "$work/after/$(dirname "$f")" && mv "$f" "$work/after/$f"; fi
    cp .ab-before/files/"$f" "$f"
  done
  while read -r f; do
    if [ -n "$f" ]; then mkdir -p "$work/after/$(dirname "$f")" && mv "$f" "$work/after/$f"; fi
  done <.ab-before/ADDED
}
restore_after() {
  (cd .ab-before/files && find . -type f) | while read -r f; do rm -f "$f"; done
  # touch: mv keeps the old mtime, older than the base's objects just built, and ninja would keep those
  (cd "$work/after" && find . -type f) | while read -r f; do mv "$work/after/$f" "$f" && touch "$f"; done
}
test_bins=${TEST_BIN:-test_models}
targets="diffbench_cli"
[ -n "${TEST_FILTER:-}" ] && targets="diffbench_cli $test_bins"
tests=OFF; [ -n "${TEST_FILTER:-}" ] && tests=ON
t0=$(date +%s)
if [ -z "$ab_env" ]; then
  swap_in_before
  TESTS=$tests TARGETS="diffbench_cli" tools/gpu-build.sh build-gpu >"$work/build-before.log" 2>&1
  ok=$?
  cp build-gpu/lib/libdiffbench.so "$work/before/" 2>/dev/null
  restore_after
  [ $ok = 0 ] || { echo "== the before build failed:"; tail -30 "$work/build-before.log"; exit 1; }
fi
TESTS=$tests TARGETS="$targets" tools/gpu-build.sh build-gpu >"$work/build-after.log" 2>&1 ||
  { echo "== the after build failed:"; tail -30 "$work/build-after.log"; exit 1; }
echo "== builds $(( $(date +%s) - t0 )) s"
if [ -n "${TEST_FILTER:-}" ]; then
  for t in $test_bins; do
    build-gpu/bin/"$t" --gtest_filter="$TEST_FILTER" 2>&1 |
      grep -E "^\[  (PASSED|FAILED|SKIPPED) |Failure|Expected|Which is" | head -30 | sed "s/^/== test $t /"
  done
fi
B=$PWD/build-gpu/bin/diffbench
run() {  # run VARIANT CMD...: the base's library, or the switches off; the working tree, or switches on
  local v=$1; shift
  if [ -n "$ab_env" ]; then
    local settings=() on=1
    [ "$v" = before ] && on=0
    for n in "${switches[@]}"; do
      settings+=("$n=$on")
      [ "$v" = "+$n" ] && on=0
    done
    env "${settings[@]}" "$@"
  elif [ "$v" = before ]; then LD_LIBRARY_PATH="$work/before" "$@"
  else "$@"; fi
}
tools/gpu-sd15-specs.sh "$B" "$work" || exit 1
for v in "${variants[@]}"; do
  run "$v" $B generate --spec "$work/${AB_GENERATE:-baseline}.toml" --prompts demo \
    --batch-size "${AB_GENERATE_BATCH:-4}" --out "$work/img-$v" --quiet ||
    echo "== generate ($v) failed"
done
shopt -s nullglob
prev=""
for v in "${variants[@]}"; do
  [ -n "$prev" ] || { prev=$v; continue; }
  n=0 same=0
  for f in "$work/img-$v"/*.png; do
    n=$((n + 1))
    cmp -s "$f" "$work/img-$prev/$(basename "$f")" && same=$((same + 1))
  done
  echo "== images $v against $prev: $same of $n byte-identical"
  $B score --images "$work/img-$v" --against "$work/img-$prev" --metrics psnr,ssim --json >"$work/score.json" \
    2>&1 && python3 - "$work/score.json" <<'PY' || echo "== score failed"
import json, sys
j = json.load(open(sys.argv[1]))
for m in ("psnr", "ssim"):
    v = [x for x in j[m]["per_image"] if x is not None]
    print("==   %s: mean %s, worst %s" % (m, j[m].get("mean"), min(v) if v else None))
PY
  prev=$v
done
bench() {  # VARIANT SPEC BATCH RUNS
  run "$1" $B bench "$work/$2.toml" --batch-size "$3" --runs "$4" --warmup 1 --json >"$work/b.json" 2>"$work/err.txt" ||
    { echo "== $1 $2 batch $3 failed: $(tail -3 "$work/err.txt")"; return; }
  tools/bench-line.py "$work/b.json" "$1 $2"
}
read -r -a cases <<<"${AB_CASES:-baseline:1:5 deepcache:1:5}"
read -r -a cases_once <<<"${AB_CASES_ONCE:-baseline:4:3}"
for r in $(seq "$rounds"); do
  for v in "${variants[@]}"; do
    for c in "${cases[@]}"; do IFS=: read -r spec bs n <<<"$c"; bench "$v" "$spec" "$bs" "$n"; done
    if [ "$r" = 1 ]; then
      for c in "${cases_once[@]}"; do IFS=: read -r spec bs n <<<"$c"; bench "$v" "$spec" "$bs" "$n"; done
    fi
  done
done
if [ "${AB_1024:-0}" = 1 ]; then for v in "${variants[@]}"; do bench "$v" baseline1024 1 3; done; fi
