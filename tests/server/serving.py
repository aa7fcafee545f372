"""Helpers for the server tests: start `tokenscope serve` on a free loopback port, talk HTTP to it (plain and
streamed), read its Prometheus metrics. Standard library only."""
import http.client
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

BIN = os.environ.get("TOKENSCOPE_BIN", "")
MODELS = os.environ.get("TOKENSCOPE_MODELS") or os.path.expanduser("~/.cache/tokenscope/models")
MODEL = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")


def need_model():
    if not BIN or not os.access(BIN, os.X_OK):
        raise unittest.SkipTest(f"no tokenscope binary (TOKENSCOPE_BIN={BIN!r})")
    if not os.path.exists(MODEL):
        raise unittest.SkipTest(f"the default model is not in {MODELS} (scripts/fetch-models.sh fetches it)")


class Server:
    """A `tokenscope serve` process on 127.0.0.1 and a port the OS picked."""

    def __init__(self, *args, model=None, env=None):
        # stderr goes to a file: a pipe nobody reads would block the server once full.
        self.err = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [BIN, "serve", "-m", model or MODEL, "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=self.err, text=True, env=env)
        self.stdout = []
        line = self._line(30)
        m = re.search(r"listening on http://([\d.]+):(\d+)", line)
        if not m:
            self.kill()
            raise AssertionError(f"no 'listening on' line, got {line!r}; stderr: {self.stderr()}")
        self.host, self.port = m.group(1), int(m.group(2))
        line = self._line(120)
        if "loaded" not in line:
            self.kill()
            raise AssertionError(f"no 'loaded' line, got {line!r}; stderr: {self.stderr()}")

    def _line(self, timeout):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r:
            return ""
        line = self.proc.stdout.readline()
        self.stdout.append(line)
        return line

    def stderr(self):
        self.err.seek(0)
        return self.err.read()

    def rest_of_stdout(self):
        out = self.proc.stdout.read()
        self.stdout.append(out)
        return "".join(self.stdout)

    def url(self):
        return f"http://{self.host}:{self.port}"

    def conn(self, timeout=120):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=120):
        """(status, headers dict with lower-case names, parsed JSON or text)."""
        c = self.conn(timeout)
        h = {"Content-Type": "application/json", **(headers or {})}
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read().decode("utf-8")
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        try:
            return r.status, hdrs, json.loads(data)
        except json.JSONDecodeError:
            return r.status, hdrs, data

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)

    def stream(self, path, body, headers=None, timeout=120):
        """Posts a streamed request; returns (status, [event payload strings]) once the stream ends."""
        c = self.conn(timeout)
        c.request("POST", path, body=json.dumps({**body, "stream": True}),
                  headers={"Content-Type": "application/json", **(headers or {})})
        r = c.getresponse()
        if r.status != 200:
            data = r.read().decode()
            c.close()
            return r.status, [data]
        events = read_events(r)
        c.close()
        return r.status, events

    def metrics(self):
        status, _, text = self.request("GET", "/metrics")
        assert status == 200, status
        return parse_metrics(text)

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout=60):
        return self.proc.wait(timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        if os.environ.get("TOKENSCOPE_SERVER_STDERR"):  # keep the server's stderr (e.g. sanitizer reports)
            with open(os.environ["TOKENSCOPE_SERVER_STDERR"], "a") as f:
                f.write(self.stderr())
        self.proc.stdout.close()
        self.err.close()


def read_events(resp):
    """The `data:` payloads of a server-sent event stream, in order (comment lines skipped)."""
    events, buf = [], b""
    while True:
        try:
            chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(1)
        except (http.client.IncompleteRead, ValueError, ConnectionError) as e:
            # A stream the server cut: the caller's assertions on its end report it, with what came before.
            events.append(f"<stream cut: {e!r}>")
            break
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            block, buf = buf.split(b"\n\n", 1)
            for line in block.decode("utf-8").split("\n"):
                if line.startswith("data: "):
                    events.append(line[6:])
    return events


def stream_text(events, chat):
    """The text of a parsed stream and its finish_reason; asserts the stream's shape."""
    assert events and events[-1] == "[DONE]", f"the stream must end with [DONE]: {events[-3:]}"
    assert events.count("[DONE]") == 1
    text, finish, usage = "", None, None
    for e in events[:-1]:
        j = json.loads(e)
        assert "error" not in j, j
        if j.get("usage"):
            usage = j["usage"]
        for ch in j["choices"]:
            assert finish is None, "nothing may follow the chunk with finish_reason but usage"
            part = ch["delta"].get("content", "") if chat else ch["text"]
            text += part or ""
            if ch.get("finish_reason"):
                finish = ch["finish_reason"]
    return text, finish, usage


def parse_metrics(text):
    """{'name{labels}': value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out


def wait_until(pred, timeout=30, interval=0.1):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port

