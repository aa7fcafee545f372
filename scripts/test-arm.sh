#!/usr/bin/env bash
# The Arm NEON kernels, cross-built with g++-aarch64-linux-gnu and tested under qemu-user:
#   - kernels, ops and formats tests on `-cpu max` (the NEON table is active, with the i8mm GEMM);
#   - the kernel tests again on `-cpu neoverse-n1` (dotprod, no i8mm: the sdot GEMM) and `-cpu cortex-a53`
#     (no dotprod: the NEON table must not be offered, only the scalar one).
# Needs the Debian packages g++-aarch64-linux-gnu and qemu-user-static (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in aarch64-linux-gnu-g++ qemu-aarch64-static; do
  command -v "$tool" >/dev/null || { echo "test-arm: $tool not found (run scripts/install-deps.sh)" >&2; exit 2; }
done
gtest_src=/usr/src/googletest
[ -f "$gtest_src/CMakeLists.txt" ] || { echo "test-arm: GoogleTest sources not at $gtest_src (Debian libgtest-dev)" >&2; exit 2; }
cmake -S . -B build-arm -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DCMAKE_BUILD_TYPE=Release \
  -DTOKENSCOPE_GTEST_SOURCE_DIR="$gtest_src" -DTS_QEMU_CPU=max >/dev/null
cmake --build build-arm -j"$(nproc)" --target test_kernels test_ops test_formats
ctest --test-dir build-arm --output-on-failure -j"$(nproc)" -L '^(kernels|ops|formats)$'
tables=$(qemu-aarch64-static -cpu max -L /usr/aarch64-linux-gnu build-arm/tests/test_kernels --gtest_filter='KernelSelection.*')
grep -qx 'kernel table: neon \[dotprod+i8mm\]' <<<"$tables" ||
  { echo "$tables"; echo "test-arm: -cpu max should get the i8mm NEON table" >&2; exit 1; }
for cpu in neoverse-n1 cortex-a53; do
  echo "test-arm: kernel tests on qemu -cpu $cpu" >&2
  out=$(qemu-aarch64-static -cpu "$cpu" -L /usr/aarch64-linux-gnu build-arm/tests/test_kernels 2>&1) ||
    { echo "$out"; echo "test-arm: kernel tests failed on -cpu $cpu" >&2; exit 1; }
  neon_tests=$(grep -c '^\[       OK \] Isas/KernelIsa\..*/neon' <<<"$out" || true)
  case "$cpu" in
    cortex-a53) [ "$neon_tests" -eq 0 ] || { echo "test-arm: NEON kernels offered on $cpu, which lacks dotprod" >&2; exit 1; } ;;
    *) [ "$neon_tests" -gt 0 ] || { echo "test-arm: NEON kernels not tested on $cpu" >&2; exit 1; }
       grep -qx 'kernel table: neon \[dotprod\]' <<<"$out" ||
         { echo "test-arm: $cpu (no i8mm) should get the dotprod-only NEON table" >&2; exit 1; } ;;
  esac
  grep -E '^\[  PASSED  \]' <<<"$out" >&2
done
