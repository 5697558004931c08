#!/usr/bin/python3
"""Interim receipts (issue 5: "for a deferred job the reason and the next try").

When some channels are done and the others wait long (here LINE's monthly quota: held until the next
health check, 30 minutes), staff get published/DATE-ID/receipt.txt at once: Thai first, then English,
marked interim, with each done channel's link and the waiting one's reason and next try.  When the
last channel is done the final receipt replaces it in the same folder, in one step.
"""

import os
import re
import secrets
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "fakes"))
from harness import TIMEOUT, Suite, check, make_env, require_build, wait_for  # noqa: E402
from fake_platforms import FakeFacebook, FakeLine  # noqa: E402

S = Suite("receipt")
require_build(S)

PAGE = "123456789"


def write_secret(tmp, name, value):
    p = os.path.join(tmp, name)
    with open(p, "w") as f:
        f.write(value + "\n")
    os.chmod(p, 0o600)


def main():
    fb_token, line_token = "EAAGrcpt%s" % secrets.token_hex(12), "linercpt%s" % secrets.token_hex(12)
    fb = FakeFacebook(page_id=PAGE, token=fb_token, limits=False)
    line = FakeLine(token=line_token, limits=False)
    fb_base, line_base = fb.start(), line.start()
    try:
        tmp = S.tmpdir("interim")
        write_secret(tmp, "facebook.token", fb_token)
        write_secret(tmp, "line.token", line_token)
        env = make_env(tmp, extra_config=(
            "[channel facebook]\nplugin = facebook\npage_id = %s\ntoken_file = facebook.token\napi_base = %s\n"
            "timeout = 2s\n\n[channel line]\nplugin = line\ntoken_file = line.token\napi_base = %s\n"
            "health_interval = 30m\ntimeout = 2s\n" % (PAGE, fb_base, line_base)))
        d = S.daemon(env)
        d.start()
        run(env, d, fb, line)
    finally:
        fb.stop()
        line.stop()


def sections(text):
    th, _, en = text.partition("----------------------------------------")
    return th, en


def run(env, d, fb, line):
    line.add_fault("POST /v2/bot/message/broadcast", "quota_exceeded", count=1)
    env.drop("quota.txt", "หัวข้อ: ประชาสัมพันธ์วันลอยกระทง\n\nขอเชิญร่วมงานลอยกระทง ณ สระน้ำหมู่ที่ 3 คืนวันเพ็ญเดือนสิบสอง\n")
    state = {}

    def interim():
        folder, id, text = env.wait_published("quota.txt", timeout=TIMEOUT)
        state.update(folder=folder, id=id)
        th, en = sections(text)
        check(th.lstrip().startswith("ใบรับรองชั่วคราว") and "Interim receipt" in th,
              "the Thai part does not open with the interim notice:\n" + text)
        check("INTERIM receipt" in en, "the English part does not say interim:\n" + text)
        for part in (th, en):
            check(re.search(r"^- website: ", part, re.M) and re.search(r"^- facebook: ", part, re.M),
                  "website/facebook lines missing:\n" + part)
        check(re.search(r"^- website: done", en, re.M) and re.search(r"^- facebook: done", en, re.M),
              "website and facebook are not done in the interim receipt:\n" + en)
        check("/a/%s.html" % id in en and "facebook.com" in en, "the links of the done channels are missing")
        m = re.search(r"^- line: deferred.*\n(?:  .*\n)*?  next: (\S+)", en, re.M)
        check(m, "LINE's line has no next try:\n" + en)
        check("monthly limit" in en or "quota" in en, "LINE's reason is not given:\n" + en)
        check("ดำเนินการต่อเมื่อ" in th, "the Thai part has no next try:\n" + th)
        check(len(line.sent) == 0, "LINE sent while its quota was exceeded")
        check(env.visible_incoming() == [], "the file is still in incoming/")
    S.case("interim receipt: done channels with links, the waiting one with reason and next try, Thai first",
           interim)

    def final():
        rc, out, err = env.cli("retry", state["id"], "--channel", "line")
        check(rc == 0, "prakat retry: %d %s" % (rc, err))

        def replaced():
            r = env.receipt_for("quota.txt")
            return r and "Interim" not in r[3] and r
        r = wait_for(replaced, TIMEOUT, "the final receipt")
        folder, text = r[0], r[3]
        check(folder == state["folder"], "the final receipt is in %s, not %s" % (folder, state["folder"]))
        th, en = sections(text)
        check(th.lstrip().startswith("ใบรับรองการเผยแพร่ประกาศ"), "the final receipt still says interim:\n" + text)
        check(re.search(r"^- line: done", en, re.M), "LINE is not done:\n" + en)
        check("next:" not in en, "a next try is left in the final receipt")
        # The old folder leaves under a hidden temporary name a moment after the swap (checked below).
        names = [n for n in os.listdir(env.published) if state["id"] in n and not n.startswith(".")]
        check(names == [os.path.basename(folder)], "published/ holds %s" % names)
        check(sorted(os.listdir(folder)) == ["quota.txt", "receipt.txt"], "folder holds %s" % os.listdir(folder))
        check(len(line.sent) == 1 and len(fb.published_posts()) == 1, "sent %d, posted %d" % (
            len(line.sent), len(fb.published_posts())))
        wait_for(lambda: not [n for n in os.listdir(env.published) if n.startswith(".")], TIMEOUT,
                 "the temporary folder of the swap to go")
    S.case("interim receipt: replaced in the same folder by the final one when the last channel is done", final)
    S.stop_daemon(d, "interim receipt: daemon stops cleanly")


S.group("receipt", main)
S.finish()
