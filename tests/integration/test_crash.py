#!/usr/bin/python3
"""kill -9 during intake and delivery (DESIGN §4): 200 announcements, several SIGKILLs at random
moments, restarts; in the end every one is published exactly once."""

import glob
import os
import random
import re
import sys
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ASAN, TIMEOUT, Suite, check, read_text, require_build, wait_for  # noqa: E402

S = Suite("crash")
require_build(S)

N = 200
CYCLES = 6
seed = int(os.environ.get("PRAKAT_TEST_SEED", str(int(time.time()))))
rng = random.Random(seed)
print("# seed %d (PRAKAT_TEST_SEED=%d reproduces the kill moments)" % (seed, seed), flush=True)

VILLAGE_NAMES = ["บ้านบ่อแก้ว", "บ้านโนนสวรรค์", "บ้านหนองบัว", "บ้านโคกสะอาด", "บ้านดอนแดง"]


def announcement(i):
    v = i % 5 + 1
    return ("หัวข้อ: ประกาศทดสอบลำดับที่ %03d %s\nหมู่บ้าน: %d\nหมวด: %s\n\n"
            "เนื้อหาของประกาศลำดับที่ %03d สำหรับหมู่ที่ %d\n" %
            (i, VILLAGE_NAMES[v - 1], v, "ข่าวกิจกรรม" if i % 2 else "ข่าวประชาสัมพันธ์", i, v))


def main():
    env = S.env("crash", settle="100ms", website_extra="per_page = 20\nfeed_items = 250")
    d = S.daemon(env)
    names = ["n%03d.txt" % i for i in range(N)]
    # Half waits in incoming/ before the first start (taken by the start-up rescan), the rest is
    # dropped while the daemon runs (taken at once, being renamed in), between kills.
    first = N // 2
    for i in range(first):
        env.drop(names[i], announcement(i))
    later = list(range(first, N))
    per_cycle = (len(later) + 3) // 4

    kills = []
    for cycle in range(CYCLES):
        d.start()
        batch, later = later[:per_cycle], later[per_cycle:]
        for i in batch:
            env.drop(names[i], announcement(i))
        before = len(env.receipts())
        if cycle % 3 == 2:
            # Kill in the middle of delivery: as soon as a few more receipts appeared.
            target = before + rng.randint(1, 15)
            try:
                wait_for(lambda: len(env.receipts()) >= target or not d.running(), timeout=TIMEOUT,
                         interval=0.005)
            except Exception:
                pass
            delay = -1.0
        else:
            delay = rng.uniform(0.05, 0.5) * (2 if ASAN else 1)
            time.sleep(delay)
        d.kill9()
        kills.append("%s:+%d receipts" % ("%.2fs" % delay if delay >= 0 else "mid-delivery",
                                          len(env.receipts()) - before))
    # A last one that is allowed to finish.
    for i in later:
        env.drop(names[i], announcement(i))
    d.start()
    print("# kills at %s" % ", ".join(kills), flush=True)

    def all_published():
        def done():
            check(d.running(), "prakatd exited (%s) before publishing everything" % d.proc.returncode)
            return len(env.receipts()) >= N and not env.visible_incoming()
        wait_for(done,
                 timeout=TIMEOUT * 4, what="%d receipts (have %d, %d in incoming)" %
                 (N, len(env.receipts()), len(env.visible_incoming())))
        time.sleep(0.5)  # anything that would still come twice
    S.case("crash: all %d published after %d kill -9" % (N, CYCLES), all_published)

    receipts = env.receipts()
    ids = [r[1] for r in receipts]
    originals = [r[2] for r in receipts]
    print("# receipts %d, distinct ids %d, distinct originals %d" % (len(ids), len(set(ids)), len(set(originals))),
          flush=True)
    S.case("crash: exactly %d receipts, no duplicates" % N, lambda: (
        check(len(receipts) == N, "%d receipts" % len(receipts)),
        check(len(set(ids)) == N, "duplicate ids among receipts"),
        check(sorted(originals) == sorted(names), "originals differ: missing %s, extra %s" % (
            sorted(set(names) - set(originals))[:5], sorted(set(originals) - set(names))[:5])),
        check(all(os.path.exists(os.path.join(r[0], r[2])) for r in receipts),
              "an original is missing beside its receipt")))
    S.case("crash: no leftovers in incoming/, nothing rejected, no temporary folders", lambda: (
        check(env.incoming_names() == [], "incoming: %s" % env.incoming_names()[:10]),
        check(os.listdir(env.rejected) == [], "rejected: %s" % os.listdir(env.rejected)[:10]),
        check(not [n for n in os.listdir(env.published) if n.startswith(".")],
              "temporary folders left in published/: %s" % os.listdir(env.published)[:5])))

    def articles():
        arts = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(env.site, "a", "*.html")))
        print("# article pages %d" % len(arts), flush=True)
        check(arts == sorted(ids), "article pages (%d) differ from receipt ids (%d)" % (len(arts), len(ids)))
        for rid in ids[:: max(1, N // 20)]:
            check("ประกาศทดสอบลำดับที่" in read_text(env.article(rid)), "article %s has no Thai title" % rid)
    S.case("crash: one article page per announcement", articles)

    def listings():
        count = {}
        for p in glob.glob(os.path.join(env.site, "page", "*.html")):
            for rid in re.findall(r'href="[^"]*a/([^"/]+)\.html"', read_text(p)):
                count[rid] = count.get(rid, 0) + 1
        print("# archive pages list %d ids (%d pages)" % (len(count), len(glob.glob(
            os.path.join(env.site, "page", "*.html")))), flush=True)
        check(set(count) == set(ids), "archive pages list %d ids, expected %d (missing %s)" % (
            len(count), N, sorted(set(ids) - set(count))[:5]))
        twice = [k for k, v in count.items() if v != 1]
        check(not twice, "listed more than once in the archive pages: %s" % twice[:5])
    S.case("crash: each id exactly once in the paginated archive", listings)

    def feed():
        root = ET.parse(os.path.join(env.site, "feed.atom")).getroot()
        ns = "{http://www.w3.org/2005/Atom}"
        links = [e.find(ns + "id").text for e in root.findall(ns + "entry")]
        print("# feed entries %d" % len(links), flush=True)
        check(len(links) == N, "%d feed entries, expected %d (feed_items = 250)" % (len(links), N))
        check(len(set(links)) == len(links), "duplicate feed entries")
    S.case("crash: feed has each announcement once", feed)

    def sitemap():
        ns = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
        locs = []
        index = ET.parse(os.path.join(env.site, "sitemap.xml")).getroot()
        for sm in index.findall(ns + "sitemap"):
            loc = sm.find(ns + "loc").text
            local = os.path.join(env.site, loc[len(env.base_url) + 1:])
            for u in ET.parse(local).getroot().findall(ns + "url"):
                locs.append(u.find(ns + "loc").text)
        arts = [u for u in locs if "/a/" in u]
        print("# sitemap article URLs %d" % len(arts), flush=True)
        check(len(arts) == N and len(set(arts)) == N, "sitemap has %d article URLs (%d distinct)" %
              (len(arts), len(set(arts))))
    S.case("crash: sitemap has each announcement once", sitemap)

    def cli():
        entries = env.list_json()
        check(len(entries) == N, "prakat list --all --json: %d entries" % len(entries))
        bad = [e["id"] for e in entries if e["status"] != "finished" or
               [j["state"] for j in e["jobs"]] != ["done"]]
        check(not bad, "not finished with one done job: %s" % bad[:5])
    S.case("crash: prakat list --all shows %d finished" % N, cli)
    S.stop_daemon(d, "crash: final daemon stops cleanly")


S.group("crash", main)
S.finish()
