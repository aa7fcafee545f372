#!/usr/bin/env python3
"""Load generator for OpenAI-compatible servers (tokenscope serve, llama-server, vLLM), streaming like a chat client.

Sends N requests at concurrency C with prompt and output lengths drawn from a seeded distribution, and reports
output throughput, time to first token (TTFT), time per output token after the first (TPOT), inter-token latency
(ITL) and end-to-end latency as p50/p90/p99, and errors. Several targets are measured side by side: each round runs
every target once with the same requests, in alternating order; figures are medians over rounds with min-max.

  scripts/load.py --target tokenscope=http://127.0.0.1:8080 --target peer=http://127.0.0.1:8081 \\
                  -n 64 -c 16 --rounds 3 --prompt-words 50:400 --max-tokens 64:256

Lengths are A:B (uniform, seeded) or one number. Each round's prompts start with a tag of their own, so a server's
prefix cache cannot carry one round's prompts into the next (within a round, all targets get the same requests). Output lengths are exact (ignore_eos) unless --allow-eos.
--burst-after S --burst-words W: S seconds into each round, one extra request with a W-word prompt (and one output
token) arrives; it is left out of the figures and its own TTFT is reported: the classic chunked-prefill
experiment (how much a long prompt stalls the running streams: compare ITL p99 with and without the burst).
--json FILE writes every round's figures. Exit status 1 if any request failed. Standard library only.
"""
import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
import urllib.parse

WORDS = ("time year people way day man thing woman life child world school state family student group country "
         "problem hand part place case week company system program question work government number night point home "
         "water room mother area money story fact month lot right study book eye job word business issue side kind "
         "head house service friend father power hour game line end member law car city community name president "
         "team minute idea kid body information back parent face others level office door health person art war "
         "history party result change morning reason research girl guy moment air teacher force education").split()


def parse_range(s, what):
    try:
        if ":" in s:
            a, b = (int(x) for x in s.split(":", 1))
        else:
            a = b = int(s)
    except ValueError:
        raise SystemExit(f"load.py: {what} {s!r}: expected N or A:B")
    if a < 1 or b < a:
        raise SystemExit(f"load.py: {what} {s!r}: expected 1 <= A <= B")
    return a, b


def make_requests(n, seed, prompt_words, max_tokens, tag):
    """The round's requests: lengths and words from the seed; every prompt starts with the round's tag, so no
    round (or earlier run) leaves a server a cached prefix of the next one's prompts."""
    rng = random.Random(seed)
    reqs = []
    for i in range(n):
        words = rng.randint(*prompt_words)
        text = f"[{tag}] Request {i}. " + " ".join(rng.choice(WORDS) for _ in range(words))
        reqs.append((text, rng.randint(*max_tokens)))
    return reqs


class Http:
    """A minimal HTTP/1.1 client over asyncio streams: one request per connection, chunked or sized bodies."""

    def __init__(self, url, api_key=None):
        u = urllib.parse.urlparse(url)
        if u.scheme != "http" or not u.hostname:
            raise SystemExit(f"load.py: {url!r}: expected http://HOST:PORT")
        self.host, self.port = u.hostname, u.port or 80
        self.base = u.path.rstrip("/")
        self.api_key = api_key

    async def post_stream(self, path, body):
        """Yields (status, headers) first, then the body in pieces as they arrive."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            data = json.dumps(body).encode()
            head = (f"POST {self.base}{path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\nConnection: close\r\n")
            if self.api_key:
                head += f"Authorization: Bearer {self.api_key}\r\n"
            writer.write(head.encode() + b"\r\n" + data)
            await writer.drain()
            status_line = await reader.readline()
            parts = status_line.split()
            if len(parts) < 2:
                raise ConnectionError("no HTTP status line")
            status = int(parts[1])
            headers = {}
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                k, _, v = line.decode("latin-1").partition(":")
                headers[k.strip().lower()] = v.strip()
            yield status, headers
            if headers.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    size_line = await reader.readline()
                    if not size_line:
                        raise ConnectionError("the stream ended inside a chunked body")
                    size = int(size_line.split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        await reader.readline()
                        break
                    chunk = await reader.readexactly(size)
                    await reader.readexactly(2)
                    yield chunk
            elif "content-length" in headers:
                yield await reader.readexactly(int(headers["content-length"]))
            else:
                yield await reader.read()
        finally:
            writer.close()


async def one_request(http, args, prompt, max_tokens, rec):
    body = {"max_tokens": max_tokens, "temperature": args.temperature, "stream": True,
            "stream_options": {"include_usage": True}}
    if not args.allow_eos:
        body["ignore_eos"] = True
    if args.model:
        body["model"] = args.model
    if args.chat:
        body["messages"] = [{"role": "user", "content": prompt}]
        path = "/v1/chat/completions"
    else:
        body["prompt"] = prompt
        path = "/v1/completions"
    t0 = time.perf_counter()
    times, usage, buf, done, status = [], None, b"", False, 0
    try:
        gen = http.post_stream(path, body)
        status, _ = await gen.__anext__()
        async for piece in gen:
            buf += piece
            if status != 200:
                continue
            while b"\n\n" in buf:
                block, buf = buf.split(b"\n\n", 1)
                for line in block.split(b"\n"):
                    if not line.startswith(b"data: "):
                        continue
                    payload = line[6:].strip()
                    if payload == b"[DONE]":
                        done = True
                        continue
                    j = json.loads(payload)
                    if "error" in j:
                        raise RuntimeError(j["error"].get("message", "error event"))
                    if j.get("usage"):
                        usage = j["usage"]
                    for ch in j.get("choices", []):
                        text = (ch.get("delta") or {}).get("content") if args.chat else ch.get("text")
                        if text:
                            times.append(time.perf_counter())
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {buf[:200].decode(errors='replace')}")
        if not done:
            raise RuntimeError("the stream ended without [DONE]")
    except Exception as e:  # noqa: BLE001 - every failure is counted and reported, not raised
        rec["errors"].append(f"{type(e).__name__}: {e}")
        return
    t_end = time.perf_counter()
    n_out = usage["completion_tokens"] if usage else len(times)
    rec["out_tokens"] += n_out
    rec["prompt_tokens"] += usage["prompt_tokens"] if usage else 0
    if times:
        rec["ttft"].append(times[0] - t0)
        if n_out > 1:
            rec["tpot"].append((times[-1] - times[0]) / (n_out - 1))
        rec["itl"].extend(b - a for a, b in zip(times, times[1:]))
    rec["e2e"].append(t_end - t0)


async def run_round(url, args, reqs, tag):
    http = Http(url, args.api_key)
    rec = {"errors": [], "out_tokens": 0, "prompt_tokens": 0, "ttft": [], "tpot": [], "itl": [], "e2e": []}
    sem = asyncio.Semaphore(args.concurrency)

    async def guarded(p, m):
        async with sem:
            await one_request(http, args, p, m, rec)

    async def burst():
        await asyncio.sleep(args.burst_after)
        b = {"errors": rec["errors"], "out_tokens": 0, "prompt_tokens": 0, "ttft": [], "tpot": [], "itl": [],
             "e2e": []}
        words = " ".join(random.Random(args.seed + 7).choice(WORDS) for _ in range(args.burst_words))
        await one_request(http, args, f"[{tag}] Burst. " + words, 1, b)
        rec["burst_ttft"] = b["ttft"][0] if b["ttft"] else float("nan")

    t0 = time.perf_counter()
    jobs = [guarded(p, m) for p, m in reqs]
    if args.burst_words:
        jobs.append(burst())
    await asyncio.gather(*jobs)
    rec["wall_s"] = time.perf_counter() - t0
    return rec


def pct(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summarize(rec):
    s = {"requests": len(rec["e2e"]) + len(rec["errors"]), "errors": len(rec["errors"]),
         "error_samples": rec["errors"][:3],
         "wall_s": rec["wall_s"], "out_tokens": rec["out_tokens"], "prompt_tokens": rec["prompt_tokens"],
         "out_tok_s": rec["out_tokens"] / rec["wall_s"] if rec["wall_s"] > 0 else 0.0}
    for k in ("ttft", "tpot", "itl", "e2e"):
        for q in (50, 90, 99):
            s[f"{k}_p{q}_ms"] = pct(rec[k], q) * 1000
    s["itl_max_ms"] = max(rec["itl"]) * 1000 if rec["itl"] else float("nan")
    if "burst_ttft" in rec:
        s["burst_ttft_ms"] = rec["burst_ttft"] * 1000
    return s


def fmt(vals, unit=""):
    vals = [v for v in vals if v == v]
    if not vals:
        return "-"
    med = statistics.median(vals)
    if len(vals) == 1:
        return f"{med:.1f}{unit}"
    return f"{med:.1f}{unit} ({min(vals):.1f}-{max(vals):.1f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--target", action="append", required=True, metavar="NAME=URL",
                    help="a server to measure (repeat for side by side); URL like http://127.0.0.1:8080")
    ap.add_argument("-n", "--requests", type=int, default=32)
    ap.add_argument("-c", "--concurrency", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--prompt-words", default="20:200", help="prompt length in words, N or A:B (default 20:200)")
    ap.add_argument("--max-tokens", default="32:128", help="output tokens, N or A:B (default 32:128)")
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--chat", action="store_true", help="use /v1/chat/completions (default: /v1/completions)")
    ap.add_argument("--allow-eos", action="store_true", help="let generation stop at end of generation")
    ap.add_argument("--model", help="the model name to send")
    ap.add_argument("--api-key")
    ap.add_argument("--burst-after", type=float, default=1.0, metavar="S",
                    help="with --burst-words: seconds into each round the long prompt arrives (default 1)")
    ap.add_argument("--burst-words", type=int, default=0, metavar="W",
                    help="one extra request with a W-word prompt arrives during the load (0: none)")
    ap.add_argument("--json", metavar="FILE", help="write every round's figures as JSON")
    args = ap.parse_args()
    if args.requests < 1 or args.concurrency < 1 or args.rounds < 1:
        raise SystemExit("load.py: -n, -c and --rounds must be >= 1")
    targets = []
    for t in args.target:
        name, sep, url = t.partition("=")
        if not sep or not name or not url:
            raise SystemExit(f"load.py: --target {t!r}: expected NAME=URL")
        targets.append((name, url))
    prompt_words = parse_range(args.prompt_words, "--prompt-words")
    max_tokens = parse_range(args.max_tokens, "--max-tokens")
    results = {name: [] for name, _ in targets}
    run_id = f"{os.getpid():x}{int(time.time()) % 100000:x}"
    for r in range(args.rounds):
        # The same requests for every target within a round; a fresh tag per round.
        tag = f"{run_id}-{r}"
        reqs = make_requests(args.requests, args.seed, prompt_words, max_tokens, tag)
        order = targets if r % 2 == 0 else list(reversed(targets))
        for name, url in order:
            s = summarize(asyncio.run(run_round(url, args, reqs, tag)))
            results[name].append(s)
            print(f"round {r + 1} {name}: {s['out_tok_s']:.1f} output tok/s, TTFT p50 {s['ttft_p50_ms']:.0f} ms, "
                  f"TPOT p50 {s['tpot_p50_ms']:.1f} ms, errors {s['errors']}", file=sys.stderr)
            for e in s["error_samples"]:
                print(f"  error: {e}", file=sys.stderr)
    print(f"{args.requests} requests, concurrency {args.concurrency}, prompts {args.prompt_words} words, "
          f"outputs {args.max_tokens} tokens, {args.rounds} round(s): median (min-max)")
    cols = [("output tok/s", "out_tok_s", ""), ("TTFT p50 ms", "ttft_p50_ms", ""), ("TTFT p99 ms", "ttft_p99_ms", ""),
            ("TPOT p50 ms", "tpot_p50_ms", ""), ("TPOT p99 ms", "tpot_p99_ms", ""), ("ITL p99 ms", "itl_p99_ms", ""),
            ("ITL max ms", "itl_max_ms", ""), ("E2E p50 ms", "e2e_p50_ms", "")]
    if args.burst_words:
        cols.append(("burst TTFT ms", "burst_ttft_ms", ""))
    print("| target | " + " | ".join(c[0] for c in cols) + " | errors |")
    print("|---" * (len(cols) + 2) + "|")
    for name, _ in targets:
        rs = results[name]
        print(f"| {name} | " + " | ".join(fmt([x[k] for x in rs], u) for _, k, u in cols) +
              f" | {sum(x['errors'] for x in rs)} |")
    if len(targets) >= 2:
        base = targets[-1][0]
        for name, _ in targets[:-1]:
            ratios = [a["out_tok_s"] / b["out_tok_s"] for a, b in zip(results[name], results[base]) if b["out_tok_s"]]
            print(f"{name} / {base} output tok/s per round: " + ", ".join(f"{x:.2f}" for x in ratios) +
                  (f" (median {statistics.median(ratios):.2f})" if ratios else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)
    sys.exit(1 if any(x["errors"] for rs in results.values() for x in rs) else 0)


if __name__ == "__main__":
    main()
