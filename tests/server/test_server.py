"""Integration tests of `tokenscope serve`: the real server on a free loopback port, spoken to over HTTP.

Run by ctest (label `server`) with TOKENSCOPE_BIN set to the built binary; skipped, with the reason, when the default
model has not been fetched."""
import json
import os
import signal
import socket
import subprocess
import threading
import time
import unittest

from serving import BIN, MODEL, Server, need_model, parse_metrics, read_events, stream_text, wait_until

KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}


def tokenize(text):
    out = subprocess.run([BIN, "tokenize", "-m", MODEL, "-p", text], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


class Api(unittest.TestCase):
    """One server shared by the tests: 16 slots, a 2048-token KV cache, an API key, a 64 KiB body cap."""

    @classmethod
    def setUpClass(cls):
        need_model()
        cls.srv = Server("-np", "16", "-c", "2048", "--api-key", KEY, "--max-body", "65536", "--alias", "smol")

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def post(self, path, body, **kw):
        return self.srv.post(path, body, headers=AUTH, **kw)

    def stream(self, path, body):
        return self.srv.stream(path, body, headers=AUTH)

    def complete(self, prompt, **kw):
        status, _, j = self.post("/v1/completions", {"prompt": prompt, **kw})
        self.assertEqual(status, 200, j)
        return j

    def test_models_and_health(self):
        status, _, j = self.srv.request("GET", "/v1/models", headers=AUTH)
        self.assertEqual(status, 200)
        self.assertEqual(j["object"], "list")
        self.assertEqual([m["id"] for m in j["data"]], ["smol"])
        status, _, j = self.srv.request("GET", "/health")  # open without the key
        self.assertEqual((status, j["status"]), (200, "ok"))

    def test_chat_completion_shape_and_usage(self):
        status, _, j = self.post("/v1/chat/completions", {
            "model": "smol", "messages": [{"role": "user", "content": "Name a colour."}],
            "max_tokens": 12, "temperature": 0})
        self.assertEqual(status, 200, j)
        self.assertEqual(j["object"], "chat.completion")
        self.assertTrue(j["id"].startswith("chatcmpl-"))
        self.assertEqual(j["model"], "smol")
        choice = j["choices"][0]
        self.assertEqual(choice["message"]["role"], "assistant")
        self.assertIsInstance(choice["message"]["content"], str)
        self.assertIn(choice["finish_reason"], ("stop", "length"))
        u = j["usage"]
        self.assertGreater(u["prompt_tokens"], len(tokenize("Name a colour.")))  # the template adds tokens
        self.assertTrue(1 <= u["completion_tokens"] <= 12)
        self.assertEqual(u["total_tokens"], u["prompt_tokens"] + u["completion_tokens"])

    def test_text_completion_counts_tokens(self):
        prompt = "The history of the printing press begins"
        j = self.complete(prompt, max_tokens=9, temperature=0, ignore_eos=True)
        self.assertEqual(j["object"], "text_completion")
        self.assertEqual(j["choices"][0]["finish_reason"], "length")
        self.assertEqual(j["usage"]["prompt_tokens"], len(tokenize(prompt)))
        self.assertEqual(j["usage"]["completion_tokens"], 9)
        # echo prepends the prompt
        e = self.complete(prompt, max_tokens=9, temperature=0, ignore_eos=True, echo=True)
        self.assertEqual(e["choices"][0]["text"], prompt + j["choices"][0]["text"])

    def test_stream_equals_non_stream_for_the_same_seed(self):
        for path, chat in (("/v1/chat/completions", True), ("/v1/completions", False)):
            body = {"max_tokens": 40, "temperature": 1.0, "seed": 1234, "top_k": 0, "top_p": 1.0, "min_p": 0}
            if chat:
                body["messages"] = [{"role": "user", "content": "Tell me a story about a fox."}]
            else:
                body["prompt"] = "Once upon a time, a fox"
            status, _, whole = self.post(path, body)
            self.assertEqual(status, 200, whole)
            status, events = self.stream(path, {**body, "stream_options": {"include_usage": True}})
            self.assertEqual(status, 200, events)
            text, finish, usage = stream_text(events, chat)
            ref = whole["choices"][0]["message"]["content"] if chat else whole["choices"][0]["text"]
            self.assertEqual(text, ref, path)
            self.assertEqual(finish, whole["choices"][0]["finish_reason"])
            self.assertEqual(usage, whole["usage"])
            # the usage chunk comes only when asked for
            _, events = self.stream(path, body)
            self.assertIsNone(stream_text(events, chat)[2])
            if chat:
                self.assertEqual(json.loads(events[0])["choices"][0]["delta"].get("role"), "assistant")

    def test_stop_string_split_across_tokens(self):
        prompt = "List the planets of the solar system in order:"
        body = {"prompt": prompt, "max_tokens": 48, "temperature": 0, "ignore_eos": True}
        _, events = self.stream("/v1/completions", body)
        pieces = [json.loads(e)["choices"][0]["text"] for e in events[:-1] if json.loads(e).get("choices")]
        full = "".join(pieces)
        # A stop string made of the last two characters of one token and the first two of the next.
        at, stop = None, None
        for k in range(2, len(pieces) - 1):
            a, b = pieces[k], pieces[k + 1]
            if len(a.strip()) >= 2 and len(b) >= 2:
                cand = a[-2:] + b[:2]
                boundary = len("".join(pieces[:k + 1]))
                if full.find(cand) == boundary - 2:
                    at, stop = boundary - 2, cand
                    break
        self.assertIsNotNone(stop, f"no usable token boundary in {pieces}")
        j = self.complete(prompt, max_tokens=48, temperature=0, ignore_eos=True, stop=[stop, "never-there"])
        self.assertEqual(j["choices"][0]["text"], full[:at])
        self.assertEqual(j["choices"][0]["finish_reason"], "stop")
        _, events = self.stream("/v1/completions", {**body, "stop": stop})
        text, finish, _ = stream_text(events, False)
        self.assertEqual((text, finish), (full[:at], "stop"))

    def test_sixteen_concurrent_greedy_requests_equal_alone(self):
        prompts = [f"Write a short sentence about the number {i}." for i in range(16)]
        body = {"max_tokens": 20, "temperature": 0, "ignore_eos": True}
        alone = [self.complete(p, **body)["choices"][0]["text"] for p in prompts]
        before = self.srv.metrics()
        together = [None] * 16
        errors = []

        def one(i):
            try:
                together[i] = self.complete(prompts[i], **body)["choices"][0]["text"]
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        for i in range(16):
            self.assertEqual(together[i], alone[i], f"request {i}")
        # They were batched: decode steps averaged more than one token.
        after = self.srv.metrics()
        k_tok, k_n = 'tokenscope_step_tokens_total{stage="decode"}', 'tokenscope_step_seconds_count{stage="decode"}'
        steps = after[k_n] - before.get(k_n, 0)
        tokens = after[k_tok] - before.get(k_tok, 0)
        self.assertGreater(tokens / steps, 2.0, f"{tokens} decode tokens in {steps} steps")

    def test_shared_prefix_is_reused(self):
        system = " ".join(f"Rule {i}: answer politely and briefly, in plain words." for i in range(40))
        before = self.srv.metrics()
        for q in ("What is the capital of Italy?", "How many legs does a spider have?"):
            status, _, j = self.post("/v1/chat/completions", {
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": q}],
                "max_tokens": 4, "temperature": 0})
            self.assertEqual(status, 200, j)
            self.assertGreater(j["usage"]["prompt_tokens"], 400)
        after = self.srv.metrics()
        hits = after["tokenscope_prefix_cache_hits_total"] - before["tokenscope_prefix_cache_hits_total"]
        reused = after["tokenscope_prompt_tokens_reused_total"] - before["tokenscope_prompt_tokens_reused_total"]
        self.assertGreaterEqual(hits, 10, "the second request should find the system prompt's pages")
        self.assertGreaterEqual(reused, 320)

    def test_long_prompt_is_chunked_into_mixed_steps(self):
        # Running streams, then a prompt of several --prefill-chunk (256) chunks: its chunks ride along with the
        # streams' decodes (mixed steps) and the streams keep going.
        results = [None] * 3
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, self.stream("/v1/completions", {
            "prompt": f"Stream {i}:", "max_tokens": 120, "ignore_eos": True, "temperature": 0})))
            for i in range(3)]
        for t in threads:
            t.start()
        self.assertTrue(wait_until(lambda: self.srv.metrics()["tokenscope_requests_running"] >= 3, 10))
        before = self.srv.metrics()
        long_prompt = "The quick brown fox jumps over the lazy dog. " * 80
        n = len(tokenize(long_prompt))
        j = self.complete(long_prompt, max_tokens=2, temperature=0)
        self.assertEqual(j["usage"]["prompt_tokens"], n)
        after = self.srv.metrics()
        for t in threads:
            t.join(60)
        for status, events in results:
            self.assertEqual(status, 200)
            self.assertEqual(stream_text(events, False)[1], "length")
        key = 'tokenscope_step_seconds_count{stage="mixed"}'
        mixed = after.get(key, 0) - before.get(key, 0)
        self.assertGreaterEqual(mixed, n // 256, f"a {n}-token prompt in 256-token chunks along 3 streams")

    def test_client_disconnect_frees_the_slot(self):
        s = socket.create_connection((self.srv.host, self.srv.port))
        body = json.dumps({"prompt": "Count: one, two, three,", "max_tokens": 1900, "ignore_eos": True,
                           "temperature": 0, "stream": True})
        s.sendall((f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode())
        got = b""
        while got.count(b"data: ") < 3:
            got += s.recv(4096)
        self.assertTrue(wait_until(lambda: self.srv.metrics()["tokenscope_requests_running"] == 1, 5))
        s.close()
        t0 = time.time()
        freed = wait_until(lambda: self.srv.metrics()["tokenscope_requests_running"] == 0, 10, 0.05)
        self.assertTrue(freed, "the request kept running after its client went away")
        self.assertLess(time.time() - t0, 3.0)
        self.assertTrue(wait_until(lambda: self.srv.metrics()["tokenscope_kv_blocks_used"] == 0, 5))
        self.complete("Still serving?", max_tokens=2)

    def test_bad_requests(self):
        def check(status_want, code_want, status, j, param=None):
            self.assertEqual(status, status_want, j)
            self.assertIn("error", j)
            self.assertIsInstance(j["error"]["message"], str)
            self.assertIn("type", j["error"])
            if code_want:
                self.assertEqual(j["error"]["code"], code_want)
            if param:
                self.assertEqual(j["error"]["param"], param)
                self.assertIn(param, j["error"]["message"])

        check(400, "invalid_json", *self.post("/v1/completions", b"{not json")[::2])
        check(400, "invalid_type", *self.post("/v1/completions", {"prompt": "x", "max_tokens": "many"})[::2],
              param="max_tokens")
        check(400, "invalid_type", *self.post("/v1/chat/completions", {"messages": [{"role": "user",
              "content": 5}]})[::2], param="messages[0].content")
        check(400, None, *self.post("/v1/completions", {"prompt": "x", "temperature": -3})[::2],
              param="temperature")
        check(404, "model_not_found", *self.post("/v1/completions", {"prompt": "x", "model": "gpt-9"})[::2])
        status, _, j = self.srv.request("GET", "/v1/nothing", headers=AUTH)
        check(404, None, status, j)
        # 401: no key, wrong key; the other header form works
        check(401, "invalid_api_key", *self.srv.post("/v1/completions", {"prompt": "x"})[::2])
        check(401, "invalid_api_key", *self.srv.post("/v1/completions", {"prompt": "x"},
              headers={"Authorization": "Bearer wrong"})[::2])
        status, _, _ = self.srv.post("/v1/completions", {"prompt": "x", "max_tokens": 1},
                                     headers={"X-Api-Key": KEY})
        self.assertEqual(status, 200)
        # 413 over the body cap
        check(413, "request_too_large", *self.post("/v1/completions", {"prompt": "x" * 100000})[::2])
        # a prompt longer than the context: both numbers in the message
        long_prompt = "alpha beta " * 1200
        n = len(tokenize(long_prompt))
        status, _, j = self.post("/v1/completions", {"prompt": long_prompt})
        check(400, "context_length_exceeded", status, j)
        self.assertIn(str(n), j["error"]["message"])
        self.assertIn("2048", j["error"]["message"])
        # max_tokens beyond the context: clamped and said so
        prompt = "Once upon a time"
        status, hdrs, j = self.post("/v1/completions", {"prompt": prompt, "max_tokens": 100000, "stop": ["."],
                                                        "temperature": 0})
        self.assertEqual(status, 200, j)
        room = 2048 - len(tokenize(prompt))
        self.assertEqual(hdrs.get("x-max-tokens-clamped"), str(room))
        self.assertIn(str(room), j.get("warning", ""))
        # the server is still fine and counted the errors
        self.complete("ok", max_tokens=1)
        m = self.srv.metrics()
        self.assertGreaterEqual(m['tokenscope_requests_total{status="400"}'], 5)
        self.assertGreaterEqual(m['tokenscope_requests_total{status="401"}'], 2)

    def test_mangled_requests_get_answers_not_crashes(self):
        # Seeded mutations of valid bodies (fields removed, retyped, out of range, unknown, truncated JSON): every
        # one gets a JSON answer (200 or 4xx) and the server stays healthy.
        import random
        rng = random.Random(7)
        weird = [None, True, -1, 0, 3.5, 1e308, -1e308, "", "x" * 300, "\u00e9\ud83d\ude00", [], [1, "a"], {},
                 {"a": {"b": []}}, 2**63, -(2**63)]
        bases = [("/v1/completions", {"prompt": "Hi", "max_tokens": 3, "temperature": 0, "stop": ["\n"]}),
                 ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3,
                                           "stream": False, "top_p": 0.9, "seed": 1})]
        fields = ["prompt", "messages", "max_tokens", "temperature", "top_p", "top_k", "min_p", "seed", "stop",
                  "stream", "stream_options", "model", "n", "echo", "logprobs", "presence_penalty", "unknown"]
        seen = set()
        for i in range(150):
            path, base = bases[i % 2]
            body = json.loads(json.dumps(base))
            for _ in range(rng.randint(1, 3)):
                f = rng.choice(fields)
                if rng.random() < 0.2:
                    body.pop(f, None)
                else:
                    body[f] = rng.choice(weird)
            if isinstance(body.get("max_tokens"), int) and not isinstance(body.get("max_tokens"), bool):
                body["max_tokens"] = min(body["max_tokens"], 3)  # keep generations short
            raw = json.dumps(body)
            if rng.random() < 0.15:
                raw = raw[:rng.randint(0, len(raw))]
            status, _, j = self.post(path, raw.encode())
            seen.add(status)
            self.assertIn(status, (200, 400, 404), f"{raw}: {j}")
            if status == 200 and isinstance(j, str):  # "stream": true
                self.assertTrue(j.endswith("data: [DONE]\n\n"), j)
                continue
            self.assertIsInstance(j, dict, raw)
            if status != 200:
                self.assertIn("message", j["error"], raw)
        self.assertIn(400, seen)
        self.assertEqual(self.srv.request("GET", "/health")[0], 200)
        self.assertEqual(self.srv.proc.poll(), None)

    def test_metrics_families(self):
        status, hdrs, text = self.srv.request("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(hdrs["content-type"].startswith("text/plain"))
        m = parse_metrics(text)
        for name in ("tokenscope_time_to_first_token_seconds_count", "tokenscope_time_per_output_token_seconds_count",
                     "tokenscope_e2e_request_latency_seconds_count", "tokenscope_queue_wait_seconds_count",
                     "tokenscope_requests_running", "tokenscope_requests_waiting", "tokenscope_batch_size",
                     "tokenscope_kv_blocks_used", "tokenscope_kv_blocks_free", "tokenscope_prefix_cache_hits_total",
                     "tokenscope_prompt_tokens_total", "tokenscope_generation_tokens_total"):
            self.assertIn(name, m)


class Lifecycle(unittest.TestCase):
    """Servers of their own: draining on SIGTERM, a full queue."""

    def setUp(self):
        need_model()

    def test_sigterm_drains_running_requests(self):
        srv = Server("-np", "4")
        results = [None, None]

        def one(i):
            results[i] = srv.stream("/v1/completions", {"prompt": f"Story {i}:", "max_tokens": 60,
                                                        "ignore_eos": True, "temperature": 0})

        threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        try:
            self.assertTrue(wait_until(lambda: srv.metrics()["tokenscope_requests_running"] == 2, 10))
            srv.signal(signal.SIGTERM)
            self.assertTrue(wait_until(lambda: srv.request("GET", "/health")[0] == 503, 5))
            status, hdrs, j = srv.post("/v1/completions", {"prompt": "late", "max_tokens": 2})
            self.assertEqual(status, 503, j)
            self.assertIn("retry-after", hdrs)
            for t in threads:
                t.join(300)
            for status, events in results:
                self.assertEqual(status, 200)
                text, finish, _ = stream_text(events, False)
                self.assertEqual(finish, "length")
            self.assertEqual(srv.wait(120), 0)
            self.assertIn("drained, exiting", srv.rest_of_stdout())
        finally:
            srv.close()

    def test_second_signal_cancels(self):
        srv = Server("-np", "2")
        result = []
        t = threading.Thread(target=lambda: result.append(srv.stream(
            "/v1/completions", {"prompt": "Long:", "max_tokens": 3000, "ignore_eos": True})))
        t.start()
        try:
            self.assertTrue(wait_until(lambda: srv.metrics()["tokenscope_requests_running"] == 1, 10))
            srv.signal(signal.SIGTERM)
            time.sleep(0.3)
            srv.signal(signal.SIGINT)
            self.assertEqual(srv.wait(15), 0)
            t.join(15)
            status, events = result[0]
            self.assertEqual(status, 200)
            self.assertEqual(events[-1], "[DONE]")
        finally:
            srv.close()

    def test_full_queue_is_429_with_retry_after(self):
        srv = Server("-np", "1", "--max-queue", "0")
        t = threading.Thread(target=lambda: srv.stream("/v1/completions", {
            "prompt": "Busy:", "max_tokens": 400, "ignore_eos": True}))
        t.start()
        try:
            self.assertTrue(wait_until(lambda: srv.metrics()["tokenscope_requests_running"] == 1, 10))
            status, hdrs, j = srv.post("/v1/completions", {"prompt": "me too", "max_tokens": 2})
            self.assertEqual(status, 429, j)
            self.assertEqual(j["error"]["code"], "queue_full")
            self.assertIn("retry-after", hdrs)
            t.join(60)
            # The slot is free once the busy answer's last bytes are written, which can be a moment after the
            # client has read them: a new request is taken within a few seconds, not necessarily at once.
            last = []
            ok = wait_until(lambda: last.append(srv.post("/v1/completions", {"prompt": "now", "max_tokens": 2}))
                            or last[-1][0] == 200, 10)
            self.assertTrue(ok, last[-1] if last else "no answer")
        finally:
            srv.close()

    def test_profile_of_a_served_load(self):
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            srv = Server("-np", "4", "--profile", d)
            try:
                results = [None] * 4
                threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, srv.stream(
                    "/v1/completions", {"prompt": f"Topic {i}: " + "word " * (40 * i), "max_tokens": 12,
                                        "ignore_eos": True}))) for i in range(4)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(60)
                self.assertTrue(all(r[0] == 200 for r in results))
                srv.signal(signal.SIGTERM)
                self.assertEqual(srv.wait(60), 0)
                out = srv.rest_of_stdout()
            finally:
                srv.close()
            with open(os.path.join(d, "summary.json")) as f:
                summary = json.load(f)
            stages = {s["stage"]: s for s in summary["stages"]}
            self.assertIn("decode", stages)
            self.assertTrue({"prefill", "mixed"} & set(stages), stages.keys())
            self.assertGreaterEqual(sum(s["steps"] for s in stages.values()), 11)
            with open(os.path.join(d, "trace.json")) as f:
                self.assertTrue(json.load(f)["traceEvents"])
            self.assertTrue(os.path.getsize(os.path.join(d, "report.html")) > 1000)
            self.assertIn("decode:", out)
            self.assertIn("report.html", out)

    def test_bad_flags_are_refused(self):
        for args, word in ((["-np", "0"], "-np"), (["--prefill-chunk", "1"], "--prefill-chunk"),
                           (["--port", "70000"], "--port")):
            r = subprocess.run([BIN, "serve", "-m", MODEL, *args], capture_output=True, text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0, args)
            self.assertIn(word, r.stderr, args)
        r = subprocess.run([BIN, "serve", "-m", "/nonexistent.gguf", "--port", "0"], capture_output=True,
                           text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("/nonexistent.gguf", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
