#!/usr/bin/python3
"""The Facebook channel against the fake Graph API (tests/fakes/fake_platforms.py) on 127.0.0.1.

Posts (text + link, one photo by URL, several photos, photos uploaded as bytes), Replaces edits
the post, Cancel deletes it; and for each fault -- 500 after the post was created, the connection
dropped after the post was accepted, timeouts before and after the post was made, an HTML 502,
an expired token (then a new one), throttling with the usage headers, prakatd killed with -9
while a post is in flight -- the Page ends with exactly one post per announcement and the
receipt says what happened.  The token must never show up in the log, the state or the spool.

The throttling case waits the minute the fake's usage header asks for, so it is started first
and checked last, while the other cases run.
"""

import glob
import json
import os
import secrets
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "fakes"))
from harness import (PLUGIN_DIR, TIMEOUT, Suite, check, make_env, read_text,  # noqa: E402
                     require_build, tiny_png, wait_for)
from fake_platforms import FakeFacebook  # noqa: E402
from channel_checks import files_holding, receipt_section, write_secret  # noqa: E402

S = Suite("facebook")
require_build(S)
if not os.path.exists(os.path.join(PLUGIN_DIR, "facebook.so")):
    S.result("facebook: plugin built", False, "%s is missing" % os.path.join(PLUGIN_DIR, "facebook.so"))
    S.finish()

PAGE = "123456789"
BASE_URL = "https://bokaeo.go.th/news"
# Distinct, greppable tokens: any of them in a log, state or spool file is a leak.
TOKENS = []


def new_token():
    t = "EAAGtest%s" % secrets.token_hex(20)
    TOKENS.append(t)
    return t


def tiny_jpeg():
    """Not a decodable JPEG, but it starts with the JPEG magic, which is all the fake checks."""
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + os.urandom(64) + b"\xff\xd9"


class Fb:
    """One fake Page, one prakatd with [channel facebook] pointing at it."""

    def __init__(self, tag, fb_extra="", prakat_extra="", base_url=BASE_URL, token_mode=0o600, start=True,
                 fake_kw=None):
        self.token = new_token()
        self.fake = FakeFacebook(page_id=PAGE, token=self.token, **(fake_kw or {}))
        self.api_base = self.fake.start()
        self.tmp = S.tmpdir(tag)
        self.token_path = os.path.join(self.tmp, "facebook.token")
        self.write_token(self.token, token_mode)
        section = ("[channel facebook]\nplugin = facebook\npage_id = %s\ntoken_file = facebook.token\n"
                   "api_base = %s\ntimeout = 2s\nhealth_interval = 1s\n%s" % (PAGE, self.api_base, fb_extra))
        self.env = make_env(self.tmp, extra_config=section, extra_prakat=prakat_extra, base_url=base_url)
        self.d = S.daemon(self.env)
        if start:
            self.d.start()

    def write_token(self, token, mode=0o600):
        write_secret(self.token_path, token, mode)

    def stop(self, name):
        S.stop_daemon(self.d, name)
        self.fake.stop()

    # ---- what is on the Page ----

    def marker(self, id):
        return "%s/a/%s.html" % (self.env.base_url, id)

    def posts_of(self, id):
        """Published, not deleted posts that carry the announcement's marker."""
        return [p for p in self.fake.published_posts() if self.marker(id) in p["message"]]

    def all_posts_of(self, id):
        """Also deleted ones."""
        with self.fake.lock:
            return [dict(p) for p in self.fake.posts.values() if self.marker(id) in p["message"]]

    def api_requests(self, method=None, edge=None):
        out = []
        for r in self.fake.request_log():
            if method and r["method"] != method:
                continue
            if edge and not r["path"].split("?")[0].endswith(edge):
                continue
            out.append(r)
        return out

    def wait_healthy(self):
        self.d.wait_log("Facebook token works")

    # ---- announcements ----

    def drop(self, id, title, body="รายละเอียดของประกาศ", extra=""):
        name = "%s.txt" % id
        self.env.drop(name, "รหัส: %s\nหัวข้อ: %s\n%s\n%s\n" % (id, title, extra, body))
        return name

    def drop_bundle(self, id, title, files, body="ภาพกิจกรรม"):
        text = "รหัส: %s\nหัวข้อ: %s\nไฟล์แนบ: %s\n\n%s\n" % (id, title, ", ".join(sorted(files)), body)
        self.env.drop_bundle(id, dict(files, **{"announcement.txt": text}))
        return id

    def receipt(self, original, timeout=None):
        _, id, text = self.env.wait_published(original, timeout)
        return id, text


def fb_section(text):
    """The English receipt's lines about the facebook channel."""
    return receipt_section(text, "facebook")


def thai_fb_section(text):
    return receipt_section(text, "facebook", thai=True)


def check_done(f, original, id, expect_posts=1):
    _, text = f.receipt(original)
    sec = fb_section(text)
    check(sec.startswith("- facebook: done"), "facebook is not done in the receipt:\n%s" % text)
    posts = f.posts_of(id)
    check(len(posts) == expect_posts, "%d posts of %s on the Page, expected %d: %s" %
          (len(posts), id, expect_posts, [p["id"] for p in posts]))
    if expect_posts:
        check(("post id: %s" % posts[0]["id"]) in sec, "the receipt does not give the post id %s:\n%s" %
              (posts[0]["id"], sec))
        check("link: https://www.facebook.com/" in sec, "the receipt gives no permalink:\n%s" % sec)
    return text, posts


def add_fault(f, kind, edge="feed", method="POST", **params):
    f.fake.add_fault("%s /v24.0/%s/%s" % (method, PAGE, edge), kind, **params)


# ======================================================================================================
# The cases
# ======================================================================================================

def throttle_start():
    """Throttling: the first post is refused with 80001 and a usage header saying 1 minute."""
    f = Fb("throttle", fb_extra="max_in_flight = 1\n")
    f.wait_healthy()
    add_fault(f, "throttle", minutes=1)
    f.drop("fb-thr-1", "ประกาศทดสอบการจำกัดการเรียก 1")
    f.drop("fb-thr-2", "ประกาศทดสอบการจำกัดการเรียก 2")
    wait_for(lambda: any(r["fault"] == "throttle" for r in f.fake.request_log()), what="the throttled post")
    return f


def throttle_finish(f):
    def case():
        r1 = f.receipt("fb-thr-1.txt", timeout=TIMEOUT + 90)
        r2 = f.receipt("fb-thr-2.txt", timeout=TIMEOUT + 30)
        for (id, text) in (r1, r2):
            check(fb_section(text).startswith("- facebook: done"), "not done:\n%s" % text)
            check(len(f.posts_of(id)) == 1, "%s: %d posts" % (id, len(f.posts_of(id))))
        log = f.fake.request_log()
        t0 = next(r["time"] for r in log if r["fault"] == "throttle")
        after = [r for r in log if r["time"] > t0]
        check(after, "no request after the throttled one")
        gap = after[0]["time"] - t0
        # The header said one minute: nothing at all may reach the Page before (small clock slack).
        check(gap >= 55, "the next request came %.1fs after the throttling answer, not after ~60s: %s %s" %
              (gap, after[0]["method"], after[0]["path"]))
        check("throttling" in f.d.log(), "the log does not say that Facebook throttles")
    S.case("throttle: waits as the usage header says, no call meanwhile, then both posted once", case)
    f.stop("throttle: clean stop")


def main_cases():
    f = Fb("main")
    f.wait_healthy()

    def plain():
        name = f.drop("fb-plain", "ประกาศ งดจ่ายน้ำประปา หมู่ 3", "การประปาจะงดจ่ายน้ำในวันที่ 26 พฤศจิกายน")
        text, posts = check_done(f, name, "fb-plain")
        p = posts[0]
        check(p["message"].startswith("ประกาศ งดจ่ายน้ำประปา หมู่ 3\n\nการประปาจะงดจ่ายน้ำ"),
              "the post text is not title, blank line, body: %r" % p["message"])
        check(p["link"] == f.marker("fb-plain"), "the post's link is %r, not the article page" % p["link"])
        req = f.api_requests("POST", "/feed")[-1]
        check("access_token" not in req["path"], "the token is in the URL")
        check(req["headers"].get("Authorization", "").startswith("Bearer "), "no Authorization: Bearer header")
    S.case("plain post: text, link to the article page, receipt with post id and permalink", plain)

    def one_photo():
        name = f.drop_bundle("fb-photo1", "ภาพกิจกรรมวันเด็ก", {"kids.png": tiny_png()})
        _, posts = check_done(f, name, "fb-photo1")
        with f.fake.lock:
            photos = [dict(p) for p in f.fake.photos.values() if p["post_id"] == posts[0]["id"]]
        check(len(photos) == 1 and photos[0]["published"], "no published photo behind the post: %s" % photos)
        check(photos[0]["url"] and photos[0]["url"].startswith(BASE_URL + "/"),
              "the photo was not given by its https URL on the website: %s" % photos[0]["url"])
        check(photos[0]["caption"].startswith("ภาพกิจกรรมวันเด็ก"), "caption: %r" % photos[0]["caption"])
    S.case("one photo: POST /photos with the website's URL and the text as caption", one_photo)

    def several_photos():
        files = {"a.jpg": tiny_jpeg(), "b.png": tiny_png(), "c.jpg": tiny_jpeg(), "notes.pdf": b"%PDF-1.4\n"}
        name = f.drop_bundle("fb-photos3", "ภาพการประชุมประชาคม", files)
        _, posts = check_done(f, name, "fb-photos3")
        media = posts[0]["attached_media"]
        check(len(media) == 3, "the post has %d photos attached, expected 3" % len(media))
        with f.fake.lock:
            check(all(not f.fake.photos[m]["published"] for m in media), "attached photos must be unpublished")
    S.case("several photos: unpublished uploads attached to one feed post", several_photos)

    def replaces():
        name = f.drop("fb-repl-old", "ประกาศรับสมัครงาน", "รับสมัคร 2 ตำแหน่ง")
        _, posts = check_done(f, name, "fb-repl-old")
        old_id = posts[0]["id"]
        name2 = f.drop("fb-repl-new", "ประกาศรับสมัครงาน (แก้ไข)", "รับสมัคร 3 ตำแหน่ง", extra="แทนที่: fb-repl-old")
        _, text = f.receipt(name2)
        sec = fb_section(text)
        check(sec.startswith("- facebook: done") and ("post id: %s" % old_id) in sec,
              "the update did not end done with the old post's id %s:\n%s" % (old_id, sec))
        with f.fake.lock:
            post = dict(f.fake.posts[old_id])
        check("รับสมัคร 3 ตำแหน่ง" in post["message"] and "(แก้ไข)" in post["message"],
              "the old post was not edited: %r" % post["message"])
        check(len(f.posts_of("fb-repl-old")) == 0 and len(f.posts_of("fb-repl-new")) == 1 and
              len(f.fake.published_posts()) == len(set(p["id"] for p in f.fake.published_posts())),
              "an update must edit, not add a post")
        check(any(r["path"].split("?")[0].endswith("/" + old_id) and r["method"] == "POST"
                  for r in f.fake.request_log()), "no POST /{post-id}")
        return old_id
    old_id = S.case("Replaces edits the earlier post", replaces)

    def cancel():
        name = f.drop("fb-cancel-me", "ประกาศที่จะยกเลิก", "ข้อความ")
        _, posts = check_done(f, name, "fb-cancel-me")
        pid = posts[0]["id"]
        f.env.drop("fb-cancel.txt", "ยกเลิก: fb-cancel-me\n\nประกาศผิดพลาด\n")
        _, text = f.receipt("fb-cancel.txt")
        check(fb_section(text).startswith("- facebook: done"), "the withdrawal is not done:\n%s" % text)
        check(pid in f.fake.deleted_posts, "the post %s was not deleted" % pid)
        check(not f.posts_of("fb-cancel-me"), "the post is still on the Page")
        if old_id:
            # Cancelling the update deletes the one post both announcements share.
            f.env.drop("fb-cancel2.txt", "ยกเลิก: fb-repl-new\n\nยกเลิกการรับสมัคร\n")
            _, text = f.receipt("fb-cancel2.txt")
            check(fb_section(text).startswith("- facebook: done") and old_id in f.fake.deleted_posts,
                  "cancelling the update did not delete %s:\n%s" % (old_id, text))
    S.case("Cancel deletes the post (and an update's post)", cancel)

    def cancel_already_deleted():
        name = f.drop("fb-gone", "ประกาศที่ถูกลบไปแล้ว", "ข้อความ")
        _, posts = check_done(f, name, "fb-gone")
        with f.fake.lock:
            f.fake.posts[posts[0]["id"]]["deleted"] = True  # someone deleted it by hand on the Page
        f.env.drop("fb-gone-cancel.txt", "ยกเลิก: fb-gone\n")
        _, text = f.receipt("fb-gone-cancel.txt")
        check(fb_section(text).startswith("- facebook: done") and "already deleted" in fb_section(text),
              "a post already gone must count as deleted:\n%s" % fb_section(text))
    S.case("Cancel of a post already deleted on the Page is done", cancel_already_deleted)

    # ---- faults on the create request: one post each, never two ----

    def fault_case(id, kind, expect_note=None, **params):
        def fn():
            add_fault(f, kind, **params)
            name = f.drop(id, "ประกาศทดสอบ %s" % kind, "เนื้อหาสำหรับกรณี %s" % kind)
            text, _ = check_done(f, name, id)
            fired = [r for r in f.fake.request_log() if r["fault"] == kind]
            check(fired, "the fault %s never fired" % kind)
            if expect_note:
                check(expect_note in fb_section(text), "the receipt does not say %r:\n%s" %
                      (expect_note, fb_section(text)))
            # Nothing was posted twice, ever (not even deleted again).
            check(len(f.all_posts_of(id)) == 1, "%d posts were made for %s" % (len(f.all_posts_of(id)), id))
        return fn

    found = "found on the Page after an unclear answer"
    S.case("500 after create (code 2): reconciled, one post", fault_case("fb-f500", "500_after_create", found))
    S.case("500 after create (code 1): reconciled, one post",
           fault_case("fb-f500c1", "500_after_create", found, code=1))
    S.case("accepted, then the connection dropped: reconciled, one post",
           fault_case("fb-fdrop", "drop_after_accept", found))
    def drop_on_reused_connection():
        # libcurl sends a request again by itself when the reused connection it went out on dies before
        # any answer; for a post that is a second post.  Posts share keep-alive connections, so the
        # drop must come on one that carried an earlier call, and the post must not be repeated.
        add_fault(f, "drop_after_accept")
        name = f.drop("fb-freuse", "ประกาศทดสอบการเชื่อมต่อที่ใช้ซ้ำ", "เนื้อหาสำหรับการเชื่อมต่อซ้ำ")
        text, _ = check_done(f, name, "fb-freuse")
        log = f.fake.request_log()
        fired = [r for r in log if r["fault"] == "drop_after_accept" and "fb-freuse" in r["body"]]
        check(fired, "the fault never fired")
        conn = fired[-1]["connection"]
        earlier = [r for r in log if r["connection"] == conn and r["seq"] < fired[-1]["seq"]]
        check(earlier, "the dropped post went out on a new connection; the case needs a reused one")
        feed_posts = [r for r in log if r["method"] == "POST" and r["path"].split("?")[0].endswith("/feed")
                      and "fb-freuse" in r["body"]]
        check(len(f.all_posts_of("fb-freuse")) == 1, "%d posts were made" % len(f.all_posts_of("fb-freuse")))
        check(len(feed_posts) == 1, "the post was sent %d times; the transport repeated it" % len(feed_posts))
        check(found in fb_section(text), "the receipt does not say it was reconciled:\n%s" % fb_section(text))
        stats = f.fake.stats()
        check(stats["api_connections"] < len([r for r in log if r["path"].startswith("/v")]),
              "no connection carried more than one call: %r" % stats)
    S.case("accepted on a reused connection, then dropped: not sent again by the transport, one post",
           drop_on_reused_connection)
    S.case("timeout after the post was made: reconciled, one post",
           fault_case("fb-ftimeout-after", "timeout_after_create", found, seconds=5))
    S.case("timeout before anything was made: checked, posted once",
           fault_case("fb-ftimeout", "timeout", None, seconds=5))
    S.case("HTML 502 from a proxy: checked, posted once", fault_case("fb-f502", "html_502"))

    def photo_fault():
        add_fault(f, "500_after_create", edge="photos")
        name = f.drop_bundle("fb-fphoto", "ภาพทดสอบ 500", {"x.png": tiny_png()})
        check_done(f, name, "fb-fphoto")
        check(len(f.all_posts_of("fb-fphoto")) == 1, "two photo posts were made")
    S.case("500 after a photo post was made: reconciled, one post", photo_fault)

    def several_fault():
        add_fault(f, "drop_after_accept", edge="feed")
        add_fault(f, "500_after_create", edge="photos")   # an unpublished upload: orphan at worst
        name = f.drop_bundle("fb-fphotos", "ภาพทดสอบหลายภาพ", {"a.png": tiny_png(), "b.jpg": tiny_jpeg()})
        _, posts = check_done(f, name, "fb-fphotos")
        check(len(f.all_posts_of("fb-fphotos")) == 1, "two posts were made")
        check(len(posts[0]["attached_media"]) == 2, "attached: %s" % posts[0]["attached_media"])
    S.case("several photos with faults on an upload and the post: one post, both photos", several_fault)

    def duplicate():
        # Facebook refuses the text as the same as the Page's latest post, which is not ours.
        add_fault(f, "status", status=400, body={"error": {"message": "(#506) Duplicate status message",
                                                           "type": "OAuthException", "code": 506}})
        name = f.drop("fb-dup", "ข้อความซ้ำ", "ข้อความเดียวกัน")
        _, text = f.receipt(name)
        sec = fb_section(text)
        check(sec.startswith("- facebook: failed") and "duplicate" in sec, "506 must fail as duplicate:\n%s" % sec)
        check("ซ้ำ" in thai_fb_section(text), "no Thai note:\n%s" % thai_fb_section(text))
    S.case("506 is reported as a duplicate (and not retried)", duplicate)

    def permanent():
        add_fault(f, "status", status=403, body={"error": {
            "message": "(#200) The user hasn't authorized the application to perform this action",
            "type": "OAuthException", "code": 200}})
        name = f.drop("fb-perm", "ประกาศสิทธิ์ไม่พอ", "ข้อความ")
        _, text = f.receipt(name)
        sec = fb_section(text)
        check(sec.startswith("- facebook: failed") and "(#200)" in sec and "(1 attempts)" not in sec,
              "a permission error must fail at once with Facebook's message:\n%s" % sec)
        check(not f.all_posts_of("fb-perm"), "something was posted")
    S.case("permission error (200): failed at once with the platform's message", permanent)

    return f


def upload_cases():
    """Attachments without an https URL (the website is plain http here): the bytes are uploaded."""
    f = Fb("upload", base_url="http://bokaeo.go.th/news")
    f.wait_healthy()
    png = tiny_png(5, 5)

    def one():
        name = f.drop_bundle("fb-up1", "ภาพอัปโหลด", {"p.png": png})
        _, posts = check_done(f, name, "fb-up1")
        with f.fake.lock:
            photos = [dict(p) for p in f.fake.photos.values() if p["post_id"] == posts[0]["id"]]
        check(len(photos) == 1 and photos[0]["url"] is None and photos[0]["size"] == len(png) and
              photos[0]["content_type"] == "image/png" and photos[0]["filename"] == "p.png",
              "the photo was not uploaded as multipart source: %s" % photos)
        req = [r for r in f.api_requests("POST", "/photos")][-1]
        check(req["headers"].get("Content-Type", "").startswith("multipart/form-data; boundary="),
              "Content-Type: %s" % req["headers"].get("Content-Type"))
    S.case("one photo uploaded as multipart source when there is no https URL", one)

    def two():
        name = f.drop_bundle("fb-up2", "ภาพอัปโหลดสองภาพ", {"a.png": png, "b.jpg": tiny_jpeg()})
        _, posts = check_done(f, name, "fb-up2")
        with f.fake.lock:
            sizes = sorted(f.fake.photos[m]["size"] for m in posts[0]["attached_media"])
        check(len(sizes) == 2 and len(png) in sizes, "uploaded: %s" % sizes)
    S.case("several photos uploaded as bytes", two)
    return f


def token_cases():
    f = Fb("token")
    f.wait_healthy()

    def expired_then_fixed():
        f.fake.expire_token()
        name = f.drop("fb-tok", "ประกาศระหว่างโทเค็นหมดอายุ", "ข้อความ")

        def note():
            try:
                j = f.env.show_json("fb-tok")
            except Exception:
                return None
            for job in j.get("jobs", []):
                if job.get("channel") == "facebook" and "token has expired" in (job.get("message") or ""):
                    return job
            return None
        job = wait_for(note, what="the job's note about the expired token")
        check(job.get("state") == "deferred", "the job is %s, not deferred (held for a new token)" % job.get("state"))
        check(f.token_path in job["message"], "the note does not say where the token goes: %s" % job["message"])
        rc, out, err = f.env.cli("status", "--json")
        check(rc == 0, "prakat status exited %d: %s" % (rc, err))
        st = json.loads(out)
        ch = next(c for c in st["channels"] if c["name"] == "facebook")
        check(not ch["healthy"] and "token has expired" in ch["health"],
              "prakat status does not say the token expired: %s" % ch)
        # While the token is refused, no post is attempted again and again: only the cheap check.
        time.sleep(2.5)
        posts_tried = [r for r in f.api_requests("POST", "/feed")]
        check(len(posts_tried) <= 1, "the post was sent %d times with a refused token" % len(posts_tried))
        # A person puts a new token into the file; the next check takes it.
        new = new_token()
        f.fake.configure(token=new)
        f.write_token(new)
        text, _ = check_done(f, name, "fb-tok")
        def healthy():
            st = json.loads(f.env.cli("status", "--json")[1])
            c = next(c for c in st["channels"] if c["name"] == "facebook")
            return c["healthy"] and c["health"].startswith("ok")
        wait_for(healthy, what="prakat status to show the channel healthy again")
    S.case("expired token: held with a plain note and status, posted once the token is replaced", expired_then_fixed)
    return f


def token_give_up():
    """Never fixed: the receipt says, in both languages, what to do."""
    f = Fb("tokengiveup", prakat_extra="give_up_after = 3s\n")
    f.wait_healthy()
    f.fake.expire_token()

    def case():
        name = f.drop("fb-tok-gone", "ประกาศที่โทเค็นใช้ไม่ได้", "ข้อความ")
        _, text = f.receipt(name)
        sec, th = fb_section(text), thai_fb_section(text)
        check(sec.startswith("- facebook: failed") and "token has expired or was revoked" in sec and
              f.token_path in sec, "the receipt does not say plainly what is wrong:\n%s" % sec)
        check("โทเค็น Facebook หมดอายุ" in th, "no Thai note about the token:\n%s" % th)
        check(not f.fake.published_posts(), "something was posted")
    S.case("expired token never fixed: the receipt says so in English and Thai", case)

    def retry_after_fix():
        # The token is replaced after the job gave up: prakat retry reopens the finished announcement.
        f.fake.configure(token_expired=False)
        rc, out, err = f.env.cli("retry", "fb-tok-gone", "--channel", "facebook", "--json")
        check(rc == 0 and json.loads(out)["jobs"] == 1, "retry: %d %r %r" % (rc, out, err))
        wait_for(lambda: len(f.fake.published_posts()) == 1, what="the post after the retry")
        wait_for(lambda: "- facebook: done" in fb_section(f.receipt("fb-tok-gone.txt")[1]),
                 what="the receipt rewritten with facebook done")
        check(f.env.show_json("fb-tok-gone")["status"] == "finished", "not finished after the retry")
    S.case("prakat retry of a finished announcement whose facebook job failed: posted once, receipt rewritten",
           retry_after_fix)
    return f


def crash_cases():
    """kill -9 while a post is in flight; the restart reads the Page first: exactly one post."""
    def run(tag, kind):
        f = Fb("crash-" + tag)
        f.wait_healthy()
        add_fault(f, kind, seconds=None)   # the answer never comes
        id = "fb-crash-" + tag
        name = f.drop(id, "ประกาศทดสอบ kill -9 " + tag, "ข้อความ")
        wait_for(lambda: any(r["fault"] == kind for r in f.fake.request_log()), what="the post in flight")
        time.sleep(0.2)
        f.d.kill9()
        f.fake.clear_faults()
        f.d.start()
        check_done(f, name, id)
        check(len(f.all_posts_of(id)) == 1, "%d posts made" % len(f.all_posts_of(id)))
        if kind == "timeout_after_create":
            check("An earlier attempt may have posted" in f.d.log(), "the restart did not reconcile first")
        return f
    fs = []
    for tag, kind in (("made", "timeout_after_create"), ("notmade", "timeout")):
        fs.append(S.case("kill -9 with the post in flight (%s): one post after the restart" % kind, run, tag, kind))
    return [x for x in fs if isinstance(x, Fb)]


def config_cases():
    def world_readable():
        f = Fb("mode", token_mode=0o644, start=False)
        f.d.start(wait_ready=False)
        wait_for(lambda: not f.d.running(), what="prakatd to refuse the config")
        f.d._reap(TIMEOUT)
        log = f.d.log()
        line = next(i + 1 for i, l in enumerate(read_text(f.env.conf).splitlines()) if l.startswith("token_file"))
        check(("%s:%d:" % (f.env.conf, line)) in log, "no file:line (%s:%d) in:\n%s" % (f.env.conf, line, log[-800:]))
        check("chmod 600" in log and "group or others" in log, "the reason/fix is missing:\n%s" % log[-800:])
        f.d.problems = []  # exiting non-zero was the point
        f.fake.stop()
    S.case("a token file readable by others is refused at start with file:line", world_readable)

    def unknown_key():
        f = Fb("unknown", fb_extra="colour = blue\n", start=False)
        f.d.start(wait_ready=False)
        wait_for(lambda: not f.d.running(), what="prakatd to refuse the config")
        f.d._reap(TIMEOUT)
        line = next(i + 1 for i, l in enumerate(read_text(f.env.conf).splitlines()) if l.startswith("colour"))
        check(("%s:%d:" % (f.env.conf, line)) in f.d.log() and "unknown key 'colour'" in f.d.log(),
              "unknown key not refused with its line:\n%s" % f.d.log()[-600:])
        f.d.problems = []
        f.fake.stop()
    S.case("an unknown key is refused with its line", unknown_key)


def check_no_token(fbs):
    def case():
        leaks = files_holding([t.encode() for t in TOKENS], [f.env.log for f in fbs],
                              [r for f in fbs for r in (f.env.state, f.env.spool)])
        check(not leaks, "a token appears in: %s" % ", ".join(leaks))
        check(len(fbs) >= 3, "too few trees were checked")
    S.case("no token in any log, state file or receipt", case)


def main():
    fbs = []
    throttled = None
    try:
        throttled = throttle_start()
    except Exception as e:
        S.result("throttle: start", False, e)
    for group in (main_cases, upload_cases, token_cases, token_give_up):
        try:
            fbs.append(group())
        except Exception as e:
            S.result("%s: setup" % group.__name__, False, e)
    fbs += crash_cases()
    config_cases()
    if throttled:
        throttle_finish(throttled)
        fbs.append(throttled)
    for f in fbs:
        if f.d in S.daemons:
            f.stop("%s: clean stop" % os.path.basename(f.tmp).split("-")[2])
    check_no_token(fbs)
    S.finish()


main()
