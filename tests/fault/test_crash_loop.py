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
import math
import os
import random
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from world import World, announcement, require_channels, villages_of  # noqa: E402
from harness import ASAN, TIMEOUT, Suite, check, read_text, require_build, wait_for  # noqa: E402

S = Suite("crash_loop")
require_build(S)
require_channels(S)

N = int(os.environ.get("PRAKAT_CRASH_N", "150" if ASAN else "500"))
KILLS = int(os.environ.get("PRAKAT_CRASH_KILLS", "40" if ASAN else "200"))
seed = int(os.environ.get("PRAKAT_TEST_SEED", str(int(time.time()))))
rng = random.Random(seed)
print("# seed %d (PRAKAT_TEST_SEED=%d reproduces the kill moments); %d announcements, %d kills" %
      (seed, seed, N, KILLS), flush=True)

def main():
    w = World(S, "crash", settle="100ms", website_extra="per_page = 50")
    try:
        run(w)
    finally:
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
