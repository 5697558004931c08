#!/usr/bin/python3
"""Intake (DESIGN §3): every form and encoding is published; bad input is rejected with a Thai and
English explanation; ignored names stay; the same file twice is not published twice; settle."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DATA, Suite, TestFailure, check, check_error_text, read_bytes, read_text,  # noqa: E402
                     require_build, tiny_png, wait_for)

S = Suite("intake")
require_build(S)

# 09:59:50 in Bangkok: the Thai-date Publish-At below (10:00) lies 10 s ahead of the start.
NOW = "2026-11-25T02:59:50Z"

BODY_TH = ("ด้วยองค์การบริหารส่วนตำบลบ่อแก้ว จะดำเนินการฉีดวัคซีนป้องกันโรคพิษสุนัขบ้า ให้แก่สุนัขและแมว "
           "ในเขตตำบล โดยไม่เสียค่าใช้จ่าย\nขอให้เจ้าของนำสัตว์เลี้ยงมารับบริการตามวันและเวลาดังกล่าว")


def published_ok(env, original, title, body_fragment=None):
    """Receipt with the original beside it, article page with the Thai title, original gone from incoming."""
    folder, id, receipt = env.wait_published(original)
    check(os.path.basename(folder).endswith("-" + id), "published folder %s is not DATE-%s" % (folder, id))
    check(os.path.basename(folder)[:10].count("-") == 2, "published folder %s does not start with a date" % folder)
    check(os.path.lexists(os.path.join(folder, original)), "the original %s is not beside the receipt" % original)
    check(("หัวข้อ: %s" % title) in receipt, "the receipt does not carry the title %r:\n%s" % (title, receipt))
    art = env.article(id)
    wait_for(lambda: os.path.exists(art), what="article page %s" % art)
    html = read_text(art)
    check(title in html, "the article page does not contain the title %r" % title)
    if body_fragment:
        check(body_fragment in html, "the article page does not contain %r" % body_fragment)
    check(not os.path.lexists(os.path.join(env.incoming, original)), "%s is still in incoming/" % original)
    return id, receipt, html


# ---------------------------------------------------------------- good forms, every encoding

def good_forms():
    env = S.env("good")
    d = S.daemon(env, extra_env={"PRAKAT_NOW": NOW})
    d.start()
    png = tiny_png()
    t_utf8 = "ประชาสัมพันธ์การฉีดวัคซีนป้องกันโรคพิษสุนัขบ้า ประจำปี 2570"
    cases = []

    def add(case, name, data, title, body=None, extra=None):
        cases.append((case, name, title, body, extra))
        if isinstance(data, dict):
            env.drop_bundle(name, data)
        else:
            env.drop(name, data)

    add("utf-8 .txt with English headers", "utf8.txt",
        "Title: %s\nChannels: website\nVillages: 1, 3-4\nPriority: urgent\nCategory: ข่าวสาธารณสุข\n"
        "Author: งานส่งเสริมสุขภาพ\n\n%s\n" % (t_utf8, BODY_TH), t_utf8, "ไม่เสียค่าใช้จ่าย",
        lambda rid, receipt, html: check("หมู่ 1 (บ้านบ่อแก้ว), หมู่ 3 (บ้านหนองบัว), หมู่ 4 (บ้านโคกสะอาด)" in receipt,
                                         "villages 1, 3-4 not in the receipt:\n" + receipt))
    t = "ขอเชิญร่วมกิจกรรมวันลอยกระทง ประจำปี 2569"
    add("utf-8 with BOM", "bom.txt", ("\ufeffหัวข้อ: %s\n\nขอเชิญชวนประชาชนร่วมประกวดกระทงประดิษฐ์ ณ หนองน้ำสาธารณะ\n" % t)
        .encode("utf-8"), t, "ประกวดกระทงประดิษฐ์")
    t = "แจ้งงดจ่ายกระแสไฟฟ้าชั่วคราว หมู่ที่ 2"
    add("utf-16le with BOM", "utf16le.txt", ("หัวข้อ: %s\nหมู่บ้าน: 2\n\nการไฟฟ้าส่วนภูมิภาคจะงดจ่ายไฟฟ้าเพื่อปรับปรุงระบบ\n" % t)
        .encode("utf-16"), t, "ปรับปรุงระบบ")  # Python's utf-16 writes a LE BOM
    t = "ประกาศรับสมัครอาสาสมัครป้องกันภัยฝ่ายพลเรือน (อปพร.)"
    add("utf-16be with BOM", "utf16be.txt", b"\xfe\xff" + ("หัวข้อ: %s\n\nผู้สนใจสมัครได้ที่สำนักปลัด อบต.\n" % t)
        .encode("utf-16-be"), t, "สำนักปลัด")
    t = "ประชาสัมพันธ์การชำระภาษีที่ดินและสิ่งปลูกสร้าง ประจำปี 2570"
    cp874 = ("หัวข้อ: %s\nหมวด: การเงินการคลัง\n\nขอให้ผู้เสียภาษีชำระภายในเดือนเมษายน "
             "ณ กองคลัง องค์การบริหารส่วนตำบลบ่อแก้ว\r\n" % t).encode("cp874")
    add("windows-874 (cp874)", "cp874.txt", cp874, t, "กองคลัง",
        lambda rid, receipt, html: (
            check(env.show_json(rid)["encoding"] == "Windows-874", "encoding not recorded as Windows-874"),
            # The receipt keeps the original as dropped, byte for byte (not the UTF-8 the parser made of it).
            check([read_bytes(os.path.join(env.published, d, "cp874.txt")) for d in os.listdir(env.published)
                   if d.endswith(rid) and not d.startswith(".")] == [cp874],
                  "the receipt's original differs from the dropped bytes")))
    t = "กำหนดการประชุมสภาองค์การบริหารส่วนตำบล สมัยสามัญ สมัยที่ 4"
    add("CRLF line ends", "crlf.txt", ("Title: %s\r\nVillages: all\r\n\r\nบรรทัดแรกของเนื้อหา\r\nบรรทัดที่สอง\r\n" % t)
        .encode("utf-8"), t, "บรรทัดที่สอง",
        lambda rid, receipt, html: check("\r" not in env.show_json(rid)["body"], "CR left in the body"))
    t = "ประกาศเสียงตามสายเรื่องการป้องกันไข้เลือดออก"
    add("Thai header aliases", "aliases.txt",
        "หัวข้อ: %s\nช่องทาง: website\nหมู่บ้าน: ๑, ๓\nเผยแพร่: ๑/๑๑/๒๕๖๙ ๐๘:๐๐\nหมดอายุ: ๓๑/๑๒/๒๕๖๙ ๑๖:๓๐\n"
        "ความสำคัญ: ด่วน\nหมวด: ข่าวสาธารณสุข\nผู้ประกาศ: นายกองค์การบริหารส่วนตำบล\n\n"
        "ขอให้ทุกครัวเรือนช่วยกันกำจัดแหล่งเพาะพันธุ์ยุงลาย\n" % t, t, "แหล่งเพาะพันธุ์ยุงลาย",
        lambda rid, receipt, html: (
            check("Expires: 2026-12-31T16:30:00+07:00" in receipt,
                  "Thai-digit Buddhist Era Expires not read as 2026-12-31 16:30:\n" + receipt),
            check("หมู่ 1 (บ้านบ่อแก้ว), หมู่ 3 (บ้านหนองบัว)" in receipt, "Thai-digit villages not read"),
            check(env.show_json(rid)["priority"] == "urgent", "ด่วน not read as urgent"),
            check(env.show_json(rid)["author"] == "นายกองค์การบริหารส่วนตำบล", "ผู้ประกาศ not read")))
    t = "ขอเชิญร่วมโครงการปลูกต้นไม้เฉลิมพระเกียรติ"
    add("no header: first line is the title", "noheader.txt",
        "\n%s\nณ บริเวณสวนสาธารณะหนองบัว วันเสาร์ที่ 5 ธันวาคม\n" % t, t, "สวนสาธารณะหนองบัว",
        lambda rid, receipt, html: check(env.show_json(rid)["body"].startswith("ณ บริเวณ"),
                                         "the title line was left in the body"))
    t = "ประชาสัมพันธ์การรับชำระค่าธรรมเนียมเก็บขนขยะมูลฝอย"
    add(".json form", "news.json", (
        '{"title": "%s", "body": "ชำระได้ที่กองคลัง ทุกวันทำการ\\nเวลา 08.30 - 16.30 น.", '
        '"channels": ["website"], "villages": [1, 2, "5"], "priority": "normal", "category": "การเงินการคลัง", '
        '"author": "กองคลัง", "expires": "2026-12-31 16:30"}' % t).encode("utf-8"), t, "ทุกวันทำการ",
        lambda rid, receipt, html: check("หมู่ 5 (บ้านดอนแดง)" in receipt, "json villages not read"))
    t = "ภาพกิจกรรมโครงการอบรมให้ความรู้การคัดแยกขยะ"
    add("bundle folder with an image", "bundle-kadyaek", {
        "announcement.txt": "หัวข้อ: %s\nไฟล์แนบ: ภาพกิจกรรม.png\n\nอบต.บ่อแก้ว จัดอบรมการคัดแยกขยะต้นทาง\n" % t,
        "ภาพกิจกรรม.png": png}, t, "คัดแยกขยะต้นทาง",
        lambda rid, receipt, html: check(
            any(read_bytes(os.path.join(dp, f)) == png
                for dp, _, fs in os.walk(os.path.join(env.site, "files", rid)) for f in fs),
            "the PNG was not copied under site/files/%s/" % rid))
    t = "ประกาศผลการคัดเลือกพนักงานจ้างตามภารกิจ"
    add("Thai month name, Thai digits, Buddhist Era in Publish-At", "thaidate.txt",
        "หัวข้อ: %s\nเผยแพร่: ๒๕ พฤศจิกายน ๒๕๖๙ ๑๐.๐๐ น.\n\nรายชื่อผู้ผ่านการคัดเลือกตามเอกสารแนบท้ายประกาศ\n" % t, t,
        "ผ่านการคัดเลือก",
        lambda rid, receipt, html: check("Publish at: 2026-11-25T10:00:00+07:00" in receipt,
                                         "Publish-At not kept as 2026-11-25 10:00 (+07):\n" + receipt))

    for case, name, title, body, extra in cases:
        def one(name=name, title=title, body=body, extra=extra):
            rid, receipt, html = published_ok(env, name, title, body)
            if extra:
                extra(rid, receipt, html)
        S.case("published: " + case, one)
    S.case("good forms: incoming/ empty, nothing rejected", lambda: (
        check(env.visible_incoming() == [], "left in incoming: %s" % env.visible_incoming()),
        check(os.listdir(env.rejected) == [], "rejected: %s" % os.listdir(env.rejected))))
    S.stop_daemon(d, "good forms: daemon stops cleanly")


# ---------------------------------------------------------------- bad input

def bad_inputs():
    env = S.env("bad")
    outside = os.path.join(env.tmp, "outside.txt")
    with open(outside, "w", encoding="utf-8") as f:
        f.write("หัวข้อ: ไฟล์นอก incoming\n\nห้ามแตะ\n")
    outside_before = read_bytes(outside)
    d = S.daemon(env)
    d.start()
    png = tiny_png()
    bad = [
        ("unknown header (typo Chanels:)", "typo.txt",
         "หัวข้อ: ประชุมประจำเดือน\nChanels: website\n\nเนื้อหา\n", ("Unknown header", "Chanels"), 2),
        ("unknown channel, lists the defined ones", "badchannel.txt",
         "Title: ประชุมประจำเดือน\nVillages: 1\nChannels: website, facebok\n\nเนื้อหา\n",
         ("facebok", "The channels are: website"), 3),
        ("village not in [villages]", "badvillage.txt",
         "หัวข้อ: ซ่อมถนน\nหมู่บ้าน: 2, 9\n\nเนื้อหา\n", ("village 9",), 2),
        ("date that does not exist (31/02/2569)", "baddate.txt",
         "หัวข้อ: ประชุม\nเผยแพร่: 31/02/2569 07:00\n\nเนื้อหา\n", ("not a real date", "31/02/2569"), 2),
        ("Expires before Publish-At", "expires.txt",
         "Title: ประชุม\nPublish-At: 26/12/2569 07:00\nExpires: 25/12/2569\n\nเนื้อหา\n", ("Expires",), 3),
        ("empty file", "empty.txt", b"", ("empty",), None),
        ("binary junk with NUL bytes", "junk.txt", b"\x00\x01\x02PK\x03\x04\x00\xff\xfe\x00" * 50,
         ("cannot be read",), None),
        ("bundle: Attachments: ../../etc/passwd", "bundle-escape",
         {"announcement.txt": "หัวข้อ: ภาพกิจกรรม\nไฟล์แนบ: ../../etc/passwd\n\nเนื้อหา\n", "a.png": png},
         ("outside",), 2),
        ("bundle without announcement.txt", "bundle-noann", {"ภาพ.png": png, "notes.txt": "x"},
         ("no announcement.txt",), None),
        ("JSON with wrong types", "wrongtype.json", '{"title": 5, "body": "x"}', ("wrong type", "title"), None),
        ("JSON with an unknown key", "unknownkey.json", '{"title": "ประชุม", "bdy": "x"}', ("bdy", "Unknown key"),
         None),
        ("JSON nested deeply", "deep.json",
         '{"title": "ประชุม", "body": "x", "channels": ' + "[" * 40 + '"website"' + "]" * 40 + "}",
         ("nested too deeply",), None),
        ("Cancel: with an unknown id", "cancel.txt", "ยกเลิก: 20261125-deadbeef\n\nพิมพ์ผิด\n",
         ("20261125-deadbeef", "no announcement"), None),
    ]
    for _, name, data, _, _ in bad:
        if isinstance(data, dict):
            env.drop_bundle(name, data)
        else:
            env.drop(name, data)
    # A bundle holding a symlink, a symlink and a FIFO dropped straight into incoming.
    os.makedirs(os.path.join(env.tmp, "b"))
    with open(os.path.join(env.tmp, "b", "announcement.txt"), "w", encoding="utf-8") as f:
        f.write("หัวข้อ: มีทางลัด\nไฟล์แนบ: secret\n\nเนื้อหา\n")
    os.symlink("/etc/passwd", os.path.join(env.tmp, "b", "secret"))
    os.rename(os.path.join(env.tmp, "b"), os.path.join(env.incoming, "bundle-symlink"))
    os.symlink(outside, os.path.join(env.incoming, "link.txt"))
    os.mkfifo(os.path.join(env.incoming, "pipe.txt"))

    for case, name, _, frags, line in bad:
        S.case("rejected: " + case, lambda name=name, frags=frags, line=line:
               check_error_text(env.wait_rejected(name), *frags, line=line))
    S.case("rejected: bundle containing a symlink",
           lambda: check_error_text(env.wait_rejected("bundle-symlink"), "not a plain file"))

    def symlink_case():
        check_error_text(env.wait_rejected("link.txt"), "symlink")
        check(read_bytes(outside) == outside_before, "the symlink's target was changed")
        check(os.path.islink(os.path.join(env.rejected, "link.txt")), "rejected/link.txt is not the symlink")
    S.case("rejected: symlink in incoming, target untouched", symlink_case)

    def fifo_case():
        check_error_text(env.wait_rejected("pipe.txt"), "neither a plain file")
        check(d.running(), "prakatd is not running after the FIFO")
    S.case("rejected: FIFO in incoming, daemon does not hang", fifo_case)

    def still_works():
        check(d.running(), "prakatd died")
        t = "ประชาสัมพันธ์หลังจากไฟล์เสียหลายไฟล์"
        env.drop("good-after.txt", "หัวข้อ: %s\n\nยังทำงานปกติ\n" % t)
        published_ok(env, "good-after.txt", t, "ยังทำงานปกติ")
        check(env.visible_incoming() == [], "left in incoming: %s" % env.visible_incoming())
        check(len(env.receipts()) == 1, "bad input was published: %s" % [r[2] for r in env.receipts()])
    S.case("after every bad input the daemon still publishes", still_works)
    S.stop_daemon(d, "bad input: daemon stops cleanly")


def too_big():
    env = S.env("big", extra_prakat="max_file_size = 1K")
    d = S.daemon(env)
    d.start()
    env.drop("big.txt", "หัวข้อ: ยาวเกิน\n\n" + "ข้อความยาว " * 200)
    env.drop("small.txt", "หัวข้อ: สั้นพอดี\n\nข้อความสั้น\n")
    S.case("rejected: file over max_file_size (1K)",
           lambda: check_error_text(env.wait_rejected("big.txt"), "larger than the limit", "1024"))
    S.case("max_file_size: a small file still published",
           lambda: published_ok(env, "small.txt", "สั้นพอดี", "ข้อความสั้น"))
    S.stop_daemon(d, "max_file_size: daemon stops cleanly")


# ---------------------------------------------------------------- ignored names, duplicates, settle

def ignored_names():
    env = S.env("ignored")
    d = S.daemon(env)
    d.start()
    names = [".hidden.txt", "~$doc.txt", "x.tmp", "x.part", "Thumbs.db"]
    content = {}
    for n in names:
        content[n] = ("หัวข้อ: ไม่ควรเผยแพร่ %s\n\nเนื้อหา\n" % n).encode("utf-8")
        with open(os.path.join(env.incoming, n), "wb") as f:
            f.write(content[n])
    env.drop("real.txt", "หัวข้อ: ประกาศจริง\n\nเนื้อหา\n")

    def fn():
        published_ok(env, "real.txt", "ประกาศจริง")
        time.sleep(1.5)  # several settle periods (300 ms) after the drop
        for n in names:
            p = os.path.join(env.incoming, n)
            check(os.path.exists(p), "%s was taken from incoming/" % n)
            check(read_bytes(p) == content[n], "%s was changed" % n)
        check(len(env.receipts()) == 1, "an ignored name was published")
        check(os.listdir(env.rejected) == [], "an ignored name was rejected: %s" % os.listdir(env.rejected))
    S.case("ignored names stay in incoming untouched", fn)
    S.stop_daemon(d, "ignored names: daemon stops cleanly")


def duplicate():
    env = S.env("dup")
    d = S.daemon(env)
    d.start()
    text = "หัวข้อ: ประกาศรับสมัครนักเรียนศูนย์พัฒนาเด็กเล็ก\n\nรับสมัครตั้งแต่วันที่ 1 ธันวาคม\n"

    def fn():
        env.drop("dup.txt", text)
        _, id, _ = env.wait_published("dup.txt")
        env.drop("dup.txt", text)
        err = env.wait_rejected("dup.txt")
        check_error_text(err, "already received", id)
        check(id in err.split("----------------------------------------")[0], "the Thai part does not name the id")
        time.sleep(1.0)
        rs = env.receipts()
        check(len(rs) == 1, "%d receipts for one announcement" % len(rs))
        arts = os.listdir(os.path.join(env.site, "a"))
        check(arts == [id + ".html"], "articles: %s" % arts)
        entries = env.list_json()
        check([e["id"] for e in entries] == [id], "prakat list --all: %s" % [e["id"] for e in entries])
    S.case("the same file twice: second rejected as already published, one article, one receipt", fn)
    S.stop_daemon(d, "duplicate: daemon stops cleanly")


def settle():
    env = S.env("settle", settle="1s")
    d = S.daemon(env)
    d.start()
    title = "ประกาศที่เขียนช้า ๆ ผ่านเครือข่าย"
    lines = ["หัวข้อ: %s\n\n" % title] + ["ย่อหน้าที่ %d ของประกาศที่คัดลอกมาช้า\n" % i for i in range(1, 6)] + \
            ["ท้ายประกาศ-ครบถ้วน\n"]
    data = "".join(lines).encode("utf-8")

    def fn():
        # 6 pieces 0.45 s apart: about 2.3 s of writing, more than twice the settle time (1 s).
        env.drop("slow.txt", data, slow=True, pieces=6, interval=0.45)
        _, id, _ = env.wait_published("slow.txt")
        html = read_text(env.article(id))
        check("ท้ายประกาศ-ครบถ้วน" in html, "the last piece is missing from the page: taken before complete")
        check("ย่อหน้าที่ 5" in html, "a middle piece is missing from the page")
        stored = env.show_json(id)
        check(stored["body"].endswith("ท้ายประกาศ-ครบถ้วน"), "stored body incomplete: %r" % stored["body"][-80:])
        check(len(env.receipts()) == 1 and os.listdir(env.rejected) == [],
              "taken more than once or rejected: %s / %s" % (env.receipts(), os.listdir(env.rejected)))
    S.case("settle: a file written slowly is taken only once complete", fn)
    S.stop_daemon(d, "settle: daemon stops cleanly")


def first_line_typo():
    """A misspelt key on the very first line must not turn the whole header into body text (which
    would publish to every channel and every village). Known to fail: see the report."""
    env = S.env("typo1")
    d = S.daemon(env)
    d.start()
    env.drop("typo-first.txt", "Chanels: website\nหัวข้อ: ประชุมเฉพาะหมู่ที่ 3\nหมู่บ้าน: 3\n\nเนื้อหา\n")

    def fn():
        def outcome():
            if os.path.exists(env.error_path("typo-first.txt")):
                return "rejected"
            r = env.receipt_for("typo-first.txt")
            return r and "published with the title %r" % re.search(r"^Title: (.*)$", r[3], re.M).group(1)
        o = wait_for(outcome, what="typo-first.txt to be published or rejected")
        check(o == "rejected", "a header with a typo on line 1 was %s, to all channels and villages" % o)
        check_error_text(env.wait_rejected("typo-first.txt"), "Chanels", line=1)
    S.case("rejected: unknown header on the first line (Chanels: before หัวข้อ:)", fn)
    S.stop_daemon(d, "first-line typo: daemon stops cleanly")


# ---------------------------------------------------------------- tests/data and conf/examples

def title_of(path):
    """The title a file declares (Title:/หัวข้อ: line, or "title" in JSON), whatever its encoding."""
    import json
    if os.path.isdir(path):
        path = os.path.join(path, "announcement.txt")
    data = read_bytes(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp874")
    if path.endswith(".json"):
        return json.loads(text)["title"]
    for line in text.splitlines():
        for key in ("หัวข้อ:", "Title:"):
            if line.startswith(key):
                return line[len(key):].strip()
    raise TestFailure("no title line in " + path)


def samples():
    import shutil
    env = S.env("samples")
    d = S.daemon(env)
    d.start()
    groups = [("tests/data/announcements", os.path.join(DATA, "announcements")),
              ("conf/examples", os.path.join(os.path.dirname(DATA), "..", "conf", "examples"))]
    dropped = []
    for label, folder in groups:
        for name in sorted(os.listdir(folder)):
            src = os.path.join(folder, name)
            if os.path.isdir(src):
                tmp = os.path.join(env.incoming, "." + name)
                shutil.copytree(src, tmp)
                os.rename(tmp, os.path.join(env.incoming, name))
            else:
                env.drop(name, read_bytes(src))
            dropped.append((label, name, title_of(src)))
    for label, name, title in dropped:
        S.case("%s/%s is published" % (label, name), lambda name=name, title=title: published_ok(env, name, title))
    S.case("samples: nothing rejected", lambda: check(os.listdir(env.rejected) == [],
                                                      "rejected: %s" % os.listdir(env.rejected)))
    S.stop_daemon(d, "samples: daemon stops cleanly")


S.group("good forms", good_forms)
S.group("bad input", bad_inputs)
S.group("max_file_size", too_big)
S.group("ignored names", ignored_names)
S.group("duplicate", duplicate)
S.group("settle", settle)
S.group("samples", samples)
S.group("first-line typo", first_line_typo)
S.finish()
