#!/usr/bin/env bash
# Cost of the profiler: tg (and pp) throughput with and without `--profile`, interleaved over R rounds
# (default 7) in one run; prints medians with min-max spread and the overhead of the median.
# Usage: scripts/bench-profile-overhead.sh [MODEL] [ROUNDS] [extra tokenscope bench flags...]
# (TOKENSCOPE_BIN: the binary to measure, default build/tokenscope.) The order of the two runs alternates
# between rounds so neither always runs first.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-$(scripts/fetch-models.sh smollm2)}
rounds=${2:-7}
shift 2 2>/dev/null || shift $#
bin=${TOKENSCOPE_BIN:-build/tokenscope}
[ -x "$bin" ] || scripts/build.sh
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq 1 "$rounds"); do
  order="off on"
  [ $((r % 2)) -eq 0 ] && order="on off"
  for mode in $order; do
    flag=""
    [ "$mode" = on ] && flag="--profile"
    "$bin" bench -m "$model" -p 128 -n 128 -r 1 -o json $flag "$@" 2>/dev/null >"$out/$mode-$r.json"
  done
done
python3 - "$out" "$rounds" "$(basename "$model")" <<'PY'
import json, statistics as st, sys
out, rounds, model = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def ts(mode, test):
    v = []
    for r in range(1, rounds + 1):
        for rec in json.load(open(f"{out}/{mode}-{r}.json")):
            if (test == "tg" and rec["n_gen"] > 0) or (test == "pp" and rec["n_prompt"] > 0):
                v.append(rec["avg_ts"])
    return v
print(f"profiler overhead on {model}, {rounds} interleaved rounds (t/s, median (min-max))")
for test, name in (("pp", "pp128"), ("tg", "tg128")):
    off, on = ts("off", test), ts("on", test)
    ov = 100 * (1 - st.median(on) / st.median(off))
    # Paired: each round's on/off ratio (the two runs of a round are back to back, so drift cancels).
    pr = [100 * (1 - a / b) for a, b in zip(on, off)]
    print(f"{name}: off {st.median(off):.1f} ({min(off):.1f}-{max(off):.1f})  on {st.median(on):.1f} ({min(on):.1f}-{max(on):.1f})  "
          f"overhead {ov:.1f}% (per-round pairs: median {st.median(pr):.1f}%, {min(pr):.1f}..{max(pr):.1f}%)")
PY
