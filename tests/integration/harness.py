"""Shared helpers for prakat's integration tests (Python 3 standard library only).

Every test script:
  - builds its own temporary tree with make_env() (spool, state, site and the config under /tmp),
  - starts $PRAKAT_BUILD/prakatd on it with Daemon, stderr captured to TMP/prakatd.log,
  - prints one line per case, "PASS: name" or "FAIL: name: reason", through Suite,
  - exits non-zero when a case failed (Suite.finish()).

Under AddressSanitizer (PRAKAT_BUILD=build-asan) the daemon's stderr is checked for
"ERROR: AddressSanitizer" and "runtime error:" whenever it is stopped, and a clean SIGTERM stop must
exit 0.  Nothing here asserts speed: every wait polls with a generous timeout.

With PRAKAT_VALGRIND=1 prakatd runs under valgrind memcheck (VALGRIND_ARGV, with tests/valgrind.supp):
every valgrind report in its stderr ("==PID== ...", valgrind runs with -q) is a problem, as is exit
code 99 (--error-exitcode), and the timeouts are four times longer.  `make check-valgrind` runs a
subset of the suites this way.
"""

import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.abspath(os.environ.get("PRAKAT_BUILD") or os.path.join(TOP, "build"))
PRAKATD = os.path.join(BUILD, "prakatd")
PRAKAT = os.path.join(BUILD, "prakat")
PLUGIN_DIR = os.path.join(BUILD, "channels")
DATA = os.path.join(TOP, "tests", "data")
ASAN = "asan" in os.path.basename(BUILD)

VALGRIND = os.environ.get("PRAKAT_VALGRIND") == "1"
VALGRIND_SUPP = os.path.join(TOP, "tests", "valgrind.supp")
VALGRIND_ARGV = ["valgrind", "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite",
                 "--track-fds=no", "-q"] + (["--suppressions=" + VALGRIND_SUPP] if os.path.exists(VALGRIND_SUPP) else [])

# Generous: the sanitizer build is several times slower, valgrind some more, CI machines are shared.
TIMEOUT = (60.0 if ASAN else 30.0) * (4 if VALGRIND else 1)
POLL = 0.05

SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")
VALGRIND_REPORT = re.compile(r"^==\d+== \S.*$", re.M)

THAI_RE = re.compile("[\u0e00-\u0e7f]")

VILLAGES = """[villages]
1 = บ้านบ่อแก้ว
2 = บ้านโนนสวรรค์
3 = บ้านหนองบัว
4 = บ้านโคกสะอาด
5 = บ้านดอนแดง
"""


class TestFailure(Exception):
    pass


def check(cond, message):
    if not cond:
        raise TestFailure(message)


def wait_for(predicate, timeout=None, what="condition", interval=POLL):
    """Polls predicate() until it returns something true; returns that value or raises TestFailure."""
    deadline = time.monotonic() + (timeout if timeout is not None else TIMEOUT)
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TestFailure("timed out waiting for %s" % what)
        time.sleep(interval)


def read_text(path):
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        return f.read()


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


class Env:
    """One test's private tree: TMP/{prakat.conf, spool/, state/, site/, prakatd.log}."""

    def __init__(self, tmp, extra_prakat="", extra_config="", settle="300ms", website_extra="",
                 base_url="https://bokaeo.go.th/news"):
        self.tmp = tmp
        self.spool = os.path.join(tmp, "spool")
        self.state = os.path.join(tmp, "state")
        self.site = os.path.join(tmp, "site")
        self.conf = os.path.join(tmp, "prakat.conf")
        self.log = os.path.join(tmp, "prakatd.log")
        self.runtime = os.path.join(tmp, "run")  # control.sock
        self.base_url = base_url
        self.incoming = os.path.join(self.spool, "incoming")
        self.published = os.path.join(self.spool, "published")
        self.rejected = os.path.join(self.spool, "rejected")
        for d in (self.incoming, self.published, self.rejected, self.state, self.site):
            os.makedirs(d, exist_ok=True)
        self.write_config(extra_prakat=extra_prakat, extra_config=extra_config, settle=settle,
                          website_extra=website_extra)

    def config_text(self, extra_prakat="", extra_config="", settle="300ms", website_extra=""):
        return ("[prakat]\n"
                "spool = %s\nstate = %s\nruntime_dir = %s\ntimezone = Asia/Bangkok\nsettle = %s\n"
                "retry_min = 1s\nretry_max = 5s\nplugin_dir = %s\n"
                "default_category = ข่าวประชาสัมพันธ์\n%s\n"
                "%s\n"
                "[channel website]\nplugin = website\noutput = %s\nbase_url = %s\n"
                "site_title = ข่าวประชาสัมพันธ์ อบต.บ่อแก้ว\noffice_name = องค์การบริหารส่วนตำบลบ่อแก้ว\n%s\n"
                "%s\n") % (self.spool, self.state, self.runtime, settle, PLUGIN_DIR, extra_prakat, VILLAGES, self.site,
                           self.base_url, website_extra, extra_config)

    def write_config(self, text=None, **kw):
        if text is None:
            text = self.config_text(**kw)
        tmp = self.conf + ".new"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.rename(tmp, self.conf)

    # ---- dropping files ----

    def drop(self, name, content, slow=False, pieces=5, interval=0.5):
        """Drops a file into incoming/: atomically (dotfile, then rename) or slowly in pieces."""
        if isinstance(content, str):
            content = content.encode("utf-8")
        final = os.path.join(self.incoming, name)
        if not slow:
            tmp = os.path.join(self.incoming, ".%s.writing" % name)
            with open(tmp, "wb") as f:
                f.write(content)
            os.rename(tmp, final)
            return final
        step = max(1, (len(content) + pieces - 1) // pieces)
        with open(final, "wb") as f:
            for i in range(0, len(content), step):
                f.write(content[i:i + step])
                f.flush()
                os.fsync(f.fileno())
                if i + step < len(content):
                    time.sleep(interval)
        return final

    def drop_bundle(self, name, files):
        """files: {relative name: bytes|str}. Built as a dot-folder, then renamed in."""
        tmp = os.path.join(self.incoming, ".%s.building" % name)
        os.makedirs(tmp)
        for rel, data in files.items():
            p = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            if isinstance(data, str):
                data = data.encode("utf-8")
            with open(p, "wb") as f:
                f.write(data)
        final = os.path.join(self.incoming, name)
        os.rename(tmp, final)
        return final

    # ---- looking at the results ----

    def incoming_names(self):
        return sorted(os.listdir(self.incoming))

    def visible_incoming(self):
        return [n for n in self.incoming_names() if not n.startswith(".")]

    def receipt_dirs(self):
        return sorted(d for d in glob.glob(os.path.join(self.published, "*", "receipt.txt")))

    def receipts(self):
        """[(folder, id, original name, receipt text)] of every published/*/receipt.txt."""
        out = []
        for path in self.receipt_dirs():
            folder = os.path.dirname(path)
            if os.path.basename(folder).startswith("."):
                continue
            try:
                text = read_text(path)
            except FileNotFoundError:  # being replaced by a rewritten receipt: the next look sees it
                continue
            m = re.search(r"^Announcement id: (\S+)$", text, re.M)
            o = re.search(r"^Original file: (.*)$", text, re.M)
            out.append((folder, m.group(1) if m else None, o.group(1) if o else None, text))
        return out

    def receipt_for(self, original):
        for r in self.receipts():
            if r[2] == original:
                return r
        return None

    def wait_published(self, original, timeout=None):
        """Waits for the receipt of the file or folder dropped as `original`; returns (folder, id, text)."""
        r = wait_for(lambda: self.receipt_for(original), timeout, "the receipt of %s" % original)
        return r[0], r[1], r[3]

    def error_path(self, name):
        return os.path.join(self.rejected, name + ".error.txt")

    def wait_rejected(self, name, timeout=None):
        p = self.error_path(name)
        wait_for(lambda: os.path.exists(p) and (os.path.lexists(os.path.join(self.rejected, name))),
                 timeout, "%s in rejected/" % name)
        return read_text(p)

    def article(self, id):
        return os.path.join(self.site, "a", id + ".html")

    # ---- the CLI ----

    def cli(self, *args, env=None, check_rc=None, timeout=60):
        e = dict(os.environ)
        e.update(asan_env())
        if env:
            e.update(env)
        p = subprocess.run([PRAKAT, "--config", self.conf] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=e, timeout=timeout)
        out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
        for pat in SANITIZER_PATTERNS:
            check(pat not in err, "prakat %s: sanitizer report:\n%s" % (" ".join(args), err[-3000:]))
        if check_rc is not None:
            check(p.returncode == check_rc, "prakat %s exited %d, expected %d; stderr: %s" %
                  (" ".join(args), p.returncode, check_rc, err.strip()[-500:]))
        return p.returncode, out, err

    def list_json(self, all=True, env=None):
        args = ["list", "--json"] + (["--all"] if all else [])
        _, out, _ = self.cli(*args, env=env, check_rc=0)
        return json.loads(out)

    def show_json(self, id, env=None):
        _, out, _ = self.cli("show", id, "--json", env=env, check_rc=0)
        return json.loads(out)


def sanitizer_problems(text, who, problems):
    """Adds to `problems` each sanitizer report found in `text` (a process's stderr), once."""
    for pat in SANITIZER_PATTERNS:
        i = text.find(pat)
        if i >= 0:
            msg = "sanitizer report in %s's stderr:\n%s" % (who, text[max(0, i - 200):i + 3000])
            if msg not in problems:
                problems.append(msg)
    m = VALGRIND_REPORT.search(text) if VALGRIND else None
    if m:
        msg = "valgrind report in %s's stderr:\n%s" % (who, text[m.start():m.start() + 4000])
        if msg not in problems:
            problems.append(msg)


def asan_env():
    return {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0",
            "UBSAN_OPTIONS": "print_stacktrace=1"}


def make_env(tmp=None, extra_config="", **kw):
    if tmp is None:
        tmp = tempfile.mkdtemp(prefix="prakat-it-", dir="/tmp")
    return Env(tmp, extra_config=extra_config, **kw)


# Every prakatd a test made: the suite's end stops any still running, also one that a case stopped
# (and so the suite forgot) and then started again.
ALL_DAEMONS = []


class Daemon:
    """prakatd on an Env, stderr appended to env.log across restarts."""

    def __init__(self, env, extra_env=None, argv_prefix=None):
        ALL_DAEMONS.append(self)
        self.env = env
        self.extra_env = dict(extra_env or {})
        self.argv_prefix = argv_prefix
        self.proc = None
        self.logf = None
        self.log_start = 0
        self.problems = []  # sanitizer findings, bad exits

    def argv(self):
        return [PRAKATD, "--config", self.env.conf]

    def start(self, extra_env=None, wait_ready=True, argv=None):
        assert self.proc is None or self.proc.poll() is not None
        e = dict(os.environ)
        e.pop("NOTIFY_SOCKET", None)
        e.pop("WATCHDOG_USEC", None)
        e.pop("WATCHDOG_PID", None)
        e.update(asan_env())
        e.update(self.extra_env)
        if extra_env:
            e.update(extra_env)
        self.logf = open(self.env.log, "ab")
        self.log_start = self.logf.tell()
        argv = argv or self.argv()
        if VALGRIND and argv[0] == PRAKATD:
            argv = VALGRIND_ARGV + argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf, env=e)
        if wait_ready:
            self.wait_ready()
        return self

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self, since_start=False):
        try:
            with open(self.env.log, "rb") as f:
                if since_start:
                    f.seek(self.log_start)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_ready(self, timeout=None):
        def ready():
            if not self.running():
                raise TestFailure("prakatd exited with %s before it was ready" % self.proc.returncode)
            return "prakatd ready" in self.log(since_start=True)
        wait_for(ready, timeout, "prakatd ready")

    def wait_log(self, text, timeout=None, since_start=True):
        wait_for(lambda: text in self.log(since_start=since_start), timeout, "%r in the log" % text)

    def _reap(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.problems.append("prakatd did not exit within %ss of the signal" % timeout)
            return None
        finally:
            if self.logf:
                self.logf.close()
                self.logf = None

    def stop(self, sig=signal.SIGTERM, timeout=None, expect_rc=0):
        """Stops it with `sig`; records a problem if it does not exit with expect_rc."""
        if self.proc is None or self.proc.poll() is not None:
            rc = self.proc.returncode if self.proc else None
        else:
            self.proc.send_signal(sig)
            rc = self._reap(timeout or TIMEOUT)
        if VALGRIND and rc == 99:
            self.problems.append("valgrind found errors in prakatd (exit code 99), see %s" % self.env.log)
        elif expect_rc is not None and rc is not None and rc != expect_rc:
            self.problems.append("prakatd exited with %s after signal %s (expected %s)" % (rc, sig, expect_rc))
        self.scan_sanitizer()
        return rc

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self._reap(TIMEOUT)
        self.scan_sanitizer()

    def scan_sanitizer(self):
        sanitizer_problems(self.log(since_start=True), "prakatd", self.problems)

    def assert_clean(self):
        """Raises when a stop found a sanitizer report or a bad exit."""
        self.scan_sanitizer()
        check(not self.problems, "; ".join(self.problems))

    def tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])


class Suite:
    """Prints "PASS: name" / "FAIL: name: reason" per case; the daemons it knows are shown on failure
    and always stopped at the end."""

    def __init__(self, name):
        self.name = name
        self.failed = 0
        self.passed = 0
        self.daemons = []
        self.started = time.monotonic()
        self.keep = os.environ.get("PRAKAT_KEEP_TMP") == "1"
        self.tmps = []

    def tmpdir(self, tag):
        d = tempfile.mkdtemp(prefix="prakat-%s-%s-" % (self.name, tag), dir="/tmp")
        self.tmps.append(d)
        return d

    def env(self, tag, **kw):
        return make_env(self.tmpdir(tag), **kw)

    def daemon(self, env, **kw):
        d = Daemon(env, **kw)
        self.daemons.append(d)
        return d

    def _fail(self, name, reason, show=None):
        self.failed += 1
        reason = str(reason).strip().replace("\n", "\n    ")
        print("FAIL: %s: %s" % (name, reason), flush=True)
        for d in (show if show is not None else self.daemons):
            print("    ---- %s (last lines)" % d.env.log)
            for line in d.tail().splitlines():
                print("    | " + line)
        sys.stdout.flush()

    def case(self, name, fn, *args, **kw):
        """Runs fn(*args); returns its value or None on failure."""
        try:
            value = fn(*args, **kw)
        except TestFailure as e:
            self._fail(name, e)
            return None
        except Exception as e:  # a bug in the test or an unexpected state: still one FAIL line
            self._fail(name, "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc(limit=3)))
            return None
        self.passed += 1
        print("PASS: %s" % name, flush=True)
        return value if value is not None else True

    def group(self, name, fn, *args):
        """Runs a group of cases; an error outside its cases (e.g. prakatd would not start) is one FAIL."""
        try:
            fn(*args)
        except TestFailure as e:
            self._fail(name, e)
        except Exception as e:
            self._fail(name, "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc(limit=4)))

    def result(self, name, ok, reason=""):
        if ok:
            self.passed += 1
            print("PASS: %s" % name, flush=True)
        else:
            self._fail(name, reason or "failed")

    def stop_daemon(self, d, name):
        """Stops d with SIGTERM and reports its exit and sanitizer findings as one case."""
        def fn():
            d.stop()
            d.assert_clean()
        self.case(name, fn)
        if d in self.daemons:
            self.daemons.remove(d)

    def finish(self):
        for d in self.daemons + [d for d in ALL_DAEMONS if d not in self.daemons and d.running()]:
            try:
                if d.running():
                    d.stop()
                d.scan_sanitizer()
                if d.problems:
                    self._fail("%s: daemon %s" % (self.name, d.env.tmp), "; ".join(d.problems), show=[d])
            except Exception as e:
                self._fail("%s: stopping daemon" % self.name, e, show=[])
        if self.failed == 0 and not self.keep:
            for t in self.tmps:
                shutil.rmtree(t, ignore_errors=True)
        elif self.tmps:
            print("    temporary trees kept: %s" % " ".join(self.tmps))
        print("# %s: %d passed, %d failed in %.1fs (build %s)" % (
            self.name, self.passed, self.failed, time.monotonic() - self.started, BUILD), flush=True)
        sys.exit(1 if self.failed else 0)


def require_build(suite):
    for p in (PRAKATD, PRAKAT, os.path.join(PLUGIN_DIR, "website.so")):
        if not os.path.exists(p):
            suite.result("%s: build present" % suite.name, False,
                         "%s is missing (run make; website.so is built by `make %s`)" % (p, os.path.relpath(
                             os.path.join(PLUGIN_DIR, "website.so"), TOP)))
            suite.finish()


# ---- small content helpers ----

def tiny_png(width=4, height=3, rgb=(0x1f, 0x6f, 0xb5)):
    """A valid PNG image, generated (zlib + struct, no Pillow)."""
    import struct
    import zlib

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)

    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def error_line(text):
    m = re.search(r"^Line: (\d+)$", text, re.M)
    return int(m.group(1)) if m else None


def check_error_text(text, *english, line=None):
    """The error file has Thai, English, the given English fragments and (if given) the line number."""
    check(THAI_RE.search(text.split("----------------------------------------")[0] or ""),
          "no Thai text in the error file:\n" + text)
    check("This announcement was NOT published" in text, "no English part in the error file:\n" + text)
    for frag in english:
        check(frag.lower() in text.lower(), "the error file does not mention %r:\n%s" % (frag, text))
    if line is not None:
        check(error_line(text) == line, "expected line %d in the error file, got %s:\n%s" %
              (line, error_line(text), text))
        check(("บรรทัดที่ %d" % line) in text, "the Thai part does not give line %d:\n%s" % (line, text))


# ---- headless Chromium (the printable pages: report, digest) ----

CHROMIUM = "/usr/bin/chromium"


def chromium(tmp, *args, timeout=90):
    """Runs headless Chromium with a fresh profile under tmp; returns (rc, stdout, stderr)."""
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--no-first-run", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
           "--user-data-dir=" + profile] + list(args)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def chromium_dump_dom(tmp, path):
    """The DOM of a local HTML file after Chromium ran it (scripts, if any, included)."""
    rc, out, err = chromium(tmp, "--virtual-time-budget=2000", "--dump-dom", "file://" + path)
    check(rc == 0 and out.strip(), "chromium --dump-dom %s failed (rc %d): %s" % (path, rc, err[-800:]))
    return out


def chromium_print_pdf(tmp, path, pdf):
    """Prints a local HTML file to PDF as Chromium's print does; returns the PDF's bytes."""
    if os.path.exists(pdf):
        os.unlink(pdf)
    rc, _, err = chromium(tmp, "--no-pdf-header-footer", "--print-to-pdf=" + pdf, "file://" + path)
    check(rc == 0 and os.path.exists(pdf), "chromium --print-to-pdf %s failed (rc %d): %s" % (path, rc, err[-800:]))
    data = read_bytes(pdf)
    check(data.startswith(b"%PDF-") and len(data) > 1000, "%s is not a PDF of any size (%d bytes)" % (pdf, len(data)))
    return data
