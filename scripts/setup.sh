#!/usr/bin/env bash
# Installs every Debian 12 package paca's build, tests, fuzzers and benchmarks
# need. Idempotent; uses sudo when not run as root.
set -euo pipefail
pkgs=(
  build-essential cmake ninja-build pkg-config   # toolchain
  nlohmann-json3-dev libfmt-dev                  # JSON, formatting (header-only use)
  libzstd-dev                                    # session snapshots (zstd)
  libgtest-dev libgmock-dev libbenchmark-dev     # tests and micro-benchmarks
  clang libclang-rt-14-dev                       # libFuzzer targets
  binutils                                       # nm for the exported-symbols test
  python3 python3-jinja2                         # reference renderer of the chat-template tests
  python3-jsonschema                             # validator of the constrained-generation test (grammar_schema_e2e)
  unicode-data                                   # scripts/gen_unicode_tables.py (tables are committed)
  python3-sentencepiece                          # live Llama 2 tokenizer reference (tests)
  python3-dev pybind11-dev python3-numpy python3-pytest python3-venv  # Python binding + tests
  swig default-jdk-headless junit5               # Java binding (SWIG -> JNI) + JUnit 5 tests
  mono-mcs mono-runtime libmono-system4.0-cil libmono-system-core4.0-cil  # C# binding (SWIG -> P/Invoke)
  libopenmpi-dev openmpi-bin                     # MpiComm (multi-process ranks) and the mpirun tests
  libcpp-httplib-dev                             # paca serve (its HTTP server)
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq || true
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
