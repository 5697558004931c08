#!/usr/bin/python3
"""Self-test of the fake Facebook Graph API and LINE Messaging API servers (tests/fakes/fake_platforms.py).

prakat's channel tests trust these fakes to behave like the real platforms (shared/reference/
platform-apis.md), so this checks the behaviour a client sees: answers, error envelopes and codes,
throttling headers, retry keys, quotas, every injectable fault, keep-alive and the control API of a
separately started CLI instance.  It needs no prakat build: harness.py is used only for Suite/check.
Run: /usr/bin/python3 tests/integration/test_fakes.py
"""

import hashlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
FAKES = os.path.join(HERE, "..", "fakes")
sys.path.insert(0, HERE)
sys.path.insert(0, FAKES)
from harness import Suite, check, tiny_png, wait_for  # noqa: E402
import fake_platforms as fp  # noqa: E402

S = Suite("fakes")
PAGE = "123456789"
FB_TOKEN = "EAAtest-page-token"
LINE_TOKEN = "line-test-channel-token"
MSG = "ประกาศ อบต.บ่อแก้ว: งดจ่ายน้ำประปา หมู่ 3 วันที่ 26 พ.ย. 2569 😀"
LINK = "https://bokaeo.go.th/news/a/20261125-abc.html"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


# ---- a tiny HTTP client (http.client only) ----

class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body
        try:
            self.json = json.loads(body)
        except ValueError:
            self.json = None

    def __repr__(self):
        return "HTTP %d %s" % (self.status, self.body[:300].decode("utf-8", "replace"))


def call(port, method, path, body=None, headers=None, timeout=5, conn=None):
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if isinstance(body, str):
            body = body.encode("utf-8")
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return Reply(r.status, r.getheaders(), r.read())
    finally:
        if own:
            c.close()


def url_call(url, method="GET", payload=None):
    """A control-API call by absolute URL (JSON in, JSON out)."""
    u = urllib.parse.urlsplit(url)
    body = None if payload is None else json.dumps(payload)
    return call(u.port, method, u.path + ("?" + u.query if u.query else ""), body,
                {"Content-Type": "application/json"} if body is not None else {})


# ---- Facebook helpers ----

def fb_post(fb, path, params, token=FB_TOKEN, **kw):
    p = dict(params)
    if token:
        p["access_token"] = token
    return call(fb.port, "POST", "/v24.0/" + path, urllib.parse.urlencode(p),
                {"Content-Type": "application/x-www-form-urlencoded"}, **kw)


def fb_get(fb, path, params=None, token=FB_TOKEN, **kw):
    p = dict(params or {})
    if token:
        p["access_token"] = token
    return call(fb.port, "GET", "/v24.0/%s?%s" % (path, urllib.parse.urlencode(p)), **kw)


def fb_error(r):
    return (r.json or {}).get("error") or {}


def published_messages(fb):
    r = fb_get(fb, PAGE + "/published_posts", {"fields": "id,message,created_time", "limit": "100"})
    check(r.status == 200, "published_posts: %r" % r)
    return [p.get("message") for p in r.json["data"]]


def multipart(fields, files):
    boundary = "----prakat" + uuid.uuid4().hex
    out = []
    for k, v in fields.items():
        out.append(('--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' %
                    (boundary, k, v)).encode("utf-8"))
    for k, (name, ctype, data) in files.items():
        out.append(('--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\nContent-Type: %s\r\n\r\n' %
                    (boundary, k, name, ctype)).encode("utf-8") + data + b"\r\n")
    out.append(("--%s--\r\n" % boundary).encode())
    return b"".join(out), "multipart/form-data; boundary=" + boundary


def expect_no_answer(fn):
    """fn() must fail the way a dropped or held connection fails for a client."""
    try:
        r = fn()
    except (http.client.RemoteDisconnected, ConnectionError, socket.timeout, http.client.BadStatusLine):
        return
    raise AssertionError("expected no answer, got %r" % r)


# ---- LINE helpers ----

def line_call(line, method, path, body=None, key=None, token=LINE_TOKEN, ctype="application/json", **kw):
    h = {}
    if token:
        h["Authorization"] = "Bearer " + token
    if body is not None:
        h["Content-Type"] = ctype
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body, ensure_ascii=False)
    if key:
        h["X-Line-Retry-Key"] = key
    return call(line.port, method, path, body, h, **kw)


def text(s):
    return {"type": "text", "text": s}


def broadcast(line, messages, key=None, **kw):
    return line_call(line, "POST", "/v2/bot/message/broadcast", {"messages": messages}, key=key, **kw)


def detail(r):
    d = (r.json or {}).get("details") or [{}]
    return d[0].get("message"), d[0].get("property")


# ======================================================================================================
# Facebook
# ======================================================================================================

def facebook_cases(fb):
    def post_read_back():
        fb.reset()
        r = fb_post(fb, PAGE + "/feed", {"message": MSG, "link": LINK})
        check(r.status == 200 and r.json and r.json["id"].startswith(PAGE + "_"), "create: %r" % r)
        pid = r.json["id"]
        usage = json.loads(r.headers.get("x-business-use-case-usage", "{}"))
        check(PAGE in usage and "estimated_time_to_regain_access" in usage[PAGE][0],
              "no X-Business-Use-Case-Usage on a normal answer: %r" % r.headers)
        r = fb_get(fb, PAGE + "/published_posts", {"fields": "id,message,created_time,permalink_url"})
        check(r.status == 200, "list: %r" % r)
        check(b"\\u0e1b" in r.body and b"\\/" in r.body, "not Graph-style escaped JSON: %r" % r)
        data = r.json["data"]
        check(len(data) == 1 and data[0]["id"] == pid and data[0]["message"] == MSG, "listed: %r" % data)
        check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000", data[0]["created_time"]), data[0])
        check(data[0]["permalink_url"].startswith("https://www.facebook.com/"), data[0])
        r = fb_get(fb, pid, {"fields": "id,message,permalink_url,is_published"})
        check(r.status == 200 and r.json["message"] == MSG and r.json["is_published"] is True, "read one: %r" % r)
    S.case("facebook: a post, then read back through published_posts and by id", post_read_back)

    def paging():
        fb.reset()
        for i in range(3):
            check(fb_post(fb, PAGE + "/feed", {"message": "ข้อความที่ %d" % i}).status == 200, "create")
        r = fb_get(fb, PAGE + "/feed", {"fields": "id,message", "limit": "2"})
        check([d["message"] for d in r.json["data"]] == ["ข้อความที่ 2", "ข้อความที่ 1"], "newest first: %r" % r)
        nxt = urllib.parse.urlsplit(r.json["paging"]["next"])
        r2 = call(fb.port, "GET", nxt.path + "?" + nxt.query)
        check([d["message"] for d in r2.json["data"]] == ["ข้อความที่ 0"], "second page: %r" % r2)
        check("next" not in r2.json.get("paging", {}), "a next link on the last page: %r" % r2)
    S.case("facebook: feed listing newest first with cursor paging", paging)

    def health_bearer():
        r = call(fb.port, "GET", "/v24.0/me?fields=id,name", headers={"Authorization": "Bearer " + FB_TOKEN})
        check(r.status == 200 and r.json == {"id": PAGE, "name": fb.config["page_name"]}, "me: %r" % r)
        r = fb_get(fb, PAGE, {"fields": "id,name"})
        check(r.status == 200 and r.json["id"] == PAGE, "page node: %r" % r)
        r = fb_get(fb, "me", token=None)
        check(r.status == 400 and fb_error(r).get("code") == 104, "no token: %r" % r)
    S.case("facebook: health call /me with a Bearer token; no token is refused", health_bearer)

    def validation():
        r = fb_post(fb, PAGE + "/feed", {"published": "true"})
        check(r.status == 400 and fb_error(r).get("code") == 100 and fb_error(r).get("fbtrace_id"),
              "no message and no link: %r" % r)
        check(fb_error(r).get("type") == "OAuthException", "error type: %r" % r)
        r = fb_get(fb, PAGE + "/published_posts", {"fields": "id,bogus"})
        check(r.status == 400 and fb_error(r).get("code") == 100, "unknown field: %r" % r)
        r = fb_get(fb, PAGE + "/published_posts", {"fields": "id,link"})
        check(r.status == 400 and fb_error(r).get("code") == 12, "deprecated field: %r" % r)
        r = fb_get(fb, PAGE + "_999")
        check(r.status == 400 and fb_error(r).get("code") == 100 and fb_error(r).get("error_subcode") == 33,
              "unknown object: %r" % r)
        r = fb_post(fb, PAGE + "/feed", {"message": "ตั้งเวลา", "published": "false",
                                         "scheduled_publish_time": str(int(time.time()) + 300)})
        check(r.status == 400 and fb_error(r).get("code") == 100, "scheduled 5 minutes ahead: %r" % r)
        r = fb_post(fb, PAGE + "/feed", {"message": "ตั้งเวลา", "published": "false",
                                         "scheduled_publish_time": str(int(time.time()) + 3600)})
        check(r.status == 200, "scheduled an hour ahead: %r" % r)
        r = fb_get(fb, PAGE + "/scheduled_posts", {"fields": "id,message,scheduled_publish_time"})
        check([d["message"] for d in r.json["data"]] == ["ตั้งเวลา"], "scheduled_posts: %r" % r)
        check("ตั้งเวลา" not in published_messages(fb), "a scheduled post is listed as published")
    S.case("facebook: input validation (100, 12, 100/33, scheduling window)", validation)

    def photos():
        fb.reset()
        png = tiny_png()
        body, ctype = multipart({"published": "false", "access_token": FB_TOKEN},
                                {"source": ("a.png", "image/png", png)})
        r = call(fb.port, "POST", "/v24.0/%s/photos" % PAGE, body, {"Content-Type": ctype})
        check(r.status == 200 and set(r.json) == {"id"}, "unpublished upload: %r" % r)
        p1 = r.json["id"]
        with fb.lock:
            check(fb.photos[p1]["sha256"] == hashlib.sha256(png).hexdigest(), "uploaded bytes differ")
        r = fb_post(fb, PAGE + "/photos", {"url": "https://bokaeo.go.th/news/f/b.jpg", "published": "false"})
        check(r.status == 200, "url upload: %r" % r)
        p2 = r.json["id"]
        check(published_messages(fb) == [], "unpublished photos made posts")
        r = fb_post(fb, PAGE + "/feed", {"message": "ภาพกิจกรรม", "attached_media[0]": json.dumps({"media_fbid": p1}),
                                         "attached_media[1]": json.dumps({"media_fbid": p2})})
        check(r.status == 200, "feed with attached_media: %r" % r)
        r = fb_get(fb, r.json["id"], {"fields": "id,attachments,status_type"})
        subs = r.json["attachments"]["data"][0]["subattachments"]["data"]
        check([s["target"]["id"] for s in subs] == [p1, p2] and r.json["status_type"] == "added_photos",
              "attachments: %r" % r)
        r = fb_post(fb, PAGE + "/feed", {"message": "x", "attached_media[0]": '{"media_fbid":"42"}'})
        check(r.status == 400 and fb_error(r).get("code") == 100, "unknown media_fbid: %r" % r)
        r = fb_post(fb, PAGE + "/photos", {"url": "https://bokaeo.go.th/c.png", "caption": "ภาพเดี่ยว"})
        check(r.status == 200 and r.json.get("post_id", "").startswith(PAGE + "_"), "published photo: %r" % r)
        check(published_messages(fb)[0] == "ภาพเดี่ยว", "the photo's post is not in the feed")
        body, ctype = multipart({"access_token": FB_TOKEN}, {"source": ("x.png", "image/png", b"not an image")})
        r = call(fb.port, "POST", "/v24.0/%s/photos" % PAGE, body, {"Content-Type": ctype})
        check(r.status == 400 and fb_error(r).get("code") == 324, "not an image: %r" % r)
        r = fb_post(fb, PAGE + "/photos", {"caption": "no image"})
        check(r.status == 400 and fb_error(r).get("code") == 324, "no image: %r" % r)
    S.case("facebook: photos (multipart source, url, unpublished) and attached_media", photos)

    def edit_delete():
        fb.reset()
        pid = fb_post(fb, PAGE + "/feed", {"message": "ฉบับแรก"}).json["id"]
        r = fb_post(fb, pid, {"message": "ฉบับแก้ไข"})
        check(r.status == 200 and r.json == {"success": True}, "edit: %r" % r)
        check(fb_get(fb, pid, {"fields": "message"}).json["message"] == "ฉบับแก้ไข", "edit not applied")
        r = call(fb.port, "DELETE", "/v24.0/%s?access_token=%s" % (pid, FB_TOKEN))
        check(r.status == 200 and r.json == {"success": True}, "delete: %r" % r)
        check(published_messages(fb) == [], "deleted post still listed")
        r = fb_get(fb, pid)
        check(r.status == 400 and fb_error(r).get("error_subcode") == 33, "reading a deleted post: %r" % r)
        with fb.lock:
            check(fb.deleted_posts == [pid], "deleted_posts: %r" % fb.deleted_posts)
    S.case("facebook: edit (POST /{post-id}) and delete", edit_delete)

    def token_190():
        fb.reset()
        r = fb_get(fb, "me", token="EAAwrong")
        check(r.status == 400 and fb_error(r).get("code") == 190 and "www-authenticate" in r.headers,
              "wrong token: %r" % r)
        fb.expire_token()
        r = fb_get(fb, "me")
        check(r.status == 400 and fb_error(r).get("code") == 190 and fb_error(r).get("error_subcode") == 463,
              "expired token: %r" % r)
        fb.configure(token="EAAnew")
        check(fb_get(fb, "me", token="EAAnew").status == 200, "a new token is not accepted")
        fb.reset()
        check(fb_get(fb, "me").status == 200, "reset did not restore the token")
    S.case("facebook: 190 for a wrong token, 190/463 once the token is expired", token_190)

    def budget():
        fb.reset()
        fb.configure(call_limit=3, call_window=3600)
        counts = []
        for _ in range(3):
            r = fb_get(fb, "me")
            check(r.status == 200, "within the budget: %r" % r)
            counts.append(json.loads(r.headers["x-business-use-case-usage"])[PAGE][0]["call_count"])
        check(counts == [33, 66, 100], "call_count percentages: %r" % counts)
        r = fb_get(fb, "me")
        usage = json.loads(r.headers.get("x-business-use-case-usage", "{}")).get(PAGE, [{}])[0]
        check(r.status == 400 and fb_error(r).get("code") == 80001, "over the budget: %r" % r)
        check(1 <= usage.get("estimated_time_to_regain_access", 0) <= 60, "regain time: %r" % usage)
        check("x-page-usage" in r.headers, "no X-Page-Usage")
        fb.configure(limits=False)
        check(fb_get(fb, "me").status == 200, "limits=False still throttles")
        fb.reset()
    S.case("facebook: the per-Page call budget answers 80001 with estimated_time_to_regain_access", budget)

    def duplicate():
        fb.reset()
        check(fb_post(fb, PAGE + "/feed", {"message": "ซ้ำ"}).status == 200, "first")
        r = fb_post(fb, PAGE + "/feed", {"message": "ซ้ำ"})
        check(r.status == 400 and fb_error(r).get("code") == 506 and "Duplicate status message" in
              fb_error(r).get("message", ""), "second identical post: %r" % r)
        check(fb_post(fb, PAGE + "/feed", {"message": "อื่น"}).status == 200, "a different post")
        check(fb_post(fb, PAGE + "/feed", {"message": "ซ้ำ"}).status == 200, "not consecutive any more")
        check(published_messages(fb) == ["ซ้ำ", "อื่น", "ซ้ำ"], "feed: %r" % published_messages(fb))
    S.case("facebook: 506 for the same message twice in a row", duplicate)

    feed = "POST /v24.0/%s/feed" % PAGE

    def f_500():
        fb.reset()
        fb.add_fault(feed, "500_after_create")
        r = fb_post(fb, PAGE + "/feed", {"message": "ก่อนข้อผิดพลาด"})
        check(r.status == 500 and fb_error(r).get("code") == 2 and fb_error(r).get("is_transient") is True,
              "answer: %r" % r)
        check(published_messages(fb) == ["ก่อนข้อผิดพลาด"], "the post is not in the feed after the 500")
        check(fb_post(fb, PAGE + "/feed", {"message": "ถัดไป"}).status == 200, "the fault fired twice")
        check(fb.snapshot()["faults"][0]["fired"] == 1, "fired count")
    S.case("facebook fault 500_after_create: code 2 / HTTP 500, and the post exists", f_500)

    def f_after_stays_armed():
        fb.reset()
        fb.add_fault(feed, "500_after_create")
        r = fb_post(fb, PAGE + "/feed", {})
        check(r.status == 400 and fb_error(r).get("code") == 100, "a failing request: %r" % r)
        check(fb.snapshot()["faults"][0]["remaining"] == 1, "an after-fault was spent on a failed request")
        check(fb_get(fb, PAGE + "/feed").status == 200, "a GET matched a POST fault")
        check(fb_post(fb, PAGE + "/feed", {"message": "ok"}).status == 500, "the fault did not fire later")
    S.case("facebook faults: match by method; an after-fault waits for a request that succeeds",
           f_after_stays_armed)

    def f_drop():
        fb.reset()
        fb.add_fault(feed, "drop_after_accept")
        expect_no_answer(lambda: fb_post(fb, PAGE + "/feed", {"message": "หลุด"}))
        check(published_messages(fb) == ["หลุด"], "the post is not in the feed after the drop")
        with fb.lock:
            check(fb.requests[0]["status"] is None and fb.requests[0]["fault"] == "drop_after_accept",
                  "request log: %r" % fb.requests[0])
    S.case("facebook fault drop_after_accept: no answer, and the post exists", f_drop)

    def f_timeouts():
        fb.reset()
        fb.add_fault(feed, "timeout", seconds=0.4)
        t = time.monotonic()
        r = fb_post(fb, PAGE + "/feed", {"message": "ช้า"})
        check(r.status == 200 and time.monotonic() - t >= 0.35, "a slow answer: %r" % r)
        fb.add_fault(feed, "timeout")
        expect_no_answer(lambda: fb_post(fb, PAGE + "/feed", {"message": "ไม่ตอบ"}, timeout=0.4))
        time.sleep(0.3)
        check("ไม่ตอบ" not in published_messages(fb), "a request held forever was executed")
        fb.add_fault(feed, "timeout_after_create")
        expect_no_answer(lambda: fb_post(fb, PAGE + "/feed", {"message": "สร้างแล้วค้าง"}, timeout=0.4))
        check(published_messages(fb)[0] == "สร้างแล้วค้าง", "timeout_after_create did not create the post")
    S.case("facebook faults timeout (seconds / forever) and timeout_after_create", f_timeouts)

    def f_others():
        fb.reset()
        fb.add_fault(feed, "html_502")
        r = fb_post(fb, PAGE + "/feed", {"message": "พร็อกซี"})
        check(r.status == 502 and r.headers["content-type"].startswith("text/html") and b"<html>" in r.body,
              "html_502: %r" % r)
        check(published_messages(fb) == [], "html_502 created a post")
        fb.add_fault("*", "expired_token")
        r = fb_get(fb, "me")
        check(fb_error(r).get("code") == 190 and fb_error(r).get("error_subcode") == 463, "expired_token: %r" % r)
        check(fb_get(fb, "me").status == 200, "expired_token fired twice")
        fb.add_fault("GET /v*/me", "throttle", code=32, minutes=7)
        r = fb_get(fb, "me")
        usage = json.loads(r.headers.get("x-business-use-case-usage", "{}")).get(PAGE, [{}])[0]
        check(r.status == 400 and fb_error(r).get("code") == 32 and
              usage.get("estimated_time_to_regain_access") == 7, "throttle: %r %r" % (r, usage))
        fb.add_fault(feed, "status", count=2, status=503, body={"error": {"message": "x", "code": 2}})
        check([fb_post(fb, PAGE + "/feed", {"message": "s"}).status for _ in range(3)] == [503, 503, 200],
              "status fault with count=2")
    S.case("facebook faults html_502, expired_token, throttle, status (count)", f_others)

    def keep_alive():
        fb.reset()
        conn = http.client.HTTPConnection("127.0.0.1", fb.port, timeout=5)
        try:
            for _ in range(2):
                r = call(fb.port, "GET", "/v24.0/me?access_token=" + FB_TOKEN, conn=conn)
                check(r.status == 200, "me: %r" % r)
        finally:
            conn.close()
        st = fb.stats()
        check(st["connections_accepted"] == 1 and st["api_connections"] == 1 and st["requests"] == 2,
              "two requests on one connection: %r" % st)
        fb_get(fb, "me")
        check(fb.stats()["connections_accepted"] == 2, "a second connection was not counted")
    S.case("facebook: keep-alive (two requests on one connection count one connection)", keep_alive)

    def concurrency():
        fb.reset()
        fb.add_fault("GET /v24.0/me", "timeout", count=3, seconds=0.4)
        results = []
        threads = [threading.Thread(target=lambda: results.append(fb_get(fb, "me").status)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        check(results == [200, 200, 200], "answers: %r" % results)
        wait_for(lambda: fb.stats()["in_flight"] == 0, 5, "no request in flight")
        st = fb.stats()
        check(st["max_concurrent"] == 3 and st["max_open_connections"] >= 3, "stats: %r" % st)
    S.case("facebook: the maximum number of concurrent requests is measured", concurrency)


# ======================================================================================================
# LINE
# ======================================================================================================

def line_cases(line):
    def broadcast_ok():
        line.reset()
        r = broadcast(line, [text(MSG)], key=str(uuid.uuid4()))
        check(r.status == 200 and r.json == {}, "broadcast: %r" % r)
        check(UUID_RE.fullmatch(r.headers.get("x-line-request-id", "")), "x-line-request-id: %r" % r.headers)
        with line.lock:
            check(len(line.sent) == 1 and line.sent[0]["messages"] == [text(MSG)], "sent: %r" % line.sent)
        r = line_call(line, "GET", "/v2/bot/message/quota/consumption")
        check(r.json == {"totalUsage": 10}, "consumption: %r" % r)
        check(line_call(line, "GET", "/v2/bot/message/quota").json == {"type": "none"}, "quota")
        r = line_call(line, "GET", "/v2/bot/info")
        check(r.status == 200 and r.json["userId"].startswith("U"), "bot info: %r" % r)
        check(line_call(line, "GET", "/v2/bot/info/").status == 404, "a trailing slash is not 404")
    S.case("line: broadcast accepted, recorded and counted; quota, consumption, bot info", broadcast_ok)

    def retry_409():
        line.reset()
        key = str(uuid.uuid4())
        r1 = broadcast(line, [text("ครั้งเดียว")], key=key)
        r2 = broadcast(line, [text("ครั้งเดียว")], key=key)
        check(r1.status == 200, "first: %r" % r1)
        check(r2.status == 409 and r2.json == {"message": "The retry key is already accepted"}, "retry: %r" % r2)
        check(r2.headers.get("x-line-accepted-request-id") == r1.headers["x-line-request-id"] !=
              r2.headers.get("x-line-request-id"), "request ids: %r / %r" % (r1.headers, r2.headers))
        check(len(line.sent) == 1 and line.usage == 10, "a second delivery: %r" % line.sent)
        check(broadcast(line, [text("อีกฉบับ")], key=str(uuid.uuid4())).status == 200, "another key")
        r = broadcast(line, [text("x")], key="not-a-uuid")
        check(r.status == 400, "a key that is not a UUID: %r" % r)
        r = line_call(line, "GET", "/v2/bot/message/quota", key=str(uuid.uuid4()))
        check(r.status == 400, "a key on an endpoint without retry support: %r" % r)
        check(len(line.sent) == 2, "rejected requests were delivered")
    S.case("line: X-Line-Retry-Key 409 with x-line-accepted-request-id, never a second delivery", retry_409)

    def five_objects():
        line.reset()
        r = broadcast(line, [text("%d" % i) for i in range(6)])
        check(r.status == 400 and r.json.get("message") == "The request body has 1 error(s)" and
              detail(r) == ("Size must be between 1 and 5", "messages"), "six objects: %r" % r)
        check(broadcast(line, []).status == 400, "no objects")
        check(broadcast(line, [text("%d" % i) for i in range(5)]).status == 200, "five objects")
        r = broadcast(line, [{"text": "no type"}])
        check(r.status == 400 and detail(r) == ("May not be empty", "messages[0].type"), "no type: %r" % r)
    S.case("line: at most 5 message objects", five_objects)

    def utf16():
        line.reset()
        check(broadcast(line, [text("ก" * 5000)]).status == 200, "5000 Thai characters")
        check(broadcast(line, [text("😀" * 2500)]).status == 200, "2500 emoji = 5000 UTF-16 units")
        r = broadcast(line, [text("ok"), text("😀" * 2501)])
        check(r.status == 400 and detail(r) == ("Length must be between 0 and 5000", "messages[1].text"),
              "2501 emoji (5002 units, 2501 code points): %r" % r)
        check(broadcast(line, [text("ก" * 4999 + "😀")]).status == 400, "4999 Thai + 1 emoji = 5001 units")
        check(len(line.sent) == 2, "sent: %d" % len(line.sent))
    S.case("line: text length counted in UTF-16 units (Thai and emoji)", utf16)

    def image_flex():
        line.reset()
        img = {"type": "image", "originalContentUrl": "http://bokaeo.go.th/news/f/a.jpg",
               "previewImageUrl": "https://bokaeo.go.th/news/f/a-s.jpg"}
        r = broadcast(line, [img])
        check(r.status == 400 and detail(r)[1] == "messages[0].originalContentUrl", "http image: %r" % r)
        img["originalContentUrl"] = "https://bokaeo.go.th/news/f/a.jpg"
        check(broadcast(line, [img]).status == 200, "https image")
        flex = {"type": "flex", "altText": "ก" * 1501, "contents": {"type": "bubble", "body": {
            "type": "box", "layout": "vertical", "contents": [{"type": "text", "text": "hello"}]}}}
        r = broadcast(line, [flex])
        check(r.status == 400 and detail(r) == ("Length must be between 0 and 1500", "messages[0].altText"),
              "altText 1501: %r" % r)
        flex["altText"] = "ก" * 1500
        check(broadcast(line, [flex]).status == 200, "altText 1500")
    S.case("line: image URLs must be https; flex altText at most 1500", image_flex)

    def bodies_tokens():
        r = line_call(line, "POST", "/v2/bot/message/broadcast", '{"messages": [')
        check(r.status == 400 and "could not be parsed as JSON" in r.json["message"], "bad JSON: %r" % r)
        r = line_call(line, "POST", "/v2/bot/message/broadcast", "messages=x",
                      ctype="application/x-www-form-urlencoded")
        check(r.status == 400 and "content type" in r.json["message"], "form body: %r" % r)
        r = broadcast(line, [text("x")], token="wrong")
        check(r.status == 401 and r.json["message"].startswith("Authentication failed") and
              "x-line-request-id" in r.headers, "wrong token: %r" % r)
        check(broadcast(line, [text("x")], token=None).status == 401, "no token")
        line.expire_token()
        check(broadcast(line, [text("x")]).status == 401, "expired token")
        line.reset()
    S.case("line: JSON body required; 401 for a wrong, missing or expired token", bodies_tokens)

    def quota():
        line.reset()
        line.configure(quota=25)
        check([broadcast(line, [text("รอบ %d" % i)]).status for i in range(2)] == [200, 200], "within quota")
        r = broadcast(line, [text("เกิน")])
        check(r.status == 429 and r.json == {"message": "You have reached your monthly limit."}, "over: %r" % r)
        check(len(line.sent) == 2 and line_call(line, "GET", "/v2/bot/message/quota/consumption").json ==
              {"totalUsage": 20}, "usage after a refused send")
        check(line_call(line, "GET", "/v2/bot/message/quota").json == {"type": "limited", "value": 25}, "quota")
        line.reset()
    S.case("line: monthly quota exceeded gives 429 and sends nothing", quota)

    def rate():
        line.reset()
        line.configure(rate_per_hour=3)
        check([broadcast(line, [text("r%d" % i)]).status for i in range(3)] == [200] * 3, "within the rate")
        r = broadcast(line, [text("r3")])
        check(r.status == 429 and r.json == {"message": "The API rate limit has been exceeded. Try again later."},
              "over the rate: %r" % r)
        r = line_call(line, "POST", "/v2/bot/message/narrowcast", {"messages": [text("n")]})
        check(r.status == 202, "narrowcast has its own bucket: %r" % r)
        line.configure(limits=False)
        check(broadcast(line, [text("r4")]).status == 200, "limits=False")
        line.reset()
    S.case("line: broadcast rate limit (token bucket) gives 429", rate)

    def progress(rid):
        return line_call(line, "GET", "/v2/bot/message/progress/narrowcast?requestId=" + rid)

    def narrowcast():
        line.reset()
        line.configure(narrowcast_waiting=0.3, narrowcast_sending=0.3)
        users = ["U%032x" % i for i in range(3)]
        gid = line.add_audience(users, "หมู่ 3 บ้านหนองบัว")
        r = line_call(line, "POST", "/v2/bot/message/narrowcast", {"messages": [text("หมู่ 3")], "recipient":
                      {"type": "audience", "audienceGroupId": gid}}, key=str(uuid.uuid4()))
        check(r.status == 202 and r.json == {}, "narrowcast: %r" % r)
        rid = r.headers["x-line-request-id"]
        p = progress(rid)
        check(p.status == 200 and p.json["phase"] == "waiting" and "successCount" not in p.json, "first: %r" % p)
        phases = set()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            p = progress(rid).json
            phases.add(p["phase"])
            if p["phase"] == "succeeded":
                break
            time.sleep(0.05)
        check(p["phase"] == "succeeded" and p["targetCount"] == 3 and p["successCount"] == 3 and
              "completedTime" in p, "final: %r" % p)
        check("sending" in phases, "never saw sending: %r" % phases)
        check(progress(str(uuid.uuid4())).status == 404, "an unknown request id")
        r = line_call(line, "POST", "/v2/bot/message/narrowcast", {"messages": [text("x")], "recipient":
                      {"type": "audience", "audienceGroupId": 99}})
        check(r.status == 400 and r.json["message"] == "Invalid audience group id: 99", "bad audience: %r" % r)
        check(line.usage == 3, "usage: %d" % line.usage)
    S.case("line: narrowcast to an audience; progress waiting -> sending -> succeeded", narrowcast)

    def narrowcast_failed():
        line.add_fault("POST /v2/bot/message/narrowcast", "narrowcast_failed", error_code=4)
        r = line_call(line, "POST", "/v2/bot/message/narrowcast", {"messages": [text("ล้มเหลว")]})
        check(r.status == 202, "accepted: %r" % r)
        time.sleep(0.7)
        p = progress(r.headers["x-line-request-id"]).json
        check(p["phase"] == "failed" and p["errorCode"] == 4 and p.get("failedDescription"), "progress: %r" % p)
        line.reset()
    S.case("line fault narrowcast_failed: accepted, then progress failed with errorCode", narrowcast_failed)

    bc = "POST /v2/bot/message/broadcast"

    def f_ambiguous():
        line.reset()
        line.add_fault(bc, "500_after_create")
        key = str(uuid.uuid4())
        r1 = broadcast(line, [text("กำกวม")], key=key)
        check(r1.status == 500, "500: %r" % r1)
        r2 = broadcast(line, [text("กำกวม")], key=key)
        check(r2.status == 409 and r2.headers.get("x-line-accepted-request-id") ==
              r1.headers.get("x-line-request-id"), "retry after the 500: %r %r" % (r2, r2.headers))
        line.add_fault(bc, "drop_after_accept")
        key = str(uuid.uuid4())
        expect_no_answer(lambda: broadcast(line, [text("หลุด")], key=key))
        check(broadcast(line, [text("หลุด")], key=key).status == 409, "retry after the drop")
        check(len(line.sent) == 2 and line.sent_by_kind()["broadcast"] == 2, "deliveries: %r" % line.sent)
    S.case("line faults 500_after_create and drop_after_accept: the retry gets 409, one delivery", f_ambiguous)

    def f_others():
        line.reset()
        line.add_fault(bc, "html_502")
        key = str(uuid.uuid4())
        r = broadcast(line, [text("พร็อกซี")], key=key)
        check(r.status == 502 and b"<html>" in r.body, "html_502: %r" % r)
        check(broadcast(line, [text("พร็อกซี")], key=key).status == 200, "a retry after a 502 is new")
        line.add_fault(bc, "timeout")
        key = str(uuid.uuid4())
        expect_no_answer(lambda: broadcast(line, [text("ค้าง")], key=key, timeout=0.4))
        time.sleep(0.2)
        check(broadcast(line, [text("ค้าง")], key=key).status == 200, "a retry after an unexecuted timeout")
        line.add_fault(bc, "throttle")
        r = broadcast(line, [text("x")])
        check(r.status == 429 and "rate limit" in r.json["message"], "throttle: %r" % r)
        line.add_fault(bc, "quota_exceeded")
        check(broadcast(line, [text("x")]).json == {"message": "You have reached your monthly limit."}, "quota")
        line.add_fault(bc, "expired_token")
        check(broadcast(line, [text("x")]).status == 401, "expired_token")
        line.add_fault(bc, "status", status=418, body={"message": "teapot"})
        r = broadcast(line, [text("x")])
        check(r.status == 418 and r.json == {"message": "teapot"} and "x-line-request-id" in r.headers,
              "status: %r" % r)
        check(len(line.sent) == 2, "deliveries: %d" % len(line.sent))
    S.case("line faults html_502, timeout, throttle, quota_exceeded, expired_token, status", f_others)

    def push():
        line.reset()
        key = str(uuid.uuid4())
        body = {"to": "U%032x" % 7, "messages": [text("ส่วนตัว"), text("ข้อ 2")]}
        r = line_call(line, "POST", "/v2/bot/message/push", body, key=key)
        check(r.status == 200 and len(r.json["sentMessages"]) == 2, "push: %r" % r)
        r2 = line_call(line, "POST", "/v2/bot/message/push", body, key=key)
        check(r2.status == 409 and r2.json["sentMessages"] == r.json["sentMessages"], "push retry: %r" % r2)
        r = line_call(line, "POST", "/v2/bot/message/push", {"to": "nobody", "messages": [text("x")]})
        check(r.status == 400, "bad recipient: %r" % r)
    S.case("line: push with sentMessages, and its 409 repeats them", push)


# ======================================================================================================
# The CLI and its control API
# ======================================================================================================

def cli_case():
    tmp = S.tmpdir("cli")
    token_file = os.path.join(tmp, "token")
    with open(token_file, "w") as f:
        f.write("cli-token\n")
    proc = subprocess.Popen([sys.executable, os.path.join(FAKES, "fake_platforms.py"), "--facebook-port", "0",
                             "--line-port", "0", "--no-limits", "--token-file", token_file],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        urls = {}

        def read_urls():
            for line in proc.stdout:
                k, _, v = line.strip().partition("=")
                urls[k] = v
        threading.Thread(target=read_urls, daemon=True).start()
        deadline = time.monotonic() + 10
        while len(urls) < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        check(len(urls) == 4, "the CLI printed %r (exit status %s)" % (urls, proc.poll()))
        fb_ctl, line_ctl = urls["FAKE_FACEBOOK_CONTROL"], urls["FAKE_LINE_CONTROL"]
        fb_api = urllib.parse.urlsplit(urls["FAKE_FACEBOOK_API_BASE"])
        check(fb_api.path == "/v24.0", "facebook base: %r" % urls)

        r = url_call(fb_ctl + "/fault", "POST", {"match": "POST /v24.0/123456789/feed", "kind": "500_after_create",
                                                 "count": 1})
        check(r.status == 200 and r.json["kind"] == "500_after_create", "add fault: %r" % r)
        form = urllib.parse.urlencode({"message": "จากเชลล์", "access_token": "cli-token"})
        r = call(fb_api.port, "POST", "/v24.0/123456789/feed", form,
                 {"Content-Type": "application/x-www-form-urlencoded"})
        check(r.status == 500, "faulted post: %r" % r)
        st = url_call(fb_ctl + "/state").json
        check([p["message"] for p in st["posts"]] == ["จากเชลล์"] and st["faults"][0]["fired"] == 1 and
              st["stats"]["requests"] == 1 and st["config"]["limits"] is False, "state: %r" % st)
        check(url_call(fb_ctl + "/config", "POST", {"bogus": 1}).status == 400, "an unknown setting")
        check(url_call(fb_ctl + "/fault", "POST", {"match": "*", "kind": "bogus"}).status == 400, "unknown kind")
        check(url_call(fb_ctl + "/nothing").status == 404, "unknown control call")
        check(url_call(fb_ctl + "/reset", "POST", {}).status == 200, "reset")
        st = url_call(fb_ctl + "/state").json
        check(st["posts"] == [] and st["faults"] == [] and st["stats"]["requests"] == 0, "after reset: %r" % st)
        r = url_call(fb_ctl + "/config", "POST", {"limits": True, "call_limit": 1})
        check(r.status == 200 and r.json["call_limit"] == 1, "config: %r" % r)
        codes = [fb_error(call(fb_api.port, "GET", "/v24.0/me?access_token=cli-token")).get("code")
                 for _ in range(2)]
        check(codes == [None, 80001], "budget set through the control API: %r" % codes)
        check(url_call(fb_ctl + "/reset", "POST", {}).json == {"reset": True}, "second reset")
        check(url_call(fb_ctl + "/config").json["limits"] is False, "reset did not restore --no-limits")

        line_port = urllib.parse.urlsplit(urls["FAKE_LINE_API_BASE"]).port
        gid = url_call(line_ctl + "/audience", "POST", {"userIds": ["U%032x" % 1]}).json["audienceGroupId"]
        r = call(line_port, "POST", "/v2/bot/message/narrowcast", json.dumps({"messages": [text("หมู่ 1")],
                 "recipient": {"type": "audience", "audienceGroupId": gid}}),
                 {"Content-Type": "application/json", "Authorization": "Bearer cli-token"})
        check(r.status == 202, "narrowcast through the CLI instance: %r" % r)
        rid = r.headers["x-line-request-id"]
        check(url_call(line_ctl + "/narrowcast-fail", "POST", {"requestId": rid, "errorCode": 1}).status == 200,
              "narrowcast-fail")
        st = url_call(line_ctl + "/state").json
        check(st["sent_by_kind"]["narrowcast"] == 1 and st["narrowcasts"][0]["failure"]["errorCode"] == 1,
              "line state: %r" % st)
        r = url_call(line_ctl + "/requests")
        check(r.status == 200 and len(r.json) == 1 and r.json[0]["path"] == "/v2/bot/message/narrowcast",
              "request log: %r" % r)
        proc.terminate()
        check(proc.wait(timeout=5) == 0, "exit status %s after SIGTERM" % proc.returncode)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def main():
    fb = fp.FakeFacebook(page_id=PAGE, token=FB_TOKEN)
    line = fp.FakeLine(token=LINE_TOKEN, friends=10)
    fb.start()
    line.start()
    try:
        S.group("facebook", facebook_cases, fb)
        S.group("line", line_cases, line)
    finally:
        fb.stop()
        line.stop()
    S.case("cli: a separately started instance driven through /_fake/ (fault, state, config, reset)", cli_case)
    S.finish()


if __name__ == "__main__":
    main()
