#!/usr/bin/python3
"""The crash loop (issue 7): announcements flow through all four channels -- the website, the fake
Facebook Page, the fake LINE account and a real mosquitto with three dry-run prakat-tower agents --
while prakatd is killed with SIGKILL again and again at random moments (during start-up, intake,
HTTP calls, MQTT publishes, receipts) and restarted.  Afterwards every announcement is:

  - on the website once (one article page, listed once in the archive),
  - on the Page once (counting every post ever made, deleted ones too),
  - delivered by LINE once (counting every broadcast the fake accepted),
  - scheduled on every tower of its villages once (each agent's own schedule on disk),

and nothing is left in incoming/ or rejected/.  The counts are printed.

PRAKAT_CRASH_N and PRAKAT_CRASH_KILLS change the size (default 500 and 200; 150 and 40 under the
slower sanitizer build); PRAKAT_TEST_SEED reproduces the kill moments.
"""

import glob
import json
import math
import os
import random
import re
import secrets
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "fakes"))
from harness import (ASAN, PLUGIN_DIR, TIMEOUT, Suite, check, make_env, read_text,  # noqa: E402
                     require_build, wait_for)
from fake_platforms import FakeFacebook, FakeLine  # noqa: E402
from mqtt_mini import Broker  # noqa: E402
from tower_common import AGENT, AgentProcess  # noqa: E402

S = Suite("crash_loop")
require_build(S)
for need in [os.path.join(PLUGIN_DIR, p + ".so") for p in ("facebook", "line", "tower")] + [AGENT]:
    if not os.path.exists(need):
        S.result("crash_loop: build present", False, "%s is missing" % need)
        S.finish()

N = int(os.environ.get("PRAKAT_CRASH_N", "150" if ASAN else "500"))
KILLS = int(os.environ.get("PRAKAT_CRASH_KILLS", "40" if ASAN else "200"))
seed = int(os.environ.get("PRAKAT_TEST_SEED", str(int(time.time()))))
rng = random.Random(seed)
print("# seed %d (PRAKAT_TEST_SEED=%d reproduces the kill moments); %d announcements, %d kills" %
      (seed, seed, N, KILLS), flush=True)

PAGE = "104857600123456"
BASE_URL = "https://bokaeo.go.th/news"
PREFIX = "bokaeo/crash"
TOWERS = (1, 2, 3)
VILLAGE_NAMES = {1: "บ้านบ่อแก้ว", 2: "บ้านโนนสวรรค์", 3: "บ้านหนองบัว"}
TOPICS = ["แจ้งงดจ่ายน้ำประปา", "เชิญร่วมประชุมประชาคมหมู่บ้าน", "รณรงค์ป้องกันไข้เลือดออก",
          "ประชาสัมพันธ์การชำระภาษีที่ดินและสิ่งปลูกสร้าง", "เปิดรับสมัครผู้ดูแลเด็กเล็ก"]


def villages_of(i):
    """Every fifth announcement goes to all three towers, the others to one."""
    return list(TOWERS) if i % 5 == 0 else [TOWERS[i % 3]]


def announcement(i):
    vs = villages_of(i)
    return ("หัวข้อ: %s ครั้งที่ %03d\nหมู่บ้าน: %s\nหมวด: %s\n\n"
            "ประกาศลำดับที่ %03d ถึงพี่น้อง%s ขอให้ทราบโดยทั่วกัน\nสอบถามได้ที่ อบต.บ่อแก้ว โทร ๐๔๔-๐๐๐-๐๐๐\n" %
            (TOPICS[i % len(TOPICS)], i, ", ".join(str(v) for v in vs),
             "ข่าวกิจกรรม" if i % 2 else "ข่าวประชาสัมพันธ์", i, " ".join(VILLAGE_NAMES[v] for v in vs)))


class Tower(AgentProcess):
    """A dry-run prakat-tower for one village: it schedules and acks, and logs instead of playing."""

    def __init__(self, broker, village):
        super().__init__(S.tmpdir("tower%d" % village), ["--dry-run"])
        self.village = village
        with open(self.conf, "w") as f:
            f.write("[tower]\nvillage = %d\nbroker = mqtt://127.0.0.1:%d\ntopic_prefix = %s\nstate_dir = %s\n" %
                    (village, broker.port, PREFIX, self.state))
        S.daemons.append(self)

    def start(self):
        self.spawn({})
        wait_for(lambda: "Connected to the broker" in self.text(True) or not self.running(), None,
                 "prakat-tower %d connected" % self.village)
        check(self.running(), "prakat-tower %d exited:\n%s" % (self.village, self.tail()))
        return self

    def scheduled_ids(self):
        """Ids in the agent's schedule on disk, duplicates kept."""
        try:
            with open(os.path.join(self.state, "state.json")) as f:
                state = json.load(f)
        except (OSError, ValueError):
            return []
        return [item.get("id") for item in state.get("schedule", {}).get("items", [])]


class World:
    def __init__(self):
        self.broker = Broker(S.tmpdir("broker")).start()
        self.fb_token = "EAAGcrash%s" % secrets.token_hex(16)
        self.line_token = "linecrash%s" % secrets.token_hex(16)
        self.fb = FakeFacebook(page_id=PAGE, token=self.fb_token, limits=False)
        self.line = FakeLine(token=self.line_token, limits=False)
        fb_base, line_base = self.fb.start(), self.line.start()
        tmp = S.tmpdir("daemon")
        for name, token in (("facebook.token", self.fb_token), ("line.token", self.line_token)):
            p = os.path.join(tmp, name)
            with open(p, "w") as f:
                f.write(token + "\n")
            os.chmod(p, 0o600)
        sections = (
            "[channel facebook]\nplugin = facebook\npage_id = %s\ntoken_file = facebook.token\napi_base = %s\n"
            "timeout = 2s\n\n"
            "[channel line]\nplugin = line\ntoken_file = line.token\napi_base = %s\nrate_per_hour = 3600\n"
            "timeout = 2s\n\n"
            "[channel tower]\nplugin = tower\nbroker = mqtt://127.0.0.1:%d\ntopic_prefix = %s\nvillages = 1-3\n"
            "client_id = prakatd-crash\ngap = 1s\n" % (PAGE, fb_base, line_base, self.broker.port, PREFIX))
        self.env = make_env(tmp, extra_config=sections, settle="100ms", base_url=BASE_URL,
                            website_extra="per_page = 50")
        self.d = S.daemon(self.env)
        self.towers = [Tower(self.broker, v).start() for v in TOWERS]

    def stop(self):
        for t in self.towers:
            t.stop()
        self.fb.stop()
        self.line.stop()
        self.broker.stop()

    def marker(self, id):
        return "%s/a/%s.html" % (BASE_URL, id)

    def articles(self):
        return sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(self.env.site, "a", "*.html")))

    def fb_counts(self):
        """{id: posts ever made for it}, deleted ones too."""
        with self.fb.lock:
            messages = [p["message"] for p in self.fb.posts.values()]
        out = {}
        for m in messages:
            for id in re.findall(re.escape(BASE_URL) + r"/a/([^\s\"]+)\.html", m):
                out[id] = out.get(id, 0) + 1
        return out

    def line_counts(self):
        """{id: broadcasts accepted for it}."""
        with self.line.lock:
            sent = [json.dumps(s["messages"], ensure_ascii=False) for s in self.line.sent if s["kind"] == "broadcast"]
        out = {}
        for text in sent:
            for id in set(re.findall(re.escape(BASE_URL) + r"/a/([^\s\"?#]+)\.html", text)):
                out[id] = out.get(id, 0) + 1
        return out


def main():
    w = World()
    try:
        run(w)
    finally:
        if w.d.running():
            w.d.stop(expect_rc=None)
        w.stop()


def run(w):
    env, d = w.env, w.d
    names = ["c%03d.txt" % i for i in range(N)]
    village_of_name = {names[i]: villages_of(i) for i in range(N)}
    # A fifth waits in incoming/ before the first start (the start-up rescan takes it); the rest is
    # dropped between kills, a few at a time.
    first = N // 5
    for i in range(first):
        env.drop(names[i], announcement(i))
    later = list(range(first, N))
    moments = {"start-up": 0, "running": 0, "mid-delivery": 0}

    def kill_loop():
        nonlocal later
        for k in range(KILLS):
            d.start(wait_ready=False)
            cycles_left = KILLS - k
            batch, later = later[:math.ceil(len(later) / (cycles_left + 1))], later[math.ceil(
                len(later) / (cycles_left + 1)):]
            for i in batch:
                env.drop(names[i], announcement(i))
            r = rng.random()
            if r < 0.15:
                time.sleep(rng.uniform(0, 0.05))  # while it loads the queue and the plugins
                moments["start-up"] += 1
            elif r < 0.35:
                # As soon as something more went out: in the middle of a burst of deliveries.
                before = len(w.articles()) + len(w.line.sent)
                try:
                    wait_for(lambda: len(w.articles()) + len(w.line.sent) > before or not d.running(),
                             timeout=2.0 * (3 if ASAN else 1), interval=0.003)
                except Exception:
                    pass
                moments["mid-delivery"] += 1
            else:
                time.sleep(rng.uniform(0.05, 0.6) * (2 if ASAN else 1))
                moments["running"] += 1
            check(d.running() or d.proc.returncode == -9, "prakatd exited by itself (%s):\n%s" %
                  (d.proc.returncode, d.tail()))
            d.kill9()
        print("# kills: %s" % ", ".join("%s %d" % kv for kv in moments.items()), flush=True)
    S.case("crash loop: %d kill -9 at random moments, the daemon always comes back" % KILLS, kill_loop)

    for i in later:
        env.drop(names[i], announcement(i))
    d.start()

    def everything_out():
        def done():
            check(d.running(), "prakatd exited (%s)" % d.proc.returncode)
            if env.visible_incoming():
                return False
            ids = [e["id"] for e in env.list_json()] if len(w.articles()) >= N else []
            return (len(ids) >= N and len(w.fb_counts()) >= N and len(w.line_counts()) >= N and
                    all(len(t.scheduled_ids()) >= sum(1 for vs in village_of_name.values() if t.village in vs)
                        for t in w.towers))
        wait_for(done, timeout=TIMEOUT * 10, interval=0.5,
                 what="all %d out (articles %d, Page %d, LINE %d, towers %s)" % (
                     N, len(w.articles()), len(w.fb_counts()), len(w.line_counts()),
                     [len(t.scheduled_ids()) for t in w.towers]))
        time.sleep(2.0)  # anything that would still come twice
    S.case("crash loop: all %d announcements went out after the kills" % N, everything_out)

    entries = env.list_json()
    ids = sorted(e["id"] for e in entries)
    articles = w.articles()
    fb, line = w.fb_counts(), w.line_counts()
    print("# announcements %d, article pages %d, Page posts %d (for %d ids), LINE broadcasts %d (for %d ids)" % (
        len(ids), len(articles), sum(fb.values()), len(fb), sum(line.values()), len(line)), flush=True)
    for t in w.towers:
        s = t.scheduled_ids()
        again = t.text().count("of an id this tower already has, ignored")
        print("# tower %d: %d scheduled (%d distinct); %d repeated deliveries absorbed by the agent" % (
            t.village, len(s), len(set(s)), again), flush=True)

    S.case("crash loop: %d announcements, none lost, none twice, nothing left or rejected" % N, lambda: (
        check(len(ids) == N and len(set(ids)) == N, "%d entries in prakat list (%d distinct)" % (
            len(ids), len(set(ids)))),
        check(sorted(e["source_name"] for e in entries) == sorted(names), "the entries' files differ from the "
              "dropped ones"),
        check(env.incoming_names() == [], "incoming: %s" % env.incoming_names()[:10]),
        check(os.listdir(env.rejected) == [], "rejected: %s" % os.listdir(env.rejected)[:10])))

    def website_once():
        check(articles == ids, "article pages (%d) differ from the announcements (%d): missing %s, extra %s" % (
            len(articles), len(ids), sorted(set(ids) - set(articles))[:5], sorted(set(articles) - set(ids))[:5]))
        count = {}
        for p in glob.glob(os.path.join(env.site, "page", "*.html")):
            for rid in re.findall(r'href="[^"]*a/([^"/]+)\.html"', read_text(p)):
                count[rid] = count.get(rid, 0) + 1
        check(set(count) == set(ids), "the archive lists %d ids, expected %d" % (len(count), len(ids)))
        twice = sorted(k for k, v in count.items() if v != 1)
        check(not twice, "listed more than once in the archive: %s" % twice[:5])
    S.case("crash loop: website: each announcement once", website_once)

    S.case("crash loop: Facebook: each announcement posted once (deleted posts counted too)", lambda: (
        check(set(fb) == set(ids), "posts for %d ids, expected %d (missing %s)" % (
            len(fb), len(ids), sorted(set(ids) - set(fb))[:5])),
        check(all(v == 1 for v in fb.values()), "posted more than once: %s" % sorted(
            (k, v) for k, v in fb.items() if v != 1)[:5])))

    S.case("crash loop: LINE: each announcement broadcast once", lambda: (
        check(set(line) == set(ids), "broadcasts for %d ids, expected %d (missing %s)" % (
            len(line), len(ids), sorted(set(ids) - set(line))[:5])),
        check(all(v == 1 for v in line.values()), "broadcast more than once: %s" % sorted(
            (k, v) for k, v in line.items() if v != 1)[:5])))

    def towers_once():
        for t in w.towers:
            s = t.scheduled_ids()
            check(len(s) == len(set(s)), "tower %d holds an id twice" % t.village)
            # What was dropped for this village, by the name the file had.
            want = sorted(e["id"] for e in entries if t.village in village_of_name[e["source_name"]])
            check(sorted(s) == want, "tower %d has %d ids, expected %d (missing %s, extra %s)" % (
                t.village, len(s), len(want), sorted(set(want) - set(s))[:5], sorted(set(s) - set(want))[:5]))
    S.case("crash loop: towers: each announcement scheduled once on every tower of its villages", towers_once)

    def jobs_state():
        bad = []
        for e in entries:
            states = {j["channel"]: j["state"] for j in e["jobs"]}
            for ch in ("website", "facebook", "line"):
                if states.get(ch) != "done":
                    bad.append((e["id"], ch, states.get(ch)))
            if states.get("tower") not in ("done", "deferred", "sending", "scheduled"):
                bad.append((e["id"], "tower", states.get("tower")))
        check(not bad, "jobs not where they should be: %s" % bad[:8])
    S.case("crash loop: prakat list: website, facebook and line done; tower jobs waiting for their slot", jobs_state)
    S.stop_daemon(d, "crash loop: the last daemon stops cleanly")


S.group("crash_loop", main)
S.finish()
