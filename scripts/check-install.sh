#!/usr/bin/env bash
# Installs a built tree into a temporary prefix and builds two consumers
# against it: a C program through pkg-config and a C++ program through
# CMake's find_package(paca); imports the Python package from a venv; runs the
# installed `paca bench`. Usage: scripts/check-install.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
test -f "$prefix/include/paca/paca.h"
test -f "$prefix/lib/libpaca.a"
ls "$prefix"/lib/libpaca.so.* >/dev/null

# 1. pkg-config, shared library
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
cc -std=c99 -Wall -Werror examples/c/generate.c $(pkg-config --cflags --libs paca) -o "$prefix/gen_c"
out=$(LD_LIBRARY_PATH="$prefix/lib" "$prefix/gen_c" /nonexistent 2>&1 || true)
grep -q "load failed: model path '/nonexistent' does not exist" <<<"$out" \
  || { echo "pkg-config consumer did not run: $out"; exit 1; }

# 2. find_package(paca), static and shared
mkdir -p "$prefix/consumer"
cat > "$prefix/consumer/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.25)
project(consumer C CXX)
find_package(paca 0.1 REQUIRED)  # written for 0.1: a later 0.y must satisfy it
add_executable(use_shared main.cpp)
target_link_libraries(use_shared PRIVATE paca::paca)
add_executable(use_static main.cpp)
target_link_libraries(use_static PRIVATE paca::paca_static)
CM
cat > "$prefix/consumer/main.cpp" <<'CPP'
#include <paca/paca.hpp>
#include <paca/paca_experimental.h>
#include <cstdio>
#include <cstring>
#include <string>
int main() {
  std::printf("paca %s\n", paca_version());
  try {
    paca::Model m("/nonexistent");
    return 1;
  } catch (const paca::Error& e) {
    if (e.status() != PACA_ERR_IO) return 1;
  }
  // pulls the snapshot code (and so libzstd) into the static consumer
  const bool snapshots = paca_session_save(nullptr, nullptr) == PACA_ERR_INVALID_ARGUMENT;
  // the installed library is the installed header's version
  const std::string want = std::to_string(PACA_VERSION_MAJOR) + "." + std::to_string(PACA_VERSION_MINOR) + "." +
                           std::to_string(PACA_VERSION_PATCH);
  return want == paca_version() && paca_abi_version() == PACA_ABI_VERSION && snapshots ? 0 : 1;
}
CPP
cmake -S "$prefix/consumer" -B "$prefix/consumer/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/consumer/build" >/dev/null
LD_LIBRARY_PATH="$prefix/lib" "$prefix/consumer/build/use_shared"
"$prefix/consumer/build/use_static"

# 3. the Python package, installed into a virtual environment of Debian's python3
if [ -d "$build/bindings/python/paca" ] && /usr/bin/python3 -c "import venv" 2>/dev/null; then
  venv="$prefix/venv"
  /usr/bin/python3 -m venv --system-site-packages --without-pip "$venv"
  cmake --install "$build" --prefix "$venv" >/dev/null
  (cd / && "$venv/bin/python" - <<'PY'
import paca
try:
    paca.Model("/nonexistent")
    raise SystemExit("no error")
except paca.FileError as e:
    assert e.status == 2 and "/nonexistent" in e.message, e
print("python: paca", paca.version(), "from", paca.__file__)
PY
  )
fi
# 4. the installed commands: `paca bench` runs the paca-bench installed beside
# it (never one of the build tree), with no LD_LIBRARY_PATH (their RPATH finds
# lib/), also through a symlink to paca and after the prefix has moved
if [ -x "$build/examples/cli/paca" ] && [ -x "$build/bench/paca-bench" ]; then
  test -x "$prefix/bin/paca" && test -x "$prefix/bin/paca-bench"
  bench_json() {  # runs "$1" bench on a tiny synthetic shape; prints its model field
    env -u LD_LIBRARY_PATH PATH=/usr/bin:/bin "$1" bench --shape tiny --prompt 4 --depths 4 --tokens 2 \
      --repeats 1 --threads 1 --json | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["model"])'
  }
  model=$(bench_json "$prefix/bin/paca")
  [[ $model == tiny* ]] || { echo "installed paca bench: unexpected model '$model'"; exit 1; }
  mkdir "$prefix/elsewhere" "$prefix/moved"
  ln -s "$prefix/bin/paca" "$prefix/elsewhere/paca"
  bench_json "$prefix/elsewhere/paca" >/dev/null
  mv "$prefix/bin" "$prefix/lib" "$prefix/moved/"
  bench_json "$prefix/moved/bin/paca" >/dev/null
  # without its paca-bench it says so, rather than running another one
  rm "$prefix/moved/bin/paca-bench"
  out=$(env -u LD_LIBRARY_PATH PATH=/usr/bin:/bin "$prefix/moved/bin/paca" bench --shape tiny 2>&1 || true)
  grep -q "paca-bench was not found beside paca or on PATH" <<<"$out" \
    || { echo "paca bench without paca-bench: $out"; exit 1; }
  checked_cli=", the installed paca bench"
fi
echo "install check: pkg-config, find_package (paca.h, paca.hpp) and Python consumers build and run${checked_cli:-}"
