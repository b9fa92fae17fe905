#!/usr/bin/env bash
# Rewrites the option lists of docs/cli.md (each ```text block after a `<!-- help: COMMAND -->` line) with the
# command's own `--help` output, and docs/methods.md with `diffbench methods --markdown`.
# tests/cli/test_cli_docs.cpp and tests/accel/test_method_docs.cpp fail until this has been run after an option
# or a method parameter changed.
#   tools/update-cli-docs.sh build/bin/diffbench
set -euo pipefail
bin=${1:-build/bin/diffbench}
root=$(cd "$(dirname "$0")/.." && pwd)
doc="$root/docs/cli.md"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
skip=0
while IFS= read -r line || [ -n "$line" ]; do
  if [ "$skip" = 1 ]; then
    [ "$line" = '```' ] && skip=0 && echo '```' >>"$out"
    continue
  fi
  echo "$line" >>"$out"
  if [[ "$line" =~ ^\<!--\ help:\ ([a-z-]+)\ --\>$ ]]; then
    cmd=${BASH_REMATCH[1]}
    IFS= read -r fence
    echo "$fence" >>"$out"
    if [ "$cmd" = diffbench ]; then "$bin" --help >>"$out"; else "$bin" "$cmd" --help >>"$out"; fi
    skip=1
  fi
done <"$doc"
cp "$out" "$doc"
"$bin" methods --markdown >"$root/docs/methods.md"
echo "updated docs/cli.md and docs/methods.md"
