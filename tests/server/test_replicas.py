"""Two `tokenscope serve` replicas behind nginx with the shipped configuration (deploy/nginx/tokenscope.conf), on
loopback: both replicas serve, streams pass through whole, and a replica killed mid-run loses only its own
in-flight requests."""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import unittest

from serving import Server, free_port, need_model, wait_until

CONF = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "nginx", "tokenscope.conf")


def nginx_config(dirpath, listen_port, replica_ports):
    """A whole nginx.conf for a run in dirpath: the shipped http-level file with the test's ports."""
    with open(CONF) as f:
        conf = f.read()
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n" for p in replica_ports)
    conf, n = re.subn(r"(    server 127\.0\.0\.1:\d+[^\n]*\n)+", servers, conf)
    assert n == 1, "the shipped configuration should list its replicas as consecutive server lines"
    conf, n = re.subn(r"listen 127\.0\.0\.1:\d+;", f"listen 127.0.0.1:{listen_port};", conf)
    assert n == 1
    user = "user root;\n" if os.geteuid() == 0 else ""
    temps = "".join(f"    {k}_temp_path {dirpath}/{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"{user}worker_processes 1;\ndaemon off;\npid {dirpath}/nginx.pid;\nerror_log {dirpath}/error.log;\n"
            f"events {{ worker_connections 256; }}\n"
            f"http {{\n    access_log {dirpath}/access.log;\n{temps}{conf}\n}}\n")


def stream_through(port, prompt, max_tokens, out, i):
    """One streamed completion through the balancer; out[i] = (completed, finish_reason or error text)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        c.request("POST", "/v1/completions", body=json.dumps({
            "prompt": prompt, "max_tokens": max_tokens, "ignore_eos": True, "temperature": 0, "stream": True}),
            headers={"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            out[i] = (False, f"HTTP {r.status}")
            return
        data = b""
        while True:
            piece = r.read1(65536)
            if not piece:
                break
            data += piece
        events = [ln[6:] for ln in data.decode().split("\n") if ln.startswith("data: ")]
        if not events or events[-1] != "[DONE]":
            out[i] = (False, "stream cut before [DONE]")
            return
        finish = [json.loads(e)["choices"][0]["finish_reason"] for e in events[:-1]
                  if json.loads(e)["choices"] and json.loads(e)["choices"][0]["finish_reason"]]
        out[i] = (True, finish[-1] if finish else None)
    except (OSError, http.client.HTTPException) as e:
        out[i] = (False, f"{type(e).__name__}: {e}")
    finally:
        c.close()


class Replicas(unittest.TestCase):
    def setUp(self):
        need_model()
        if not shutil.which("nginx") and not os.path.exists("/usr/sbin/nginx"):
            raise unittest.SkipTest("nginx is not installed (Debian: nginx-light)")
        self.nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
        self.dir = tempfile.mkdtemp(prefix="tokenscope-nginx-")
        self.replicas = [Server("-np", "4", "-c", "2048") for _ in range(2)]
        self.port = free_port()
        with open(os.path.join(self.dir, "nginx.conf"), "w") as f:
            f.write(nginx_config(self.dir, self.port, [r.port for r in self.replicas]))
        self.nginx = subprocess.Popen([self.nginx_bin, "-c", os.path.join(self.dir, "nginx.conf"), "-p", self.dir],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        def up():
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                c.request("GET", "/health")
                return c.getresponse().status == 200
            except OSError:
                return False
            finally:
                c.close()

        if not wait_until(up, 15):
            self.tearDown()
            raise AssertionError(f"nginx did not come up: {self.nginx.stdout.read() if self.nginx.poll() else ''}"
                                 f"{open(os.path.join(self.dir, 'error.log')).read()}")

    def tearDown(self):
        if self.nginx.poll() is None:
            self.nginx.send_signal(signal.SIGQUIT)
            try:
                self.nginx.wait(10)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
        self.nginx.stdout.close()
        for r in self.replicas:
            r.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def served(self, r):
        return r.metrics().get('tokenscope_requests_total{status="200"}', 0)

    def test_both_replicas_serve_and_a_killed_one_loses_only_its_requests(self):
        # 16 concurrent streams: every one completes, and both replicas took some.
        out = [None] * 16
        threads = [threading.Thread(target=stream_through, args=(self.port, f"Item {i}:", 24, out, i))
                   for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual([o for o in out if not o[0]], [])
        self.assertTrue(all(o[1] == "length" for o in out), out)
        counts = [self.served(r) for r in self.replicas]
        self.assertTrue(all(c > 0 for c in counts), f"requests per replica: {counts}")

        # 8 long streams, spread over both; kill one replica while they run.
        out = [None] * 8
        threads = [threading.Thread(target=stream_through, args=(self.port, f"Essay {i}:", 400, out, i))
                   for i in range(8)]
        for t in threads:
            t.start()
        victim, survivor = self.replicas[1], self.replicas[0]
        running = lambda r: r.metrics()["tokenscope_requests_running"]  # noqa: E731
        self.assertTrue(wait_until(lambda: running(victim) > 0 and running(survivor) > 0
                                   and running(victim) + running(survivor) == 8, 20),
                        "both replicas should be running the long streams")
        lost = int(running(victim))
        victim.kill()
        for t in threads:
            t.join(120)
        failed = [o for o in out if not o[0]]
        self.assertEqual(len(failed), lost, f"{lost} requests ran on the killed replica; results: {out}")
        self.assertTrue(all(o[1] == "length" for o in out if o[0]))
        # New requests all go to the survivor.
        out = [None] * 4
        threads = [threading.Thread(target=stream_through, args=(self.port, f"After {i}:", 8, out, i))
                   for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual([o for o in out if not o[0]], [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
