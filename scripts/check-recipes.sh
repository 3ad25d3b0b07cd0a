#!/usr/bin/env bash
# Configures the tree with every `cmake -S . -B build ...` recipe of README.md,
# as a newcomer would type it on a fresh clone, once with nvcc and once
# without, and fails if one breaks. Configure and generate only (no build), so
# it costs seconds per recipe; generate is where a generator-specific problem
# shows up (the Makefile generator wants CUDA flags for every target holding
# CUDA objects, Ninja only for the ones compiling them).
#
# The recipes are read from README.md itself: each indented line starting
# with `cmake -S . -B build` (joined with its `\` continuations), cut at `&&`,
# with optional `[...]` parts left out and each `-DX=A|B|C` run once per
# value. "Without nvcc" is CUDACXX naming no compiler and no nvcc on PATH: the
# AUTO detection then takes the path of a machine without the toolkit.
# PACA_CUDA=ON without nvcc must fail, with its message.
#
#   scripts/check-recipes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# README's recipe lines, one per line, continuations joined
mapfile -t recipes < <(sed -n '/^ \{4,\}cmake -S \. -B build/{:a;/\\$/{N;s/\\\n *//;ba};s/^ *//;p}' README.md)
[ ${#recipes[@]} -ge 2 ] || { echo "check-recipes: found ${#recipes[@]} cmake recipes in README.md"; exit 1; }

# expands one recipe into its runnable variants (one per line)
variants() {
  local line=${1%%&&*}
  line=$(sed -E 's/ *\[[^]]*\]//g' <<<"$line")
  local alt
  alt=$(grep -oE -- '-D[A-Z_]+=[A-Za-z0-9_]+(\|[A-Za-z0-9_]+)+' <<<"$line" | head -1 || true)
  if [ -z "$alt" ]; then
    echo "$line"
    return
  fi
  local key=${alt%%=*} v
  IFS='|' read -ra vals <<<"${alt#*=}"
  for v in "${vals[@]}"; do variants "${line/"$alt"/$key=$v}"; done
}

# PATH without any directory holding nvcc
no_nvcc_path=$(tr ':' '\n' <<<"$PATH" | while read -r d; do [ -x "$d/nvcc" ] || printf '%s:' "$d"; done)
no_nvcc_path=${no_nvcc_path%:}
modes=(without)
if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then
  modes=(with without)
else
  echo "check-recipes: no nvcc on this machine, checking the recipes without it only"
fi

n=0 failed=0
for recipe in "${recipes[@]}"; do
  while IFS= read -r cmd; do
    for mode in "${modes[@]}"; do
      n=$((n + 1))
      dir="$tmp/$n"
      run=${cmd/ -B build/ -B \"$dir/build\"}
      log="$tmp/$n.log"
      if [ "$mode" = with ]; then
        env HOME="$dir/home" bash -c "$run" >"$log" 2>&1 && rc=0 || rc=$?
      else
        env CUDACXX=/nonexistent/nvcc PATH="$no_nvcc_path" HOME="$dir/home" bash -c "$run" >"$log" 2>&1 \
          && rc=0 || rc=$?
      fi
      # the backend each run must have chosen
      want=OFF
      [ "$mode" = with ] && [[ $cmd != *-DPACA_CUDA=OFF* ]] && want=ON
      expect_fail=0
      [ "$mode" = without ] && [[ $cmd == *-DPACA_CUDA=ON* ]] && expect_fail=1
      if [ $expect_fail = 1 ]; then
        if [ $rc -ne 0 ] && grep -q "PACA_CUDA=ON but no CUDA compiler was found" "$log"; then
          echo "ok   ($mode nvcc, refused as it should be) $cmd"
        else
          echo "FAIL ($mode nvcc, expected the PACA_CUDA=ON error) $cmd"
          tail -20 "$log"
          failed=$((failed + 1))
        fi
      elif [ $rc -eq 0 ] && grep -q "^-- Generating done" "$log" && grep -q "paca: CUDA backend $want" "$log"; then
        echo "ok   ($mode nvcc, CUDA backend $want) $cmd"
      else
        echo "FAIL ($mode nvcc, CUDA backend should be $want) $cmd"
        grep -A6 "CMake Error" "$log" | head -40 || grep "paca: CUDA backend" "$log" || tail -20 "$log"
        failed=$((failed + 1))
      fi
      rm -rf "$dir"
    done
  done < <(variants "$recipe")
done
[ $failed -eq 0 ] || { echo "check-recipes: $failed of $n configure runs failed"; exit 1; }
echo "check-recipes: $n configure runs of README's recipes passed"
