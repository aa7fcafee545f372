#!/usr/bin/env bash
# Prefill and decode speed of `tokenscope run` on one model: ROUNDS runs (default 5), each a greedy generation
# of N tokens from a fixed prompt; prints every round, then the median with min-max spread.
# Usage: scripts/bench-run.sh [MODEL] [ROUNDS] [N] [extra tokenscope run flags...]
# (A first look at speed; `tokenscope bench` with interleaved peer comparisons is the proper benchmark.)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-$(scripts/fetch-models.sh smollm2)}
rounds=${2:-5}
n=${3:-128}
shift 3 2>/dev/null || shift $#
[ -x build/tokenscope ] || scripts/build.sh
prompt="Explain, step by step, how a CPU executes a program: fetching instructions from memory, decoding them, \
executing them in the pipeline, and writing results back, with attention to caches and branch prediction."
results=()
for r in $(seq 1 "$rounds"); do
  json=$(build/tokenscope run -m "$model" -p "$prompt" -n "$n" --temp 0 --ignore-eos --json "$@" 2>/dev/null)
  line=$(python3 -c 'import json,sys; j=json.loads(sys.stdin.read()); print(j["prefill"]["tokens"], j["prefill"]["tok_s"], j["decode"]["tokens"], j["decode"]["tok_s"], j["threads"], j["isa"])' <<<"$json")
  echo "round $r: prefill_tokens prefill_tok_s decode_tokens decode_tok_s threads isa = $line"
  results+=("$line")
done
printf '%s\n' "${results[@]}" | python3 -c '
import sys, statistics as st
rows = [l.split() for l in sys.stdin if l.strip()]
pf = [float(r[1]) for r in rows]; dc = [float(r[3]) for r in rows]
print(f"model: {sys.argv[1]}  threads {rows[0][4]}  isa {rows[0][5]}  prompt {rows[0][0]} tokens  decode {rows[0][2]} tokens  rounds {len(rows)}")
print(f"prefill tok/s: median {st.median(pf):.1f}  (min {min(pf):.1f}, max {max(pf):.1f})")
print(f"decode  tok/s: median {st.median(dc):.1f}  (min {min(dc):.1f}, max {max(dc):.1f})")
' "$(basename "$model")"
