#!/usr/bin/env bash
# Builds diffbench's libFuzzer targets (clang, ASan + UBSan) into $FUZZ_DIR (default build-fuzz) and
# runs each for SECONDS (first argument, default 30) on a seed corpus (fuzz/seeds/ and the test data);
# exits non-zero on the first crash, leak, sanitizer report, violated property or hang.
#   tools/fuzz.sh [SECONDS [TARGET...]]      `make fuzz FUZZ_SECONDS=N` calls it for every target
# Targets: fuzz_json (parse_json, JsonConfig's bounded look-ups), fuzz_prompts (.txt/.jsonl/coco:/parti:),
# fuzz_safetensors (the header parser, get, save and reopen), fuzz_spec (the TOML spec reader),
# fuzz_tokenizer (vocab.json/merges.txt/tokenizer.json/bpe_simple_vocab_16e6.txt.gz loading and encoding),
# fuzz_png (read_png).
# The last four link LibTorch (only ATen's CPU parts are used): FUZZ_TORCH is its CMake prefix path
# (`python -c 'import torch.utils; print(torch.utils.cmake_prefix_path)'`) or the folder holding
# include/ATen; the Makefile passes its virtualenv's. Only diffbench's own sources, the targets and
# toml++ (header-only here, so its parser and its assertions are compiled in) are instrumented.
# Objects are kept in $FUZZ_DIR/obj and rebuilt when a source or a header it includes changes.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
all_targets=(fuzz_json fuzz_prompts fuzz_safetensors fuzz_spec fuzz_tokenizer fuzz_png)
targets=("${all_targets[@]}")
[ $# -gt 0 ] && targets=("$@")
out=${FUZZ_DIR:-build-fuzz}
cxx=${FUZZ_CXX:-clang++}
command -v ccache >/dev/null && [ -z "${FUZZ_CXX:-}" ] && cxx="ccache clang++"
mkdir -p "$out/obj"

flags=(-std=c++17 -O1 -gline-tables-only -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
       -Iinclude -Isrc -DTOML_HEADER_ONLY=1 -DTOML_EXCEPTIONS=1 -D_GLIBCXX_USE_CXX11_ABI=1 -DDIFFBENCH_VERSION=\"fuzz\"
       "-DDIFFBENCH_ASSETS_DIR=\"$PWD/assets\"")
torch=""
needs_torch=0
for t in "${targets[@]}"; do [[ $t == fuzz_json || $t == fuzz_prompts ]] || needs_torch=1; done
if [ "$needs_torch" = 1 ]; then
  for d in "${FUZZ_TORCH:-}" "${FUZZ_TORCH:-}/../.."; do
    [ -n "${FUZZ_TORCH:-}" ] && [ -f "$d/include/ATen/ATen.h" ] && torch=$(cd "$d" && pwd) && break
  done
  if [ -z "$torch" ]; then
    echo "fuzz.sh: set FUZZ_TORCH to LibTorch's CMake prefix path (make fuzz does), or name only fuzz_json fuzz_prompts" >&2
    exit 2
  fi
  flags+=(-isystem "$torch/include" -isystem "$torch/include/torch/csrc/api/include")
fi
# The whole flag set names the objects' folder, so a change of flags or LibTorch rebuilds everything.
objdir="$out/obj/$(printf '%s\n' "$cxx" "${flags[@]}" | sha1sum | cut -c1-10)"
mkdir -p "$objdir"

# src/x/y.cpp -> $obj, its object, compiled unless it is newer than the source and every header it includes.
object() {
  obj="$objdir/${1//\//_}.o"
  local dep fresh=0
  if [ -f "$obj" ] && [ -f "${obj%.o}.d" ]; then
    fresh=1
    for dep in $(sed -e '1s/^[^:]*://' -e 's/\\$//' "${obj%.o}.d"); do
      [ "$dep" -nt "$obj" ] && fresh=0 && break
    done
  fi
  [ "$fresh" = 1 ] && return
  echo "   compiling $1" >&2
  $cxx "${flags[@]}" -MMD -MF "${obj%.o}.d" -c "$1" -o "$obj.tmp"
  mv "$obj.tmp" "$obj"
}

# Each target links only the sources it calls into (and what they reference).
json_srcs=(src/util/error.cpp src/io/json_config.cpp src/io/read_file.cpp)
declare -A srcs libs
srcs[fuzz_json]="${json_srcs[*]}"
srcs[fuzz_prompts]="${json_srcs[*]} src/io/prompts.cpp src/io/assets.cpp"
srcs[fuzz_safetensors]="${json_srcs[*]} src/io/safetensors.cpp"
srcs[fuzz_spec]="src/util/error.cpp src/io/read_file.cpp src/io/assets.cpp src/io/hub_cache.cpp src/pipeline/device.cpp src/pipeline/spec.cpp"
srcs[fuzz_tokenizer]="${json_srcs[*]} src/tokenizer/text.cpp src/tokenizer/html_entities.cpp src/tokenizer/tokenizer_files.cpp src/tokenizer/clip_tokenizer.cpp src/io/gzip.cpp src/io/staging_dir.cpp"
srcs[fuzz_png]="src/util/error.cpp src/io/read_file.cpp src/io/image.cpp"
torch_libs="-L$torch/lib -Wl,-rpath,$torch/lib -ltorch_cpu -lc10"
libs[fuzz_safetensors]="$torch_libs"
libs[fuzz_spec]="$torch_libs -lutf8proc"  # utf8proc for its UTF-8; spec.cpp converts devices through pipeline/device.cpp, which asks CUDA
if [ -n "$torch" ] && [ -f "$torch/include/c10/cuda/CUDAFunctions.h" ]; then
  cudart=$(find "$torch/lib" "$torch/../nvidia" -name 'libcudart.so*' 2>/dev/null | head -1)
  libs[fuzz_spec]+=" -lc10_cuda ${cudart:+$cudart -Wl,-rpath,$(dirname "$cudart")}"
fi
libs[fuzz_tokenizer]="$torch_libs -lutf8proc -lz"
libs[fuzz_png]="$torch_libs -lpng -lz"

for t in "${targets[@]}"; do
  [ -n "${srcs[$t]:-}" ] || { echo "fuzz.sh: unknown target $t (${all_targets[*]})" >&2; exit 2; }
  objs=()
  for s in ${srcs[$t]} "fuzz/$t.cpp"; do
    object "$s"
    objs+=("$obj")
  done
  echo "== building $t" >&2
  # shellcheck disable=SC2086  # libs are words
  $cxx -fsanitize=fuzzer,address,undefined -o "$out/$t" "${objs[@]}" ${libs[$t]:-}
done

# Seed corpora: fuzz/seeds/<name> (made by fuzz/seeds/make_seeds.py) and the project's own test data.
corpus() {  # target -> a fresh corpus folder of its seeds
  local dir="$out/corpus/$1"
  rm -rf "$dir"
  mkdir -p "$dir"
  echo "$dir"
}
for t in "${targets[@]}"; do
  dir=$(corpus "$t")
  case $t in
    fuzz_json)
      cp tests/schedulers/data/*.json "$dir/"
      find assets/demo -name '*config*.json' -size -64k -exec cp --backup=numbered {} "$dir/" \; ;;
    fuzz_prompts)
      printf 'a red cube\na blue sphere\n' >"$dir/txt"
      printf '{"prompt": "a red cube"}\n{"prompt": "a cat", "tag": [1, {"x": 2}]}\n' >"$dir/jsonl"
      printf '{"images": [{"id": 1}], "annotations": [{"image_id": 1, "caption": "a cat"}]}' >"$dir/coco"
      printf 'Prompt\tCategory\na cat\tAnimals\n' >"$dir/parti"
      cp assets/demo/prompts.txt "$dir/demo-prompts" ;;
    fuzz_safetensors)
      cp fuzz/seeds/safetensors/* "$dir/"
      find tests -path '*/data/*' -name '*.safetensors' -size -16k -exec cp --backup=numbered {} "$dir/" \; ;;
    fuzz_spec)
      cp fuzz/seeds/spec/* examples/*.toml "$dir/" ;;
    fuzz_tokenizer)
      cp fuzz/seeds/tokenizer/* "$dir/"
      n=0
      while IFS= read -r line; do printf 'E%s' "$line" >"$dir/demo-prompt-$((n++))"; done <assets/demo/prompts.txt ;;
    fuzz_png)
      cp fuzz/seeds/png/* "$dir/" ;;
  esac
done

# The tokenizer to encode with: the full CLIP vocabulary from the shared fixtures when present.
shared=${DIFFBENCH_SHARED:-../shared}
if [ -f "$shared/fixtures/clip-tokenizer/vocab.json" ]; then
  export DIFFBENCH_FUZZ_TOKENIZER=$(cd "$shared/fixtures/clip-tokenizer" && pwd)
else
  export DIFFBENCH_FUZZ_TOKENIZER=$PWD/assets/demo/sd/tokenizer
fi

for t in "${targets[@]}"; do
  echo "== $t for ${seconds}s"
  (cd "$out" && "./$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1 \
     "corpus/$t")
done
