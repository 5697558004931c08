#!/usr/bin/python3
"""Outages (issue 7), one office with all four channels and one prakatd that stays up throughout:

  - the Facebook API answering 500 for a while,
  - the LINE API answering 429 for a while,
  - neither API answering at all (requests hang past the channel's timeout),
  - the MQTT broker down.

For each: nothing is lost, nothing is doubled once the outage ends, and the daemon backs off while it
lasts -- the requests (or broker connection attempts) made during the outage are counted and must
stay within what the back-off allows (core: retry_min 1 s doubling up to retry_max 5 s, equal jitter;
LINE: 3600/rate_per_hour s between sends after a 429; towers: 1 s doubling up to 60 s).
"""

import os
import sys
import time
from urllib.parse import unquote_plus

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from world import PAGE, World, announcement, require_channels, villages_of  # noqa: E402
from harness import TIMEOUT, Suite, check, require_build, wait_for  # noqa: E402

S = Suite("outage")
require_build(S)
require_channels(S)

FEED = "POST /v*/%s/feed" % PAGE
BROADCAST = "POST /v2/bot/message/broadcast"
GRAPH_500 = {"error": {"message": "An unexpected error has occurred. Please retry your request later.",
                       "type": "OAuthException", "is_transient": True, "code": 2, "fbtrace_id": "AbCdEfOutage"}}
LINE_RATE = 1800  # one send per 2 s after a 429


def attempts_per_window(window, retry_min=1.0, retry_max=5.0):
    """The most attempts one job may make in `window` seconds under the core's back-off: the first at
    once, then after min(retry_min * 2^(n-1), retry_max) with "equal jitter" -- at least half of it,
    and never less than retry_min (src/delivery.c, delivery_backoff)."""
    t, n = 0.0, 1
    while True:
        base = min(retry_min * 2 ** (n - 1), retry_max)
        t += max(retry_min, base / 2)
        if t > window:
            return n
        n += 1


def requests_between(fake, method, suffix, t0, t1, ids):
    """The requests for these announcements (their article URL is in the body) made between t0 and t1."""
    return [r for r in fake.request_log() if r["method"] == method and r["path"].split("?")[0].endswith(suffix)
            and t0 <= r["time"] <= t1 and any("/a/%s.html" % i in unquote_plus(r["body"]).replace("\\/", "/")
                                              for i in ids)]


def main():
    w = World(S, "outage", settle="100ms", line_extra="rate_per_hour = %d\n" % LINE_RATE)
    try:
        w.d.start()
        run(w)
    finally:
        w.stop()


def run(w):
    env, d = w.env, w.d
    seq = iter(range(1000))

    def drop(n, tag):
        names = []
        for _ in range(n):
            i = next(seq)
            name = "%s-%03d.txt" % (tag, i)
            env.drop(name, announcement(i))
            names.append((name, i))
        return names

    def ids_of(names):
        wanted = {n for n, _ in names}
        found = {}
        wait_for(lambda: found.update({e["source_name"]: e["id"] for e in env.list_json()
                                       if e["source_name"] in wanted}) or len(found) == len(wanted),
                 TIMEOUT, "the dropped files in the queue")
        return [found[n] for n, _ in names]

    def wait_once(ids, what, count_fn):
        wait_for(lambda: all(count_fn().get(i, 0) >= 1 for i in ids), TIMEOUT * 2, "%s for %s" % (what, ids))
        time.sleep(1.0)  # a second copy would come now
        counts = count_fn()
        check(all(counts.get(i) == 1 for i in ids), "%s not exactly once: %s" % (what, {i: counts.get(i)
                                                                                         for i in ids}))

    def outage(faults, n, tag, window):
        """Arms faults [(fake, match, kind, params)], drops n announcements, lets window s pass, clears the
        faults; returns (ids, t0, t1), the times on the fakes' clock."""
        for fake, match, kind, params in faults:
            fake.add_fault(match, kind, count=100000, **params)
        t0 = w.fb.now()
        ids = ids_of(drop(n, tag))
        time.sleep(window)
        for fake, _, _, _ in faults:
            fake.clear_faults()
        return ids, t0, w.fb.now()

    def job_state(id, channel):
        for j in env.show_json(id)["jobs"]:
            if j["channel"] == channel:
                return j["state"]
        return None

    # ---- Facebook answers 500 ----
    def facebook_500():
        ids, t0, t1 = outage([(w.fb, FEED, "status", {"status": 500, "body": GRAPH_500})], 3, "fb500", 12.0)
        posts = requests_between(w.fb, "POST", "/feed", t0, t1, ids)
        bound = len(ids) * attempts_per_window(t1 - t0)
        print("# Facebook 500 for %.1f s: %d feed posts tried by %d jobs (back-off allows %d)" % (
            t1 - t0, len(posts), len(ids), bound), flush=True)
        check(len(posts) >= 2 * len(ids), "only %d attempts in %.0f s: it did not retry" % (len(posts), t1 - t0))
        check(len(posts) <= bound, "%d attempts in %.0f s: more than the back-off allows (%d)" % (
            len(posts), t1 - t0, bound))
        wait_once(ids, "Facebook posts", w.fb_counts)
        wait_for(lambda: all(job_state(i, "facebook") == "done" for i in ids), TIMEOUT, "facebook jobs done")
        check(all(w.line_counts().get(i) == 1 for i in ids), "LINE did not go out once meanwhile")
    S.case("outage: Facebook answering 500, back-off respected, then each posted once", facebook_500)

    # ---- LINE answers 429 ----
    def line_429():
        gap = 3600.0 / LINE_RATE
        ids, t0, t1 = outage([(w.line, BROADCAST, "throttle", {})], 3, "line429", 10.0)
        log = requests_between(w.line, "POST", "/broadcast", t0, t1, ids)
        check(len(log) >= 2, "only %d broadcast attempts: it did not retry" % len(log))
        # The first sends go out together, before any 429 is known (one may reach the fake a few ms after
        # the first 429 was answered: it left before that answer arrived); from then on, one at a time.
        first_429 = min(r["time"] + r["duration"] for r in log if r["status"] == 429)
        sends = sorted(r["time"] for r in log if r["time"] > first_429 + 0.1)
        gaps = [b - a for a, b in zip([first_429] + sends, sends)]
        print("# LINE 429 for %.1f s: %d broadcasts tried, %d after the first 429, closest %.2f s apart (after a "
              "429 the channel waits %.1f s)" % (t1 - t0, len(log), len(sends), min(gaps) if gaps else float("nan"),
                                                gap), flush=True)
        check(all(g >= gap * 0.9 for g in gaps), "broadcasts closer than %.1f s after a 429: %s" % (
            gap, ["%.2f" % g for g in gaps]))
        check(len(sends) <= (t1 - t0) / gap + 1, "%d broadcasts in %.0f s" % (len(sends), t1 - t0))
        wait_once(ids, "LINE broadcasts", w.line_counts)
        check(all(w.fb_counts().get(i) == 1 for i in ids), "Facebook did not go out once meanwhile")
    S.case("outage: LINE answering 429, sends spaced as the channel promises, then each sent once", line_429)

    # ---- nothing answers ----
    def no_answer():
        ids, t0, t1 = outage([(w.fb, FEED, "timeout", {"seconds": None}),
                              (w.line, BROADCAST, "timeout", {"seconds": None})], 2, "silent", 9.0)
        posts = requests_between(w.fb, "POST", "/feed", t0, t1, ids)
        sends = requests_between(w.line, "POST", "/broadcast", t0, t1, ids)
        bound = len(ids) * attempts_per_window(t1 - t0)
        print("# no answer for %.1f s (timeout 2 s): %d feed posts, %d broadcasts tried by %d jobs each "
              "(back-off allows %d)" % (t1 - t0, len(posts), len(sends), len(ids), bound), flush=True)
        check(len(posts) >= len(ids) and len(sends) >= len(ids), "not tried during the outage")
        check(len(posts) <= bound and len(sends) <= bound, "more attempts than the back-off allows (%d)" % bound)
        check(d.running(), "prakatd exited")
        wait_once(ids, "Facebook posts", w.fb_counts)
        wait_once(ids, "LINE broadcasts", w.line_counts)
    S.case("outage: Facebook and LINE not answering at all, then each once", no_answer)

    # ---- the broker is down ----
    def broker_down():
        window = 15.0
        log_before = len(d.log())
        w.broker.stop()
        t0 = time.time()
        names = drop(3, "nobroker")
        ids = ids_of(names)
        time.sleep(window)
        tries = d.log()[log_before:].count("Cannot connect to the broker")
        # 1, 2, 4, 8 s apart (+-25 %): at most 5 in 15 s, the first being the lost connection's retry.
        print("# broker down for %.1f s: prakatd tried to connect %d times" % (time.time() - t0, tries), flush=True)
        check(1 <= tries <= 6, "%d connection attempts in %.0f s" % (tries, window))
        check(d.running(), "prakatd exited with the broker down")
        w.broker.start()
        want = {t.village: [id for id, (_, i) in zip(ids, names) if t.village in villages_of(i)] for t in w.towers}
        # The towers reconnect on their own back-off (up to 60 s apart).
        wait_for(lambda: all(set(want[t.village]) <= set(t.scheduled_ids()) for t in w.towers), TIMEOUT * 3,
                 "the towers to get the announcements")
        for t in w.towers:
            s = t.scheduled_ids()
            check(len(s) == len(set(s)), "tower %d holds an id twice" % t.village)
    S.case("outage: broker down, reconnects back off, then every tower gets its announcements once", broker_down)

    def nothing_doubled():
        entries = env.list_json()
        ids = [e["id"] for e in entries]
        fb, line = w.fb_counts(), w.line_counts()
        check(len(set(ids)) == len(ids), "duplicate entries")
        check(all(fb.get(i) == 1 for i in ids), "Facebook: %s" % {i: fb.get(i) for i in ids if fb.get(i) != 1})
        check(all(line.get(i) == 1 for i in ids), "LINE: %s" % {i: line.get(i) for i in ids if line.get(i) != 1})
        check(sorted(w.articles()) == sorted(ids), "article pages differ from the entries")
        check(env.visible_incoming() == [] and os.listdir(env.rejected) == [], "left in incoming/ or rejected/")
    S.case("outage: in the end every announcement once on every channel", nothing_doubled)
    S.stop_daemon(d, "outage: daemon stops cleanly")


S.group("outage", main)
S.finish()
