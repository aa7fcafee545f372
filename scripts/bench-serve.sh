#!/usr/bin/env bash
# Served throughput and latency of `tokenscope serve` against a peer's llama-server (ik_llama.cpp, built outside
# this repository), side by side through the same client (scripts/load.py, streaming): for every model and
# concurrency C, both servers start with C slots, and each round sends the same seeded requests to both, in
# alternating order. Prints output tokens/s, TTFT, TPOT and ITL percentiles as medians over rounds with min-max and
# the per-round throughput ratio.
#
# --chunked adds the chunked-prefill experiment on tokenscope alone: 8 streams generating, and a ~2k-token prompt
# arriving one second in, with --prefill-chunk 256 against --prefill-chunk 0 (whole prompts), with and without the
# long prompt: how much the long prompt stalls the running streams (ITL p99 and max, TPOT p99).
#
# Usage: scripts/bench-serve.sh [--peer DIR] [--rounds R] [--threads T] [--concurrency 1,4,16] [--chunked]
#                               [--no-peer] MODEL...
#   --peer DIR   directory with the peer's llama-server (default: /work/peer/ik/build/bin)
set -euo pipefail
cd "$(dirname "$0")/.."

peer_dir=/work/peer/ik/build/bin
rounds=3
threads=$(nproc)
conc=1,4,16
chunked=0
use_peer=1
models=()
while [ $# -gt 0 ]; do
  case "$1" in
    --peer) peer_dir=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --concurrency) conc=$2; shift 2 ;;
    --chunked) chunked=1; shift ;;
    --no-peer) use_peer=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    -*) echo "bench-serve: unknown option $1" >&2; exit 2 ;;
    *) models+=("$1"); shift ;;
  esac
done
for v in "$rounds" "$threads"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "bench-serve: '$v' is not a positive whole number (--rounds, --threads)" >&2; exit 2; }
done
[[ "$conc" =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "bench-serve: --concurrency $conc: expected numbers like 1,4,16" >&2; exit 2; }
[ ${#models[@]} -gt 0 ] || { echo "bench-serve: no model given" >&2; exit 2; }
peer="$peer_dir/llama-server"
if [ "$use_peer" = 1 ] && [ ! -x "$peer" ]; then
  echo "bench-serve: the peer's llama-server is not at $peer (use --peer DIR, or --no-peer)" >&2; exit 2
fi
[ -x build/tokenscope ] || scripts/build.sh
for m in "${models[@]}"; do [ -f "$m" ] || { echo "bench-serve: model $m not found" >&2; exit 2; }; done

out=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$out"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() {  # url
  for _ in $(seq 1 600); do
    curl -sf "$1/health" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "bench-serve: $1 did not become ready" >&2; exit 1
}
start_ours() {  # model slots port [extra flags]
  local m=$1 np=$2 port=$3; shift 3
  build/tokenscope serve -m "$m" -np "$np" -c $(( np * 1024 )) -t "$threads" --port "$port" "$@" \
    > "$out/ours.$port.log" 2>&1 &
  pids+=($!)
  wait_ready "http://127.0.0.1:$port"
}
start_peer() {  # model slots port
  (cd "$out" && exec "$peer" -m "$(realpath "$1")" -np "$2" -c $(( $2 * 1024 )) -t "$threads" -fa on \
    --host 127.0.0.1 --port "$3" > "$out/peer.$3.log" 2>&1) &
  pids+=($!)
  wait_ready "http://127.0.0.1:$3"
}
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') | $(nproc) CPUs | threads $threads | $rounds rounds" >&2
for m in "${models[@]}"; do
  name=$(basename "$m")
  for c in ${conc//,/ }; do
    n=$(( c * 4 > 8 ? c * 4 : 8 ))
    p1=$(free_port); start_ours "$m" "$c" "$p1"
    targets=(--target "tokenscope=http://127.0.0.1:$p1")
    if [ "$use_peer" = 1 ]; then
      p2=$(free_port); start_peer "$m" "$c" "$p2"
      targets+=(--target "peer=http://127.0.0.1:$p2")
    fi
    echo "## $name, concurrency $c: $n requests, prompts 50-300 words, outputs 64-192 tokens"
    scripts/load.py "${targets[@]}" -n "$n" -c "$c" --rounds "$rounds" --prompt-words 50:300 --max-tokens 64:192 \
      || echo "(some requests failed: see above)"
    echo
    stop_all
  done
  if [ "$chunked" = 1 ]; then
    p1=$(free_port); start_ours "$m" 16 "$p1" --prefill-chunk 256
    p2=$(free_port); start_ours "$m" 16 "$p2" --prefill-chunk 0
    t=(--target "chunk256=http://127.0.0.1:$p1" --target "whole=http://127.0.0.1:$p2")
    echo "## $name, chunked prefill: 8 streams of 256 tokens, no long prompt"
    scripts/load.py "${t[@]}" -n 8 -c 8 --rounds "$rounds" --prompt-words 20 --max-tokens 256
    echo
    echo "## $name, chunked prefill: 8 streams of 256 tokens, a 2000-word (about 2k-token) prompt arriving 1 s in"
    scripts/load.py "${t[@]}" -n 8 -c 8 --rounds "$rounds" --prompt-words 20 --max-tokens 256 \
      --burst-words 2000 --burst-after 1
    echo
    stop_all
  fi
done
