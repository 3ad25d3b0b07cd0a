#!/usr/bin/env bash
# The main job on a fresh clone: set up, build, write a tiny seeded-random
# Llama checkpoint (HF layout) and generate from it with `paca run`.
# The generated ids are meaningless: the weights are random.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
model=build/demo-model
build/examples/cli/paca make-test-model "$model" --seed 1
build/examples/cli/paca info -m "$model"
build/examples/cli/paca run -m "$model" -n 32 --json
