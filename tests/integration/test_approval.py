#!/usr/bin/python3
"""The approval gate (require_approval = yes): a dropped announcement waits with a preview in pending/,
nothing is published until `prakat approve`; `prakat reject --reason` cancels it with a receipt saying
who and why; a waiting announcement stays waiting across kill -9 and a restart."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Suite, check, read_text, require_build, wait_for  # noqa: E402

S = Suite("approval")
require_build(S)

MEETING = ("หัวข้อ: ประกาศเรียกประชุมสภาองค์การบริหารส่วนตำบลบ่อแก้ว\nหมู่บ้าน: 1, 3\n\n"
           "ด้วยสภา อบต.บ่อแก้ว จะประชุมสมัยสามัญ สมัยที่ ๔ ประจำปี ๒๕๖๙\n").encode()
TAX = ("หัวข้อ: ประชาสัมพันธ์การชำระภาษีที่ดินและสิ่งปลูกสร้าง\n\n"
       "ขอเชิญผู้เสียภาษีชำระภาษีภายในเดือนเมษายน\n").encode()


def approval():
    env = S.env("approval", extra_prakat="require_approval = yes\n")
    d = S.daemon(env)
    d.start()
    pending = os.path.join(env.spool, "pending")

    def waiting_id(title_start):
        for e in env.list_json(all=False):
            if e["title"].startswith(title_start) and e["status"] == "waiting-for-approval":
                return e["id"]
        return None

    state = {}

    def waits_with_preview():
        env.drop("meeting.txt", MEETING)
        id = wait_for(lambda: waiting_id("ประกาศเรียกประชุม"), what="the meeting waiting for approval")
        state["meeting"] = id
        preview = os.path.join(pending, id + ".txt")
        wait_for(lambda: os.path.exists(preview), what="pending/%s.txt" % id)
        text = read_text(preview)
        check("ประกาศเรียกประชุมสภา" in text and "prakat approve " + id in text and "website" in text,
              "the preview lacks the title, the command or the channel:\n" + text)
        time.sleep(1.0)
        check(not os.path.exists(env.article(id)), "the article was published before approval")
        check(env.receipt_for("meeting.txt") is None, "a receipt before approval")
    S.case("a new announcement waits: preview in pending/, no page, no receipt", waits_with_preview)

    def survives_crash():
        d.kill9()
        d.start()
        time.sleep(1.0)
        id = state["meeting"]
        check(not os.path.exists(env.article(id)), "published after a restart without approval")
        check(waiting_id("ประกาศเรียกประชุม") == id, "no longer waiting after the restart")
    S.case("still waiting after kill -9 and a restart", survives_crash)

    def approve():
        id = state["meeting"]
        rc, out, err = env.cli("approve", id)
        check(rc == 0 and "approved" in out, "approve: %d %r %r" % (rc, out, err))
        _, rid, text = env.wait_published("meeting.txt")
        check(rid == id and os.path.exists(env.article(id)), "approved but not published")
        check("Approved by: root" in text and "อนุมัติโดย: root" in text, "the receipt does not say who approved:\n" + text)
        check(not os.path.exists(os.path.join(pending, id + ".txt")), "the preview is still in pending/")
        rc, out, err = env.cli("approve", id)
        check(rc != 0, "approving twice succeeded")
    S.case("prakat approve publishes; the receipt names the approver; the preview goes", approve)

    def reject():
        env.drop("tax.txt", TAX)
        id = wait_for(lambda: waiting_id("ประชาสัมพันธ์การชำระภาษี"), what="the tax notice waiting")
        rc, out, err = env.cli("reject", id)
        check(rc == 65 and "reason" in err, "reject without --reason: %d %r" % (rc, err))
        rc, out, err = env.cli("reject", id, "--reason", "ตัวเลขวันที่ผิด แก้แล้วส่งใหม่", "--json")
        check(rc == 0 and json.loads(out)["by"] == "root", "reject: %d %r %r" % (rc, out, err))
        _, rid, text = env.wait_published("tax.txt")
        check("Rejected by: root" in text and "ตัวเลขวันที่ผิด" in text, "the receipt does not say why:\n" + text)
        check("cancelled" in text, "the website job is not cancelled in the receipt:\n" + text)
        check(not os.path.exists(env.article(id)), "a rejected announcement was published")
        check(not os.path.exists(os.path.join(pending, id + ".txt")), "the preview is still in pending/")
    S.case("prakat reject needs --reason, cancels, and the receipt says who and why", reject)

    S.stop_daemon(d, "daemon stopped cleanly")


S.group("approval gate", approval)
S.finish()
