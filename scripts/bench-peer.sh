#!/usr/bin/env bash
# tokenscope against a peer engine (the llama-bench of ik_llama.cpp or llama.cpp, built outside this repository),
# side by side: for every model, R rounds; in each round both engines run pp (prompt processing) and tg (generation)
# once, in alternating order, and the peer runs with each of its -fa 0/1 settings, times -rtr 0/1 where its
# llama-bench has run-time repacking (ik_llama.cpp). The peer's setting with the highest median over the rounds is
# its figure; prints, per model and test, medians with min-max spread and the per-round ratio against that setting,
# and a strict ratio against the best of the peer's runs in each round (the maximum of several noisy samples
# against one of ours: biased towards the peer on a noisy host).
#
# Usage: scripts/bench-peer.sh [--peer DIR] [--rounds R] [--threads T] [--pp N] [--tg N] [--depth D] [--kv-type T]
#                              [--isa ISA] [--peer-only] MODEL...
#   --peer DIR     directory with the peer's llama-bench (default: /work/peer/ik_llama.cpp/build/bin)
#   --peer-name N  the peer's name in the table (default: the name of the source directory above DIR's build/bin)
#   --depth D      generation at KV-cache depth D instead (tg only: ours `bench -d D`, the peer's `-gp D,tg`)
#   --kv-type T    KV cache type for both engines: f16 (default) or q8_0 (the peer's -ctk/-ctv; it needs -fa 1)
#   --isa ISA      tokenscope's kernels (its `bench --isa`; default: the best this CPU has), e.g. avx2 against a
#                  peer built without AVX-512 (-DGGML_NATIVE=OFF -DGGML_AVX2=ON ...)
# Build the peer outside the repository, e.g.:
#   git clone https://github.com/ikawrakow/ik_llama.cpp /work/peer/ik_llama.cpp && cd /work/peer/ik_llama.cpp &&
#   cmake -B build -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF && cmake --build build -j --target llama-bench
set -euo pipefail
cd "$(dirname "$0")/.."

peer_dir=/work/peer/ik_llama.cpp/build/bin
rounds=5
threads=$(nproc)
pp=512
tg=128
peer_only=0
peer_name=
depth=0
kv=f16
isa=
models=()
while [ $# -gt 0 ]; do
  case "$1" in
    --peer) peer_dir=$2; shift 2 ;;
    --peer-name) peer_name=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --pp) pp=$2; shift 2 ;;
    --tg) tg=$2; shift 2 ;;
    --depth) depth=$2; shift 2 ;;
    --kv-type) kv=$2; shift 2 ;;
    --isa) isa=$2; shift 2 ;;
    --peer-only) peer_only=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    -*) echo "bench-peer: unknown option $1" >&2; exit 2 ;;
    *) models+=("$1"); shift ;;
  esac
done
case "$kv" in f16|q8_0) ;; *) echo "bench-peer: --kv-type $kv: use f16 or q8_0" >&2; exit 2 ;; esac
for v in "$rounds" "$pp" "$tg" "$depth" "$threads"; do
  [[ "$v" =~ ^[0-9]+$ ]] || { echo "bench-peer: '$v' is not a whole number (--rounds, --pp, --tg, --depth, --threads)" >&2; exit 2; }
done
if [ "$depth" != 0 ]; then pp=0; fi
[ ${#models[@]} -gt 0 ] || { echo "bench-peer: no model given (usage: scripts/bench-peer.sh [options] MODEL...)" >&2; exit 2; }
peer_bench="$peer_dir/llama-bench"
[ -x "$peer_bench" ] || { echo "bench-peer: the peer's llama-bench is not at $peer_bench (use --peer DIR)" >&2; exit 2; }
if [ "$peer_only" = 0 ]; then
  [ -x build/tokenscope ] || scripts/build.sh
  build/tokenscope bench --help >/dev/null 2>&1 || { echo "bench-peer: build/tokenscope has no bench command" >&2; exit 2; }
fi
for m in "${models[@]}"; do [ -f "$m" ] || { echo "bench-peer: model $m not found" >&2; exit 2; }; done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
measure_bw() {  # file: this machine's read bandwidth now with the engines' thread count (~1.5 s), in GB/s
  [ "$peer_only" = 1 ] && return 0
  # HOME in the scratch directory: the measurement does not replace the user's cached one (profile reads that).
  HOME="$out" build/tokenscope sysinfo --refresh -t "$threads" 2>/dev/null |
    sed -n 's/^read bandwidth: *\([0-9.]*\) GB\/s.*/\1/p' >"$1" || true
}
peer_commit=$(git -C "$peer_dir/../.." rev-parse --short HEAD 2>/dev/null || echo "")
[ -n "$peer_name" ] || peer_name=$(basename "$(cd "$peer_dir/../.." && pwd)")
# Run-time repacking (-rtr) is ik_llama.cpp's; llama.cpp's llama-bench refuses the flag.
rtr_values=(0)
if "$peer_bench" --help 2>&1 | grep -q -- "-rtr"; then rtr_values=(0 1); fi

run_ours() {  # model round
  build/tokenscope bench -m "$1" -p "$pp" -n "$tg" -d "$depth" --kv-type "$kv" -t "$threads" ${isa:+--isa "$isa"} -r 1 -o json \
    2>"$out/ours.err" >"$out/ours-$(basename "$1")-$2.json" || { echo "bench-peer: tokenscope failed:" >&2; cat "$out/ours.err" >&2; }
}
run_peer() {  # model round
  local rtr fa
  for rtr in "${rtr_values[@]}"; do
    for fa in 0 1; do
      local tests=(-p "$pp" -n "$tg")
      [ "$depth" != 0 ] && tests=(-p 0 -n 0 -gp "$depth,$tg")
      [ "${#rtr_values[@]}" = 2 ] && tests+=(-rtr "$rtr")
      "$peer_bench" -m "$1" "${tests[@]}" -ctk "$kv" -ctv "$kv" -t "$threads" -r 1 -fa "$fa" -o json 2>/dev/null \
        >"$out/peer-$(basename "$1")-$2-rtr$rtr-fa$fa.json" || echo "[]" >"$out/peer-$(basename "$1")-$2-rtr$rtr-fa$fa.json"
    done
  done
}

for r in $(seq 1 "$rounds"); do
  for m in "${models[@]}"; do
    echo "bench-peer: round $r/$rounds, $(basename "$m")" >&2
    # The host's bandwidth moves from minute to minute: measured in every round, between the two engines.
    if [ "$peer_only" = 1 ]; then
      run_peer "$m" "$r"
    elif [ $((r % 2)) = 1 ]; then
      run_ours "$m" "$r"; measure_bw "$out/bw-$(basename "$m")-$r"; run_peer "$m" "$r"
    else
      run_peer "$m" "$r"; measure_bw "$out/bw-$(basename "$m")-$r"; run_ours "$m" "$r"
    fi
  done
done

python3 - "$out" "$rounds" "$pp" "$tg" "$threads" "$peer_commit" "$peer_only" "$depth" "$kv" "$isa" "$peer_name" \
  "${#rtr_values[@]}" "${models[@]}" <<'EOF'
import glob, json, os, re, statistics as st, subprocess, sys
out, rounds, pp, tg, threads, peer_commit, peer_only, depth, kv, isa_arg, peer_name, n_rtr = sys.argv[1:13]
models = sys.argv[13:]
rounds, pp, tg, depth = int(rounds), int(pp), int(tg), int(depth)
cpu = "unknown CPU"
for line in open("/proc/cpuinfo"):
    if line.lower().startswith("model name"):
        cpu = line.split(":", 1)[1].strip(); break
flags = open("/proc/cpuinfo").read()
isa = "avx512" if " avx512f " in flags else ("avx2" if " avx2 " in flags else "other")
if isa_arg:
    isa = f"has {isa}; tokenscope ran --isa {isa_arg}"

def ts_of(records, n_prompt, n_gen):
    for rec in records:
        if rec.get("n_prompt") == n_prompt and rec.get("n_gen") == n_gen:
            return rec["avg_ts"], rec
    return None, None

def load(path):
    try:
        # llama-bench may print warnings ("WARNING: ...") into its JSON on stdout: drop such lines.
        text = "\n".join(l for l in open(path).read().splitlines() if not re.match(r"^[A-Za-z]", l))
        d = json.loads(text)
        return d if isinstance(d, list) else []
    except Exception:
        return []

at = f", generation at depth {depth}" if depth else ""
flag_sets = "-rtr 0/1 x -fa 0/1" if n_rtr == "2" else "-fa 0/1"
print(f"machine: {cpu} ({isa}), {threads} threads; peer: {peer_name} {peer_commit} (its best of {flag_sets}: "
      f"the setting with the highest median); "
      f"{rounds} rounds, interleaved; KV cache {kv}{at}\n")
for m in models:
    b = os.path.basename(m)
    decode_note = ""
    print(f"### {b}\n")
    print("| test | tokenscope t/s median (min-max) | peer t/s median (min-max), best flags | peer's best flags | "
          "ratio median (min-max) | strict ratio: vs the best of the peer's runs per round |")
    print("|---|---|---|---|---|---|")
    tests = ((f"tg{tg} @ d{depth}", 0, tg),) if depth else ((f"pp{pp}", pp, 0), (f"tg{tg}", 0, tg))
    for name, n_prompt, n_gen in tests:
        # The peer's results per setting and round; ours per round.
        per_flags, ours_by_round, wbytes = {}, {}, []
        for r in range(1, rounds + 1):
            for f in sorted(glob.glob(f"{out}/peer-{b}-{r}-*.json")):
                v, _ = ts_of(load(f), depth if depth else n_prompt, n_gen)  # the peer's -gp record: n_prompt = depth
                if v is not None:
                    rtr, fa = f.rsplit("-", 2)[-2], f.rsplit("-", 1)[-1][:-5]
                    per_flags.setdefault(f"{rtr} {fa}" if n_rtr == "2" else fa, {})[r] = v
            if peer_only == "0":
                v, rec = ts_of(load(f"{out}/ours-{b}-{r}.json"), n_prompt, n_gen)
                if v is not None:
                    ours_by_round[r] = v
                    wbytes.append(rec.get("model_size", 0))
        # The peer's best setting: the one with the highest median over the rounds. Its runs are compared with
        # ours round by round. The strict column compares ours with the best of the peer's runs in each
        # round instead: a maximum of several noisy samples against one of ours, biased towards the peer.
        # Only settings that ran in the most rounds compete (one that failed in most rounds cannot win on a
        # single fast run).
        flags = max(per_flags, key=lambda k: (len(per_flags[k]), st.median(per_flags[k].values()))) if per_flags else "-"
        peer_runs = per_flags.get(flags, {})
        peer = list(peer_runs.values())
        ours = list(ours_by_round.values())
        ratios = [ours_by_round[r] / peer_runs[r] for r in ours_by_round if peer_runs.get(r, 0) > 0]
        strict = []
        for r in ours_by_round:
            best = max((d[r] for d in per_flags.values() if r in d), default=None)
            if best:
                strict.append(ours_by_round[r] / best)
        fmt = lambda xs: f"{st.median(xs):.1f} ({min(xs):.1f}-{max(xs):.1f})" if xs else "-"
        rfmt = lambda xs: f"{st.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})" if xs else "-"
        flags_label = flags + (f" ({len(peer_runs)} of {rounds} rounds)" if 0 < len(peer_runs) < rounds else "")
        print(f"| {name} | {fmt(ours)} | {fmt(peer)} | {flags_label} | {rfmt(ratios)} | {rfmt(strict)} |")
        # Decode against the read bandwidth measured in the same round: weight bytes per token x tok/s.
        bw = {}
        for r in range(1, rounds + 1):
            try:
                v = float(open(f"{out}/bw-{b}-{r}").read().strip())
                if v > 0:
                    bw[r] = v
            except (OSError, ValueError):
                pass
        if n_gen and wbytes and bw and not depth:
            wb = wbytes[0]
            use = lambda runs: [runs[r] * wb / 1e9 / bw[r] for r in runs if r in bw]
            pct = lambda xs: f"{100 * st.median(xs):.0f}% ({100 * min(xs):.0f}-{100 * max(xs):.0f}%)" if xs else "-"
            bws = list(bw.values())
            decode_note = (f"decode: {wb / 1e6:.1f} MB of weights per token; read bandwidth measured in each round "
                           f"{st.median(bws):.1f} GB/s ({min(bws):.1f}-{max(bws):.1f}); of it, tokenscope's decode reads "
                           f"{pct(use(ours_by_round))}, the peer's ({flags}) {pct(use(peer_runs))}")
    print()
    if decode_note:
        print(decode_note + "\n")
EOF
