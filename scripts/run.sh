#!/usr/bin/env bash
# The main job from a fresh clone: install what running needs, build the CLI, fetch the default model, generate.
# Usage: scripts/run.sh [PROMPT] [tokenscope run flags...]
#   Flags pass through to `tokenscope run` (-n, --temp, -s, -c, -t, --chat, --json, ...); the script adds none
#   of its own, so the CLI's defaults apply (-n 128, random seed) unless you give them.
# Each phase prints one line on stderr; apt's, CMake's and pip's output goes to build/run.log.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
mkdir -p "$BUILD_DIR"
log="$BUILD_DIR/run.log"
: >"$log"

# phase TITLE COMMAND...: one progress line, the command's output in the log; on failure, the log's tail.
phase() {
  local title=$1 t0=$SECONDS
  shift
  printf 'run.sh: %s ... ' "$title" >&2
  if "$@" >>"$log" 2>&1; then
    printf 'done (%d s)\n' $((SECONDS - t0)) >&2
  else
    printf 'failed; the end of %s:\n' "$log" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
}

build() {
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DTOKENSCOPE_TESTS=OFF
  cmake --build "$BUILD_DIR" -j"$(nproc)" --target tokenscope
}

# The download's percentage goes to this script's stderr (descriptor 3), after the phase's title.
exec 3>&2
fetch_model() { FETCH_PROGRESS_FD=3 scripts/fetch-models.sh smollm2 >"$BUILD_DIR/default-model-path"; }

# The flags given: the script adds -m and -p only where they are missing.
has() {
  local f w
  for f in "${args[@]+"${args[@]}"}"; do
    for w in "$@"; do [ "$f" = "$w" ] && return 0; done
  done
  return 1
}
prompt="The three most useful things to know about CPUs are"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  prompt=$1
  shift
fi
args=("$@")

phase "installing packages (the run set of scripts/install-deps.sh)" scripts/install-deps.sh run
phase "building the tokenscope CLI" build
extra=()
if ! has -m --model; then
  phase "fetching the default model (~100 MB the first time)" fetch_model
  extra+=(-m "$(cat "$BUILD_DIR/default-model-path")")
fi
has -p --prompt -f --file --prompts || extra+=(-p "$prompt")
echo "run.sh: generating (the steps' output is in $log)" >&2
exec "$BUILD_DIR/tokenscope" run "${extra[@]}" "$@"
