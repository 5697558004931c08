#!/usr/bin/python3
"""Scheduled publication and expiry on the shifted clock (DESIGN §8, PRAKAT_NOW)."""

import calendar
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TIMEOUT, Suite, check, read_text, require_build, wait_for  # noqa: E402

S = Suite("schedule")
require_build(S)

START = "2026-11-25T00:00:00Z"  # 07:00 in Bangkok
START_EPOCH = calendar.timegm(time.strptime(START, "%Y-%m-%dT%H:%M:%SZ"))
BKK = 7 * 3600


def be(epoch):
    """Bangkok local time of a UTC epoch, written as staff do: 25/11/2569 07:00:03."""
    t = time.gmtime(epoch + BKK)
    return "%02d/%02d/%04d %02d:%02d:%02d" % (t.tm_mday, t.tm_mon, t.tm_year + 543, t.tm_hour, t.tm_min, t.tm_sec)


def main():
    env = S.env("sched")
    d = S.daemon(env)
    started = time.monotonic()
    d.start(extra_env={"PRAKAT_NOW": START})

    def shifted_now():
        return START_EPOCH + (time.monotonic() - started)

    S.case("PRAKAT_NOW: the daemon warns that its clock is shifted",
           lambda: check("shifted" in d.log(), "no warning about the shifted clock in the log"))

    # Soon: a few seconds after the shifted now (the margin covers a slow start under ASan).
    soon = int(shifted_now()) + 5
    env.drop("soon.txt", "หัวข้อ: ประกาศตามเวลาที่กำหนด\nเผยแพร่: %s\n\nประกาศนี้ตั้งเวลาไว้\n" % be(soon))
    # Tomorrow 07:00, and one that expires an hour after it, and one that stays current.
    env.drop("tomorrow.txt", "หัวข้อ: ประกาศวันพรุ่งนี้\nเผยแพร่: 26/11/2569 07:00\n\nเผยแพร่พรุ่งนี้เช้า\n")
    env.drop("expiring.txt", "หัวข้อ: ประกาศที่จะหมดอายุ\nเผยแพร่: 26/11/2569 07:00\nหมดอายุ: 26/11/2569 08:00\n\n"
                             "รับสมัครถึงเวลา 08.00 น. เท่านั้น\n")
    env.drop("current.txt", "หัวข้อ: ประกาศที่ยังไม่หมดอายุ\nเผยแพร่: 26/11/2569 07:00\nหมดอายุ: 30/11/2569\n\n"
                            "ยังใช้ได้อยู่\n")

    def soon_case():
        # Not before its time ...
        while shifted_now() < soon - 1.0:
            check(env.receipt_for("soon.txt") is None, "published %.1fs before its Publish-At" %
                  (soon - shifted_now()))
            time.sleep(0.05)
        # ... and after it.
        _, id, receipt = env.wait_published("soon.txt")
        iso = time.strftime("%Y-%m-%dT%H:%M:%S+07:00", time.gmtime(soon + BKK))
        check("Publish at: " + iso in receipt, "receipt does not say Publish at: %s:\n%s" % (iso, receipt))
        check(os.path.exists(env.article(id)), "no article page")
    S.case("Publish-At a few seconds ahead of the shifted clock: not before, published after", soon_case)

    def queued():
        entries = {e["source_name"]: e for e in env.list_json(all=False)}
        for name in ("tomorrow.txt", "expiring.txt", "current.txt"):
            check(name in entries, "%s is not in prakat list --json: %s" % (name, list(entries)))
            e = entries[name]
            check(e["status"] == "waiting", "%s status %r" % (name, e["status"]))
            check([j["state"] for j in e["jobs"]] == ["scheduled"], "%s jobs %r" % (name, e["jobs"]))
            check(e["publish_at"] == "2026-11-26T00:00:00Z", "%s publish_at %r" % (name, e["publish_at"]))
        check(env.receipt_for("tomorrow.txt") is None, "tomorrow's announcement was published today")
        check(not os.path.exists(os.path.join(env.site, "a", entries["tomorrow.txt"]["id"] + ".html")),
              "tomorrow's page exists already")
    S.case("Publish-At tomorrow: stays queued, prakat list --json shows it scheduled", queued)
    S.stop_daemon(d, "scheduled: SIGTERM with scheduled work exits cleanly")

    restarted = []

    def after_restart():
        restarted.append(time.monotonic())
        d.start(extra_env={"PRAKAT_NOW": "2026-11-26T02:00:00Z"})  # 09:00 the next day
        for name in ("tomorrow.txt", "expiring.txt", "current.txt"):
            env.wait_published(name)
        check(env.list_json(all=False) == [], "something is still queued")
    S.case("restart with PRAKAT_NOW past Publish-At: published after the restart", after_restart)

    def expired():
        _, id, _ = env.wait_published("expiring.txt")
        html = read_text(env.article(id))
        check("หมดอายุ" in html, "the expired announcement's page is not marked หมดอายุ")
        _, cid, _ = env.wait_published("current.txt")
        chtml = read_text(env.article(cid))
        check("หมดอายุแล้ว" not in chtml and 'class="banner expired"' not in chtml,
              "a current announcement is marked expired")
        index = read_text(os.path.join(env.site, "index.html"))
        check("expired" in index, "the index does not mark the expired item")
    S.case("Expires already past at render: page marked expired (หมดอายุ), current one not", expired)

    def expires_while_running():
        now = shifted_now_2()
        exp = int(now) + 4
        env.drop("short.txt", "หัวข้อ: ประกาศอายุสั้น\nหมดอายุ: %s\n\nใช้ได้เพียงไม่กี่วินาที\n" % be(exp))
        _, id, _ = env.wait_published("short.txt")
        check("หมดอายุแล้ว" not in read_text(env.article(id)), "marked expired before its time")
        wait_for(lambda: 'banner expired' in read_text(env.article(id)), timeout=TIMEOUT,
                 what="the page to be marked expired once Expires passed")
    restart_epoch = calendar.timegm(time.strptime("2026-11-26T02:00:00Z", "%Y-%m-%dT%H:%M:%SZ"))

    def shifted_now_2():
        return restart_epoch + (time.monotonic() - restarted[0])
    S.case("Expires passing while running: the page becomes marked expired", expires_while_running)
    S.stop_daemon(d, "schedule: daemon stops cleanly")


S.group("schedule", main)
S.finish()
