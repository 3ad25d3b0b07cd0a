#!/usr/bin/env bash
# The main job on a fresh clone: set up, build, then two runs of the `paca`
# command on the models of ../shared/models (or $PACA_SHARED_DIR/models):
#  1. stories260K, a real (tiny) model trained on children's stories, goes on
#     from "Once upon a time": sampled, streamed as it is written, with the
#     loading bar (on a terminal) and the tok/s line on stderr; it stops at
#     token 1 (BOS), which begins the next story in its training data;
#  2. one chat turn with a tool on tiny-llama31 (Llama 3.1's chat template,
#     random weights): the user asks for the weather with the get_weather
#     tool offered in the system prompt, a grammar holds the reply to Llama
#     3.1's JSON call of it, and paca parses the call out of the reply
#     ("reply" in --json). The weights are random, so the city the model
#     writes is noise; the chat format, the constrained decoding and the
#     tool-call parsing are what a trained Llama 3.1 gets.
# Without the shared models it writes a seeded-random checkpoint instead and
# generates from that (meaningless ids).
#
#   scripts/demo.sh              # setup.sh, build.sh, then the demo on build/
#   scripts/demo.sh BUILD_DIR    # only the demo, on a tree already built (ctest's `demo`)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then
  scripts/setup.sh
  scripts/build.sh
fi
build=${1:-build}
paca=$build/examples/cli/paca
models=${PACA_SHARED_DIR:-../shared}/models
say() { printf '\n== %s\n' "$*"; }

if [ ! -f "$models/stories260K/stories260K.bin" ] || [ ! -d "$models/tiny-llama31" ]; then
  say "no test models in $models: a seeded-random checkpoint instead (its ids are meaningless)"
  model=$build/demo-model
  "$paca" make-test-model "$model" --seed 1
  "$paca" info -m "$model"
  "$paca" run -m "$model" -n 32 --json
  exit 0
fi

say "stories260K (260K parameters, trained on TinyStories) goes on from \"Once upon a time\""
"$paca" run -m "$models/stories260K/stories260K.bin" -p "Once upon a time" -n 400 \
  --temperature 0.8 --seed 6 --stop-token 1

say "tiny-llama31 (random weights), a chat turn with a tool: a grammar makes the reply a get_weather call"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/tools.json" <<'JSON'
[{"type": "function", "function": {
  "name": "get_weather", "description": "Current weather in a city",
  "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
JSON
# Llama 3.1's JSON tool call, {"name": ..., "parameters": {...}}; the model picks the city's letters
cat >"$work/call.gbnf" <<'GBNF'
root ::= "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"" [A-Z] [a-z]{2,9} "\"}}"
GBNF
"$paca" run -m "$models/tiny-llama31" --chat --system "You can call tools." --tools "@$work/tools.json" \
  -p "What is the weather in Paris?" --grammar "$work/call.gbnf" -n 64 --json >"$work/reply.json"
/usr/bin/python3 - "$work/reply.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("reply:", r["text"], f"({r['stop_reason']})")
for call in r["reply"]["tool_calls"]:
    print("tool call:", call["name"], json.dumps(call["arguments"]))
PY
