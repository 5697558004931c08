#!/usr/bin/python3
"""The daemon as systemd sees it: config errors with FILE:LINE, --check, SIGHUP reload (accepted and
refused), sd_notify (READY, STATUS, RELOADING+MONOTONIC_USEC, WATCHDOG, STOPPING), and the CLI
(validate, list --json, show --json, status)."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (PLUGIN_DIR, PRAKATD, TIMEOUT, Suite, TestFailure, asan_env, check, read_text,  # noqa: E402
                     require_build, wait_for)

S = Suite("daemon")
require_build(S)


def run_prakatd(*args, timeout=60):
    e = dict(os.environ)
    e.update(asan_env())
    e.pop("NOTIFY_SOCKET", None)
    p = subprocess.run([PRAKATD] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e,
                       timeout=timeout)
    out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    for pat in ("ERROR: AddressSanitizer", "runtime error:"):
        check(pat not in err, "sanitizer report from prakatd %s:\n%s" % (" ".join(args), err[-3000:]))
    return p.returncode, out, err


def line_of(path, text):
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.startswith(text):
                return n
    raise TestFailure("%r not in %s" % (text, path))


def config_errors():
    env = S.env("config")
    good = env.config_text()

    def unknown_key():
        env.write_config(good.replace("[prakat]\n", "[prakat]\ncolour = blue\n"))
        n = line_of(env.conf, "colour")
        rc, out, err = run_prakatd("--config", env.conf)
        check(rc != 0, "prakatd started with an unknown key")
        check("%s:%d:" % (env.conf, n) in err, "stderr does not say %s:%d:\n%s" % (env.conf, n, err))
        check("colour" in err, "stderr does not name the key:\n" + err)
    S.case("config: unknown key in [prakat] stops start-up with FILE:LINE:", unknown_key)

    def unknown_plugin():
        env.write_config(good.replace("plugin = website", "plugin = websight"))
        sec, n = line_of(env.conf, "[channel website]"), line_of(env.conf, "plugin = websight")
        rc, out, err = run_prakatd("--config", env.conf)
        check(rc != 0, "prakatd started with an unknown plugin")
        check(("%s:%d:" % (env.conf, n) in err) or ("%s:%d:" % (env.conf, sec) in err),
              "stderr does not name line %d (or the section's %d):\n%s" % (n, sec, err))
        check("websight" in err, "stderr does not name the plugin:\n" + err)
    S.case("config: unknown channel plugin is an error naming the line", unknown_plugin)

    def check_ok():
        env.write_config(good)
        rc, out, err = run_prakatd("--config", env.conf, "--check")
        check(rc == 0, "prakatd --check failed (%d): %s" % (rc, err))
        check("fine" in out, "prakatd --check printed: %r" % out)
        rc, out, err = run_prakatd("--config", env.conf + ".missing", "--check")
        check(rc != 0, "prakatd --check succeeded on a missing file")
    S.case("config: prakatd --check passes on a good config, fails on a missing one", check_ok)

    def check_changes_nothing():
        # An administrator runs `prakatd --check` as root before a reload, often while the daemon runs:
        # it must not create (root-owned) folders, write style.css, clear state/tmp or remove LINE keys.
        tmp = S.tmpdir("check-only")
        token = os.path.join(tmp, "token")
        with open(token, "w") as f:
            f.write("not-a-real-token\n")
        os.chmod(token, 0o600)
        new = {k: os.path.join(tmp, k) for k in ("spool", "state", "run", "site", "wp")}
        text = ("[prakat]\nspool = %(spool)s\nstate = %(state)s\nruntime_dir = %(run)s\nplugin_dir = %(plugins)s\n"
                "[villages]\n1 = บ้านบ่อแก้ว\n"
                "[channel website]\nplugin = website\noutput = %(site)s\nbase_url = https://bokaeo.go.th/news\n"
                "[channel facebook]\nplugin = facebook\npage_id = 123456789\ntoken_file = %(token)s\n"
                "[channel line]\nplugin = line\ntoken_file = %(token)s\n"
                "[channel tower]\nplugin = tower\nbroker = mqtt://127.0.0.1:1\ntopic_prefix = bokaeo/tower\n"
                "villages = 1\n") % dict(new, plugins=PLUGIN_DIR, token=token)
        conf = os.path.join(tmp, "prakat.conf")
        with open(conf, "w") as f:
            f.write(text)
        rc, out, err = run_prakatd("--config", conf, "--check")
        check(rc == 0, "prakatd --check failed (%d): %s" % (rc, err))
        made = sorted(k for k, p in new.items() if os.path.exists(p))
        check(not made, "prakatd --check created %s" % made)

        # On a running daemon's folders: nothing under them changes, not even a timestamp.
        def snapshot():
            out = {}
            for root in (env.spool, env.state, env.site):
                for dirpath, dirnames, filenames in os.walk(root):
                    for n in dirnames + filenames:
                        p = os.path.join(dirpath, n)
                        st = os.lstat(p)
                        out[p] = (st.st_mode, st.st_mtime_ns, st.st_size)
            return out
        env.write_config(good)
        d = S.daemon(env)
        d.start()
        leftover = os.path.join(env.state, "tmp", "20261126-0000cafe")
        os.makedirs(leftover)  # as if the daemon were staging a file right now
        time.sleep(0.3)
        before = snapshot()
        rc, out, err = run_prakatd("--config", env.conf, "--check")
        check(rc == 0, "prakatd --check failed (%d): %s" % (rc, err))
        after = snapshot()
        changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
        check(not changed, "prakatd --check changed %s" % changed[:10])
        os.rmdir(leftover)
        S.stop_daemon(d, "config: the daemon beside --check stopped cleanly")
    S.case("config: prakatd --check creates and changes nothing (no folders, no style.css, state/tmp kept)",
           check_changes_nothing)


class Notify:
    """A NOTIFY_SOCKET the test binds; collects every datagram."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setblocking(False)
        self.messages = []  # (monotonic time, {key: value})

    def drain(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            fields = {}
            for line in data.decode("utf-8", "replace").split("\n"):
                if "=" in line:
                    k, v = line.split("=", 1)
                    fields[k] = v
            self.messages.append((time.monotonic(), fields))

    def wait(self, predicate, what, since=0, timeout=None):
        def fn():
            self.drain()
            for i, (_, m) in enumerate(self.messages[since:], since):
                if predicate(m):
                    return i + 1
            return None
        return wait_for(fn, timeout, what)

    def count(self, key, since=0):
        self.drain()
        return sum(1 for _, m in self.messages[since:] if key in m)

    def close(self):
        self.sock.close()


def notify_and_reload():
    env = S.env("notify")
    good = env.config_text()
    notify = Notify(os.path.join(env.tmp, "notify.sock"))
    d = S.daemon(env)
    # WATCHDOG_PID must be the daemon's own pid: the shell exports its $$ and then becomes prakatd.
    argv = ["/bin/sh", "-c", 'export WATCHDOG_PID=$$; exec "$0" --config "$1"', PRAKATD, env.conf]
    d.start(extra_env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "2000000"}, argv=argv)
    try:
        S.case("sd_notify: READY=1 and STATUS= arrive", lambda: (
            notify.wait(lambda m: m.get("READY") == "1", "READY=1"),
            notify.wait(lambda m: "STATUS" in m and m["STATUS"], "STATUS=")))

        def watchdog():
            start = len(notify.messages)
            notify.wait(lambda m: m.get("WATCHDOG") == "1", "a first WATCHDOG=1", since=start)
            wait_for(lambda: notify.count("WATCHDOG", start) >= 3, what="three WATCHDOG=1 messages while idle "
                     "(have %d)" % notify.count("WATCHDOG", start))
        S.case("sd_notify: WATCHDOG=1 keeps arriving while idle (WATCHDOG_USEC=2s)", watchdog)

        def reload_ok():
            env.write_config(good.replace("settle = 300ms", "settle = 200ms"))
            start = len(notify.messages)
            d.proc.send_signal(signal.SIGHUP)
            i = notify.wait(lambda m: m.get("RELOADING") == "1", "RELOADING=1", since=start)
            check("MONOTONIC_USEC" in notify.messages[i - 1][1], "RELOADING=1 without MONOTONIC_USEC")
            notify.wait(lambda m: m.get("READY") == "1", "READY=1 after RELOADING=1", since=i)
            d.wait_log("reloaded")
            check(d.running(), "prakatd is not running after SIGHUP")
            env.drop("after-reload.txt", "หัวข้อ: หลังโหลดการตั้งค่าใหม่\n\nเนื้อหา\n")
            env.wait_published("after-reload.txt")
        S.case("SIGHUP: harmless change reloaded (RELOADING=1, READY=1, log says reloaded)", reload_ok)

        def reload_refused():
            env.write_config(good.replace("[prakat]\n", "[prakat]\nsettel = 1s\n"))
            start = len(notify.messages)
            d.proc.send_signal(signal.SIGHUP)
            i = notify.wait(lambda m: m.get("RELOADING") == "1", "RELOADING=1", since=start)
            notify.wait(lambda m: m.get("READY") == "1", "READY=1 after a refused reload", since=i)
            d.wait_log("refused")
            n = line_of(env.conf, "settel")
            check("%s:%d:" % (env.conf, n) in d.log(), "the refusal does not say %s:%d:" % (env.conf, n))
            check(d.running(), "prakatd stopped on a broken config")
            env.drop("after-refused.txt", "หัวข้อ: หลังปฏิเสธการตั้งค่าที่ผิด\n\nเนื้อหา\n")
            env.wait_published("after-refused.txt")
        S.case("SIGHUP: broken config refused, daemon keeps running and publishing", reload_refused)

        def stopping():
            start = len(notify.messages)
            rc = d.stop()
            notify.wait(lambda m: m.get("STOPPING") == "1", "STOPPING=1", since=start, timeout=5)
            check(rc == 0, "exit code %s after SIGTERM" % rc)
            d.assert_clean()
        S.case("sd_notify: STOPPING=1 on SIGTERM, exit 0", stopping)
    finally:
        notify.close()


def cli():
    env = S.env("cli")
    d = S.daemon(env)
    d.start()
    good = os.path.join(env.tmp, "good.txt")
    bad = os.path.join(env.tmp, "bad.txt")
    with open(good, "w", encoding="utf-8") as f:
        f.write("หัวข้อ: ประกาศรับสมัครผู้ดูแลเด็ก\nหมู่บ้าน: 1, 2\n\nรายละเอียดตามประกาศ\n")
    with open(bad, "w", encoding="utf-8") as f:
        f.write("หัวข้อ: ประกาศ\nหมู่บ้าน: 1\nChanels: website\n\nเนื้อหา\n")

    def validate():
        rc, out, err = env.cli("validate", good)
        check(rc == 0, "validate of a good file exited %d: %s %s" % (rc, out, err))
        check("valid" in out, "validate printed %r" % out)
        rc, out, err = env.cli("validate", bad)
        check(rc == 65, "validate of a bad file exited %d, expected 65 (EX_DATAERR)" % rc)
        rc2, _, _ = env.cli("validate", good, bad)
        check(rc2 == 65, "validate of a good and a bad file exited %d" % rc2)
        # The same explanation as the error file the daemon writes.
        with open(bad, "rb") as f:
            env.drop("bad.txt", f.read())
        err_text = env.wait_rejected("bad.txt")

        def key_lines(t):
            return [l for l in t.splitlines() if l.startswith(("ปัญหา:", "Problem:", "Line:", "บรรทัดที่"))]
        check(key_lines(out) == key_lines(err_text) and key_lines(out),
              "validate and the error file differ:\n%s\n---\n%s" % (out, err_text))
    S.case("cli: validate exits 0 on good, 65 on bad, same text as the error file", validate)

    def list_show():
        env.drop("good.txt", open(good, "rb").read())
        _, id, _ = env.wait_published("good.txt")
        entries = env.list_json()
        check([e["id"] for e in entries] == [id], "list --all --json ids: %s" % [e["id"] for e in entries])
        pending = env.list_json(all=False)
        check(pending == [], "list --json (not finished) is not empty: %s" % pending)
        s = env.show_json(id)
        check(s["id"] == id and s["title"] == "ประกาศรับสมัครผู้ดูแลเด็ก", "show: id/title %r %r" % (s["id"], s["title"]))
        check(s["villages"] == [1, 2], "show: villages %r" % s["villages"])
        check(s.get("status") == "finished", "show: status %r" % s.get("status"))
        jobs = s["jobs"]
        check(len(jobs) == 1 and jobs[0]["state"] == "done", "show: jobs %r" % jobs)
        check(jobs[0].get("link") == "%s/a/%s.html" % (env.base_url, id), "show: link %r" % jobs[0].get("link"))
        rc, out, err = env.cli("show", "20991231-00000000", "--json")
        check(rc == 66, "show of an unknown id exited %d, expected 66 (EX_NOINPUT)" % rc)
    S.case("cli: list --json, show ID --json (id, title, jobs[].state done, jobs[].link)", list_show)

    def status_running():
        rc, out, err = env.cli("status", "--json")
        check(rc == 0, "status exited %d: %s %s" % (rc, out, err))
        s = json.loads(out)
        check(s["daemon"] == "running" and s["pid"] == d.pid, "status: daemon %r pid %r" % (s["daemon"], s["pid"]))
        check(s["queue"] == 0, "status: queue %r" % s["queue"])
        ch = {c["name"]: c for c in s["channels"]}
        check(list(ch) == ["website"] and ch["website"]["healthy"], "status: channels %r" % s["channels"])
        rc, out, err = env.cli("status")
        check(rc == 0 and "is running" in out and "website" in out, "status (text): %d %r" % (rc, out))
    S.case("cli: status over the control socket (daemon, pid, queue, channel health)", status_running)

    def submit_hold_release_retry_cancel():
        # submit: an atomic drop, published like any other file.
        sub = os.path.join(env.tmp, "submitted.txt")
        with open(sub, "w", encoding="utf-8") as f:
            f.write("หัวข้อ: ประกาศเชิญประชุมสภาองค์การบริหารส่วนตำบล\n\nสมัยสามัญ สมัยที่ ๔ ประจำปี ๒๕๖๙\n")
        rc, out, err = env.cli("submit", sub)
        check(rc == 0, "submit exited %d: %s %s" % (rc, out, err))
        _, sid, _ = env.wait_published("submitted.txt")
        # hold and release an announcement that waits for its Publish-At.
        env.drop("later.txt", "หัวข้อ: ประกาศรับสมัครงาน\nเผยแพร่: 1 ม.ค. 2580 08.00 น.\n\nรายละเอียด\n".encode())
        wait_for(lambda: any(e["title"] == "ประกาศรับสมัครงาน" for e in env.list_json(all=False)),
                 what="the future announcement in the queue")
        lid = [e["id"] for e in env.list_json(all=False) if e["title"] == "ประกาศรับสมัครงาน"][0]
        # validate knows a Cancel's target whether it is finished (done/) or still waiting (the journal).
        for target, want in ((sid, 0), (lid, 0), ("20991231-00000000", 65)):
            c = os.path.join(env.tmp, "cancel-%s.txt" % target)
            with open(c, "w", encoding="utf-8") as f:
                f.write("ยกเลิก: %s\n\nประกาศผิดพลาด\n" % target)
            rc, out, err = env.cli("validate", c)
            check(rc == want, "validate of a Cancel of %s exited %d, expected %d: %s %s" % (target, rc, want, out, err))
        rc, out, err = env.cli("hold", lid)
        check(rc == 0 and "held" in out, "hold: %d %r %r" % (rc, out, err))
        wait_for(lambda: env.show_json(lid).get("held") is True, what="held saved in the state")
        rc, out, err = env.cli("release", lid)
        check(rc == 0 and "released" in out, "release: %d %r %r" % (rc, out, err))
        wait_for(lambda: env.show_json(lid).get("held") is False, what="released saved in the state")
        # retry: an unknown id is EX_NOINPUT; a finished announcement with nothing to retry changes nothing.
        rc, out, err = env.cli("retry", "20991231-00000000")
        check(rc == 66, "retry of an unknown id exited %d (%r)" % (rc, err))
        rc, out, err = env.cli("retry", sid, "--json")
        check(rc == 0 and json.loads(out)["jobs"] == 0, "retry of a finished announcement: %d %r" % (rc, out))
        rc, out, err = env.cli("retry", sid, "--channel", "facebook")
        check(rc == 65 and "facebook" in err, "retry --channel of an unknown channel: %d %r" % (rc, err))
        # cancel: withdraws the page, leaving a notice; a receipt for the withdrawal.
        rc, out, err = env.cli("cancel", sid, "--reason", "ประกาศซ้ำ")
        check(rc == 0, "cancel exited %d: %s %s" % (rc, out, err))
        wait_for(lambda: "ประกาศซ้ำ" in read_text(env.article(sid)), what="the withdrawal notice with the reason")
        wait_for(lambda: any(("ยกเลิกประกาศ: " + sid) in r[3] for r in env.receipts()),
                 what="a receipt naming the withdrawn id")
    S.case("cli: submit, hold/release, retry (unknown id 66, nothing to retry, unknown channel 65), "
           "cancel --reason", submit_hold_release_retry_cancel)

    def cancel_before_it_goes_out():
        lid = [e["id"] for e in env.list_json(all=False) if e["title"] == "ประกาศรับสมัครงาน"][0]
        rc, out, err = env.cli("cancel", lid, "--reason", "ยกเลิกการรับสมัคร")
        check(rc == 0, "cancel exited %d: %s %s" % (rc, out, err))
        wait_for(lambda: env.show_json(lid).get("status") != "waiting", what="the future announcement ended")
        job = env.show_json(lid)["jobs"][0]
        check(job["state"] == "cancelled", "its website job is %r, not cancelled" % job["state"])
        check(not os.path.exists(env.article(lid)), "a page was written for an announcement cancelled before it")
        wait_for(lambda: any("it had not gone out on this channel" in r[3] for r in env.receipts()),
                 what="the withdrawal's receipt saying nothing had gone out")
    S.case("cli: cancel of an announcement still waiting for its time stops it; nothing is published",
           cancel_before_it_goes_out)

    def works_when_down():
        d.stop()
        entries = env.list_json()
        check(len(entries) == 5, "list --all --json with the daemon down: %d entries (expected good, submitted, "
              "later and the two cancellations)" % len(entries))
        rc, out, err = env.cli("status")
        check(rc == 69 and "not running" in out, "status with the daemon down: %d %r %r" % (rc, out, err))
        rc, out, err = env.cli("hold", "20991231-00000000")
        check(rc == 69 and "not running" in err, "hold with the daemon down: %d %r" % (rc, err))
        check(not os.path.exists(os.path.join(env.runtime, "control.sock")), "control.sock left behind")
    S.case("cli: list works from the state files with the daemon down; status says it is down (69)",
           works_when_down)
    S.stop_daemon(d, "cli: daemon stopped cleanly")


S.group("config errors", config_errors)
S.group("sd_notify and reload", notify_and_reload)
S.group("cli", cli)
S.finish()
