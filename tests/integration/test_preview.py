#!/usr/bin/python3
"""The approval gate's preview (require_approval = yes): with the website, a fake Facebook Page, two
fake LINE accounts (Flex and text style) and the towers on a real mosquitto, a new announcement
waits with pending/ID.txt saying exactly what each channel will send and pending/ID.html showing the
article page; nothing reaches any platform before `prakat approve`; after it, what Facebook and LINE
received is what the preview showed, the towers got the villages, times and text it listed, and
the preview files are gone.  In WordPress mode the preview gives the post's title, slug and content,
and the post made after approval has exactly those."""

import json
import os
import re
import stat
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "fakes"))
from harness import (PLUGIN_DIR, TIMEOUT, VILLAGES, Suite, check, chromium_dump_dom, make_env,  # noqa: E402
                     read_text, require_build, tiny_png, wait_for)
from channel_checks import write_secret  # noqa: E402
from fake_platforms import FakeFacebook, FakeLine  # noqa: E402
from fake_wordpress import FakeWordPress  # noqa: E402
from mqtt_mini import Broker, MqttClient  # noqa: E402

S = Suite("preview")
require_build(S)
for plugin in ("facebook", "line", "tower"):
    if not os.path.exists(os.path.join(PLUGIN_DIR, plugin + ".so")):
        S.result("preview: plugins built", False, "%s.so is missing in %s" % (plugin, PLUGIN_DIR))
        S.finish()

PAGE = "123456789"
PREFIX = "bokaeo/preview"
ID = "preview-1"
TITLE = 'ประชุมประชาคม <หมู่ 1 & 3> "ด่วน"'
BODY = "ขอเชิญชาวบ้านหมู่ 1 และหมู่ 3 ร่วมประชุมประชาคม\nณ ศาลาประชาคม เวลา 09.00 น.\n"


def section(text, channel):
    """The preview's section of `channel`: from its heading to the next one (or the approve line)."""
    m = re.search(r"^== ช่องทาง %s / channel %s \(\w+\) ==\n(.*?)(?=^== |^อนุมัติ / approve)" %
                  (re.escape(channel), re.escape(channel)), text, re.M | re.S)
    check(m is not None, "no section for %s in the preview:\n%s" % (channel, text))
    return m.group(1)


def between_rules(text, label):
    """The block between the "-----" lines that follow `label`."""
    m = re.search(re.escape(label) + r".*?\n-----\n(.*?)\n-----\n", text, re.S)
    check(m is not None, "no %r block in:\n%s" % (label, text))
    return m.group(1)


def request_body(text):
    """The LINE request body: the pretty-printed JSON after "request body:"."""
    start = text.index("request body:\n") + len("request body:\n")
    value, _ = json.JSONDecoder().raw_decode(text[start:])
    return value


def preview():
    broker = Broker(S.tmpdir("broker")).start()
    obs = MqttClient("127.0.0.1", broker.port, "obs-preview").connect()
    obs.subscribe(PREFIX + "/#", qos=1)
    fb = FakeFacebook(page_id=PAGE, token="EAAGpreview" + os.urandom(8).hex())
    lines = {"line": FakeLine(token="tok-line-" + os.urandom(8).hex()),
             "linetext": FakeLine(token="tok-linetext-" + os.urandom(8).hex())}
    tmp = S.tmpdir("preview")
    write_secret(os.path.join(tmp, "facebook.token"), fb.config["token"])
    sections = ("[channel facebook]\nplugin = facebook\npage_id = %s\ntoken_file = facebook.token\n"
                "api_base = %s\ntimeout = 2s\nhealth_interval = 1s\n\n" % (PAGE, fb.start()))
    for name, fake in lines.items():
        fake.start()
        write_secret(os.path.join(tmp, name + ".token"), fake.config["token"])
        sections += ("[channel %s]\nplugin = line\ntoken_file = %s.token\napi_base = %s\nhealth_interval = 2s\n%s\n" %
                     (name, name, fake.base_url, "style = text\n" if name == "linetext" else ""))
    sections += ("[channel tower]\nplugin = tower\nbroker = mqtt://127.0.0.1:%d\ntopic_prefix = %s\nvillages = 1-3\n"
                 "client_id = prakatd-preview\ngap = 1s\nconfirm_within = 2m\n" % (broker.port, PREFIX))
    env = make_env(tmp, extra_config=sections, extra_prakat="require_approval = yes\n")
    d = S.daemon(env)
    d.start()
    pending = os.path.join(env.spool, "pending")
    txt, html = os.path.join(pending, ID + ".txt"), os.path.join(pending, ID + ".html")
    state = {}

    def nothing_sent(when):
        check(fb.published_posts() == [] and not [r for r in fb.request_log() if r["method"] == "POST"],
              "Facebook got a post %s: %s" % (when, fb.request_log()))
        for name, fake in lines.items():
            check(fake.sent == [], "LINE %s got messages %s: %s" % (name, when, fake.sent))
        # A schedule goes to every village on connecting; it must not hold the waiting item.
        sent = [m.topic for m in obs.messages() if m.topic.endswith("/announce") or
                (m.topic.endswith("/schedule") and ID in json.dumps(m.json()))]
        check(sent == [], "the towers got the announcement %s: %s" % (when, sent))

    def waits_with_preview():
        env.drop_bundle("preview-bundle", {
            "announcement.txt": "หัวข้อ: %s\nรหัส: %s\nหมู่บ้าน: 1, 3\nไฟล์แนบ: p1.png\n\n%s" % (TITLE, ID, BODY),
            "p1.png": tiny_png(6, 4)})
        wait_for(lambda: os.path.exists(txt) and os.path.exists(html), what="pending/%s.txt and .html" % ID)
        for path in (txt, html):
            mode = stat.S_IMODE(os.stat(path).st_mode)
            check(mode == 0o640, "%s has mode %o, not 0640 like the other preview files" % (path, mode))
        text = read_text(txt)
        state["text"] = text
        url = "%s/a/%s.html" % (env.base_url, ID)
        site = section(text, "website")
        check("article_url: " + url in site and "attachment_url: %s/files/%s/" % (env.base_url, ID) in site,
              "the website section lacks the article's or the picture's URL:\n" + site)
        check("category/" in site and "feed.atom" in site, "the website section does not say which pages change:\n" +
              site)
        face = section(text, "facebook")
        message = between_rules(face, "message:")
        check(message.startswith(TITLE + "\n\n") and "ร่วมประชุมประชาคม" in message and message.endswith(url),
              "the Facebook message is not the post's text:\n" + face)
        check("p1.png" in face, "the Facebook section does not name the photo:\n" + face)
        flex = request_body(section(text, "line"))
        check(flex["messages"][0]["type"] == "flex" and url in json.dumps(flex, ensure_ascii=False),
              "the LINE request is not a Flex card linking the article: %s" % flex)
        check("all friends" in section(text, "line"), "the LINE section does not say to whom")
        plain = section(text, "linetext")
        check(TITLE in between_rules(plain, "(text):") and url in between_rules(plain, "(text):"),
              "the text-style LINE section lacks the text itself:\n" + plain)
        tower = section(text, "tower")
        for v in (1, 3):
            check(re.search(r"^หมู่ %d / village %d: .*\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ" % (v, v), tower, re.M),
                  "the tower section has no play time for village %d:\n%s" % (v, tower))
        check("village 2:" not in tower, "village 2 was not asked for:\n" + tower)
        check("ร่วมประชุมประชาคม" in between_rules(tower, "spoken text:"), "the spoken text is missing:\n" + tower)
        check("repeat: 1" in tower and "priority: normal" in tower, "no repeat or priority:\n" + tower)
        nothing_sent("before approval")
    S.case("waiting: pending/ID.txt says exactly what each channel will send", waits_with_preview)

    def page_renders():
        dom = chromium_dump_dom(tmp, html)
        check("<h1>ประชุมประชาคม &lt;หมู่ 1 &amp; 3&gt; \"ด่วน\"</h1>" in dom,
              "the title is not in the page as text (escaped):\n" + dom[:3000])
        check("<base href=\"%s/a/\">" % env.base_url in dom, "the page's links do not point at the public site")
        check("ร่วมประชุมประชาคม" in dom and "p1.png" in dom, "the page lacks the body or the picture")
    S.case("pending/ID.html renders in headless Chromium with the title escaped", page_renders)

    def approve_sends_the_preview():
        text = state["text"]
        env.cli("approve", ID, check_rc=0)
        post = wait_for(lambda: (fb.published_posts() or [None])[0], what="the Facebook post")
        check(post["message"] == between_rules(section(text, "facebook"), "message:"),
              "Facebook got another text than the preview showed:\n%r\n%r" % (post["message"], text))
        for name in lines:
            sent = wait_for(lambda: lines[name].sent, what="the %s send" % name)
            check(len(sent) == 1 and sent[0]["messages"] == request_body(section(text, name))["messages"],
                  "LINE %s got other messages than the preview showed:\n%s\n%s" % (name, sent, text))
        announce = obs.wait_for(lambda m: m.topic == PREFIX + "/village/1/announce", TIMEOUT, "the announce").json()
        shown = re.search(r"^หมู่ 1 / village 1: (.*)$", section(text, "tower"), re.M).group(1)
        check(all(t in shown for t in announce["play_at"]) and announce["text"] in text,
              "the tower got other times or text than the preview showed: %s\n%s" % (announce, shown))
        wait_for(lambda: not os.path.exists(txt) and not os.path.exists(html), what="the preview files to go")
    S.case("after prakat approve, Facebook, LINE and the towers get what the preview showed", approve_sends_the_preview)

    def cancel_while_waiting():
        other = "preview-2"
        env.drop("other.txt", "หัวข้อ: งานวัดประจำปี\nรหัส: %s\n\nงานวัดเลื่อนออกไป\n" % other)
        files = [os.path.join(pending, other + ext) for ext in (".txt", ".html")]
        wait_for(lambda: all(os.path.exists(f) for f in files), what="the preview of %s" % other)
        env.cli("cancel", other, "--reason", "เลื่อนงาน", check_rc=0)
        waiting = lambda: [e["id"] for e in env.list_json(all=False)  # noqa: E731
                           if e["status"] == "waiting-for-approval" and e["id"] != other]
        cancel = wait_for(lambda: (waiting() or [None])[0], what="the withdrawal waiting for approval")
        # The entry is listed as soon as it is in the queue; its preview is written just after.
        wait_for(lambda: os.path.exists(os.path.join(pending, cancel + ".txt")), what="the withdrawal's preview")
        check("withdraws " + other in read_text(os.path.join(pending, cancel + ".txt")),
              "the withdrawal's preview does not say what it withdraws")
        env.cli("approve", cancel, check_rc=0)
        wait_for(lambda: not any(os.path.exists(f) for f in files), what="the withdrawn item's preview files to go")
        check(len(fb.published_posts()) == 1 and all(len(f.sent) == 1 for f in lines.values()),
              "the withdrawn item went out")
    S.case("an item withdrawn while it waits loses its preview files", cancel_while_waiting)

    S.stop_daemon(d, "daemon stopped cleanly")
    fb.stop()
    for fake in lines.values():
        fake.stop()
    obs.disconnect()
    broker.stop()


def wordpress():
    password = os.urandom(12).hex()
    fake = FakeWordPress(user="prakat", password=password, site="https://bokaeo.go.th")
    url = fake.start()
    tmp = S.tmpdir("wordpress")
    env = make_env(tmp)
    write_secret(os.path.join(tmp, "wordpress.password"), password)
    env.write_config(text=(
        "[prakat]\nspool = %s\nstate = %s\nruntime_dir = %s\ntimezone = Asia/Bangkok\nsettle = 300ms\n"
        "retry_min = 1s\nretry_max = 3s\nplugin_dir = %s\nrequire_approval = yes\n\n%s\n"
        "[channel website]\nplugin = website\nmode = wordpress\nwordpress_url = %s\nwordpress_user = prakat\n"
        "wordpress_password_file = wordpress.password\ntimeout = 2s\nhealth_interval = 1s\n") % (
            env.spool, env.state, env.runtime, PLUGIN_DIR, VILLAGES, url))
    d = S.daemon(env)
    d.start()
    id = "wp-preview-1"
    txt, html = (os.path.join(env.spool, "pending", id + ext) for ext in (".txt", ".html"))
    state = {}

    def waits_with_the_post():
        env.drop("wp.txt", "หัวข้อ: %s\nรหัส: %s\nหมวด: ข่าวกิจกรรม\n\n%s" % (TITLE, id, BODY))
        wait_for(lambda: os.path.exists(txt) and os.path.exists(html), what="pending/%s.txt and .html" % id)
        site = section(read_text(txt), "website")
        check("slug: %s\n" % id in site and "หมวด / category: ข่าวกิจกรรม" in site,
              "the WordPress section lacks the slug or the category:\n" + site)
        check("title: ประชุมประชาคม &lt;หมู่ 1 &amp; 3&gt;" in site, "the title is not shown as it is sent:\n" + site)
        state["site"] = site
        check("<h1>ประชุมประชาคม &lt;หมู่ 1 &amp; 3&gt;" in chromium_dump_dom(tmp, html), "the page lacks the title")
        posts = [r for r in fake.request_log() if r["method"] == "POST"]
        check(posts == [], "WordPress got requests before approval: %s" % posts)
    S.case("WordPress mode: the preview gives the post's title, slug, category and content", waits_with_the_post)

    def approve_makes_that_post():
        env.cli("approve", id, check_rc=0)
        post = wait_for(lambda: (fake.posts_with_slug(id) or [None])[0], what="the post")
        content = between_rules(state["site"], "content (HTML):")
        check(post["content"].rstrip("\n") == content, "the post's content is not the preview's:\n%r\n%r" %
              (post["content"], content))
        wait_for(lambda: not os.path.exists(txt) and not os.path.exists(html), what="the preview files to go")
    S.case("WordPress mode: after approval the post has the content the preview showed", approve_makes_that_post)
    S.stop_daemon(d, "WordPress daemon stopped cleanly")
    fake.stop()


preview()
wordpress()
S.finish()
