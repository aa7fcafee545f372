#!/usr/bin/env bash
# Two tokenscope binaries side by side (e.g. a build of the previous commit against this one): for every model,
# R rounds; in each round both run `bench -p PP -n TG -r 1` once, in alternating order. Prints per model and test
# the medians with min-max of both and of the per-round ratio B / A.
#
# Usage: scripts/bench-compare.sh [--rounds R] [--pp N] [--tg N] [--threads T] [--isa ISA] BIN_A BIN_B MODEL...
#   --isa ISA   both binaries run `bench --isa ISA` (default: the best the CPU has)
set -euo pipefail
rounds=5
pp=512
tg=128
threads=$(nproc)
isa=
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --pp) pp=$2; shift 2 ;;
    --tg) tg=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --isa) isa=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    -*) echo "bench-compare: unknown option $1" >&2; exit 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
for v in "$rounds" "$pp" "$tg" "$threads"; do
  [[ "$v" =~ ^[0-9]+$ ]] || { echo "bench-compare: '$v' is not a whole number" >&2; exit 2; }
done
[ ${#args[@]} -ge 3 ] || { echo "bench-compare: usage: scripts/bench-compare.sh [options] BIN_A BIN_B MODEL..." >&2; exit 2; }
a=${args[0]} b=${args[1]}
models=("${args[@]:2}")
for x in "$a" "$b"; do [ -x "$x" ] || { echo "bench-compare: $x is not an executable" >&2; exit 2; }; done
for m in "${models[@]}"; do [ -f "$m" ] || { echo "bench-compare: model $m not found" >&2; exit 2; }; done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') | threads $threads${isa:+ | isa $isa} | pp$pp tg$tg | $rounds rounds" >&2
for m in "${models[@]}"; do
  name=$(basename "$m")
  for r in $(seq 1 "$rounds"); do
    run() {
      "$1" bench -m "$m" -p "$pp" -n "$tg" -t "$threads" ${isa:+--isa "$isa"} -r 1 -o jsonl > "$out/$name.$2.$r.jsonl" 2> "$out/err" || {
        echo "bench-compare: $1 failed on $m:" >&2; sed 's/^/  /' "$out/err" >&2; exit 1; }
    }
    if (( r % 2 )); then run "$a" A; run "$b" B; else run "$b" B; run "$a" A; fi
    echo "  $name: round $r of $rounds done" >&2
  done
done
python3 - "$out" "$rounds" "${models[@]}" <<'EOF'
import json, os, statistics, sys
out, rounds, models = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def spread(v):
    return "%.2f (%.2f-%.2f)" % (statistics.median(v), min(v), max(v))
print("| model | test | A t/s | B t/s | B / A |")
print("|---|---|---|---|---|")
for m in models:
    name = os.path.basename(m)
    res = {}
    for side in "AB":
        for r in range(1, rounds + 1):
            for line in open(os.path.join(out, "%s.%s.%d.jsonl" % (name, side, r))):
                j = json.loads(line)
                test = "pp%d" % j["n_prompt"] if j["n_prompt"] else "tg%d" % j["n_gen"]
                res.setdefault(test, {}).setdefault(side, []).append(j["avg_ts"])
    for test, d in res.items():
        ratio = [b / a for a, b in zip(d["A"], d["B"])]
        print("| %s | %s | %s | %s | %s |" % (name, test, spread(d["A"]), spread(d["B"]), spread(ratio)))
EOF
