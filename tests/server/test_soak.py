"""Soak: a few hundred streamed requests from scripts/load.py against one server. No request may fail, the server
must end idle (no running request, no KV page held) and its resident memory after the run must stay within
RSS_BOUND of its resident memory after a warm-up of the same kind of load."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

from serving import Server, need_model, wait_until

LOAD = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "load.py")
REQUESTS = int(os.environ.get("TOKENSCOPE_SOAK_REQUESTS", "300"))
# Allowed growth of the resident set from after the warm-up to after the soak: 10% plus 16 MiB (allocator
# arenas of the HTTP threads settle during the warm-up; a per-request leak of even 60 KiB would exceed it).
RSS_BOUND = (1.10, 16 * 1024)


def load(srv, n, seed, out):
    r = subprocess.run([sys.executable, LOAD, "--target", f"soak={srv.url()}", "-n", str(n), "-c", "8",
                        "--seed", str(seed), "--prompt-words", "5:120", "--max-tokens", "4:40", "--json", out],
                       capture_output=True, text=True, timeout=900)
    with open(out) as f:
        res = json.load(f)["results"]["soak"][0]
    return r.returncode, res, r.stderr


class Soak(unittest.TestCase):
    def test_hundreds_of_requests_no_failures_bounded_memory(self):
        need_model()
        srv = Server("-np", "8", "-c", "4096")
        try:
            with tempfile.TemporaryDirectory() as d:
                rc, res, err = load(srv, 60, 1, os.path.join(d, "warm.json"))
                self.assertEqual((rc, res["errors"]), (0, 0), err)
                rss_warm = srv.rss_kib()
                rc, res, err = load(srv, REQUESTS, 2, os.path.join(d, "soak.json"))
                self.assertEqual(res["errors"], 0, err)
                self.assertEqual(rc, 0, err)
                self.assertEqual(res["requests"], REQUESTS)
                self.assertGreater(res["out_tokens"], REQUESTS * 4 - 1)
            m = srv.metrics()
            self.assertEqual(m["tokenscope_requests_running"], 0)
            self.assertEqual(m["tokenscope_requests_waiting"], 0)
            self.assertTrue(wait_until(lambda: srv.metrics()["tokenscope_kv_blocks_used"] == 0, 5))
            self.assertEqual(m['tokenscope_requests_total{status="200"}'], 60 + REQUESTS)
            rss_end = srv.rss_kib()
            bound = rss_warm * RSS_BOUND[0] + RSS_BOUND[1]
            print(f"soak: {REQUESTS} requests, RSS after warm-up {rss_warm / 1024:.1f} MiB, after the soak "
                  f"{rss_end / 1024:.1f} MiB (bound {bound / 1024:.1f} MiB)", file=sys.stderr)
            self.assertLessEqual(rss_end, bound)
        finally:
            srv.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
