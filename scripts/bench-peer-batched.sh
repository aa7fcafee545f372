#!/usr/bin/env bash
# Batched throughput of tokenscope against a peer's llama-batched-bench (ik_llama.cpp, built outside this repository),
# side by side: for every model, R rounds; in each round both engines run every batch size once (B sequences each
# read a prompt of PP tokens, then generate TG tokens together), in alternating order. Prints per model and B the
# medians with min-max of S_PP and S_TG (aggregate tokens/s) for both engines, the per-round ratio tokenscope / peer,
# and our S_TG against our own B = 1 (how far batching lifts decode). The peer runs with -fa 1 (its flash attention;
# ours is always on for prompts).
#
# Usage: scripts/bench-peer-batched.sh [--peer DIR] [--rounds R] [--threads T] [--pp N] [--tg N] [--batch 1,4,16]
#                                      MODEL...
#   --peer DIR   directory with the peer's llama-batched-bench (default: /work/peer/ik/build/bin)
set -euo pipefail
cd "$(dirname "$0")/.."

peer_dir=/work/peer/ik/build/bin
rounds=5
threads=$(nproc)
pp=128
tg=64
batch=1,4,16
models=()
while [ $# -gt 0 ]; do
  case "$1" in
    --peer) peer_dir=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --pp) pp=$2; shift 2 ;;
    --tg) tg=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    -*) echo "bench-peer-batched: unknown option $1" >&2; exit 2 ;;
    *) models+=("$1"); shift ;;
  esac
done
for v in "$rounds" "$pp" "$tg" "$threads"; do
  [[ "$v" =~ ^[0-9]+$ ]] || { echo "bench-peer-batched: '$v' is not a whole number (--rounds, --pp, --tg, --threads)" >&2; exit 2; }
done
[[ "$batch" =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "bench-peer-batched: --batch $batch: expected numbers like 1,4,16" >&2; exit 2; }
[ ${#models[@]} -gt 0 ] || { echo "bench-peer-batched: no model given" >&2; exit 2; }
peer="$peer_dir/llama-batched-bench"
[ -x "$peer" ] || { echo "bench-peer-batched: the peer's llama-batched-bench is not at $peer (use --peer DIR)" >&2; exit 2; }
[ -x build/tokenscope ] || scripts/build.sh
for m in "${models[@]}"; do [ -f "$m" ] || { echo "bench-peer-batched: model $m not found" >&2; exit 2; }; done

max_b=$(tr ',' '\n' <<<"$batch" | sort -n | tail -1)
ctx=$(( max_b * (pp + tg) + 64 ))
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') | threads $threads | PP $pp TG $tg B $batch | $rounds rounds" >&2
for m in "${models[@]}"; do
  name=$(basename "$m")
  for r in $(seq 1 "$rounds"); do
    run_ours() {
      build/tokenscope bench -m "$m" --batch "$batch" -p "$pp" -n "$tg" -t "$threads" -r 1 -o jsonl \
        > "$out/$name.ours.$r.jsonl" 2>/dev/null || { echo "bench-peer-batched: tokenscope failed on $m" >&2; exit 1; }
    }
    run_peer() {  # from the scratch directory: the peer writes a llama.log where it runs
      (cd "$out" && "$peer" -m "$(realpath "$m")" -c "$ctx" -b 2048 -ub 512 -npp "$pp" -ntg "$tg" -npl "$batch" -t "$threads" -fa 1 \
        > "$out/$name.peer.$r.txt" 2>&1) || { echo "bench-peer-batched: the peer failed on $m" >&2; exit 1; }
    }
    if (( r % 2 )); then run_ours; run_peer; else run_peer; run_ours; fi
    echo "  $name: round $r of $rounds done" >&2
  done
done

python3 - "$out" "$rounds" "${models[@]}" <<'EOF'
import json, os, statistics, sys
out, rounds, models = sys.argv[1], int(sys.argv[2]), sys.argv[3:]

def spread(v):
    return "%.1f (%.1f-%.1f)" % (statistics.median(v), min(v), max(v))

print("| model | B | S_PP ours | S_PP peer | ratio | S_TG ours | S_TG peer | ratio | S_TG ours / ours at B=1 |")
print("|---|---|---|---|---|---|---|---|---|")
for m in models:
    name = os.path.basename(m)
    ours, peer = {}, {}  # B -> list of (speed_pp, speed_tg) per round
    for r in range(1, rounds + 1):
        for line in open(os.path.join(out, "%s.ours.%d.jsonl" % (name, r))):
            j = json.loads(line)
            ours.setdefault(j["pl"], []).append((j["speed_pp"], j["speed_tg"]))
        for line in open(os.path.join(out, "%s.peer.%d.txt" % (name, r))):
            f = [x.strip() for x in line.strip().strip("|").split("|")]
            if len(f) == 10 and f[0].isdigit():
                peer.setdefault(int(f[2]), []).append((float(f[5]), float(f[7])))
    base = ours.get(1)
    for b in sorted(ours):
        o, p = ours[b], peer.get(b, [])
        n = min(len(o), len(p))
        rpp = [o[i][0] / p[i][0] for i in range(n)]
        rtg = [o[i][1] / p[i][1] for i in range(n)]
        lift = [o[i][1] / base[i][1] for i in range(min(len(o), len(base)))] if base else []
        print("| %s | %d | %s | %s | %s | %s | %s | %s | %s |" % (
            name, b, spread([x[0] for x in o]), spread([x[0] for x in p]) if p else "-",
            spread(rpp) if rpp else "-", spread([x[1] for x in o]), spread([x[1] for x in p]) if p else "-",
            spread(rtg) if rtg else "-", spread(lift) if lift else "-"))
EOF
