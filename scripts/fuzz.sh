#!/usr/bin/env bash
# fuzz.sh - builds the libFuzzer targets of the model file parsers and runs
# each for a while.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 30)
#
# Configures build-fuzz/ with clang (PACA_FUZZ=ON, nothing else), builds the
# targets of tests/fuzz, writes the seed corpora into build-fuzz/seeds/ and runs
# fuzz_safetensors, fuzz_gguf, fuzz_hf_config, fuzz_llama2c and the tokenizer
# targets (fuzz_tokenize, fuzz_tokenizer_json, fuzz_spm_model, fuzz_tiktoken,
# fuzz_gguf_vocab, fuzz_llama2c_tokenizer) and the chat targets (fuzz_jinja:
# templates, fuzz_tool_call: generated replies; seeds in tests/fuzz/seeds/) and
# fuzz_snapshot (session snapshot files) and fuzz_blocks (the block-quantized
# weight rows: dequantizer, quantizer, scalar and AVX2 block dots) and the
# grammar targets (fuzz_gbnf: GBNF text, fuzz_json_schema: JSON Schemas, each
# walked through the recogniser with the mask checked; seeds in
# tests/fuzz/seeds/) and fuzz_serve_request (request bodies of `paca serve`;
# seeds in tests/fuzz/seeds/serve_request/) in turn, each for
# SECONDS_PER_TARGET with ASan + UBSan. The small model and tokenizer files
# and the chat templates of ../shared are added as extra seeds when they exist.
#
# Exits non-zero when a build step fails or any target finds a crash, a
# sanitizer report, an exception other than paca::Error, a timeout (> 10 s on
# one input) or memory use over 2 GB. The input that did it is saved as
# build-fuzz/artifacts/<target>/crash-* (or timeout-*, oom-*, leak-*); the log
# of each run is build-fuzz/logs/<target>.log. Replay one input with
#   build-fuzz/tests/fuzz/<target> build-fuzz/artifacts/<target>/crash-...
# The corpus each target grows is kept in build-fuzz/corpus/<target>/ and
# reused by the next run.
#
# Environment: PACA_FUZZ_CC/PACA_FUZZ_CXX (compilers, default clang/clang++;
# CC/CXX are ignored so a CI default of gcc does not leak in), PACA_FUZZ_JOBS
# (build parallelism, default: ninja's).
set -euo pipefail

seconds="${1:-30}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "usage: $0 [SECONDS_PER_TARGET]" >&2
  exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-fuzz"
shared_models="$root/../shared/models"

export CC="${PACA_FUZZ_CC:-clang}" CXX="${PACA_FUZZ_CXX:-clang++}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPACA_FUZZ=ON -DPACA_BUILD_TESTS=OFF -DPACA_BUILD_BENCH=OFF -DPACA_BUILD_EXAMPLES=OFF -DPACA_CUDA=OFF
cmake --build "$build" --target paca_fuzz ${PACA_FUZZ_JOBS:+-j "$PACA_FUZZ_JOBS"}

seeds="$build/seeds"
rm -rf "$seeds"
"$build/tests/fuzz/paca_fuzz_seeds" "$seeds"
for kind in jinja tool_call gbnf json_schema serve_request; do  # committed seeds of the chat, grammar and server targets
  mkdir -p "$seeds/$kind"
  cp "$root/tests/fuzz/seeds/$kind/"* "$seeds/$kind/"
done

# Extra seeds from the shared test models, when present (read in place, never copied into the repository).
extra="$build/seeds-extra"
rm -rf "$extra"
mkdir -p "$extra/gguf" "$extra/hf_config" "$extra/llama2c" "$extra/safetensors" \
  "$extra/tokenize" "$extra/tokenizer_json" "$extra/spm_model" "$extra/tiktoken" "$extra/gguf_vocab" \
  "$extra/llama2c_tokenizer" "$extra/jinja" "$extra/tool_call" "$extra/snapshot" "$extra/blocks" \
  "$extra/gbnf" "$extra/json_schema" "$extra/serve_request"
for t in "$root"/../shared/templates/*.jinja; do  # the real chat templates
  [ -f "$t" ] && ln -s "$t" "$extra/jinja/"
done
# Small real tokenizer files as seeds of the tokenizer parsers (tokenizer.json and
# the Llama 3 tiktoken file are too large to fuzz usefully).
shared_tok="$root/../shared/tokenizers"
[ -f "$shared_models/stories260K/tok512.model" ] && ln -s "$shared_models/stories260K/tok512.model" "$extra/spm_model/"
[ -f "$shared_models/stories260K/tok512.bin" ] && ln -s "$shared_models/stories260K/tok512.bin" "$extra/llama2c_tokenizer/"
[ -f "$shared_tok/llama2/tokenizer.model" ] && ln -s "$shared_tok/llama2/tokenizer.model" "$extra/spm_model/llama2.model"
[ -f "$shared_models/stories260K/stories260K.gguf" ] && ln -s "$shared_models/stories260K/stories260K.gguf" "$extra/gguf_vocab/"
if [ -f "$shared_models/stories260K/stories260K.bin" ]; then
  ln -s "$shared_models/stories260K/stories260K.bin" "$extra/llama2c/"
fi
if [ -f "$shared_models/stories260K/stories260K.gguf" ]; then
  ln -s "$shared_models/stories260K/stories260K.gguf" "$extra/gguf/"
fi
for dir in "$shared_models"/*/; do
  [ -f "$dir/config.json" ] || continue
  name="$(basename "$dir")"
  # The fuzz_hf_config input: config.json, then NUL and generation_config.json when there is one.
  if [ -f "$dir/generation_config.json" ]; then
    { cat "$dir/config.json"; printf '\0'; cat "$dir/generation_config.json"; } > "$extra/hf_config/$name.json"
  else
    cp "$dir/config.json" "$extra/hf_config/$name.json"
  fi
done

mkdir -p "$build/logs"
failed=()
for kind in safetensors gguf hf_config llama2c \
            tokenize tokenizer_json spm_model tiktoken gguf_vocab llama2c_tokenizer \
            jinja tool_call snapshot blocks gbnf json_schema serve_request; do
  target="fuzz_$kind"
  corpus="$build/corpus/$target"
  artifacts="$build/artifacts/$target"
  log="$build/logs/$target.log"
  mkdir -p "$corpus" "$artifacts"
  echo "== $target: ${seconds}s"
  # Exit status 0: no finding within the time. libFuzzer stops at the first finding.
  if "$build/tests/fuzz/$target" "$corpus" "$seeds/$kind" "$extra/$kind" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1; then
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log" | sed 's/^/   /' || true
    grep -E '^(#[0-9]+).*DONE' "$log" | tail -n 1 | sed 's/^/   /' || true
  else
    echo "   FAILED (log: $log)"
    grep -E 'ERROR: |runtime error: |terminate called|deadly signal|Test unit written to' "$log" | head -n 10 | sed 's/^/   /' || true
    failed+=("$target")
  fi
done

if [ "${#failed[@]}" -ne 0 ]; then
  echo "fuzz: findings in ${failed[*]}; inputs under $build/artifacts/" >&2
  exit 1
fi
echo "fuzz: no findings (${seconds}s per target)"
