#!/usr/bin/env bash
# Builds diffbench's libFuzzer targets (clang, ASan + UBSan) into $FUZZ_DIR (default build-fuzz) and
# runs each for SECONDS (first argument, default 30) on a seed corpus from the test data; exits
# non-zero on the first crash, leak, sanitizer report or hang. `make fuzz FUZZ_SECONDS=N` calls it.
# Targets: fuzz_json (parse_json, JsonConfig's bounded look-ups), fuzz_prompts (.txt/.jsonl/coco:/parti:).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
out=${FUZZ_DIR:-build-fuzz}
cxx=${FUZZ_CXX:-clang++}
flags=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Iinclude -Isrc)
mkdir -p "$out"
common=(src/util/error.cpp src/io/json_config.cpp src/io/read_file.cpp)
"$cxx" "${flags[@]}" -o "$out/fuzz_json" fuzz/fuzz_json.cpp "${common[@]}"
"$cxx" "${flags[@]}" -o "$out/fuzz_prompts" fuzz/fuzz_prompts.cpp "${common[@]}" src/io/prompts.cpp src/io/assets.cpp

# Seed corpora: the project's own JSON test data and a few prompt files.
mkdir -p "$out/corpus/fuzz_json" "$out/corpus/fuzz_prompts"
cp tests/schedulers/data/*.json "$out/corpus/fuzz_json/"
[ -d assets/demo ] && find assets/demo -name '*config*.json' -size -64k -exec cp --backup=numbered {} "$out/corpus/fuzz_json/" \;
printf 'a red cube\na blue sphere\n' >"$out/corpus/fuzz_prompts/txt"
printf '{"prompt": "a red cube"}\n{"prompt": "a cat", "tag": [1, {"x": 2}]}\n' >"$out/corpus/fuzz_prompts/jsonl"
printf '{"images": [{"id": 1}], "annotations": [{"image_id": 1, "caption": "a cat"}]}' >"$out/corpus/fuzz_prompts/coco"
printf 'Prompt\tCategory\na cat\tAnimals\n' >"$out/corpus/fuzz_prompts/parti"

for t in fuzz_json fuzz_prompts; do
  echo "== $t for ${seconds}s"
  (cd "$out" && "./$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 "corpus/$t")
done
