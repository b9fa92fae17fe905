#!/usr/bin/env bash
# Builds diffbench (release; tests only with TESTS=ON) on a machine that has LibTorch in python3's torch and the
# CUDA toolkit but none of the Debian -dev packages: unpacks .deb files found in DEPS_DIR
# (default .deps/, fetched elsewhere with `apt-get download ...`) into a private prefix. Fetch them with
#   mkdir -p .deps && cd .deps && apt-get download nlohmann-json3-dev libtomlplusplus-dev libtomlplusplus3 \
#     libcli11-dev libutf8proc-dev libutf8proc2 libpng-dev libpng16-16 zlib1g-dev libxxhash-dev libxxhash0 \
#     pkgconf-bin libpkgconf3 libgloo-dev libgtest-dev   # the last for TESTS=ON; libgloo-dev: its headers (dist/)
# Usage: tools/gpu-build.sh [BUILD_DIR]   -> BUILD_DIR/bin/diffbench
#   TESTS=ON (with libgtest-dev in DEPS_DIR) also configures the tests; TARGETS="a b" builds only those.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-gpu}
deps=${DEPS_DIR:-.deps}
prefix=$PWD/$build/deps-root
mkdir -p "$prefix"
for f in "$deps"/*.deb; do [ -e "$f" ] && dpkg -x "$f" "$prefix"; done
# A -dev package's libX.so may point at a runtime library that only the system has: relink it to
# the system's copy and drop the static archive, so nothing links statically into a shared library.
for link in "$prefix"/usr/lib/x86_64-linux-gnu/*.so; do
  [ -L "$link" ] && [ ! -e "$link" ] || continue
  name=$(basename "$link")
  sys=$(ls /usr/lib/x86_64-linux-gnu/"$name".* /lib/x86_64-linux-gnu/"$name".* 2>/dev/null | head -1 || true)
  [ -n "$sys" ] && ln -sf "$sys" "$link"
  rm -f "${link%.so}.a"
done
# pkg-config finds libxxhash in the prefix (its .pc file says /usr: the sysroot moves it there); a
# machine without pkg-config uses the unpacked pkgconf (pkgconf-bin, libpkgconf3 in DEPS_DIR).
export PKG_CONFIG_PATH="$prefix/usr/lib/x86_64-linux-gnu/pkgconfig:$prefix/usr/share/pkgconfig" \
  PKG_CONFIG_SYSROOT_DIR="$prefix" PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1
pkg_config=()
if ! command -v pkg-config >/dev/null 2>&1 && [ -x "$prefix/usr/bin/pkgconf" ]; then
  printf '#!/bin/sh\nLD_LIBRARY_PATH="%s/usr/lib/x86_64-linux-gnu" exec "%s/usr/bin/pkgconf" "$@"\n' "$prefix" "$prefix" \
    >"$prefix/pkg-config"
  chmod +x "$prefix/pkg-config"
  pkg_config=(-DPKG_CONFIG_EXECUTABLE="$prefix/pkg-config")
fi
torch_prefix=$(python3 -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDIFFBENCH_BUILD_TESTS="${TESTS:-OFF}" \
  -DTORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" -DDIFFBENCH_CUDA_KERNELS=ON \
  -DCMAKE_PREFIX_PATH="$torch_prefix;$prefix/usr" "${pkg_config[@]}" >"$build.configure.log" 2>&1 || { tail -40 "$build.configure.log"; exit 1; }
# shellcheck disable=SC2086
cmake --build "$build" -j "$(nproc)" ${TARGETS:+--target $TARGETS}
