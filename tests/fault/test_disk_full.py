#!/usr/bin/python3
"""The state disk full (issue 7): prakatd's state folder is a small tmpfs that the test fills.

1. Full before intake: dropped files stay in incoming/ (never rejected, never lost), the log and
   `prakat status` say why, and once space returns they are taken and published by themselves.
2. Full while an announcement is due: its website job cannot save its state; nothing is
   published half-way or twice, and it goes out once space returns.

Needs root (mount -t tmpfs); without it the suite says SKIP and counts nothing.
"""

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import TIMEOUT, Suite, check, read_text, require_build, wait_for  # noqa: E402

S = Suite("disk_full")
require_build(S)

BANGKOK = timezone(timedelta(hours=7))
# The daemon retries a paused intake every 30 s; allow for that on top of the usual wait.
RESUME_TIMEOUT = TIMEOUT + 40


def mount_tmpfs(path, size):
    if os.geteuid() != 0:
        return False
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0750" % size, "tmpfs", path],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        print("# mount tmpfs: %s" % p.stdout.decode(errors="replace").strip())
    return p.returncode == 0


def umount(path):
    subprocess.run(["umount", "-l", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def fill(path):
    """Writes path until the filesystem refuses; returns the bytes written."""
    n = 0
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                n += f.write(chunk)
            except OSError:
                break
        # The last bytes: byte by byte up to the block the filesystem still had.
        while True:
            try:
                if f.write(b"\0") != 1:
                    break
                n += 1
            except OSError:
                break
    return n


def announcement(i, extra=""):
    return ("หัวข้อ: แจ้งงดจ่ายน้ำประปา ฉบับที่ %d\nหมู่บ้าน: %d\n%s\n"
            "การประปาหมู่บ้านจะงดจ่ายน้ำเพื่อซ่อมท่อเมนในวันพรุ่งนี้ ขออภัยในความไม่สะดวก (%d)\n" % (i, i % 5 + 1, extra, i))


def status_text(env):
    _, out, _ = env.cli("status")
    return out


def main():
    env = S.env("full", settle="200ms")
    if not mount_tmpfs(env.state, "2m"):
        print("SKIP: disk_full: needs root to mount a tmpfs (nothing counted)", flush=True)
        return
    filler = os.path.join(env.state, "filler")
    try:
        run(env, filler)
    finally:
        for d in list(S.daemons):
            if d.running():
                d.stop(expect_rc=None)
        umount(env.state)


def run(env, filler):
    d = S.daemon(env)
    d.start()
    env.drop("first.txt", announcement(0))
    _, first_id, _ = env.wait_published("first.txt")

    # ---- 1. full before intake ----
    names = ["full-%d.txt" % i for i in range(1, 4)]

    def paused():
        n = fill(filler)
        print("# filler: %d bytes" % n, flush=True)
        for i, name in enumerate(names, 1):
            env.drop(name, announcement(i))
        d.wait_log("Intake paused", timeout=TIMEOUT)
        log = d.log(since_start=True)
        check("No space left on device" in log, "the log does not say the disk is full:\n%s" % d.tail())
        time.sleep(1.0)
        check(sorted(env.visible_incoming()) == sorted(names),
              "incoming/ holds %s, expected the three dropped files" % env.visible_incoming())
        check(os.listdir(env.rejected) == [], "rejected/ is not empty: %s" % os.listdir(env.rejected))
        out = status_text(env)
        check("intake paused" in out and "No space left on device" in out,
              "prakat status does not say intake is paused for lack of space:\n%s" % out)
    S.case("disk full: files stay in incoming/, log and prakat status say why", paused)

    def resumed():
        os.unlink(filler)
        for name in names:
            env.wait_published(name, timeout=RESUME_TIMEOUT)
        d.wait_log("Intake resumed", timeout=TIMEOUT)
        check(env.visible_incoming() == [], "left in incoming/: %s" % env.visible_incoming())
        ids = [r[1] for r in env.receipts()]
        check(len(ids) == 4 and len(set(ids)) == 4, "receipts: %s" % ids)
        for i in ids:
            check(os.path.exists(env.article(i)), "no article page for %s" % i)
        check("intake paused" not in status_text(env), "prakat status still says intake is paused")
    S.case("disk full: space back, the waiting files are taken and published once, by themselves", resumed)

    # ---- 2. full while an announcement is due ----
    due = datetime.now(BANGKOK) + timedelta(seconds=6)

    def due_while_full():
        env.drop("later.txt", announcement(9, "เผยแพร่: %s" % due.strftime("%Y-%m-%d %H:%M:%S")))
        wait_for(lambda: "later.txt" not in env.visible_incoming(), TIMEOUT, "later.txt taken")
        time.sleep(0.5)
        fill(filler)
        # Past its time, with the disk full: the website job cannot save what it did.
        wait_for(lambda: datetime.now(BANGKOK) > due + timedelta(seconds=4), TIMEOUT, "the publish time")
        check(env.receipt_for("later.txt") is None, "published while the state disk was full")
        check(d.running(), "prakatd exited with the disk full:\n%s" % d.tail())
        log = d.log(since_start=True)
        check("No space left on device" in log, "the log does not say the disk is full:\n%s" % d.tail())
        out = status_text(env)
        check("cannot save the job states" in out and "No space left on device" in out,
              "prakat status does not say the job states cannot be saved:\n%s" % out)
    S.case("disk full: a due announcement waits, daemon keeps running, log and prakat status say why",
           due_while_full)

    def due_after_space():
        os.unlink(filler)
        _, id, text = env.wait_published("later.txt", timeout=RESUME_TIMEOUT)
        check(os.path.exists(env.article(id)), "no article page for %s" % id)
        check(sum(1 for r in env.receipts() if r[2] == "later.txt") == 1, "later.txt has more than one receipt")
        check("cannot save" not in status_text(env), "prakat status still reports a save error")
        check(read_text(env.article(id)).count("แจ้งงดจ่ายน้ำประปา ฉบับที่ 9") >= 1, "article lacks its title")
        check("website: done" in text or "- website: done" in text, "receipt does not show website done:\n" + text)
        index = read_text(os.path.join(env.site, "index.html"))
        check(index.count("a/%s.html" % id) == 1, "the index lists %s %d times" % (id, index.count("a/%s.html" % id)))
    S.case("disk full: space back, the due announcement is published once", due_after_space)
    S.stop_daemon(d, "disk full: daemon stops cleanly")


S.group("disk_full", main)
S.finish()
