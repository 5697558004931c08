#!/usr/bin/python3
"""The generated site: escaping of hostile text (checked in headless Chromium's DOM), pages render,
mobile viewport, Open Graph, the Atom feed (feedparser), the sitemap (well-formed XML)."""

import glob
import html
import os
import re
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (CHROMIUM, Suite, TestFailure, check, chromium, read_text, require_build,  # noqa: E402
                     tiny_png)
from harness import chromium_dump_dom as dump_dom  # noqa: E402

S = Suite("site")
require_build(S)

EVIL_TITLE = "<script>document.title='PWNED'</script>ข่าว"
EVIL_BODY = ("ขอเชิญประชาชนร่วมงาน <img src=x onerror=alert(1)> และ "
             "<img src=y onerror=\"document.body.setAttribute('data-pwned','1')\"> "
             "<a href=\"javascript:alert(2)\">คลิก</a> & <b>ตัวหนา</b>\nบรรทัดที่สอง \"อัญประกาศ\" 'เดี่ยว'")
TITLES = ["ประชาสัมพันธ์โครงการตรวจสุขภาพผู้สูงอายุ ประจำปี 2570",
          "ขอเชิญร่วมงานประเพณีบุญบั้งไฟ ตำบลบ่อแก้ว",
          "แจ้งกำหนดการจัดเก็บขยะมูลฝอย เดือนธันวาคม 2569"]


def main():
    if not os.access(CHROMIUM, os.X_OK):
        S.result("site: chromium present", False, "%s is missing (make deps installs it)" % CHROMIUM)
    env = S.env("site", website_extra="feed_items = 50")
    d = S.daemon(env)
    d.start()
    env.drop("evil.txt", "Title: %s\nCategory: ข่าว <กิจกรรม> & \"พิเศษ\"\n\n%s\n" % (EVIL_TITLE, EVIL_BODY))
    for i, t in enumerate(TITLES):
        env.drop("n%d.txt" % i, "หัวข้อ: %s\n\nรายละเอียดของประกาศ %s\n" % (t, t))
    png = tiny_png(8, 6)
    env.drop_bundle("photo", {"announcement.txt": "หัวข้อ: ภาพกิจกรรมวันเด็กแห่งชาติ\nไฟล์แนบ: วันเด็ก.png\n\n"
                                                  "บรรยากาศงานวันเด็ก ณ ศูนย์พัฒนาเด็กเล็ก\n",
                              "วันเด็ก.png": png})
    _, evil_id, _ = env.wait_published("evil.txt")
    ids = [env.wait_published("n%d.txt" % i)[1] for i in range(len(TITLES))]
    _, photo_id, _ = env.wait_published("photo")
    art = env.article(evil_id)
    raw = read_text(art)

    def escaped_source():
        check("<script>document.title" not in raw, "the title's <script> is in the page source unescaped")
        check("<img src=x" not in raw, "unescaped <img onerror> in the page source")
        check(not re.search(r"<img[^>]*onerror", raw, re.I), "an <img onerror> element in the page source")
        check("&lt;script&gt;" in raw, "the title is not shown as escaped text")
    S.case("site: hostile title and body escaped in the page source", escaped_source)

    def escaped_dom():
        dom = dump_dom(env.tmp, art)
        title = re.search(r"<title>(.*?)</title>", dom, re.S)
        check(title and "PWNED" != title.group(1).strip(), "document.title became PWNED")
        check(not re.search(r"<script\b", dom, re.I) or "<script>document.title" not in dom,
              "a <script> element was created from the title")
        check(len(re.findall(r"<script\b", dom, re.I)) == len(re.findall(r"<script\b", raw, re.I)),
              "the DOM has script elements the generator did not write")
        check("data-pwned" not in dom.split("<body")[1].split(">")[0], "the onerror handler ran")
        check(not re.search(r"<img[^>]*onerror", dom, re.I), "an <img onerror> element exists in the DOM")
        check(not re.search(r'<a\b[^>]*href="javascript:', dom, re.I), "a javascript: link exists in the DOM")
        check("&lt;script&gt;document.title='PWNED'&lt;/script&gt;ข่าว" in dom or
              "&lt;script&gt;document.title=&#39;PWNED&#39;&lt;/script&gt;ข่าว" in dom or
              "&lt;script&gt;document.title=&#x27;PWNED&#x27;&lt;/script&gt;ข่าว" in dom,
              "the title is not visible as text in the DOM")
    S.case("site: headless Chromium DOM has no script/handler from user text", escaped_dom)

    def renders():
        for page, want in ((os.path.join(env.site, "index.html"), TITLES),
                           (env.article(ids[0]), TITLES[:1])):
            dom = dump_dom(env.tmp, page)
            for t in want:
                check(t in dom, "%s does not show %r" % (os.path.relpath(page, env.site), t))
        dom = dump_dom(env.tmp, env.article(photo_id))
        srcs = re.findall(r'<img[^>]*src="([^"]+)"', dom)
        check(srcs, "the bundle's image is not on its page")
        for s in srcs:
            if s.startswith(env.base_url):
                s = os.path.join(env.site, s[len(env.base_url) + 1:])
            else:
                s = os.path.normpath(os.path.join(os.path.dirname(env.article(photo_id)), html.unescape(s)))
            from urllib.parse import unquote
            s = unquote(s)
            check(os.path.exists(s), "the page's image %s does not exist" % s)
    S.case("site: index and article render in Chromium with the Thai titles", renders)

    def screenshot():
        shot = os.path.join(env.tmp, "mobile.png")
        rc, _, err = chromium(env.tmp, "--window-size=390,844", "--hide-scrollbars", "--screenshot=" + shot,
                              "file://" + os.path.join(env.site, "index.html"))
        check(rc == 0 and os.path.exists(shot) and os.path.getsize(shot) > 1000,
              "no screenshot (rc %d): %s" % (rc, err[-500:]))
        with open(shot, "rb") as f:
            check(f.read(8) == b"\x89PNG\r\n\x1a\n", "the screenshot is not a PNG")
    S.case("site: mobile-size screenshot of index.html", screenshot)

    def mobile_meta():
        for p in [os.path.join(env.site, "index.html"), art] + glob.glob(os.path.join(env.site, "page", "*.html")):
            t = read_text(p)
            check(re.search(r'<meta name="viewport" content="[^"]*width=device-width', t),
                  "%s has no mobile viewport meta" % os.path.relpath(p, env.site))
            check('<html lang="th"' in t, "%s does not say lang=th" % os.path.relpath(p, env.site))
    S.case("site: every page has <meta name=viewport> and lang=th", mobile_meta)

    def open_graph():
        t = read_text(env.article(ids[1]))
        url = "%s/a/%s.html" % (env.base_url, ids[1])
        check(re.search(r'<meta property="og:title" content="%s">' % re.escape(TITLES[1]), t), "og:title missing")
        check(('<meta property="og:url" content="%s">' % url) in t, "og:url is not %s" % url)
        check(re.search(r'<meta property="og:title" content="[^"<>]*&lt;script&gt;', raw),
              "og:title of the hostile article is not escaped")
        tp = read_text(env.article(photo_id))
        check(re.search(r'<meta property="og:image" content="https://bokaeo\.go\.th/news/[^"]+"', tp),
              "og:image of the article with a picture is missing or not absolute")
    S.case("site: Open Graph og:title, og:url (and og:image with a picture)", open_graph)

    def feed():
        import feedparser
        f = feedparser.parse(os.path.join(env.site, "feed.atom"))
        check(f.bozo == 0, "feedparser bozo: %r" % f.get("bozo_exception"))
        check(len(f.entries) == len(TITLES) + 2, "%d entries, expected %d" % (len(f.entries), len(TITLES) + 2))
        titles = [e.title for e in f.entries]
        for t in TITLES:
            check(t in titles, "feed title %r missing (have %s)" % (t, titles))
        check(EVIL_TITLE in titles, "the hostile title does not come back as text from the feed: %s" % titles)
        for e in f.entries:
            check(e.link.startswith(env.base_url + "/"), "entry link %s not absolute to base_url" % e.link)
            check(e.get("published") or e.get("updated"), "entry without a date")
        check(f.feed.title, "feed without a title")
        ET.parse(os.path.join(env.site, "feed.atom"))
    S.case("site: Atom feed parses (feedparser bozo 0), Thai titles, absolute links", feed)

    def sitemap():
        ns = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
        root = ET.parse(os.path.join(env.site, "sitemap.xml")).getroot()
        urls = []
        if root.tag == ns + "sitemapindex":
            for sm in root.findall(ns + "sitemap"):
                loc = sm.find(ns + "loc").text
                check(loc.startswith(env.base_url + "/"), "sitemap chunk %s not under base_url" % loc)
                sub = ET.parse(os.path.join(env.site, loc[len(env.base_url) + 1:])).getroot()
                urls += [u.find(ns + "loc").text for u in sub.findall(ns + "url")]
        else:
            urls = [u.find(ns + "loc").text for u in root.findall(ns + "url")]
        for rid in ids + [evil_id, photo_id]:
            check("%s/a/%s.html" % (env.base_url, rid) in urls, "article %s not in the sitemap" % rid)
    S.case("site: sitemap is well-formed XML and lists every article", sitemap)
    S.stop_daemon(d, "site: daemon stops cleanly")


S.group("site", main)
S.finish()
