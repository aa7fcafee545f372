#!/usr/bin/env bash
# Installs the Debian 12 packages tokenscope needs (run as root or with sudo; skips what is there).
# Usage: scripts/install-deps.sh [run|test]   (default: test, i.e. everything)
#   run:  what building and running the CLI needs (scripts/run.sh): compiler, CMake, the header-only libraries
#         (CLI11, JSON, cpp-httplib for serve), pip for scripts/fetch-models.sh, and the small profiler extras.
#   test: run's packages plus the test-only ones (scripts/test.sh): GoogleTest, Google Benchmark, Chromium for the
#         HTML report's render test, nginx for serve's replica test, the aarch64 cross-compiler and qemu for the
#         Arm NEON kernels.
set -euo pipefail
set_name=${1:-test}
pkgs=(build-essential cmake git python3 python3-pip
      nlohmann-json3-dev libcli11-dev libcpp-httplib-dev pkg-config  # serve: HTTP
      libjs-chart.js systemtap-sdt-dev libpfm4-dev  # profiler: report charts, USDT, named PMU events
      liburing-dev)  # --load uring
test_pkgs=(libgtest-dev libgmock-dev libbenchmark-dev
      chromium  # the HTML report's render test
      nginx-light  # serve: the replicas-behind-a-load-balancer test
      g++-aarch64-linux-gnu qemu-user-static)  # the Arm NEON kernels, cross-built and tested under qemu (scripts/test-arm.sh)
case "$set_name" in
  run) ;;
  test) pkgs+=("${test_pkgs[@]}") ;;
  *) echo "install-deps: unknown set '$set_name' (expected run or test)" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all $set_name packages present" >&2
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
