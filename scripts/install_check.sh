#!/usr/bin/env bash
# What a host project sees: installs a built tree into a temporary prefix, builds
# examples/host_app against it with find_package(attnjit) and again with pkg-config alone, runs
# every build (each says it skipped where there is no GPU), and imports the installed Python
# module. CI runs it after the test suite (.ci/run).
#
#   scripts/install_check.sh [BUILD_DIR]     # default build/dev
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${1:-build/dev}
work=$(mktemp -d "${TMPDIR:-/tmp}/attnjit-install-check-XXXXXX")
trap 'rm -rf "$work"' EXIT
say() { echo "install-check: $*" >&2; }
# Runs a command with its output in a log, shown only when it fails.
quiet() { "$@" >"$work/log" 2>&1 || { cat "$work/log" >&2; say "error: $* failed"; exit 1; }; }

prefix=$work/prefix
quiet cmake --install "$build" --prefix "$prefix"
say "installed $build into $prefix"
for f in bin/attnjit include/attnjit/plan.h include/attnjit/c_api.h include/attnjit/version.h \
         lib/libattnjit.a lib/libattnjit_c.so lib/cmake/attnjit/attnjitConfig.cmake \
         lib/pkgconfig/attnjit.pc lib/pkgconfig/attnjit_c.pc \
         share/attnjit/python/attnjit/__init__.py; do
  [[ -e $prefix/$f ]] || { say "error: $f is not installed"; exit 1; }
done
"$prefix/bin/attnjit" --version

quiet cmake -S examples/host_app -B "$work/example" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
  -DCUDAToolkit_ROOT=/usr/local/cuda
quiet cmake --build "$work/example"
say "built examples/host_app against the installed package"
db=$work/example.db
"$work/example/host_app" "$db"
"$work/example/host_app_c" "$db"

# pkg-config alone, as a Makefile project would build the examples (the CUDA runtime is the
# examples' own dependency, not attnjit's).
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
cudart=(-L/usr/local/cuda/lib64 -Wl,-rpath,/usr/local/cuda/lib64 -lcudart)
quiet cc -std=c99 -Wall -Werror examples/host_app/host_app_c.c -o "$work/host_app_c_pkgconfig" \
  $(pkg-config --cflags attnjit_c) -I/usr/local/cuda/include $(pkg-config --libs attnjit_c) \
  "${cudart[@]}"
quiet c++ -std=c++20 -Wall -Werror examples/host_app/host_app.cpp -o "$work/host_app_pkgconfig" \
  $(pkg-config --cflags attnjit) -I/usr/local/cuda/include $(pkg-config --libs attnjit) \
  "${cudart[@]}"
"$work/host_app_c_pkgconfig" "$db"
"$work/host_app_pkgconfig" "$db"
say "pkg-config: attnjit $(pkg-config --modversion attnjit)," \
  "attnjit_c $(pkg-config --modversion attnjit_c)"

# The installed Python module finds the installed library by itself.
PYTHONPATH=$prefix/share/attnjit/python env -u ATTNJIT_LIBRARY python3 -c '
import attnjit, os, sys
print("python: attnjit", attnjit.__version__, "from", attnjit.library_path)
installed = attnjit.library_path.startswith(sys.argv[1] + os.sep)
sys.exit(0 if installed else "not the installed library")
' "$prefix"
say "ok"
