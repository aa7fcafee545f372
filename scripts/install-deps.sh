#!/usr/bin/env bash
# Installs the Debian 12 packages tokenscope needs to build and test (run as root; skips what is there).
set -euo pipefail
pkgs=(build-essential cmake git python3 python3-pip libgtest-dev libgmock-dev libbenchmark-dev
      nlohmann-json3-dev libcli11-dev libcpp-httplib-dev pkg-config  # serve: HTTP
      libjs-chart.js chromium systemtap-sdt-dev libpfm4-dev  # profiler: report charts and their render test, USDT, named PMU events
      nginx-light  # serve: the replicas-behind-a-load-balancer test
      g++-aarch64-linux-gnu qemu-user-static)  # the Arm NEON kernels, cross-built and tested under qemu (scripts/test-arm.sh)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present" >&2
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
