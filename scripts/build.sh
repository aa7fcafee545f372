#!/usr/bin/env bash
# Configures and builds tokenscope into build/ (Release). Extra arguments go to cmake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
# Tests on: scripts/run.sh configures the same directory with them off, to build only the CLI.
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DTOKENSCOPE_TESTS=ON "$@" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
