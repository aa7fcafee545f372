#!/usr/bin/env bash
# The main job from a fresh clone: install dependencies, build, fetch the default model, generate.
# Usage: scripts/run.sh [PROMPT] [extra tokenscope run flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
model=$(scripts/fetch-models.sh smollm2)
prompt=${1:-"The three most useful things to know about CPUs are"}
shift || true
exec build/tokenscope run -m "$model" -p "$prompt" -n 64 --temp 0 "$@"
