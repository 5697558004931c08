#!/usr/bin/python3
"""The LINE channel (channels/line) against the fake LINE Messaging API (tests/fakes/fake_platforms.py).

One prakatd runs many LINE channel instances at once, each pointed at its own FakeLine, so that
each fault has a platform of its own and the cases run side by side:

  flex      broadcast, Flex card (altText, hero, button to the article), pictures, the 5-object cap
  text      style = text: a long Thai text cut within 5,000 UTF-16 units, ending with the link
  narrow    village audiences: narrowcast followed to "succeeded"; a village without one: broadcast
  ncfail    a narrowcast that LINE accepts and then fails
  cancel    a Cancel sends a correction naming the withdrawn announcement
  f500, fdrop, ftimeout, fhtml, f429    faults: 500 after accepting, dropped connection after
            accepting, no answer, a proxy's HTML 502, rate limit; each ends in one delivery
  fquota    LINE's own 429 "monthly limit": held, then sent
  used      the quota is used up before the send: held and not attempted; sent once raised
  token     an expired token: held, health says so; a new token in the file: sent
  slow      rate_per_hour = 2 and three announcements: the third waits
  unconf    no answer for longer than unconfirmed_after: unconfirmed, never resent blind

A second prakatd is killed with SIGKILL while LINE holds its answer and restarted: one delivery.
A third start with a 0644 token file must be refused with file:line.  In the end no token may
appear in the log, the state directory or the receipts.
"""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakes"))
from harness import (ASAN, PRAKATD, TIMEOUT, Suite, asan_env, check, read_text, require_build,  # noqa: E402
                     tiny_png, wait_for)
from fake_platforms import FakeLine  # noqa: E402

S = Suite("line")
require_build(S)
if not os.path.exists(os.path.join(os.path.dirname(PRAKATD), "channels", "line.so")):
    S.result("line: plugin built", False, "build/channels/line.so is missing (run make)")
    S.finish()

BASE_URL = "https://bokaeo.go.th/news"
SLOW = 2 if ASAN else 1

# One fake per channel instance: name -> (FakeLine settings, extra channel config)
INSTANCES = {
    "flex": ({}, ""),
    "text": ({}, "style = text\n"),
    "narrow": ({"narrowcast_waiting": 0.5, "narrowcast_sending": 0.5}, None),  # audiences added below
    "ncfail": ({"narrowcast_waiting": 0.3, "narrowcast_sending": 0.3}, None),
    "cancel": ({}, ""),
    "f500": ({}, ""),
    "fdrop": ({}, ""),
    "ftimeout": ({}, "timeout = 1s\n"),
    "fhtml": ({}, ""),
    "f429": ({}, "rate_per_hour = 3600\n"),
    "fquota": ({}, ""),
    "used": ({"quota": 1000, "usage": 1000}, ""),
    "token": ({}, ""),
    "slow": ({}, "rate_per_hour = 2\n"),
    "unconf": ({}, "timeout = 1s\nunconfirmed_after = 3s\n"),
}


def token_of(name):
    return "tok-%s-%s" % (name, os.urandom(12).hex())


def write_token(path, token, mode=0o600):
    fd = os.open(path + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(path + ".new", mode)
    os.rename(path + ".new", path)


def channel_section(name, fake, token_file, extra):
    return ("[channel %s]\nplugin = line\ntoken_file = %s\napi_base = %s\nhealth_interval = 2s\n%s\n" %
            (name, token_file, fake.base_url, extra))


def announcement(title, body, channel, extra_headers=""):
    return "หัวข้อ: %s\nช่องทาง: website, %s\n%s\n%s\n" % (title, channel, extra_headers, body)


def line_job(env, id, channel):
    for j in env.show_json(id)["jobs"]:
        if j["channel"] == channel:
            return j
    raise AssertionError("no %s job in %s" % (channel, id))


def wait_job(env, id, channel, states, timeout=None):
    def fn():
        try:
            j = line_job(env, id, channel)
        except Exception:
            return None
        return j if j["state"] in states else None
    return wait_for(fn, timeout, "%s job of %s to be %s" % (channel, id, "/".join(states)))


def posts(fake, kind="broadcast"):
    """The send requests the fake received (in order), as dicts with status, key and body."""
    out = []
    for r in fake.request_log():
        if r["method"] == "POST" and r["path"] == "/v2/bot/message/" + kind:
            out.append({"status": r["status"], "key": r["headers"].get("X-Line-Retry-Key"),
                        "body": r["body"], "fault": r["fault"]})
    return out


def sent(fake, kind=None):
    with fake.lock:
        return [dict(s) for s in fake.sent if kind is None or s["kind"] == kind]


def utf16_len(s):
    return len(s.encode("utf-16-le")) // 2


def iso_seconds(value):
    """Seconds since the epoch of an RFC 3339 time ("2026-11-26T07:00:00+07:00" or "...Z")."""
    from datetime import datetime
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def receipt_line(text, channel):
    m = re.search(r"^Outcome per channel:\n(.*?)\n\n", text, re.M | re.S)
    block = m.group(1) if m else text
    lines = block.split("\n")
    for i, l in enumerate(lines):
        if l.startswith("- %s: " % channel):
            rest = []
            for k in lines[i + 1:]:
                if k.startswith("- "):
                    break
                rest.append(k)
            return l + "\n" + "\n".join(rest)
    return ""


# ---------------------------------------------------------------------------------------------------

def main_suite():
    fakes, tokens = {}, {}
    env = S.env("main", extra_config="")
    tokdir = os.path.join(env.tmp, "tokens")
    os.makedirs(tokdir)
    sections = []
    for name, (kw, extra) in INSTANCES.items():
        tokens[name] = token_of(name)
        fake = FakeLine(token=tokens[name], **kw)
        fake.start()
        fakes[name] = fake
        tf = os.path.join(tokdir, name + ".token")
        write_token(tf, tokens[name])
        if name == "narrow":
            a1 = fake.add_audience(["U%032x" % i for i in range(3)], "หมู่ 1")
            a2 = fake.add_audience(["U%032x" % i for i in range(2, 6)], "หมู่ 2")
            extra = "audience.1 = %d\naudience.2 = %d\n" % (a1, a2)
        if name == "ncfail":
            a1 = fake.add_audience(["U%032x" % i for i in range(3)], "หมู่ 4")
            extra = "audience.4 = %d\n" % a1
        sections.append(channel_section(name, fake, tf, extra))
    env.write_config(extra_config="\n".join(sections))
    try:
        run_main(env, fakes, tokens, tokdir)
    finally:
        for f in fakes.values():
            f.stop()


def run_main(env, fakes, tokens, tokdir):
    # Faults armed before the start, each on its own platform.
    fakes["f500"].add_fault("POST /v2/bot/message/broadcast", "500_after_create")
    fakes["fdrop"].add_fault("POST /v2/bot/message/broadcast", "drop_after_accept")
    fakes["ftimeout"].add_fault("POST /v2/bot/message/broadcast", "timeout", seconds=20)
    fakes["fhtml"].add_fault("POST /v2/bot/message/broadcast", "html_502")
    fakes["f429"].add_fault("POST /v2/bot/message/broadcast", "throttle")
    fakes["fquota"].add_fault("POST /v2/bot/message/broadcast", "quota_exceeded")
    fakes["ncfail"].add_fault("POST /v2/bot/message/narrowcast", "narrowcast_failed", error_code=4,
                              description="An audience has fewer than 50 recipients.")
    fakes["unconf"].add_fault("POST /v2/bot/message/broadcast", "timeout", count=100, seconds=20)
    fakes["token"].expire_token()

    d = S.daemon(env)
    d.start()

    long_body = "\n".join("ย่อหน้าที่ %d เรื่องการประชาสัมพันธ์ของ อบต. บ่อแก้ว ขอให้ประชาชนทุกหมู่บ้านมาร่วมประชุม 😀 "
                          "ณ ศาลาประชาคม เวลา 09.00 น. เป็นต้นไป" % i for i in range(1, 121))
    pictures = {"p%d.png" % i: tiny_png(4 + i, 3) for i in range(1, 8)}
    flex_files = {"announcement.txt": announcement(
        "ประชาคมหมู่บ้าน ปี 2570", "บรรทัดแรกของประกาศ\nบรรทัดที่สอง\n" + long_body, "flex",
        "ไฟล์แนบ: %s\n" % ", ".join(sorted(pictures)))}
    flex_files.update(pictures)
    env.drop_bundle("flex-bundle", flex_files)
    env.drop("text.txt", announcement("ประกาศยาวมาก", long_body * 2, "text", "รหัส: line-text-1\n"))
    env.drop("narrow.txt", announcement("ปิดน้ำประปา หมู่ 1 และ 2", "ปิดน้ำวันพรุ่งนี้", "narrow",
                                        "หมู่บ้าน: 1, 2\n"))
    env.drop("narrow3.txt", announcement("ซ่อมถนน หมู่ 3", "ซ่อมถนนสายหลัก", "narrow", "หมู่บ้าน: 3\n"))
    env.drop("ncfail.txt", announcement("ประกาศหมู่ 4", "ทดสอบ", "ncfail", "หมู่บ้าน: 4\n"))
    env.drop("cancel.txt", announcement("งานวัดเลื่อนออกไป", "รายละเอียดงาน", "cancel", "รหัส: line-cancel-1\n"))
    for name in ("f500", "fdrop", "ftimeout", "fhtml", "f429", "fquota", "used", "token", "unconf"):
        env.drop("%s.txt" % name, announcement("ทดสอบ %s" % name, "เนื้อหาทดสอบ %s" % name, name,
                                               "รหัส: line-%s\n" % name))
    for i in range(3):
        env.drop("slow%d.txt" % i, announcement("ลำดับ %d" % i, "ข้อความ %d" % i, "slow", "รหัส: line-slow-%d\n" % i))

    # ---- flex ----
    def flex():
        _, id, text = env.wait_published("flex-bundle")
        check("- flex: done" in text, "flex not done:\n" + receipt_line(text, "flex"))
        s = sent(fakes["flex"])
        check(len(s) == 1 and s[0]["kind"] == "broadcast", "expected one broadcast, got %s" % s)
        msgs = s[0]["messages"]
        check(len(msgs) == 5, "expected 5 message objects (the cap), got %d" % len(msgs))
        card = msgs[0]
        check(card["type"] == "flex", "first message is %s" % card["type"])
        article = "%s/a/%s.html" % (BASE_URL, id)
        alt = card["altText"]
        check(alt.startswith("ประชาคมหมู่บ้าน ปี 2570") and "บรรทัดแรกของประกาศ" in alt and utf16_len(alt) <= 1500,
              "altText: %r" % alt)
        bubble = card["contents"]
        hero = bubble["hero"]["url"]
        check(hero.startswith(BASE_URL + "/files/" + id + "/") and hero.endswith("p1.png"), "hero: %s" % hero)
        button = bubble["footer"]["contents"][0]
        check(button["type"] == "button" and button["action"]["uri"] == article,
              "button: %s (article %s)" % (button, article))
        check("Read more" in button["action"]["label"], "button label %r" % button["action"]["label"])
        texts = [c.get("text", "") for c in bubble["body"]["contents"]]
        check("ประชาคมหมู่บ้าน ปี 2570" in texts, "title not on the card: %s" % texts)
        images = msgs[1:]
        check(all(m["type"] == "image" for m in images), "others are not images: %s" % images)
        urls = [m["originalContentUrl"] for m in images]
        check([u.rsplit("/", 1)[1][-6:] for u in urls] == ["p2.png", "p3.png", "p4.png", "p5.png"],
              "image urls %s" % urls)
        check(all(u.startswith(BASE_URL + "/files/" + id + "/") and m["previewImageUrl"] == u
                  for u, m in zip(urls, images)), "image urls %s" % urls)
        check("2 more picture(s) not sent" in line_job(env, id, "flex")["message"], "no note on the skipped pictures")
        check(hero not in urls, "the hero picture is sent twice")
    S.case("flex: broadcast card with altText, hero and Read-more button; pictures capped at 5 objects", flex)

    def text_style():
        _, id, rtext = env.wait_published("text.txt")
        check("- text: done" in rtext, receipt_line(rtext, "text"))
        s = sent(fakes["text"])
        check(len(s) == 1, "expected one send, got %d" % len(s))
        msg = s[0]["messages"][0]
        check(msg["type"] == "text", "type %s" % msg["type"])
        t = msg["text"]
        link = "%s/a/%s.html" % (BASE_URL, id)
        check(utf16_len(t) <= 5000, "text is %d UTF-16 units" % utf16_len(t))
        check(utf16_len(t) > 4000, "text cut too short: %d units" % utf16_len(t))
        check(t.endswith(link), "does not end with the article link: ...%r" % t[-200:])
        check(t.startswith("ประกาศยาวมาก\n\n"), "does not start with the title: %r" % t[:80])
        before = t[:t.rindex("\n\n")]
        check(before.endswith("…"), "no ellipsis before the link: %r" % before[-80:])
        cut = before[:-1]
        check(cut.endswith("เป็นต้นไป"), "not cut at a sentence/line boundary: %r" % cut[-60:])
    S.case("text: long Thai text within 5000 UTF-16 units, cut at a boundary, ending with the link", text_style)

    def update():
        env.drop("text-2.txt", announcement("ประกาศยาวมาก ฉบับแก้ไข", "เปลี่ยนเวลาเป็น 10.00 น.", "text",
                                            "แทนที่: line-text-1\n"))
        _, id, rtext = env.wait_published("text-2.txt")
        check("- text: done" in rtext, receipt_line(rtext, "text"))
        s = sent(fakes["text"])
        check(len(s) == 2, "expected the announcement and its update, got %d sends" % len(s))
        t = s[1]["messages"][0]["text"]
        check(t.startswith("แก้ไขประกาศ / Updated: ประกาศยาวมาก ฉบับแก้ไข\n\nเปลี่ยนเวลาเป็น 10.00 น."), repr(t[:120]))
    S.case("replaces: the update is sent marked 'แก้ไขประกาศ / Updated'", update)

    def narrow():
        _, id, text = env.wait_published("narrow.txt")
        check("- narrow: done" in text, receipt_line(text, "narrow"))
        nc = sent(fakes["narrow"], "narrowcast")
        check(len(nc) == 1, "expected one narrowcast, got %s" % nc)
        rec = nc[0]["to"]
        check(rec["type"] == "operator" and len(rec["or"]) == 2 and
              all(r["type"] == "audience" for r in rec["or"]), "recipient %s" % rec)
        progress = fakes["narrow"].narrowcast_progress(nc[0]["request_id"])
        check(progress["phase"] == "succeeded", "fake progress %s" % progress)
        log = read_text(env.log)
        note = receipt_line(text, "narrow")
        check("narrowcast delivered to 6 of 6" in note, "the receipt does not report the delivery: %s" % note)
        reqs = [r for r in fakes["narrow"].request_log() if r["path"].startswith("/v2/bot/message/progress/")]
        check(reqs and reqs[-1]["status"] == 200, "progress never read")
        # village 3 has no audience: everyone gets it, with a warning
        _, id3, text3 = env.wait_published("narrow3.txt")
        check("- narrow: done" in text3, receipt_line(text3, "narrow"))
        bc = sent(fakes["narrow"], "broadcast")
        check(len(bc) == 1, "village 3 (no audience) should be a broadcast, got %s" % bc)
        check("have no audience" in log, "no warning about the missing audience")
    S.case("narrowcast: villages with audiences, followed to succeeded; a village without one: broadcast",
           narrow)

    def ncfail():
        _, id, text = env.wait_published("ncfail.txt")
        line = receipt_line(text, "ncfail")
        check("- ncfail: failed" in line, line)
        check("fewer than 50" in line and "error code 4" in line, "the receipt lacks LINE's reason: %s" % line)
        check(len(sent(fakes["ncfail"], "narrowcast")) == 1, "expected one narrowcast")
    S.case("narrowcast failed: receipt says failed with LINE's description", ncfail)

    def cancel():
        env.wait_published("cancel.txt")
        env.drop("cancel-2.txt", "ยกเลิก: line-cancel-1\nช่องทาง: website, cancel\n\nผู้จัดงานแจ้งเลื่อน\n")
        _, id, text = env.wait_published("cancel-2.txt")
        check("- cancel: done" in text, receipt_line(text, "cancel"))
        s = sent(fakes["cancel"])
        check(len(s) == 2, "expected the announcement and one correction, got %d sends" % len(s))
        t = s[1]["messages"][0]
        check(t["type"] == "text" and "ยกเลิกประกาศ: งานวัดเลื่อนออกไป" in t["text"] and
              "Withdrawn: งานวัดเลื่อนออกไป" in t["text"] and "ผู้จัดงานแจ้งเลื่อน" in t["text"],
              "correction text: %r" % t)
        check(s[0]["retry_key"] != s[1]["retry_key"], "the correction reused the announcement's retry key")
    S.case("cancel: a correction naming the withdrawn announcement, with the reason", cancel)

    def one_delivery(name, expect_statuses=None, key_reused=True):
        def fn():
            _, id, text = env.wait_published("%s.txt" % name)
            line = receipt_line(text, name)
            check("- %s: done" % name in line, line)
            s = sent(fakes[name])
            check(len(s) == 1, "expected exactly one delivery, got %d" % len(s))
            p = posts(fakes[name])
            check(len(p) >= 2, "expected a retry, got %d request(s)" % len(p))
            if key_reused:
                check(len({x["key"] for x in p}) == 1 and p[0]["key"],
                      "retry keys differ: %s" % [x["key"] for x in p])
            if expect_statuses:
                got = [x["status"] for x in p]
                check(got == expect_statuses, "statuses %s, expected %s" % (got, expect_statuses))
            check(line_job(env, id, name)["remote_id"], "no request id recorded")
        return fn

    S.case("500 after accepting: retried with the same key, 409, one delivery",
           one_delivery("f500", [500, 409]))
    S.case("connection dropped after accepting: same key, 409, one delivery",
           one_delivery("fdrop", [None, 409]))
    S.case("timeout (timeout = 1s): same key, one delivery", one_delivery("ftimeout", [None, 200]))
    S.case("HTML 502 from a proxy: retried, one delivery", one_delivery("fhtml", [502, 200]))
    S.case("429 rate limit: retried later with the same key, one delivery", one_delivery("f429", [429, 200]))

    def fquota():
        _, id, text = env.wait_published("fquota.txt")
        check("- fquota: done" in text, receipt_line(text, "fquota"))
        check(len(sent(fakes["fquota"])) == 1, "expected one delivery")
        check("held: the LINE monthly message quota is used up" in read_text(env.log),
              "no 'held' message for LINE's 429 monthly limit")
    S.case("429 monthly limit: held, then sent once", fquota)

    def used():
        def deferred():
            j = line_job(env, "line-used", "used")
            return j if j["state"] == "deferred" and j["message"] else None
        j = wait_for(deferred, what="the used-up quota job to be held")
        check("held: the LINE monthly message quota is used up (1,000 of 1,000" in j["message"], j["message"])
        check(j["message_th"] and "โควตา" in j["message_th"], "no Thai message: %s" % j["message_th"])
        check(not posts(fakes["used"]), "a send was attempted although the quota is used up")
        fakes["used"].configure(quota=2000)
        _, id, text = env.wait_published("used.txt")
        check("- used: done" in text, receipt_line(text, "used"))
        check(len(sent(fakes["used"])) == 1 and len(posts(fakes["used"])) == 1, "expected one attempt, one send")
    S.case("quota used up: held and not attempted; sent once the quota is raised", used)

    def token():
        j = wait_job(env, "line-token", "token", ("deferred",))
        check("token is invalid or expired" in j["message"], j["message"])
        wait_for(lambda: "LINE channel health: the LINE channel access token is invalid" in read_text(env.log),
                 what="the health warning")
        check(not sent(fakes["token"]), "sent with an expired token?")
        new = token_of("token-new")
        tokens["token-new"] = new
        write_token(os.path.join(tokdir, "token.token"), new)
        fakes["token"].configure(token=new)
        _, id, text = env.wait_published("token.txt")
        check("- token: done" in text, receipt_line(text, "token"))
        check(len(sent(fakes["token"])) == 1, "expected one delivery")
        wait_for(lambda: re.search(r"LINE channel health: ok", read_text(env.log)), what="health ok again")
    S.case("expired token: held, health says so; the reissued token file is picked up, sent once", token)

    def slow():
        for i in range(2):
            env.wait_published("slow%d.txt" % i)
        j = wait_job(env, "line-slow-2", "slow", ("deferred",))
        check("held: 2 LINE broadcast/narrowcast requests an hour" in j["message"], j["message"])
        check(len(sent(fakes["slow"])) == 2 and len(posts(fakes["slow"])) == 2,
              "expected two sends, got %d" % len(sent(fakes["slow"])))
        check(j["next_try"], "no next try")
        left = iso_seconds(j["next_try"]) - time.time()
        check(50 * 60 < left < 61 * 60, "the third should wait about an hour, next try in %ds" % left)
    S.case("rate_per_hour = 2: the third announcement waits, not sent", slow)

    def unconf():
        j = wait_job(env, "line-unconf", "unconf", ("unconfirmed",), timeout=TIMEOUT)
        check("unconfirmed" in j["message"] and "not sent again blindly" in j["message"], j["message"])
        check(j["message_th"], "no Thai message")
        p = posts(fakes["unconf"])
        check(p and len({x["key"] for x in p}) == 1, "keys: %s" % [x["key"] for x in p])
        check(not sent(fakes["unconf"]), "the fake delivered something")
        _, id, text = env.wait_published("unconf.txt")
        check("- unconf: unconfirmed" in text, receipt_line(text, "unconf"))
    S.case("no acceptance within unconfirmed_after: unconfirmed, reported, not resent", unconf)

    S.stop_daemon(d, "main daemon stops cleanly (no sanitizer report)")

    def secrets():
        blobs = [("log", read_text(env.log))]
        for root in (env.state, env.published):
            for dp, _, files in os.walk(root):
                for f in files:
                    with open(os.path.join(dp, f), "rb") as fh:
                        blobs.append((os.path.join(dp, f), fh.read().decode("utf-8", "replace")))
        for name, tok in tokens.items():
            for where, text in blobs:
                check(tok not in text, "the %s token appears in %s" % (name, where))
    S.case("no token in the log, the state directory or the receipts", secrets)


# ---------------------------------------------------------------------------------------------------

def crash_suite():
    tok = token_of("crash")
    fake = FakeLine(token=tok)
    fake.start()
    try:
        env = S.env("crash")
        tf = os.path.join(env.tmp, "line.token")
        write_token(tf, tok)
        env.write_config(extra_config=channel_section("line", fake, tf, ""))
        fake.add_fault("POST /v2/bot/message/broadcast", "timeout_after_create", seconds=60)
        d = S.daemon(env)
        d.start()
        env.drop("crash.txt", announcement("ไฟดับ", "ไฟฟ้าดับทั้งตำบล", "line", "รหัส: line-crash\n"))

        def killed():
            wait_for(lambda: len(sent(fake)) == 1, what="the fake to accept the broadcast")
            check(fake.stats()["in_flight"] >= 1, "the answer is not being held")
            d.kill9()
            fake.clear_faults()
            d.start()
            _, id, text = env.wait_published("crash.txt")
            check("- line: done" in text, receipt_line(text, "line"))
            check(len(sent(fake)) == 1, "delivered %d times" % len(sent(fake)))
            p = posts(fake)
            check(len(p) == 2 and p[0]["key"] == p[1]["key"] and p[1]["status"] == 409,
                  "requests: %s" % [(x["status"], x["key"]) for x in p])
        S.case("kill -9 while LINE holds the answer, restart: same key, 409, exactly one delivery", killed)
        S.stop_daemon(d, "crash daemon stops cleanly")
    finally:
        fake.stop()


def token_mode_suite():
    env = S.env("mode")
    tf = os.path.join(env.tmp, "line.token")
    write_token(tf, token_of("mode"), mode=0o644)
    env.write_config(extra_config="[channel line]\nplugin = line\napi_base = http://127.0.0.1:9\n"
                                  "token_file = %s\n" % tf)
    conf_lines = read_text(env.conf).split("\n")
    line_no = next(i + 1 for i, l in enumerate(conf_lines) if l.startswith("token_file = "))

    def refused():
        e = dict(os.environ)
        e.update(asan_env())
        p = subprocess.run([PRAKATD, "--config", env.conf], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=e, timeout=60)
        err = p.stderr.decode("utf-8", "replace") + p.stdout.decode("utf-8", "replace")
        check(p.returncode != 0, "prakatd started with a 0644 token file")
        check("%s:%d:" % (env.conf, line_no) in err, "no file:line %s:%d in: %s" % (env.conf, line_no, err[-800:]))
        check("chmod 600" in err and "group or others" in err, "no fix in the message: %s" % err[-800:])
        check("tok-mode" not in err, "the token is in the error")
        check("AddressSanitizer" not in err and "runtime error" not in err, "sanitizer report: %s" % err[-2000:])
    S.case("a 0644 token file is refused at start with file:line", refused)

    def unknown_key():
        os.chmod(tf, 0o600)
        env.write_config(extra_config="[channel line]\nplugin = line\ntoken_file = %s\nratelimit = 5\n" % tf)
        conf = read_text(env.conf).split("\n")
        n = next(i + 1 for i, l in enumerate(conf) if l.startswith("ratelimit"))
        e = dict(os.environ)
        e.update(asan_env())
        p = subprocess.run([PRAKATD, "--config", env.conf], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=e, timeout=60)
        err = p.stderr.decode("utf-8", "replace")
        check(p.returncode != 0, "prakatd started with an unknown key")
        check("%s:%d:" % (env.conf, n) in err and "unknown key 'ratelimit'" in err and "rate_per_hour" in err,
              "message: %s" % err[-600:])
    S.case("an unknown key is refused at start with file:line and the known keys", unknown_key)


S.group("line: main", main_suite)
S.group("line: crash", crash_suite)
S.group("line: token file mode", token_mode_suite)
S.finish()
