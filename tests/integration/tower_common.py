"""What the tower tests share (test_tower_agent.py, test_tower_channel.py): times in the wire format, a
play script that writes down what a player or TTS would do, the prakat-tower process with its log and
sanitizer checks, and a small PKI for the TLS cases."""

import calendar
import os
import signal
import subprocess
import time

from harness import BUILD, TIMEOUT, TestFailure, asan_env, check, sanitizer_problems, wait_for

AGENT = os.path.join(BUILD, "prakat-tower")

PLAY_SCRIPT = r"""#!/bin/sh
# play.sh LOG KIND ARG: what a player or TTS would do, written down.
log="$1"; kind="$2"; arg=$(printf '%s\n' "$3" | head -n 1)
secs=$(printf '%s\n' "$arg" | sed -n 's/.*secs=\([0-9.]*\).*/\1/p')
[ -n "$secs" ] || secs=0.3
printf '%s start %s %s\n' "$(date +%s.%N)" "$kind" "$arg" >> "$log"
trap 'printf "%s killed %s %s\n" "$(date +%s.%N)" "$kind" "$arg" >> "$log"; exit 143' TERM
sleep "$secs"
printf '%s end %s %s\n' "$(date +%s.%N)" "$kind" "$arg" >> "$log"
"""


def install_play_script(root):
    """Writes PLAY_SCRIPT into root and returns its path."""
    path = os.path.join(root, "play.sh")
    with open(path, "w") as f:
        f.write(PLAY_SCRIPT)
    os.chmod(path, 0o755)
    return path


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(t)))


def epoch(s):
    return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))


def check_no_overlap(plays):
    """Every start comes after the previous play's end."""
    busy = False
    for t, what, kind, arg in sorted(plays):
        if what == "start":
            check(not busy, "two plays overlap: %s" % plays)
            busy = True
        else:
            busy = False


class AgentProcess:
    """One prakat-tower: stderr to TMP/agent.log across restarts, plays written to TMP/plays.log by the
    play script.  Subclasses write TMP/prakat-tower.conf and call spawn()."""

    def __init__(self, tmp, args=()):
        self.tmp = tmp
        self.state = os.path.join(tmp, "state")
        self.log_path = os.path.join(tmp, "agent.log")
        self.plays_path = os.path.join(tmp, "plays.log")
        self.conf = os.path.join(tmp, "prakat-tower.conf")
        self.args = list(args)
        self.proc = None
        self.log_start = 0
        self.problems = []
        self.env = self  # a Suite shows d.env.log of the processes it knows
        self.log = self.log_path

    def spawn(self, extra_env):
        assert not self.running()
        e = dict(os.environ)
        for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            e.pop(k, None)
        e.update(asan_env())
        e.update(extra_env)
        logf = open(self.log_path, "ab")
        self.log_start = logf.tell()
        self.proc = subprocess.Popen([AGENT, "--config", self.conf] + self.args, stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=logf, env=e)
        logf.close()

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def text(self, since_start=False):
        try:
            with open(self.log_path, "rb") as f:
                if since_start:
                    f.seek(self.log_start)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, text, timeout=None, since_start=True):
        def seen():
            if text in self.text(since_start):
                return True
            if not self.running():
                raise TestFailure("prakat-tower exited (%s) before %r appeared:\n%s" %
                                  (self.proc.returncode, text, self.tail()))
            return False
        wait_for(seen, timeout, "%r in the agent's log" % text)

    def stop(self, sig=signal.SIGTERM, expect_rc=0):
        rc = None
        if self.running():
            self.proc.send_signal(sig)
            try:
                rc = self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.problems.append("prakat-tower did not exit within %ss of signal %s" % (TIMEOUT, sig))
            if expect_rc is not None and rc is not None and rc != expect_rc:
                self.problems.append("prakat-tower exited with %s after signal %s" % (rc, sig))
        self.scan_sanitizer()
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL, expect_rc=None)

    def scan_sanitizer(self):
        sanitizer_problems(self.text(), "prakat-tower", self.problems)

    def assert_clean(self):
        self.scan_sanitizer()
        check(not self.problems, "; ".join(self.problems))

    def tail(self, n=30):
        return "\n".join(self.text().splitlines()[-n:])

    def plays(self):
        """[(wall time, "start"|"end"|"killed", "audio"|"tts", argument)] from plays.log."""
        out = []
        try:
            with open(self.plays_path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    parts = line.rstrip("\n").split(" ", 3)
                    if len(parts) == 4:
                        out.append((float(parts[0]), parts[1], parts[2], parts[3]))
        except FileNotFoundError:
            pass
        return out

    def starts(self):
        return [p[3] for p in self.plays() if p[1] == "start"]


def openssl(*args, cwd):
    p = subprocess.run(["openssl"] + list(args), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    check(p.returncode == 0, "openssl %s: %s" % (" ".join(args), p.stdout.decode(errors="replace")))


def make_pki(d, client_name, client_cn):
    """In d: a CA, a certificate for "localhost" (the broker) and one for a client (CN client_cn), signed
    by it, as server.* and CLIENT_NAME.*; and another CA (other-ca.*)."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=prakat test CA", cwd=d)
    for name, cn in (("server", "localhost"), (client_name, client_cn)):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
                "-subj", "/CN=" + cn, cwd=d)
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("subjectAltName=DNS:%s\n" % cn)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", name + ".crt", "-days", "2", "-extfile", name + ".ext", cwd=d)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other-ca.key", "-out", "other-ca.crt",
            "-days", "2", "-subj", "/CN=another CA", cwd=d)
