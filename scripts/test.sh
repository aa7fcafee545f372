#!/usr/bin/env bash
# The whole test suite from a fresh clone: install dependencies, build, fetch the models, run the tests,
# then the Arm NEON kernels (cross-built, run under qemu), then the sanitizer builds (ASan+UBSan on the input-parsing
# layers, the batched engine and the server, TSan on the thread pool, the batched attention and the batched engine).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
scripts/fetch-models.sh all >/dev/null
scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)"
if [ "${TOKENSCOPE_SKIP_ARM:-0}" != 1 ]; then
  scripts/test-arm.sh
fi
if [ "${TOKENSCOPE_SKIP_SANITIZERS:-0}" != 1 ]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTOKENSCOPE_SANITIZE=address >/dev/null
  cmake --build build-asan -j"$(nproc)" --target test_gguf test_formats test_tokenizer test_profile test_ops test_engine \
    test_report test_serve tokenscope
  ctest --test-dir build-asan --output-on-failure -j"$(nproc)" -L '^(gguf|formats|tokenizer|profile|report|serve)$'
  # The server under ASan+UBSan: mangled and bad requests, stop strings, a client gone mid-stream, and a drain
  # (LeakSanitizer checks the exit).
  (cd tests/server && TOKENSCOPE_BIN="$PWD/../../build-asan/tokenscope" python3 test_server.py \
    Api.test_mangled_requests_get_answers_not_crashes Api.test_bad_requests Api.test_client_disconnect_frees_the_slot \
    Api.test_stop_string_split_across_tokens Lifecycle.test_sigterm_drains_running_requests)
  # The batched engine: pages, prefix cache, copy on write, running out; attention over page tables.
  ctest --test-dir build-asan --output-on-failure -j"$(nproc)" \
    -R '^(KVPool\.|EngineBatch\.(Shared|RunningOut|Preempted)|Isas/Attention\.BatchedEqualsAlone/)'
  cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DTOKENSCOPE_SANITIZE=thread >/dev/null
  cmake --build build-tsan -j"$(nproc)" --target test_runtime test_ops test_engine
  ctest --test-dir build-tsan --output-on-failure -L '^runtime$'
  # The batched attention's jobs (the decode jobs' claim/wait protocol for storing a KV head, flash tiles, on 1-3
  # threads) and the batched engine's steps.
  ctest --test-dir build-tsan --output-on-failure \
    -R '^(Isas/Attention\.BatchedEqualsAlone/|EngineBatch\.Shared)'
fi
