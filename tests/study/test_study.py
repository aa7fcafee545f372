#!/usr/bin/env python3
"""`tokenscope study` and the operating-system knobs, end to end.

Every study runs in its quick mode (tiny prompts, one round) and must give NAME.json with the expected columns
(every metric measured in every configuration that ran; a configuration that could not run says why), a verdict,
the machine named, and an NAME.html that headless Chromium renders with all its charts drawn. The knobs' flags are
checked for clear errors. Run by ctest (label study, one test per class), or by hand:

    python3 tests/study/test_study.py --bin build/tokenscope [--work-dir DIR] [unittest args, e.g. Stages]

Without the default model every test is skipped with the reason, and the exit status is 77.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(REPO, "build", "tokenscope")
WORK = None  # synthesized models are kept here between runs (--work-dir)
MODELS = os.environ.get("TOKENSCOPE_MODELS") or os.path.expanduser("~/.cache/tokenscope/models")
MODEL = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")
HAVE_MODEL = os.path.isfile(MODEL)
NEED_MODEL = unittest.skipUnless(HAVE_MODEL, "default model missing (%s): run scripts/fetch-models.sh" % MODEL)
VERDICTS = {"reproduced", "not reproduced", "inconclusive"}


def ts(*args, timeout=900):
    p = subprocess.run([BIN, *map(str, args)], capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def chromium():
    for b in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(b):
            return b
    return None


def render(html_path):
    """The page's DOM after its scripts ran, in headless Chromium."""
    p = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--no-first-run", "--virtual-time-budget=10000", "--dump-dom", "file://" + html_path],
                       capture_output=True, timeout=120)
    return p.stdout.decode(errors="replace")


def body_attr(dom, attr):
    m = re.search(r"<body[^>]*\b%s=\"([^\"]*)\"" % attr, dom)
    return m.group(1) if m else None


class QuickStudy(unittest.TestCase):
    """Runs one study quick; subclasses name it."""
    study = None
    # Configurations that may be skipped on some machines (with the reason in the JSON): name -> why allowed.
    may_skip = {}
    model = MODEL  # -m; None: the study's own default

    @classmethod
    def setUpClass(cls):
        if cls.study is None or not HAVE_MODEL:
            return
        cls.dir = tempfile.mkdtemp(prefix="tokenscope-study-")
        args = ["study", cls.study, "--quick", "-r", "1", "-o", cls.dir] + (["-m", cls.model] if cls.model else [])
        if WORK:
            args += ["--work-dir", WORK]
        cls.code, cls.out, cls.err = ts(*args)
        path = os.path.join(cls.dir, cls.study + ".json")
        cls.j = json.load(open(path)) if os.path.exists(path) else None

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "dir", None):
            shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        if self.study is None:
            self.skipTest("base class")
        if not HAVE_MODEL:
            self.skipTest("default model missing (%s): run scripts/fetch-models.sh" % MODEL)

    def test_json_has_the_expected_columns(self):
        self.assertEqual(self.code, 0, self.err[-3000:])
        j = self.j
        self.assertIsNotNone(j, "no %s.json" % self.study)
        self.assertEqual(j["study"], self.study)
        self.assertTrue(j["finding"])
        self.assertIn(j["verdict"]["status"], VERDICTS)
        self.assertTrue(j["verdict"]["text"])
        for k in ("cpu", "isa", "kernel", "thp"):
            self.assertTrue(j["machine"][k], k)
        self.assertGreaterEqual(j["machine"]["cpus"], 1)
        self.assertGreater(j["machine"]["dram_read_gbs"], 0)
        if self.model:
            self.assertEqual(j["model"], self.model)
        self.assertTrue(j["quick"])
        keys = [m["key"] for m in j["metrics"]]
        self.assertTrue(keys)
        for c in j["charts"]:
            self.assertIn(c, keys)
        ran = 0
        for c in j["configs"]:
            if c["skipped"]:
                self.assertIn(c["name"], self.may_skip, "%s skipped: %s" % (c["name"], c["skipped"]))
                continue
            ran += 1
            for k in keys:
                self.assertIn(k, c["metrics"], "%s: %s not measured" % (c["name"], k))
                m = c["metrics"][k]
                self.assertEqual(m["n"], 1)
                self.assertEqual(len(m["samples"]), 1)
                self.assertLessEqual(m["min"], m["median"])
                self.assertLessEqual(m["median"], m["max"])
        self.assertGreater(ran, 0, "no configuration ran")

    def test_terminal_table_states_finding_and_verdict(self):
        self.assertEqual(self.code, 0, self.err[-3000:])
        self.assertIn("classic finding: ", self.out)
        self.assertRegex(self.out, r"this run: .+: (reproduced|not reproduced|inconclusive)")
        for c in self.j["configs"]:
            self.assertIn(c["name"], self.out)

    def test_html_renders_its_charts(self):
        self.assertEqual(self.code, 0, self.err[-3000:])
        path = os.path.join(self.dir, self.study + ".html")
        html = open(path).read()
        self.assertIn("study-data", html)
        self.assertIn(self.j["verdict"]["status"], html)
        if not chromium():
            self.skipTest("chromium is not installed (scripts/install-deps.sh installs it): page not rendered")
        dom = render(path)
        self.assertTrue(dom, "chromium printed no DOM")
        self.assertIsNone(body_attr(dom, "data-error"), body_attr(dom, "data-error"))
        self.assertEqual(body_attr(dom, "data-charts-total"), str(len(self.j["charts"])))
        self.assertEqual(body_attr(dom, "data-charts-drawn"), str(len(self.j["charts"])))


class Stages(QuickStudy):
    study = "stages"

    def test_prompt_is_the_classic_78_tokens_and_both_stages_are_placed(self):
        c = self.j["configs"][0]["metrics"]
        self.assertEqual(c["prompt_tokens"]["median"], 78)
        # Decode reads every weight per token; prefill reuses them over 78 tokens: far more FLOPs per byte.
        self.assertGreater(c["prefill_ai"]["median"], 5 * c["decode_ai"]["median"])


class Hotspots(QuickStudy):
    study = "hotspots"
    may_skip = {}

    def test_top_functions_are_named(self):
        titles = [t["title"] for t in self.j["tables"]]
        self.assertTrue(any("prefill" in t for t in titles) and any("decode" in t for t in titles), titles)
        for t in self.j["tables"]:
            self.assertTrue(t["rows"], t["title"])
            named = [r for r in t["rows"] if r[1] not in ("?", "(kernel)")]
            self.assertTrue(named, t["rows"][:5])


class KvCache(QuickStudy):
    study = "kv-cache"


class Formats(QuickStudy):
    study = "formats"

    def test_bits_per_weight_follow_the_format(self):
        bits = {c["name"]: c["metrics"]["bits_per_weight"]["median"] for c in self.j["configs"] if not c["skipped"]}
        self.assertLess(bits["q4_0"], bits["q8_0"])


class HugePages(QuickStudy):
    study = "hugepages"

    def test_a_hugetlbfs_fallback_is_said(self):
        c = next(c for c in self.j["configs"] if c["name"] == "hugetlbfs")
        free = 0
        for line in open("/proc/meminfo"):
            if line.startswith("HugePages_Free:"):
                free = int(line.split()[1])
        if free == 0:
            self.assertTrue(any("hugetlbfs" in n and "instead" in n for n in c["notes"]), c["notes"])


class Load(QuickStudy):
    study = "load"

    def test_cold_runs_say_how_the_cache_was_dropped(self):
        for c in self.j["configs"]:
            if c["name"].endswith("cold") and not c["skipped"]:
                self.assertTrue(any("page cache" in n for n in c["notes"]), c["notes"])


class Sched(QuickStudy):
    study = "sched"
    # A real-time policy needs CAP_SYS_NICE: without it the configuration says so and the study goes on.
    may_skip = {"fifo, %d threads" % len(os.sched_getaffinity(0)): "no permission", "fifo, 1 thread": "no permission"}

    def test_a_refused_policy_names_the_permission(self):
        for c in self.j["configs"]:
            if c["skipped"]:
                self.assertIn("CAP_SYS_NICE", c["skipped"])


class Barrier(QuickStudy):
    study = "barrier"


class Threads(QuickStudy):
    study = "threads"


class Batch(QuickStudy):
    study = "batch"


class Ternary(QuickStudy):
    study = "ternary"
    model = None  # the synthesized BitNet-b1.58-2B shape in I2_S

    def test_both_kernels_ran_on_two_bit_weights(self):
        names = {c["name"] for c in self.j["configs"] if not c["skipped"]}
        self.assertEqual(names, {"i2_s, mad", "i2_s, lut"})
        for c in self.j["configs"]:
            self.assertLess(c["metrics"]["bits_per_weight"]["median"], 4)  # 2-bit weights, Q8_0 embeddings


@NEED_MODEL
class Cli(unittest.TestCase):
    """The study command's and the knobs' bad input: exit 2 (usage) or 1, a message naming what is wrong."""

    def test_list_names_every_study(self):
        code, out, _ = ts("study", "--list")
        self.assertEqual(code, 0)
        for name in ("stages", "hotspots", "kv-cache", "formats", "hugepages", "load", "sched", "barrier", "threads",
                     "batch", "ternary", "chunked-prefill"):
            self.assertIn(name, out)

    def test_bad_study_arguments(self):
        code, _, err = ts("study", "nosuch")
        self.assertEqual(code, 2)
        self.assertIn("nosuch", err)
        self.assertIn("stages", err)  # lists the real ones
        code, _, err = ts("study", "stages", "--rounds", "0")
        self.assertEqual(code, 2)
        self.assertIn("--rounds", err)
        code, _, err = ts("study", "chunked-prefill")
        self.assertEqual(code, 1)
        self.assertIn("not a study yet", err)
        code, _, err = ts("study", "ternary", "-m", MODEL, "--quick")
        self.assertEqual(code, 1)
        self.assertIn("no ternary weights", err)

    def test_bad_knob_values_are_usage_errors(self):
        for args, word in ((["--load", "floppy"], "--load floppy"), (["--hugepages", "giant"], "--hugepages giant"),
                           (["--sched", "batch"], "--sched batch"), (["--pool", "tbb"], "--pool tbb"),
                           (["--priority", "5"], "--priority 5"), (["--nice", "40"], "--nice 40"),
                           (["--sched", "fifo", "--priority", "200"], "--priority 200")):
            code, _, err = ts("run", "-m", MODEL, "-p", "hi", "-n", "1", *args)
            self.assertEqual(code, 2, "%s: %s" % (args, err))
            self.assertIn(word, err)

    def test_every_load_mode_gives_the_same_tokens(self):
        outs = {}
        for mode in ("mmap", "read", "uring", "direct"):
            code, out, err = ts("run", "-m", MODEL, "-p", "The sky is", "-n", "8", "--temp", "0", "--json",
                                "--load", mode)
            self.assertEqual(code, 0, err)
            j = json.loads(out)
            outs[mode] = j["tokens"]
            self.assertIn(j["model_load"]["mode"], (mode, "read"))  # direct may fall back to read, saying so
            if j["model_load"]["mode"] != mode:
                self.assertIn("O_DIRECT", j["model_load"]["notes"])
        self.assertEqual(len(set(map(tuple, outs.values()))), 1, outs)

    def test_pool_openmp_and_policy_show_in_the_json(self):
        code, out, err = ts("run", "-m", MODEL, "-p", "The sky is", "-n", "4", "--temp", "0", "--json", "--pool",
                            "openmp", "--sched", "other", "--nice", "3")
        self.assertEqual(code, 0, err)
        j = json.loads(out)
        self.assertEqual(j["system"]["pool"], "openmp")
        self.assertEqual(j["system"]["sched"], "other")
        self.assertEqual(j["system"]["nice"], 3)


if __name__ == "__main__":
    argv = [sys.argv[0]]
    it = iter(sys.argv[1:])
    for a in it:
        if a == "--bin":
            BIN = next(it)
        elif a == "--work-dir":
            WORK = next(it)
        else:
            argv.append(a)
    r = unittest.main(argv=argv, exit=False, verbosity=2).result
    if not HAVE_MODEL:
        sys.exit(77)
    sys.exit(0 if r.wasSuccessful() else 1)
