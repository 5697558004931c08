#!/usr/bin/python3
"""prakat report (the ITA evidence report) and prakat digest (the monthly newsletter).

prakatd publishes Thai announcements to the website, a fake Facebook Page and a fake LINE account on
the shifted clock (PRAKAT_NOW): four in fiscal year 2568 (one of them refused by Facebook, one with a
picture, one with a hostile title), one just after it (1 October), one in November 2569 with a picture,
and a withdrawal.  Then, with the daemon stopped (and once while it runs), the report and the digest are
checked: the CSV with Python's csv module, the HTML as text and in headless Chromium (DOM, and printed
to PDF), what lies outside the period left out, the hostile title escaped, bad arguments refused with 64.

The core keeps no tower records of its own: a tower job's note says which villages played.  A tower job
is therefore added to the state as prakatd writes one (STATE/done/ID.json, with a note in the
format of channels/tower/README.md), so the per-village counts are checked without a broker.
"""

import csv
import html
import io
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakes"))
from harness import (CHROMIUM, PLUGIN_DIR, Suite, check, chromium, chromium_dump_dom, chromium_print_pdf,  # noqa: E402
                     read_bytes, read_text, require_build, tiny_png)
from fake_platforms import FakeFacebook, FakeLine  # noqa: E402

S = Suite("report")
require_build(S)

PAGE = "123456789"
OFFICE = "องค์การบริหารส่วนตำบลบ่อแก้ว"
EVIL_TITLE = "<script>document.title='PWNED'</script>ประกาศรับสมัคร อสม."
FY2568 = "2024-10-01..2025-09-30"
TOWER_ID = "tower-water-2568"
TOWER_NOTE = "slot 2025-09-30 07:00; played: villages 1-3, 5; failed: village 4 (exited with status 1)"
TOWER_NOTE_TH = ("เวลาออกอากาศ 30 ก.ย. 2568 07:00; ออกอากาศแล้ว: หมู่ 1-3, 5; "
                 "ออกอากาศไม่สำเร็จ: หมู่ 4 (exited with status 1)")

COL_NO, COL_ID, COL_TITLE = "ลำดับ / No", "รหัสประกาศ / ID", "หัวข้อ / Title"
COL_CHANNEL, COL_OUTCOME, COL_LINK = "ช่องทาง / Channel", "Outcome", "ลิงก์ / Link"
COL_POST, COL_PUBLISHED = "รหัสโพสต์ / Post id", "วันที่เผยแพร่ (พ.ศ.) / Published"
COL_PLAYED = "หอกระจายข่าว ออกอากาศแล้ว (หมู่) / Towers played"
COL_FAILED = "หอกระจายข่าว ไม่สำเร็จ (หมู่) / Towers failed"
COL_WITHDRAWN = "ถอน/แทนที่โดย / Withdrawn by"


def write_token(path, token):
    with open(path, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)


def parse_csv(data):
    check(data.startswith(b"\xef\xbb\xbf"), "the CSV does not start with a UTF-8 BOM: %r" % data[:20])
    check(b"\r\n" in data, "the CSV lines do not end in CRLF")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    header, body = rows[0], rows[1:]
    for r in body:
        check(len(r) == len(header), "a row has %d fields, the header %d: %r" % (len(r), len(header), r))
    return [dict(zip(header, r)) for r in body]


def add_tower_entry(state, like_id):
    """A finished announcement with a tower job, written the way prakatd writes state/done/ID.json."""
    with open(os.path.join(state, "done", like_id + ".json"), encoding="utf-8") as f:
        a = json.load(f)
    a.update(id=TOWER_ID, title="ประกาศงดจ่ายน้ำประปาชั่วคราว หมู่ 1-5", received="2025-09-29T04:00:00Z",
             publish_at="2025-09-29T04:00:00Z", channels=["tower"], attachments=[])
    job = {"channel": "tower", "kind": "publish", "state": "done", "attempts": 2,
           "first_try": "2025-09-29T04:00:01Z", "last_try": "2025-09-30T00:05:00Z", "next_try": None,
           "finished": "2025-09-30T00:05:00Z", "message": TOWER_NOTE, "message_th": TOWER_NOTE_TH,
           "link": None, "remote_id": None, "attachment_urls": []}
    a["jobs"] = {"version": 1, "held": False, "target": None, "source_ino": 0, "source_mtime": 0, "jobs": [job]}
    with open(os.path.join(state, "done", TOWER_ID + ".json"), "w", encoding="utf-8") as f:
        json.dump(a, f, ensure_ascii=False, indent=1)


def main():
    fb_token, line_token = "fb-token-report-suite", "line-token-report-suite"
    fb = FakeFacebook(page_id=PAGE, token=fb_token)
    line = FakeLine(token=line_token)
    fb_base, _ = fb.start(), line.start()
    try:
        run(fb, fb_base, line, fb_token, line_token)
    finally:
        fb.stop()
        line.stop()


def run(fb, fb_base, line, fb_token, line_token):
    env = S.env("report")
    write_token(os.path.join(env.tmp, "facebook.token"), fb_token)
    write_token(os.path.join(env.tmp, "line.token"), line_token)
    channels = ("[channel facebook]\nplugin = facebook\npage_id = %s\ntoken_file = facebook.token\napi_base = %s\n"
                "timeout = 5s\n\n[channel line]\nplugin = line\ntoken_file = line.token\napi_base = %s\n" %
                (PAGE, fb_base, line.base_url))
    env.write_config(extra_config=channels)
    d = S.daemon(env)
    ids = {}

    # ---- fiscal year 2568: 29 September 2025, 10:00 in Bangkok ----
    d.start(extra_env={"PRAKAT_NOW": "2025-09-29T03:00:00Z"})
    fb.add_fault("POST /v24.0/%s/feed" % PAGE, "status", count=1, status=400,
                 body={"error": {"message": "Invalid parameter", "type": "OAuthException", "code": 100}})
    env.drop("fbfail.txt", "หัวข้อ: ประกาศผลการคัดเลือกพนักงานจ้าง\n\nรายชื่อผู้ผ่านการคัดเลือก\n")
    ids["fbfail"] = env.wait_published("fbfail.txt")[1]
    env.drop("meeting.txt", "หัวข้อ: ประกาศเรียกประชุมสภาองค์การบริหารส่วนตำบลบ่อแก้ว สมัยสามัญ สมัยที่ ๔\n"
                            "หมู่บ้าน: 1, 3\n\nด้วยสภา อบต.บ่อแก้ว จะประชุมสมัยสามัญ สมัยที่ ๔ ประจำปี ๒๕๖๘\n"
                            "ณ ห้องประชุมสภา อบต.บ่อแก้ว\n")
    env.drop("evil.txt", "Title: %s\n\nขอเชิญผู้สนใจ <img src=x onerror=alert(1)> สมัคร & ติดต่อ\n" % EVIL_TITLE)
    env.drop_bundle("kidsday", {"announcement.txt": "หัวข้อ: ภาพกิจกรรมวันเด็กแห่งชาติ\nไฟล์แนบ: วันเด็ก.png\n\n"
                                                    "บรรยากาศงานวันเด็ก ณ ศูนย์พัฒนาเด็กเล็ก\n",
                                "วันเด็ก.png": tiny_png(8, 6)})
    for name in ("meeting.txt", "evil.txt", "kidsday"):
        ids[name.split(".")[0]] = env.wait_published(name)[1]
    d.stop()

    # ---- fiscal year 2569 starts: 2 October 2025 ----
    d.start(extra_env={"PRAKAT_NOW": "2025-10-02T03:00:00Z"})
    env.drop("october.txt", "หัวข้อ: ประชาสัมพันธ์การชำระภาษีที่ดินและสิ่งปลูกสร้าง ประจำปี 2569\n\n"
                            "ขอเชิญผู้เสียภาษีชำระภาษีภายในเดือนเมษายน\n")
    ids["october"] = env.wait_published("october.txt")[1]
    d.stop()

    # ---- November 2569 (2026): one with a picture, and the meeting of 2568 is withdrawn ----
    d.start(extra_env={"PRAKAT_NOW": "2026-11-10T02:00:00Z"})
    env.drop_bundle("loykrathong", {"announcement.txt": "หัวข้อ: ขอเชิญร่วมงานประเพณีลอยกระทง ประจำปี 2569\n"
                                                        "ไฟล์แนบ: krathong.png\n\n"
                                                        "องค์การบริหารส่วนตำบลบ่อแก้ว ขอเชิญชวนประชาชน\n"
                                                        "ร่วมงานประเพณีลอยกระทง ณ หนองน้ำสาธารณะ หมู่ 2\n",
                                    "krathong.png": tiny_png(12, 8, (0xd0, 0x80, 0x20))})
    ids["loykrathong"] = env.wait_published("loykrathong")[1]
    env.drop("withdraw.txt", "ยกเลิก: %s\n\nเลื่อนการประชุมออกไป\n" % ids["meeting"])
    ids["withdraw"] = env.wait_published("withdraw.txt")[1]

    def while_running():
        rc, out, err = env.cli("report", "--fiscal-year", "2568", "--format", "csv")
        check(rc == 0, "report while prakatd runs: %d %s" % (rc, err))
        check(ids["meeting"] in out, "the report made while prakatd runs lacks the meeting")
    S.case("report works while prakatd runs", while_running)
    S.stop_daemon(d, "prakatd stopped cleanly")

    # The report reads the config: name the tower channel (disabled: prakat loads no plugin).
    env.write_config(extra_config=channels + "\n[channel tower]\nplugin = tower\nenabled = no\n")
    add_tower_entry(env.state, ids["kidsday"])
    in_2568 = {ids["fbfail"], ids["meeting"], ids["evil"], ids["kidsday"], TOWER_ID}
    out = os.path.join(env.tmp, "out")
    os.makedirs(out)
    got = {}

    def csv_fiscal_year():
        path = os.path.join(out, "fy2568.csv")
        rc, stdout, err = env.cli("report", "--fiscal-year", "2568", "-o", path)
        check(rc == 0, "report -o %s: %d %s" % (path, rc, err))
        check("fy2568.csv" in stdout and "5 ประกาศ" in stdout, "no summary line on stdout: %r" % stdout)
        rows = parse_csv(read_bytes(path))
        got["rows"] = rows
        check({r[COL_ID] for r in rows} == in_2568,
              "ids in the CSV: %s, expected %s" % (sorted({r[COL_ID] for r in rows}), sorted(in_2568)))
        by = {(r[COL_ID], r[COL_CHANNEL]): r for r in rows}
        for key in ("meeting", "evil", "kidsday", "fbfail"):
            for ch in ("website", "facebook", "line"):
                check((ids[key], ch) in by, "no %s row for %s" % (ch, key))
        check(by[(ids["fbfail"], "facebook")][COL_OUTCOME] == "failed",
              "the refused Facebook post is %r" % by[(ids["fbfail"], "facebook")][COL_OUTCOME])
        check(by[(ids["fbfail"], "website")][COL_OUTCOME] == "done", "the website row of fbfail is not done")
        m = by[(ids["meeting"], "facebook")]
        check(m[COL_OUTCOME] == "done" and m[COL_POST].startswith(PAGE + "_"), "meeting on Facebook: %r" % m)
        w = by[(ids["meeting"], "website")]
        check(w[COL_LINK] == "https://bokaeo.go.th/news/a/%s.html" % ids["meeting"], "website link: %r" % w[COL_LINK])
        check(w[COL_PUBLISHED].startswith("29 ก.ย. 2568"), "not a Buddhist Era date: %r" % w[COL_PUBLISHED])
        check(w[COL_WITHDRAWN] == ids["withdraw"], "the meeting is not marked withdrawn: %r" % w[COL_WITHDRAWN])
        check(by[(ids["evil"], "website")][COL_TITLE] == EVIL_TITLE, "the title is changed in the CSV")
        t = by[(TOWER_ID, "tower")]
        check(t[COL_PLAYED] == "1, 2, 3, 5" and t[COL_FAILED] == "4", "tower villages: %r / %r" %
              (t[COL_PLAYED], t[COL_FAILED]))
        check([r[COL_NO] for r in rows if r[COL_CHANNEL] == "website"] == ["1", "2", "3", "4"],
              "numbering of the website rows: %r" % [r[COL_NO] for r in rows if r[COL_CHANNEL] == "website"])
    S.case("CSV of fiscal year 2568: BOM, CRLF, one row per channel, outcomes, links, post ids, towers",
           csv_fiscal_year)

    def outside_excluded():
        rows = got.get("rows") or []
        for key in ("october", "loykrathong", "withdraw"):
            check(all(r[COL_ID] != ids[key] for r in rows), "%s (outside fiscal year 2568) is in its report" % key)
        rc, stdout, err = env.cli("report", "--fiscal-year", "2569", "--format", "csv")
        check(rc == 0, "report --fiscal-year 2569: %d %s" % (rc, err))
        ids_2569 = {r[COL_ID] for r in parse_csv(stdout.encode("utf-8"))}
        check(ids_2569 == {ids["october"]}, "fiscal year 2569 holds %s" % sorted(ids_2569))
    S.case("announcements outside the period (1 October 2025, November 2026, the Cancel:) are left out",
           outside_excluded)

    def other_ways_to_say_it():
        for args in (["--fiscal-year", "2025"], ["--fiscal-year", "๒๕๖๘"],
                     ["--from", "1/10/2567", "--to", "30 ก.ย. 2568"], ["--from", "2024-10-01", "--to", "2025-09-30"]):
            rc, stdout, err = env.cli("report", "--format", "csv", *args)
            check(rc == 0, "report %s: %d %s" % (" ".join(args), rc, err))
            got_ids = {r[COL_ID] for r in parse_csv(stdout.encode("utf-8"))}
            check(got_ids == in_2568, "report %s gives %s" % (" ".join(args), sorted(got_ids)))
        rc, stdout, err = env.cli("report", "--format", "csv", "--from", "2/10/2568", "--to", "2/10/2568")
        got_ids = {r[COL_ID] for r in parse_csv(stdout.encode("utf-8"))}
        check(rc == 0 and got_ids == {ids["october"]}, "a one-day period (--to without a time): %s" % sorted(got_ids))
        rc, stdout, err = env.cli("report", "--format", "csv", "--from", "2025-09-29 10:30", "--to", "2025-10-01")
        got_ids = {r[COL_ID] for r in parse_csv(stdout.encode("utf-8"))}
        check(rc == 0 and got_ids == {TOWER_ID}, "--from with a time: %s" % sorted(got_ids))
    S.case("the same year in the Common Era, in Thai digits, and as --from/--to in BE and ISO", other_ways_to_say_it)

    html_path = os.path.join(out, "report.html")

    def html_report():
        rc, stdout, err = env.cli("report", "--fiscal-year", "2568", "-o", out)
        check(rc == 0, "report -o DIR: %d %s" % (rc, err))
        check(os.path.exists(os.path.join(out, "report.csv")), "-o DIR wrote no report.csv")
        text = read_text(html_path)
        for frag in ("<html lang=\"th\">", "size: A4", OFFICE, "ปีงบประมาณ พ.ศ. 2568",
                     "1 ตุลาคม 2567 – 30 กันยายน 2568", "29 ก.ย. 2568", "หอกระจายข่าวประจำหมู่บ้าน",
                     "&lt;script&gt;document.title=&#39;PWNED&#39;&lt;/script&gt;"):
            check(frag in text, "the HTML report lacks %r" % frag)
        check("<script" not in text, "a <script> tag in the HTML report")
        check(ids["october"] not in text and ids["loykrathong"] not in text, "an item outside the period is shown")
        totals = dict(re.findall(r'<tr class="channel" data-channel="(\w+)">.*?<td class="num done">(\d+)</td>', text))
        check(totals == {"website": "4", "facebook": "3", "line": "4", "tower": "1"}, "channel totals: %r" % totals)
        check(re.search(r'<tr class="village" data-village="4">.*?<td class="num">0</td><td class="num">1</td>', text),
              "village 4's failed play is not counted")
        stdout_html = env.cli("report", "--fiscal-year", "2568")[1]
        check(stdout_html.startswith("<!DOCTYPE html>") and ids["meeting"] in stdout_html,
              "without -o the HTML does not go to standard output")
    S.case("HTML report: A4, Thai, Buddhist Era, office name, per-channel totals, per-village towers, escaped",
           html_report)

    have_chromium = os.access(CHROMIUM, os.X_OK)
    S.result("chromium present", have_chromium, "%s is missing (make deps installs it)" % CHROMIUM)

    def report_in_chromium():
        dom = chromium_dump_dom(env.tmp, html_path)
        rows = re.findall(r'<tr class="item" data-id="([^"]+)"', dom)
        check(set(rows) == in_2568 and len(rows) == 5, "rows in the rendered report: %r" % rows)
        check("PWNED" not in re.search(r"<title>(.*?)</title>", dom, re.S).group(1), "the script ran")
        check("&lt;script&gt;document.title" in dom, "the escaped title is not text in the DOM")
        chromium_print_pdf(env.tmp, html_path, os.path.join(out, "report.pdf"))
    if have_chromium:
        S.case("the report in headless Chromium: every row in the DOM, no script ran, printed to PDF",
               report_in_chromium)

    def digest_month():
        rc, stdout, err = env.cli("digest", "--month", "2569-11", "-o", out)
        check(rc == 0, "digest -o DIR: %d %s" % (rc, err))
        page = os.path.join(out, "digest-2569-11.html")
        text = read_text(page)
        check("ฉบับประจำเดือนพฤศจิกายน พ.ศ. 2569" in text and OFFICE in text, "no masthead in the digest")
        check(text.count("<article ") == 1 and "ขอเชิญร่วมงานประเพณีลอยกระทง" in text,
              "the digest of November 2569 should hold the Loy Krathong item only")
        check("องค์การบริหารส่วนตำบลบ่อแก้ว ขอเชิญชวนประชาชน ร่วมงานประเพณีลอยกระทง" in text, "no summary")
        check("https://bokaeo.go.th/news/a/%s.html" % ids["loykrathong"] in text, "no link to the article")
        m = re.search(r'<img src="(digest-2569-11_files/[^"]+)"', text)
        check(m, "no picture in the digest")
        pic = os.path.join(out, m.group(1))
        check(read_bytes(pic) == tiny_png(12, 8, (0xd0, 0x80, 0x20)), "the picture was not copied beside the page")
        rc, stdout, err = env.cli("digest", "--month", "2026-11")
        check(rc == 0 and stdout.count("<article ") == 1 and "https://bokaeo.go.th/news/files/" in stdout,
              "digest --month 2026-11 to stdout (pictures from the website): %d %s" % (rc, err))
        got["digest"] = page
    S.case("digest --month 2569-11 -o DIR: masthead, the month's items, summary, link, picture copied", digest_month)

    def digest_withdrawn_and_escaped():
        page = os.path.join(out, "sept.html")
        rc, stdout, err = env.cli("digest", "--month", "กันยายน 2568", "-o", page)
        check(rc == 0, "digest -o FILE: %d %s" % (rc, err))
        text = read_text(page)
        check(ids["meeting"] not in text, "the withdrawn meeting is in the newsletter")
        check("<script" not in text and "&lt;script&gt;" in text, "the hostile title is not escaped")
        check(os.path.isdir(os.path.join(out, "sept_files")), "no sept_files/ beside sept.html")
        if have_chromium:
            dom = chromium_dump_dom(env.tmp, page)
            check(len(re.findall(r'<article class="news"', dom)) == 4, "articles in the rendered digest")
            chromium_print_pdf(env.tmp, page, os.path.join(out, "sept.pdf"))
            chromium_print_pdf(env.tmp, got["digest"], os.path.join(out, "digest.pdf"))
    S.case("digest of September 2568: withdrawn item left out, title escaped, printed to PDF",
           digest_withdrawn_and_escaped)

    def digest_qr_codes():
        # Each article's QR code, as Chromium draws it, decodes to the page's address printed beside it.
        page = os.path.join(out, "sept.html")
        text = read_text(page)
        links = re.findall(r'<p class="link"><svg class="qr"[^>]*>.*?</svg><span>อ่านต่อ: <a href="([^"]+)"', text)
        check(len(links) == text.count('<p class="link">') and len(set(links)) >= 3,
              "every printed link has its QR code (at least 3 here): %s" % links)
        shot = os.path.join(out, "sept.png")
        rc, _, err = chromium(env.tmp, "--window-size=1100,2400", "--force-device-scale-factor=3", "--hide-scrollbars",
                              "--screenshot=" + shot, "file://" + page)
        check(rc == 0 and os.path.exists(shot), "no screenshot of the digest (rc %d): %s" % (rc, err[-500:]))
        p = subprocess.run(["zbarimg", "-q", "--raw", shot], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        decoded = p.stdout.decode("utf-8", "replace").split()
        check(sorted(decoded) == sorted(html.unescape(u) for u in links),
              "zbarimg read %s from the screenshot, the page links %s" % (decoded, links))
    if have_chromium and shutil.which("zbarimg"):
        S.case("digest: every article's QR code, rendered by Chromium, decodes (zbarimg) to its page's address",
               digest_qr_codes)

    def bad_arguments():
        cases = [
            (["report", "--fiscal-year", "abc"], "is not a year"),
            (["report", "--fiscal-year", "2568", "--from", "2025-01-01", "--to", "2025-02-01"], "give one"),
            (["report", "--from", "2025-01-01"], "go together"),
            (["report", "--from", "2025-12-01", "--to", "2025-01-01"], "is not before"),
            (["report", "--from", "31/02/2568", "--to", "2025-03-01"], "is not a date"),
            (["report", "--format", "pdf"], "html or csv"),
            (["report", "extra"], "no argument"),
            (["digest"], "--month"),
            (["digest", "--month", "2569-13"], "is not a month"),
            (["digest", "--month", "2569-11", "--format", "csv"], "belong to prakat report"),
        ]
        for args, words in cases:
            rc, stdout, err = env.cli(*args)
            check(rc == 64, "prakat %s exited %d, expected 64" % (" ".join(args), rc))
            check(words in err and "--help" in err, "prakat %s: the message does not say %r: %r" %
                  (" ".join(args), words, err))
        for cmd in ("report", "digest"):
            rc, stdout, err = env.cli(cmd, "--help")
            check(rc == 0 and stdout.startswith("Usage: prakat %s" % cmd), "prakat %s --help: %d %r" % (cmd, rc, stdout))
        rc, stdout, err = env.cli("report", "-o", "/nonexistent-dir/r.html")
        check(rc == 73 and "cannot write" in err, "an unwritable -o: %d %r" % (rc, err))
    S.case("bad arguments exit 64 and say what is wrong; --help; an unwritable -o exits 73", bad_arguments)

    def state_untouched():
        before = sorted(os.listdir(os.path.join(env.state, "done")))
        env.cli("report", "--fiscal-year", "2568", "--format", "csv", check_rc=0)
        check(sorted(os.listdir(os.path.join(env.state, "done"))) == before, "the report changed the state")
        check(not os.path.exists(os.path.join(env.runtime, "control.sock")), "a control socket exists")
    S.case("the report reads the state of a stopped daemon and changes nothing", state_untouched)


if not all(os.path.exists(os.path.join(PLUGIN_DIR, p + ".so")) for p in ("facebook", "line")):
    S.result("report: plugins built", False, "facebook.so and line.so are missing in %s (run make)" % PLUGIN_DIR)
else:
    S.group("report and digest", main)
S.finish()
