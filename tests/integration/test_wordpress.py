#!/usr/bin/python3
"""The website channel in `mode = wordpress` against the fake WordPress REST API
(tests/fakes/fake_wordpress.py) on 127.0.0.1, with a Facebook channel (fake_platforms.py) beside it.

A publish with a picture and a PDF makes one post with both files uploaded, the picture as the
featured image, the category found or created, the user's text escaped; the receipt and the Facebook
post link to the URL WordPress gave.  For each fault -- 500 after the post was made, the connection
dropped after the post was accepted, timeouts before and after the post was made, an HTML 502 from a
proxy, prakatd killed with -9 while the post is in flight -- there is exactly one post per
announcement and the receipt says done.  Replaces updates the earlier post in place, Cancel leaves a
withdrawal notice at its URL and deletes its files, a 400 fails the job with WordPress's message, a
revoked password makes the channel unhealthy and holds the job until a new one is put in the file.
The password never shows up in the log, the state or the spool.
"""

import base64
import json
import os
import secrets
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "fakes"))
from harness import (PLUGIN_DIR, TIMEOUT, VILLAGES, Suite, check, make_env, require_build,  # noqa: E402
                     tiny_png, wait_for)
from channel_checks import files_holding, receipt_section, write_secret  # noqa: E402
from fake_platforms import FakeFacebook, FakeLine  # noqa: E402
from fake_wordpress import FakeWordPress  # noqa: E402

S = Suite("wordpress")
require_build(S)
for plugin in ("facebook.so", "line.so"):
    if not os.path.exists(os.path.join(PLUGIN_DIR, plugin)):
        S.result("wordpress: plugin %s built" % plugin, False, "%s is missing" % os.path.join(PLUGIN_DIR, plugin))
        S.finish()

USER = "prakat"
SITE = "https://bokaeo.go.th"
PAGE = "123456789"
SECRETS = []   # every password and token handed out: none may appear in a file of the test's trees
REST = "/wp-json/wp/v2"


def new_password():
    """An application password (24 characters; WordPress shows it in six groups of four)."""
    raw = secrets.token_hex(12)
    SECRETS.append(raw)
    return raw


def tiny_pdf():
    return b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n" + os.urandom(32)


class Wp:
    """One fake WordPress (and optionally a fake Facebook Page), one prakatd publishing to them."""

    def __init__(self, tag, facebook=False, password_mode=0o600, start=True, extra=""):
        self.password = new_password()
        self.fake = FakeWordPress(user=USER, password=self.password, site=SITE)
        self.url = self.fake.start()
        self.fb = self.line = None
        self.tmp = S.tmpdir(tag)
        self.env = make_env(self.tmp)
        self.password_path = os.path.join(self.tmp, "wordpress.password")
        self.write_password(self.password, password_mode)
        text = ("[prakat]\nspool = %s\nstate = %s\nruntime_dir = %s\ntimezone = Asia/Bangkok\nsettle = 300ms\n"
                "retry_min = 1s\nretry_max = 3s\nplugin_dir = %s\ndefault_category = ข่าวประชาสัมพันธ์\n\n%s\n"
                "[channel website]\nplugin = website\nmode = wordpress\nwordpress_url = %s\n"
                "wordpress_user = %s\nwordpress_password_file = wordpress.password\ntimeout = 2s\n"
                "health_interval = 1s\n%s\n") % (self.env.spool, self.env.state, self.env.runtime, PLUGIN_DIR,
                                                  VILLAGES, self.url, USER, extra)
        if facebook:
            token = "EAAGtest%s" % secrets.token_hex(16)
            SECRETS.append(token)
            self.fb = FakeFacebook(page_id=PAGE, token=token)
            api = self.fb.start()
            write_secret(os.path.join(self.tmp, "facebook.token"), token)
            text += ("[channel facebook]\nplugin = facebook\npage_id = %s\ntoken_file = facebook.token\n"
                     "api_base = %s\ntimeout = 2s\nhealth_interval = 1s\n" % (PAGE, api))
            token = "line%s" % secrets.token_hex(16)
            SECRETS.append(token)
            self.line = FakeLine(token=token)
            api = self.line.start()
            write_secret(os.path.join(self.tmp, "line.token"), token)
            text += ("[channel line]\nplugin = line\ntoken_file = line.token\napi_base = %s\nhealth_interval = 2s\n"
                     % api)
        self.env.write_config(text=text)
        self.d = S.daemon(self.env)
        if start:
            self.d.start()
            self.d.wait_log("WordPress login works")

    def write_password(self, password, mode=0o600):
        write_secret(self.password_path, password, mode)

    def stop(self, name):
        S.stop_daemon(self.d, name)
        self.fake.stop()
        for fake in (self.fb, self.line):
            if fake:
                fake.stop()

    def drop(self, id, title, body="รายละเอียดของประกาศ", extra=""):
        self.env.drop("%s.txt" % id, "รหัส: %s\nหัวข้อ: %s\n%s\n%s\n" % (id, title, extra, body))
        return "%s.txt" % id

    def receipt(self, original, timeout=None):
        _, id, text = self.env.wait_published(original, timeout)
        return text

    def requests(self, method, path):
        return [r for r in self.fake.request_log() if r["method"] == method and r["path"].split("?")[0] == REST + path]


def one_post(w, id):
    posts = w.fake.posts_with_slug(id.lower())
    check(len(posts) == 1, "%d posts for %s, expected 1: %s" % (len(posts), id, [(p["id"], p["slug"]) for p in posts]))
    return posts[0]


def check_done(w, original, id):
    text = w.receipt(original)
    sec = receipt_section(text, "website")
    check(sec.startswith("- website: done"), "website is not done in the receipt:\n%s" % text)
    post = one_post(w, id)
    link = "%s/%s/%s/" % (SITE, post["date"][:10].replace("-", "/"), post["slug"])
    check(("link: %s" % link) in sec, "the receipt does not give WordPress's link %s:\n%s" % (link, sec))
    check(("post id: %d" % post["id"]) in sec, "the receipt does not give the post id:\n%s" % sec)
    check(post["status"] == "publish", "the post is %s" % post["status"])
    return text, post, link


# ======================================================================================================

def main_cases():
    w = Wp("main", facebook=True)

    def publish_with_files():
        png, pdf = tiny_png(), tiny_pdf()
        files = {"photo.png": png, "คำสั่ง.pdf": pdf}
        text = ("รหัส: wp-files\nหัวข้อ: ประกาศรับสมัคร <อสม.> & ผู้ช่วย\nหมวด: ข่าว & กิจกรรม\n"
                "ไฟล์แนบ: photo.png, คำสั่ง.pdf\n\nย่อหน้าแรก <b>ตัวหนา</b>\nบรรทัดที่สอง\n\nย่อหน้าที่สอง\n")
        w.env.drop_bundle("wp-files", dict(files, **{"announcement.txt": text}))
        receipt, post, link = check_done(w, "wp-files", "wp-files")
        with w.fake.lock:
            media = [dict(m) for m in w.fake.media.values()]
            cats = [dict(c) for c in w.fake.categories.values() if c["name"] == "ข่าว & กิจกรรม"]
        check(len(media) == 2, "%d media uploaded, expected 2" % len(media))
        by_type = {m["mime_type"]: m for m in media}
        check(by_type.get("image/png", {}).get("size") == len(png), "the picture was not uploaded whole: %s" % media)
        check(by_type.get("application/pdf", {}).get("size") == len(pdf), "the PDF was not uploaded whole: %s" % media)
        check(post["featured_media"] == by_type["image/png"]["id"], "the featured image is %s" % post["featured_media"])
        check(len(cats) == 1 and post["categories"] == [cats[0]["id"]],
              "the category was not created and set: %s, post %s" % (cats, post["categories"]))
        c = post["content"]
        check(c.startswith("<!-- prakat-id: wp-files -->"), "no marker: %s" % c[:200])
        check('<img src="%s"' % by_type["image/png"]["source_url"] in c, "the picture is not shown:\n%s" % c)
        check('<a href="%s">คำสั่ง.pdf</a>' % by_type["application/pdf"]["source_url"] in c,
              "the PDF is not linked:\n%s" % c)
        check("<p>ย่อหน้าแรก &lt;b&gt;ตัวหนา&lt;/b&gt;<br />\nบรรทัดที่สอง</p>" in c and "<p>ย่อหน้าที่สอง</p>" in c,
              "paragraphs or escaping wrong:\n%s" % c)
        check(post["title"] == "ประกาศรับสมัคร &lt;อสม.&gt; &amp; ผู้ช่วย", "title not escaped: %r" % post["title"])
        # Facebook links to (and shows the picture from) what WordPress gave.
        fsec = receipt_section(receipt, "facebook")
        check(fsec.startswith("- facebook: done"), "facebook not done:\n%s" % receipt)
        fb_posts = w.fb.published_posts()
        check(len(fb_posts) == 1 and link in fb_posts[0]["message"],
              "the Facebook post does not link to the WordPress post %s: %s" % (link, fb_posts))
        with w.fb.lock:
            photos = [dict(p) for p in w.fb.photos.values()]
        check(photos and photos[0]["url"] == by_type["image/png"]["source_url"],
              "Facebook did not get WordPress's picture URL: %s" % photos)
        check(receipt_section(receipt, "line").startswith("- line: done"), "line not done:\n%s" % receipt)
        with w.line.lock:
            sent = json.dumps([m["messages"] for m in w.line.sent], ensure_ascii=False)
        check(link in sent and by_type["image/png"]["source_url"] in sent,
              "LINE does not link to the WordPress post %s and its picture: %s" % (link, sent[:1500]))
    S.case("publish with a picture and a PDF: one post, media attached, category, escaped, link used by "
           "the receipt, Facebook and LINE", publish_with_files)

    def existing_category():
        w.drop("wp-cat-1", "หมวดเดิม 1", extra="หมวด: ข่าวจัดซื้อจัดจ้าง\nช่องทาง: website")
        _, p1, _ = check_done(w, "wp-cat-1.txt", "wp-cat-1")
        w.drop("wp-cat-2", "หมวดเดิม 2", extra="หมวด: ข่าวจัดซื้อจัดจ้าง\nช่องทาง: website")
        _, p2, _ = check_done(w, "wp-cat-2.txt", "wp-cat-2")
        check(p1["categories"] == p2["categories"], "%s vs %s" % (p1["categories"], p2["categories"]))
        check(len(w.requests("POST", "/categories")) <= 2, "categories created again and again")
        with w.fake.lock:
            n = sum(1 for c in w.fake.categories.values() if c["name"] == "ข่าวจัดซื้อจัดจ้าง")
        check(n == 1, "%d categories of that name" % n)
    S.case("a category is created once and reused", existing_category)

    def fault(kind, path="/posts", **params):
        def case():
            id = "wp-f-%s%s" % (kind.replace("_", "-"), path.replace("/", "-"))
            w.fake.add_fault("POST %s%s" % (REST, path), kind, **params)
            if path == "/media":
                text = "รหัส: %s\nหัวข้อ: ทดสอบ %s\nช่องทาง: website\nไฟล์แนบ: a.png\n\nภาพ\n" % (id, kind)
                w.env.drop_bundle(id, {"a.png": tiny_png(rgb=(9, 9, 9)), "announcement.txt": text})
                name = id
            else:
                name = w.drop(id, "ประกาศทดสอบ %s" % kind, extra="ช่องทาง: website")
            _, post, _ = check_done(w, name, id)
            if path == "/media":
                check(post["featured_media"] in w.fake.media, "the picture is not attached: %s" % post)
            check(not any(f["remaining"] for f in w.fake.snapshot()["faults"]), "the fault never fired")
            w.fake.clear_faults()
        S.case("fault %s on POST %s: one post, receipt done" % (kind, path), case)

    fault("500_after_create")
    fault("drop_after_accept")
    fault("timeout_after_create", seconds=None)
    fault("timeout", seconds=None)
    fault("html_502")
    fault("html_502", path="/media")

    def validation():
        w.fake.add_fault("POST %s/posts" % REST, "status", status=400,
                         body={"code": "rest_invalid_param", "message": "Invalid parameter(s): content",
                               "data": {"status": 400, "params": {"content": "bad"}}})
        name = w.drop("wp-invalid", "ประกาศที่ WordPress ไม่รับ", extra="ช่องทาง: website")
        text = w.receipt(name)
        sec = receipt_section(text, "website")
        check(sec.startswith("- website: failed") and "rest_invalid_param" in sec and "Invalid parameter(s)" in sec,
              "not failed with WordPress's message:\n%s" % sec)
        check("(2 attempts)" not in sec, "a 400 was retried:\n%s" % sec)
        check(not w.fake.posts_with_slug("wp-invalid"), "a post was made")
        w.fake.clear_faults()
    S.case("a 400 from WordPress fails the job with its message", validation)

    def foreign_slug():
        with w.fake.lock:
            pid = w.fake._new_id()
            w.fake.posts[pid] = {"id": pid, "date": "2026-01-05T10:00:00", "modified": "2026-01-05T10:00:00",
                                 "slug": "wp-foreign", "status": "publish", "title": "เรื่องที่คนเขียนเอง",
                                 "content": "<p>hand-written</p>", "featured_media": 0, "categories": [1]}
        name = w.drop("wp-foreign", "ประกาศที่ชนกับเรื่องเดิม", extra="ช่องทาง: website")
        sec = receipt_section(w.receipt(name), "website")
        check(sec.startswith("- website: failed") and "prakat did not make already has the address" in sec,
              "not failed with the reason:\n%s" % sec)
        check(len(w.fake.posts_with_slug("wp-foreign")) == 1 and w.fake.post(pid)["title"] == "เรื่องที่คนเขียนเอง",
              "the hand-written post was changed or a second one made")
    S.case("a post prakat did not make with the id's slug: failed with the reason, that post untouched", foreign_slug)

    def replaces_and_cancel():
        w.drop("wp-old", "ประกาศรับสมัครงาน", "รับสมัคร 2 ตำแหน่ง", extra="ช่องทาง: website")
        _, old, old_link = check_done(w, "wp-old.txt", "wp-old")
        w.drop("wp-new", "ประกาศรับสมัครงาน (แก้ไข)", "รับสมัคร 3 ตำแหน่ง", extra="แทนที่: wp-old\nช่องทาง: website")
        text = w.receipt("wp-new.txt")
        sec = receipt_section(text, "website")
        check(sec.startswith("- website: done") and ("link: %s" % old_link) in sec,
              "the update does not keep the post's URL:\n%s" % sec)
        check(not w.fake.posts_with_slug("wp-new"), "a second post was made for the update")
        post = w.fake.post(old["id"])
        check(post["title"] == "ประกาศรับสมัครงาน (แก้ไข)" and "รับสมัคร 3 ตำแหน่ง" in post["content"],
              "the post was not updated: %s" % post)
        check(w.requests("POST", "/posts/%d" % old["id"]), "no POST /posts/ID")

        w.env.drop("wp-cancel.txt", "ยกเลิก: wp-new\n\nยกเลิกการรับสมัครเพราะงบประมาณไม่พอ\n")
        text = w.receipt("wp-cancel.txt")
        post = w.fake.post(old["id"])
        check(post and post["status"] == "publish", "the post is gone instead of showing a notice: %s" % post)
        check(post["title"].startswith("ยกเลิกแล้ว") and "ประกาศนี้ถูกยกเลิกแล้ว" in post["content"] and
              "งบประมาณไม่พอ" in post["content"] and "withdrawn" in post["content"],
              "no withdrawal notice: %s" % post)
        check("รับสมัคร 3 ตำแหน่ง" not in post["content"], "the withdrawn text is still shown")
    S.case("Replaces updates the earlier post in place; Cancel leaves a notice at its URL", replaces_and_cancel)

    def cancel_deletes_media():
        png = tiny_png(rgb=(1, 2, 3))
        text = "รหัส: wp-media-gone\nหัวข้อ: ภาพกิจกรรม\nช่องทาง: website\nไฟล์แนบ: a.png\n\nภาพ\n"
        w.env.drop_bundle("wp-media-gone", {"a.png": png, "announcement.txt": text})
        _, post, _ = check_done(w, "wp-media-gone", "wp-media-gone")
        mid = post["featured_media"]
        check(mid in w.fake.media, "no media")
        rc, out, err = w.env.cli("cancel", "wp-media-gone", "--reason", "ภาพผิด")
        check(rc == 0, "prakat cancel: %d %s %s" % (rc, out, err))
        wait_for(lambda: mid not in w.fake.media and w.fake.post(post["id"])["featured_media"] == 0,
                 what="the picture deleted and the featured image cleared")
        check("ภาพผิด" in w.fake.post(post["id"])["content"], "the reason is not in the notice")
    S.case("Cancel (prakat cancel) deletes the post's files", cancel_deletes_media)
    return w


def auth_cases():
    w = Wp("auth")

    def revoked_then_fixed():
        w.fake.revoke_password()
        name = w.drop("wp-auth", "ประกาศระหว่างรหัสผ่านใช้ไม่ได้")

        def note():
            try:
                j = w.env.show_json("wp-auth")
            except Exception:
                return None
            return next((job for job in j.get("jobs", []) if job.get("channel") == "website" and
                         "WordPress refused the login" in (job.get("message") or "")), None)
        job = wait_for(note, what="the job's note about the refused login")
        check(job.get("state") == "deferred", "the job is %s, not deferred (held)" % job.get("state"))
        check(w.password_path in job["message"], "the note does not say where the password goes: %s" % job["message"])
        rc, out, err = w.env.cli("status", "--json")
        ch = next(c for c in json.loads(out)["channels"] if c["name"] == "website")
        check(not ch["healthy"] and "WordPress refused the login of user prakat" in ch["health"] and
              "Application Passwords" in ch["health"], "prakat status does not say so: %s" % ch)
        rc, out, err = w.env.cli("status")
        check("WordPress refused the login" in out, "plain prakat status does not say so:\n%s" % out)
        time.sleep(2.5)
        check(len(w.requests("POST", "/posts")) == 0, "a post was sent with a refused password")
        new = new_password()
        w.fake.configure(password=new)
        # Pasted as WordPress shows it, in groups of four with blanks between: the blanks are ignored.
        w.write_password(" ".join(new[i:i + 4] for i in range(0, len(new), 4)))
        check_done(w, name, "wp-auth")
        wait_for(lambda: next(c for c in json.loads(w.env.cli("status", "--json")[1])["channels"]
                              if c["name"] == "website")["healthy"], what="the channel healthy again")
    S.case("revoked password: unhealthy, held with a plain note and status, posted once when replaced",
           revoked_then_fixed)
    return w


def crash_cases():
    out = []
    for kind in ("timeout_after_create", "timeout"):
        def run(kind=kind):
            w = Wp("crash-" + kind.replace("_", "-"))
            w.fake.add_fault("POST %s/posts" % REST, kind, seconds=None)
            id = "wp-crash-" + kind.replace("_", "-")
            name = w.drop(id, "ประกาศทดสอบ kill -9", extra="")
            wait_for(lambda: any(r["fault"] == kind for r in w.fake.request_log()), what="the post in flight")
            time.sleep(0.2)
            w.d.kill9()
            w.fake.clear_faults()
            w.d.start()
            check_done(w, name, id)
            with w.fake.lock:
                n = sum(1 for p in w.fake.posts.values() if p["slug"].startswith(id))
            check(n == 1, "%d posts made" % n)
            return w
        w = S.case("kill -9 with the post in flight (%s): one post after the restart" % kind, run)
        if isinstance(w, Wp):
            out.append(w)
    return out


def config_cases():
    def readable_password():
        w = Wp("mode", password_mode=0o644, start=False)
        w.d.start(wait_ready=False)
        wait_for(lambda: not w.d.running(), what="prakatd to refuse the config")
        w.d._reap(TIMEOUT)
        log = w.d.log()
        check("chmod 600" in log and "group or others" in log, "the reason/fix is missing:\n%s" % log[-800:])
        check(w.password not in log, "the password is in the log")
        w.d.problems = []
        w.fake.stop()
    S.case("a password file readable by others is refused at start", readable_password)

    def static_keys():
        w = Wp("statickey", start=False, extra="output = /tmp/x\n")
        w.d.start(wait_ready=False)
        wait_for(lambda: not w.d.running(), what="prakatd to refuse the config")
        w.d._reap(TIMEOUT)
        check("'output' is not used with mode = wordpress" in w.d.log(), "not refused:\n%s" % w.d.log()[-600:])
        w.d.problems = []
        w.fake.stop()
    S.case("a static-site key in a wordpress section is refused", static_keys)


def check_no_secret(ws):
    def case():
        needles = [s.encode() for s in SECRETS] + [base64.b64encode(("%s:%s" % (USER, s)).encode()) for s in SECRETS]
        leaks = files_holding(needles, [w.env.log for w in ws], [r for w in ws for r in (w.env.state, w.env.spool)])
        check(not leaks, "a password or token appears in: %s" % ", ".join(leaks))
        check(len(ws) >= 3, "too few trees were checked")
    S.case("no password in any log, state file or receipt", case)


def main():
    ws = []
    for group in (main_cases, auth_cases):
        try:
            ws.append(group())
        except Exception as e:
            S.result("%s: setup" % group.__name__, False, e)
    ws += crash_cases()
    config_cases()
    for w in ws:
        if w.d in S.daemons:
            w.stop("%s: clean stop" % os.path.basename(w.tmp).split("-")[2])
    check_no_secret(ws)
    S.finish()


main()
