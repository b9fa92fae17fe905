#!/usr/bin/env bash
# Puts a base revision's version of every source file that the working tree changes into .ab-before/
# (git-ignored), for tools/gpu-ab.sh to time the working tree against that revision in one device call
# with one build folder: files/PATH holds the base's text of a changed or deleted file, ADDED lists the
# files the base does not have, BASE names the revision. Files not yet known to git count once added
# with `git add -N`.
#   tools/ab-before.sh BASE_REV      (then run tools/gpu-ab.sh with carry [".deps", ".ab-before"])
set -euo pipefail
rev=${1:?usage: $0 BASE_REV}
cd "$(dirname "$0")/.."
git rev-parse --verify -q "$rev^{commit}" >/dev/null || { echo "ab-before: no such revision: $rev" >&2; exit 2; }
rm -rf .ab-before
mkdir -p .ab-before/files
: >.ab-before/ADDED
git diff --no-renames --name-status "$rev" -- src include apps CMakeLists.txt | while IFS=$'\t' read -r status path; do
  case "$status" in
    A) echo "$path" >>.ab-before/ADDED ;;
    *) mkdir -p ".ab-before/files/$(dirname "$path")" && git show "$rev:$path" >".ab-before/files/$path" ;;
  esac
done
git rev-parse --short "$rev" >.ab-before/BASE
n=$(find .ab-before/files -type f | wc -l)
echo "ab-before: $n file(s) as at $(cat .ab-before/BASE), $(wc -l <.ab-before/ADDED) added since"
[ "$n" -gt 0 ] || [ -s .ab-before/ADDED ] || { echo "ab-before: the working tree's sources equal $rev's" >&2; exit 2; }
