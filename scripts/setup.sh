#!/usr/bin/env bash
# Installs what attnjit needs to build, then configures and builds one CMake preset.
#
#   scripts/setup.sh            # preset "dev":      build/dev/bin/{attnjit,attnjit_tests},
#                               #                    build/dev/lib/libattnjit_c.so
#   scripts/setup.sh portable   # preset "portable": build/portable/{bin,lib}/... for GPU hosts
#
# Safe to run again: it installs only missing packages (running `apt-get update` only then) and
# rebuilds only what changed. The CUDA toolkit is not a Debian package here: it must already be
# under /usr/local/cuda, and this script only checks for it. CMAKE_BUILD_PARALLEL_LEVEL limits
# the build's jobs.
set -euo pipefail

preset=${1:-dev}
cuda=/usr/local/cuda
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "setup: $*" >&2; }
die() { say "error: $*"; exit 1; }

# zlib1g-dev and libncurses-dev bring libz.a and libtinfo.a, which the portable build links
# statically into LLVM Support. python3 runs the Python module's tests (ctypes, no PyTorch);
# pkgconf checks the installed pkg-config files (scripts/install_check.sh).
packages=(cmake ninja-build g++ llvm-14-dev libsqlite3-dev libfmt-dev doctest-dev
          zlib1g-dev libncurses-dev python3 pkgconf)

missing=()
for p in "${packages[@]}"; do
  if [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) != installed ]]; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  if ((EUID == 0)); then
    as_root=()
  elif command -v sudo >/dev/null; then
    as_root=(sudo)
  else
    die "missing packages ${missing[*]}; run as root, or install them yourself"
  fi
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get here"
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# NVRTC and cuda.h (for the driver API's types; the driver itself is dlopen'd at run time).
for f in include/nvrtc.h include/cuda.h lib64/libnvrtc.so; do
  [[ -e $cuda/$f ]] || die "$cuda/$f not found. attnjit needs the CUDA 13 toolkit (NVRTC and
cuda.h) under $cuda; install it from NVIDIA's packages first (this script does not)."
done

cmake --preset "$preset"
cmake --build --preset "$preset"
say "built preset $preset: binaries in build/$preset/bin/, the C library in build/$preset/lib/"
