#!/usr/bin/python3
"""prakat-tower (the agent in each village broadcast tower) against a real mosquitto on 127.0.0.1.

Each case has its own village number, state directory and agent, so the cases run side by side (a few
at a time) against one broker; the broker-restart case has a broker of its own.  The agent's clock is
set with PRAKAT_NOW and runs on from there; Agent.now() is the test's estimate of it, and a restarted
agent continues from that.  The player and TTS commands are a tiny script that appends
"<wall time> start|end <audio|tts> <file or first line of the text>" to the agent's plays.log and sleeps
(0.3 s, or N seconds when the title says secs=N), so a test sees what played, in which order and
whether two plays overlapped.  Nothing asserts speed; every wait polls with a generous timeout.
Under build-asan every agent's stderr must be free of sanitizer reports when it stops.
"""

import http.server
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import (ASAN, SANITIZER_PATTERNS, TIMEOUT, Suite, TestFailure, asan_env,  # noqa: E402
                     check, wait_for)
from mqtt_mini import Broker, MqttClient, MqttError  # noqa: E402
from tower_common import (AGENT, AgentProcess, check_no_overlap, epoch, install_play_script, iso,  # noqa: E402
                          make_pki)

PREFIX = "bokaeo/tower"
PARALLEL = int(os.environ.get("PRAKAT_TOWER_TEST_JOBS", "6"))

S = Suite("tower_agent")
LOCK = threading.Lock()

def topic(village, leaf):
    return "%s/village/%d/%s" % (PREFIX, village, leaf)


def item(id, play_at=(), title=None, **kw):
    """An item in the wire form, with the contract's defaults."""
    o = {"v": 1, "id": id, "title": title if title is not None else id, "text": "ข้อความ " + id,
         "audio_url": None, "play_at": [iso(t) if not isinstance(t, str) else t for t in play_at],
         "repeat": 1, "gap": 5, "priority": "normal", "expires": None}
    o.update(kw)
    return o


class Agent(AgentProcess):
    """prakat-tower on its own config and state, with its own shifted clock."""

    def __init__(self, suite, tag, village, broker, start_at, extra_config="", args=()):
        super().__init__(suite.tmpdir(tag), args)
        self.village = village
        self.broker = broker
        self.base = int(start_at)
        self.wall0 = None
        self.write_config(extra_config)

    def write_config(self, extra=""):
        """The config, with `extra` lines ("key = value") added or replacing the defaults here."""
        keys = {
            "village": str(self.village), "broker": "mqtt://127.0.0.1:%d" % self.broker.port,
            "topic_prefix": PREFIX, "state_dir": self.state,
            "player": "%s %s audio {file}" % (SCRIPT, self.plays_path),
            "tts": "%s %s tts {text}" % (SCRIPT, self.plays_path),
            "late_limit": "30m", "max_play_time": "1m",
        }
        for line in extra.splitlines():
            k, _, value = line.partition("=")
            keys[k.strip()] = value.strip()
        with open(self.conf, "w") as f:
            f.write("[tower]\n" + "".join("%s = %s\n" % kv for kv in keys.items()))

    # ---- the agent's clock ----

    def now(self):
        return self.base + (time.time() - self.wall0 if self.wall0 else 0)

    # ---- process ----

    def start(self, at=None, wait=True, extra_env=None):
        assert not self.running()
        if at is None:
            at = self.now()
        self.base = int(at)
        self.wall0 = time.time()
        self.spawn(dict({"PRAKAT_NOW": iso(self.base)}, **(extra_env or {})))
        if wait:
            self.wait_log("Connected to the broker")
        return self


class Village:
    """One case's world: an agent, an observer on PREFIX/village/N/#, and a publisher (the "daemon")."""

    def __init__(self, tag, village, start_at, broker=None, extra_config="", args=(), start=True,
                 observer_session=False):
        self.village = village
        self.broker = broker or BROKER
        self.agent = Agent(S, tag, village, self.broker, start_at, extra_config, args)
        with LOCK:
            S.daemons.append(self.agent)
        getattr(threading.current_thread(), "agents", []).append(self.agent)
        self.obs_id = "observer-%d" % village
        self.observer_session = observer_session
        self.obs = None
        self.connect_observer()
        self.pub = self.broker.client("daemon-%d" % village)
        if start:
            self.start_agent()

    def start_agent(self):
        self.agent.start()
        # The agent subscribes before it publishes its status, and the broker handles one client's
        # packets in order: once "online" is seen, an announce published now reaches it (before, it
        # would be lost: the agent has no session on the broker yet).
        self.wait_status(lambda s: s.get("state") == "online")

    def connect_observer(self):
        self.obs = MqttClient("127.0.0.1", self.broker.port, self.obs_id,
                              clean_session=not self.observer_session).connect()
        self.obs.subscribe(topic(self.village, "#"), qos=1)

    def close(self, stop_agent=True):
        if stop_agent:
            self.agent.stop()
        for c in (self.obs, self.pub):
            if c:
                c.disconnect()

    # ---- talking like the daemon ----

    def announce(self, obj, action="add"):
        o = dict(obj)
        o["action"] = action
        self.pub.publish(topic(self.village, "announce"), json.dumps(o, ensure_ascii=False), qos=1)

    def cancel(self, id):
        self.pub.publish(topic(self.village, "announce"), json.dumps({"v": 1, "id": id, "action": "cancel"}), qos=1)

    def schedule(self, items, retain=True):
        self.pub.publish(topic(self.village, "schedule"), json.dumps(items, ensure_ascii=False), qos=1,
                         retain=retain)

    def raw(self, leaf, payload, retain=False):
        self.pub.publish(topic(self.village, leaf), payload, qos=1, retain=retain)

    # ---- what the tower said ----

    def acks(self, id=None, state=None):
        out = []
        for m in self.obs.messages(topic(self.village, "ack")):
            a = m.json()
            if isinstance(a, dict) and (id is None or a.get("id") == id) and (state is None or a.get("state") == state):
                out.append(a)
        return out

    def wait_ack(self, id, state, slot=None, detail=None, timeout=None):
        def match(m):
            if m.topic != topic(self.village, "ack"):
                return False
            a = m.json()
            return (isinstance(a, dict) and a.get("id") == id and a.get("state") == state and
                    (slot is None or a.get("slot") == slot) and (detail is None or detail in (a.get("detail") or "")))
        try:
            return self.obs.wait_for(match, timeout or TIMEOUT, "ack %s %s" % (id, state)).json()
        except MqttError as e:
            raise TestFailure("%s; acks so far: %s" % (e, json.dumps(self.acks(), ensure_ascii=False)[:3000]))

    def wait_status(self, predicate, timeout=None):
        def match(m):
            s = m.json()
            return m.topic == topic(self.village, "status") and isinstance(s, dict) and predicate(s)
        try:
            return self.obs.wait_for(match, timeout or TIMEOUT, "a status").json()
        except MqttError as e:
            raise TestFailure(str(e))

    def wait_plays(self, n, timeout=None):
        """Waits until n plays have ended; returns the starts."""
        wait_for(lambda: len([p for p in self.agent.plays() if p[1] == "end"]) >= n, timeout,
                 "%d finished plays in %s" % (n, self.agent.plays_path))
        return self.agent.starts()


def check_ack_shape(a, village):
    check(set(a) == {"id", "state", "at", "detail", "slot", "village"}, "ack keys: %s" % sorted(a))
    check(a["village"] == village, "ack village %r" % a["village"])
    check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", a["at"]), "ack at %r is not ISO 8601 UTC" % a["at"])
    check(a["slot"] is None or re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", a["slot"]), "ack slot %r" % a["slot"])
    check(a["state"] in ("scheduled", "playing", "played", "failed", "skipped"), "ack state %r" % a["state"])


# Cases start their agents at 07:59:5x Bangkok on 26 Nov 2026 unless they need another time.
T0 = epoch("2026-11-26T00:59:50Z")


# ---- the cases ----

def case_retained_schedule():
    v = Village("retained", 1, T0, start=False)
    slot = T0 + 5
    v.schedule([item("ret-1", [slot])])
    v.agent.start(at=T0)
    a = v.wait_ack("ret-1", "scheduled", slot=iso(slot))
    check_ack_shape(a, 1)
    playing = v.wait_ack("ret-1", "playing", slot=iso(slot))
    played = v.wait_ack("ret-1", "played", slot=iso(slot))
    check(epoch(playing["at"]) >= slot, "it started at %s, before its slot %s" % (playing["at"], iso(slot)))
    check(epoch(playing["at"]) <= slot + 10, "it started at %s, long after %s" % (playing["at"], iso(slot)))
    check("text-to-speech" in played["detail"], "played detail: %r" % played["detail"])
    check(v.agent.starts() == ["ret-1"], "plays: %s" % v.agent.plays())
    st = v.wait_status(lambda s: s.get("last_play") and s["last_play"]["id"] == "ret-1")
    check(st["state"] == "online" and st["items"] == 1 and st["version"], "status: %s" % st)
    v.close()


def case_one_slot_two_items():
    v = Village("order", 2, T0)
    slot = int(v.agent.now()) + 4
    v.announce(item("norm-a", [slot]))
    v.announce(item("urg-b", [slot], priority="urgent"))
    v.announce(item("norm-c", [slot]))
    for id in ("urg-b", "norm-a", "norm-c"):
        v.wait_ack(id, "played")
    plays = v.agent.plays()
    check(v.agent.starts() == ["urg-b", "norm-a", "norm-c"], "play order: %s" % plays)
    check_no_overlap(plays)
    v.close()


def case_repeat_gap():
    v = Village("repeat", 3, T0)
    slot = int(v.agent.now()) + 3
    v.announce(item("rep-3", [slot], repeat=3, gap=1))
    played = v.wait_ack("rep-3", "played")
    check("3 of 3" in played["detail"], "detail: %r" % played["detail"])
    check(len(v.acks("rep-3", "playing")) == 3, "playing acks: %s" % v.acks("rep-3"))
    plays = v.agent.plays()
    starts = [p[0] for p in plays if p[1] == "start"]
    ends = [p[0] for p in plays if p[1] == "end"]
    check(len(starts) == 3, "plays: %s" % plays)
    for i in (1, 2):
        check(starts[i] - ends[i - 1] >= 0.9, "gap between plays %d and %d is %.2fs" % (i, i + 1,
                                                                                       starts[i] - ends[i - 1]))
    v.close()


def case_emergency_preempts():
    v = Village("emergency", 4, T0)
    slot = int(v.agent.now()) + 2
    v.announce(item("long-1", [slot], title="long-1 secs=4"))
    v.wait_ack("long-1", "playing")
    wait_for(lambda: v.agent.starts(), None, "the long play to start")
    v.announce(item("emer-1", [], priority="emergency"))
    sch = v.wait_ack("emer-1", "scheduled")
    check(sch["slot"] is None, "an emergency without play_at is acked with slot null: %s" % sch)
    v.wait_ack("emer-1", "played")
    v.wait_ack("long-1", "scheduled", detail="pre-empted")
    v.wait_ack("long-1", "played")
    starts = v.agent.starts()
    check(starts == ["long-1 secs=4", "emer-1", "long-1 secs=4"], "plays: %s" % v.agent.plays())
    check([p[1] for p in v.agent.plays()] == ["start", "killed", "start", "end", "start", "end"],
          "the long play was not stopped before the emergency: %s" % v.agent.plays())
    check_no_overlap(v.agent.plays())
    v.close()


def case_emergency_quiet_hours():
    night = epoch("2026-11-26T15:30:00Z")  # 22:30 in Bangkok: the daemon's quiet hours
    v = Village("quiet", 5, night)
    past = int(v.agent.now()) - 120
    v.announce(item("emer-night", [past], priority="emergency"))
    a = v.wait_ack("emer-night", "scheduled")
    check(a["slot"] == iso(past) and "at once" in a["detail"], "scheduled ack: %s" % a)
    playing = v.wait_ack("emer-night", "playing")
    check(epoch(playing["at"]) - night < 20, "it did not play at once: %s" % playing)
    v.wait_ack("emer-night", "played")
    v.close()


def case_cancel_update():
    v = Village("cancel", 6, T0)
    now = int(v.agent.now())
    v.announce(item("can-1", [now + 4]))
    v.announce(item("upd-1", [now + 30], title="upd-1 old"))
    v.announce(item("rem-1", [now + 40]))
    v.schedule([item("can-1", [now + 4]), item("upd-1", [now + 30], title="upd-1 old"), item("rem-1", [now + 40])])
    v.wait_ack("rem-1", "scheduled")
    v.cancel("can-1")
    s = v.wait_ack("can-1", "skipped")
    check(s["detail"] == "cancelled", "cancel ack: %s" % s)
    v.announce(item("upd-1", [now + 5], title="upd-1 new"), action="update")
    v.wait_ack("upd-1", "scheduled", slot=iso(now + 5))
    # A new complete schedule without rem-1 withdraws it.
    v.schedule([item("upd-1", [now + 5], title="upd-1 new")])
    r = v.wait_ack("rem-1", "skipped")
    check("removed" in r["detail"], "removed ack: %s" % r)
    v.wait_ack("upd-1", "played", slot=iso(now + 5))
    time.sleep(1.5)
    check(v.agent.starts() == ["upd-1 new"], "plays: %s" % v.agent.plays())
    # An add of a known id is ignored and acked again.
    before = len(v.acks("upd-1", "scheduled"))
    v.announce(item("upd-1", [now + 5], title="upd-1 other"))
    wait_for(lambda: len(v.acks("upd-1", "scheduled")) > before, None, "the repeated add to be acked")
    v.close()


def case_expires():
    v = Village("expires", 7, T0)
    now = int(v.agent.now())
    v.announce(item("exp-later", [now + 6], expires=iso(now + 3)))
    v.announce(item("exp-past", [now + 6], expires=iso(now - 60)))
    a = v.wait_ack("exp-past", "skipped")
    check(a["detail"] == "expired", "expired at arrival: %s" % a)
    v.wait_ack("exp-later", "scheduled")
    a = v.wait_ack("exp-later", "skipped")
    check(a["detail"] == "expired", "expired later: %s" % a)
    check(epoch(a["at"]) >= now + 3, "expired too early: %s" % a)
    time.sleep(4)
    check(v.agent.starts() == [], "an expired item played: %s" % v.agent.plays())
    v.close()


def case_broker_restart(root):
    broker = Broker(os.path.join(root, "broker-restart")).start()
    try:
        v = Village("broker", 8, T0, broker=broker, observer_session=True)
        slot = int(v.agent.now()) + 3
        v.announce(item("brk-1", [slot]))
        v.wait_ack("brk-1", "scheduled")
        broker.save()  # the observer's session survives the kill; the agent's need not
        broker.kill()
        v.agent.wait_log("Lost the connection")
        wait_for(lambda: [p for p in v.agent.plays() if p[1] == "end"], None, "the play while the broker is down")
        time.sleep(1)
        broker.start()
        v.connect_observer()
        v.wait_ack("brk-1", "playing")
        v.wait_ack("brk-1", "played")
        v.wait_status(lambda s: s.get("state") == "online" and (s.get("last_play") or {}).get("id") == "brk-1")
        check(v.agent.starts() == ["brk-1"], "plays: %s" % v.agent.plays())
        # Still working after the reconnect.
        slot = int(v.agent.now()) + 2
        v.pub = broker.client("daemon-8b")
        v.announce(item("brk-2", [slot]))
        v.wait_ack("brk-2", "played")
        v.close()
    finally:
        broker.stop()


def case_offline_announce():
    v = Village("offline", 9, T0)
    v.agent.stop()
    check("Stopped." in v.agent.text(since_start=True), "no clean stop:\n" + v.agent.tail())
    st = v.wait_status(lambda s: s.get("state") == "offline")
    check(st.get("reason") == "stopped", "offline status: %s" % st)
    time.sleep(1)
    slot = int(v.agent.now()) + 4
    v.announce(item("off-1", [slot]))  # QoS 1 while the tower is away: the broker keeps it
    v.agent.start()
    v.wait_ack("off-1", "scheduled")
    v.wait_ack("off-1", "played")
    v.close()


def case_restart_no_replay():
    v = Village("replay", 10, T0)
    slot = int(v.agent.now()) + 2
    it = item("rpl-1", [slot])
    v.announce(it)
    v.schedule([it])
    v.wait_ack("rpl-1", "played")
    time.sleep(0.5)
    for how in ("sigterm", "sigkill"):
        if how == "sigterm":
            v.agent.stop()
        else:
            v.obs.clear()
            v.agent.kill9()
            # An agent that vanishes leaves its will: offline, retained, without a reason.
            st = v.wait_status(lambda s: s.get("state") == "offline")
            check("reason" not in st and st.get("village") == 10, "the will: %s" % st)
        v.agent.start()
        time.sleep(2)
        check(v.agent.starts() == ["rpl-1"], "after a %s restart: %s" % (how, v.agent.plays()))
    check(v.agent.text().count("[rpl-1]: ack playing") == 1, "played more than once:\n" + v.agent.tail())
    v.close()


def case_late_limit():
    v = Village("late", 11, T0, start=False)
    v.agent.write_config("late_limit = 60s\n")
    v.start_agent()
    now = int(v.agent.now())
    v.announce(item("late-1", [now + 5]))
    v.announce(item("late-2", [now + 95]))
    v.wait_ack("late-2", "scheduled")
    v.agent.stop()
    # A power cut: the tower is back two minutes later.
    v.agent.start(at=now + 120)
    a = v.wait_ack("late-1", "skipped")
    check(a["detail"] == "late" and a["slot"] == iso(now + 5), "late ack: %s" % a)
    v.wait_ack("late-2", "played")  # 25 s late, within late_limit: never lost
    time.sleep(1)
    check(v.agent.starts() == ["late-2"], "plays: %s" % v.agent.plays())
    v.close()


def case_midnight():
    before = epoch("2026-11-26T16:59:54Z")  # 23:59:54 in Bangkok
    v = Village("midnight", 12, before)
    s1, s2 = epoch("2026-11-26T16:59:58Z"), epoch("2026-11-26T17:00:02Z")  # 23:59:58, then 00:00:02 on the 27th
    v.schedule([item("mid-2", [s2]), item("mid-1", [s1])])
    a1 = v.wait_ack("mid-1", "played", slot=iso(s1))
    a2 = v.wait_ack("mid-2", "played", slot=iso(s2))
    check(epoch(a2["at"]) >= s2 and epoch(a1["at"]) >= s1, "acks: %s %s" % (a1, a2))
    check(v.agent.starts() == ["mid-1", "mid-2"], "plays: %s" % v.agent.plays())
    v.close()


def case_hostile():
    v = Village("hostile", 13, T0)
    bad = [
        b"not json", b"{", b"", b"null", b"[]", b"42", b'"string"',
        b"[" * 100000,
        b"{" + b'"a":' * 50000,
        json.dumps(item("../../../../tmp/owned", [int(v.agent.now()) + 3])).encode(),
        json.dumps(dict(item("a/b", [int(v.agent.now()) + 3]), action="add")).encode(),
        json.dumps(dict(item("bad-action", [int(v.agent.now()) + 3]), action="explode")).encode(),
        json.dumps(dict(item("bad-types"), action="add", play_at="2026-11-26T01:00:00Z")).encode(),
        json.dumps(dict(item("bad-repeat", [int(v.agent.now()) + 3]), action="add", repeat="3")).encode(),
        json.dumps(dict(item("bad-title", [int(v.agent.now()) + 3]), action="add", title=5)).encode(),
        json.dumps(dict(item("bad-time", ["tomorrow"]), action="add")).encode(),
        json.dumps(dict(item("huge-title", [int(v.agent.now()) + 3]), action="add", title="ก" * 5000)).encode(),
        json.dumps(dict(item("bad-url", [int(v.agent.now()) + 3]), action="add", audio_url="file:///etc/passwd")).encode(),
        json.dumps({"v": 2, "id": "future-v", "action": "add"}).encode(),
        b'{"v":1,"id":"dup","id":"dup2","action":"add"}',
        b'{"v":1,"id":"nul\\u0000","action":"add"}',
        b"\xff\xfe\x00garbage",
        b"x" * (10 * 1024 * 1024),
    ]
    for payload in bad:
        v.raw("announce", payload)
    for payload in (b"{}", b"[1,2,3]", b'[{"id":"../x"}]', b"[" * 100000, b"y" * (5 * 1024 * 1024)):
        v.raw("schedule", payload)
    v.pub.publish(PREFIX + "/daemon/status", b"garbage", qos=1)
    # The agent lives on and still plays.
    slot = int(v.agent.now()) + 3
    v.announce(item("after-hostile", [slot]))
    v.wait_ack("after-hostile", "played")
    check(v.agent.running(), "the agent died")
    a = v.wait_ack("bad-action", "failed")
    check("action" in a["detail"], "refusal detail: %s" % a)
    v.wait_ack("huge-title", "failed")
    check(not v.acks("../../../../tmp/owned") and not v.acks("a/b"), "an ack for a bad id: %s" % v.acks())
    check(v.agent.starts() == ["after-hostile"], "plays: %s" % v.agent.plays())
    check(not os.path.exists("/tmp/owned"), "something was written outside the state directory")
    for root, dirs, files in os.walk(v.agent.state):
        for name in files:
            check(name == "state.json" or name.startswith("state.json.tmp-") or root.endswith("/audio"),
                  "unexpected file %s" % os.path.join(root, name))
    log = v.agent.text()
    check("not JSON" in log and "more than" in log, "the log does not explain the refusals:\n" + log[-3000:])
    v.close()


class AudioServer:
    """http.server on 127.0.0.1 serving a few files, counting GETs per path."""

    def __init__(self, files):
        counts = self.counts = {}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                counts[self.path] = counts.get(self.path, 0) + 1
                body = files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "audio/mpeg")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def case_audio():
    data = os.urandom(50000)
    srv = AudioServer({"/rec/a.mp3": data})
    try:
        v = Village("audio", 14, T0)
        now = int(v.agent.now())
        v.announce(item("aud-1", [now + 4], audio_url=srv.url("/rec/a.mp3")))
        v.announce(item("aud-2", [now + 6], audio_url=srv.url("/rec/a.mp3")))
        v.announce(item("aud-404", [now + 8], audio_url=srv.url("/rec/missing.mp3")))
        p = v.wait_ack("aud-1", "playing")
        check("recorded audio" in p["detail"], "playing detail: %s" % p)
        v.wait_ack("aud-2", "played")
        a = v.wait_ack("aud-404", "played")
        check("could not be fetched" in a["detail"] and "404" in a["detail"], "fallback detail: %s" % a)
        plays = [x for x in v.agent.plays() if x[1] == "start"]
        check([x[2] for x in plays] == ["audio", "audio", "tts"], "plays: %s" % plays)
        path = plays[0][3]
        check(path.startswith(os.path.join(v.agent.state, "audio") + "/") and path.endswith(".mp3"),
              "the player got %r" % path)
        with open(path, "rb") as f:
            check(f.read() == data, "the cached file differs from the download")
        check(plays[1][3] == path, "the second item did not use the cached file: %s" % plays)
        check(srv.counts.get("/rec/a.mp3") == 1, "downloads of a.mp3: %s" % srv.counts)
        v.close()
    finally:
        srv.close()


def case_dry_run():
    v = Village("dryrun", 15, T0, args=["--dry-run"])
    v.announce(item("dry-1", [int(v.agent.now()) + 2]))
    v.wait_ack("dry-1", "playing")
    v.wait_ack("dry-1", "played")
    check("would play" in v.agent.text(), "no 'would play' in the log")
    check(v.agent.plays() == [], "a dry run ran the player: %s" % v.agent.plays())
    v.close()


def case_max_play_time():
    v = Village("hang", 16, T0, start=False)
    v.agent.write_config("max_play_time = 2s\n")
    v.start_agent()
    now = int(v.agent.now())
    v.announce(item("hang-1", [now + 2], title="hang-1 secs=60"))
    v.announce(item("next-1", [now + 3]))
    a = v.wait_ack("hang-1", "failed")
    check("max_play_time" in a["detail"], "failed detail: %s" % a)
    v.wait_ack("next-1", "played")
    v.close()


def case_check():
    d = S.tmpdir("check")
    conf = os.path.join(d, "bad.conf")

    def run(text):
        with open(conf, "w") as f:
            f.write(text)
        p = subprocess.run([AGENT, "--config", conf, "--check"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=dict(os.environ, **asan_env()), timeout=60)
        err = p.stderr.decode("utf-8", "replace")
        for pat in SANITIZER_PATTERNS:
            check(pat not in err, "sanitizer report from --check:\n" + err)
        return p.returncode, p.stdout.decode(), err

    good = "[tower]\nvillage = 3\nbroker = mqtt://127.0.0.1:1883\ntopic_prefix = bokaeo/tower\nstate_dir = st\n"
    rc, out, err = run(good)
    check(rc == 0 and "fine" in out, "a good config: rc %d, %s %s" % (rc, out, err))
    rc, out, err = run(good + "colour = blue\n")
    check(rc != 0 and "%s:6:" % conf in err and "colour" in err, "unknown key: rc %d, %s" % (rc, err))
    rc, out, err = run(good.replace("mqtt://127.0.0.1:1883", "http://127.0.0.1"))
    check(rc != 0 and "%s:3:" % conf in err and "mqtt://" in err, "bad broker: rc %d, %s" % (rc, err))
    rc, out, err = run(good.replace("village = 3", "village = 0"))
    check(rc != 0 and "%s:2:" % conf in err, "village 0: rc %d, %s" % (rc, err))
    rc, out, err = run(good + "late_limit = soon\n")
    check(rc != 0 and "%s:6:" % conf in err and "duration" in err, "bad duration: rc %d, %s" % (rc, err))
    rc, out, err = run(good.replace("village = 3\n", ""))
    check(rc != 0 and "village is missing" in err, "missing village: rc %d, %s" % (rc, err))


def case_tls_login(root):
    d = os.path.join(root, "pki")
    os.makedirs(d)
    make_pki(d, "tower", "prakat-tower-19")
    pw = os.path.join(d, "broker.passwd")
    open(pw, "w").close()
    for user, password in (("tower-19", "ความลับ-19"), ("daemon", "d-secret")):
        p = subprocess.run(["mosquitto_passwd", "-b", pw, user, password], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        check(p.returncode == 0, "mosquitto_passwd: %s" % p.stdout)
    tls = ("cafile %s/ca.crt\ncertfile %s/server.crt\nkeyfile %s/server.key\nrequire_certificate true\n"
           "use_identity_as_username false\npassword_file %s\n" % (d, d, d, pw))
    broker = Broker(os.path.join(root, "broker-tls"), extra_config=tls, allow_anonymous=False).start()
    try:
        ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))
        ctx.load_cert_chain(os.path.join(d, "tower.crt"), os.path.join(d, "tower.key"))
        obs = MqttClient("localhost", broker.port, "observer-19", username="daemon", password="d-secret",
                         ssl_context=ctx).connect()
        obs.subscribe(topic(19, "#"), qos=1)
        secret = os.path.join(d, "tower.password")
        with open(secret, "w") as f:
            f.write("ความลับ-19\n")
        os.chmod(secret, 0o644)
        agent = Agent(S, "tls", 19, broker, T0)
        threading.current_thread().agents.append(agent)
        S.daemons.append(agent)
        agent.write_config("broker = mqtts://localhost:%d\nca_file = %s/ca.crt\ncert_file = %s/tower.crt\n"
                           "key_file = %s/tower.key\nusername = tower-19\npassword_file = %s\n" % (
                               broker.port, d, d, d, secret))
        # A password file others may read is refused, with the fix.
        agent.start(wait=False)
        rc = agent.proc.wait(timeout=TIMEOUT)
        check(rc == 78 and "chmod 0600" in agent.text(), "world-readable password file: rc %s, %s" % (rc, agent.tail()))
        os.chmod(secret, 0o600)
        agent.start()
        obs.wait_for(lambda m: m.topic == topic(19, "status") and (m.json() or {}).get("state") == "online",
                     TIMEOUT, "the tower online over TLS")
        pub = MqttClient("localhost", broker.port, "daemon-19", username="daemon", password="d-secret",
                         ssl_context=ctx).connect()
        pub.publish(topic(19, "announce"), json.dumps(dict(item("tls-1", [int(agent.now()) + 2]), action="add")), qos=1)
        obs.wait_for(lambda m: m.topic == topic(19, "ack") and (m.json() or {}).get("state") == "played",
                     TIMEOUT, "played over TLS")
        agent.stop()
        # The broker's certificate must verify: with another CA the tower does not connect (and says so).
        agent.write_config("broker = mqtts://localhost:%d\nca_file = %s/other-ca.crt\ncert_file = %s/tower.crt\n"
                           "key_file = %s/tower.key\nusername = tower-19\npassword_file = %s\n" % (
                               broker.port, d, d, d, secret))
        agent.start(wait=False)
        agent.wait_log("Cannot connect to the broker")
        check("Connected to the broker" not in agent.text(since_start=True), "connected with the wrong CA")
        agent.stop()
        pub.disconnect()
        obs.disconnect()
    finally:
        broker.stop()


RENDER_SCRIPT = r"""#!/bin/sh
# render.sh LOG FILE TEXT: a TTS that writes its speech into FILE.
printf '%s\n' "$3" > "$2"
printf '%s render tts %s\n' "$(date +%s.%N)" "$(printf '%s\n' "$3" | head -n 1)" >> "$1"
"""


def case_tts_to_file():
    v = Village("render", 17, T0, start=False)
    render = os.path.join(v.agent.tmp, "render.sh")
    with open(render, "w") as f:
        f.write(RENDER_SCRIPT)
    os.chmod(render, 0o755)
    v.agent.write_config("tts = %s %s {file} {text}\n" % (render, v.agent.plays_path))
    v.start_agent()
    v.announce(item("rnd-1", [int(v.agent.now()) + 2], title="สวัสดี rnd-1"))
    v.wait_ack("rnd-1", "played")
    plays = v.agent.plays()
    check([p[1] for p in plays] == ["render", "start", "end"], "plays: %s" % plays)
    speech = os.path.join(v.agent.state, "speech.wav")
    check(plays[1][2] == "audio" and plays[1][3] == speech, "the player did not get the speech file: %s" % plays)
    with open(speech, encoding="utf-8") as f:
        check(f.read().startswith("สวัสดี rnd-1\n"), "speech file content")
    v.close()


class Notify:
    """A NOTIFY_SOCKET the test binds; collects every datagram as a dict."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []

    def poll(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line))

    def wait(self, key, value, since=0):
        def seen():
            self.poll()
            return any(m.get(key) == value for m in self.messages[since:])
        wait_for(seen, None, "%s=%s on NOTIFY_SOCKET" % (key, value))
        return len(self.messages)


def case_sd_notify():
    v = Village("notify", 18, T0, start=False)
    notify = Notify(os.path.join(v.agent.tmp, "notify.sock"))
    v.agent.start(extra_env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"})
    n = notify.wait("READY", "1")
    notify.poll()
    check(any("STATUS" in m for m in notify.messages), "no STATUS=: %s" % notify.messages)
    notify.wait("WATCHDOG", "1", since=n)
    notify.wait("WATCHDOG", "1", since=len(notify.messages))
    v.agent.proc.send_signal(signal.SIGTERM)
    notify.wait("STOPPING", "1")
    v.close()


# ---- running them ----

def run_case(name, fn, *args):
    """Runs one case in a pool thread; returns (name, ok, reason, the agents it started)."""
    agents = threading.current_thread().agents = []
    try:
        fn(*args)
    except TestFailure as e:
        return name, False, str(e), agents
    except Exception as e:  # a bug in the test or an unexpected state: still one FAIL line
        return name, False, "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc(limit=4)), agents
    finally:
        for a in agents:
            if a.running():
                a.stop()
    return name, True, "", agents


def main():
    global SCRIPT, BROKER
    if not os.access(AGENT, os.X_OK):
        S.result("tower_agent: build present", False, "%s is missing (run make)" % AGENT)
        S.finish()
    root = S.tmpdir("run")
    SCRIPT = install_play_script(root)
    BROKER = Broker(os.path.join(root, "broker")).start()
    cases = [
        ("retained schedule before the agent starts: plays at its slot, acks scheduled/playing/played",
         case_retained_schedule),
        ("two items in one slot: one after another, urgent first, no overlap", case_one_slot_two_items),
        ("repeat 3 with a gap of 1 s", case_repeat_gap),
        ("emergency pre-empts a playing item, which plays again after it", case_emergency_preempts),
        ("emergency plays at once in quiet hours", case_emergency_quiet_hours),
        ("cancel, update, add of a known id, schedule replacement", case_cancel_update),
        ("expires: at arrival and before the slot", case_expires),
        ("broker killed and restarted: the play happens, acks arrive after the reconnect", case_broker_restart,
         root),
        ("agent offline during an announce gets it when it returns (persistent session)", case_offline_announce),
        ("agent restart (SIGTERM and SIGKILL) does not replay a played slot", case_restart_no_replay),
        ("slot missed by more than late_limit is skipped, one within it still plays", case_late_limit),
        ("schedule across midnight in Bangkok", case_midnight),
        ("hostile payloads are logged and ignored; the agent goes on", case_hostile),
        ("audio_url downloaded once into the cache; a 404 falls back to TTS", case_audio),
        ("--dry-run logs instead of playing and still acks", case_dry_run),
        ("a player hanging past max_play_time is killed and acked failed", case_max_play_time),
        ("--check: a bad config gives FILE:LINE and a non-zero exit", case_check),
        ("tts with {file}: the speech is written, then played by the player", case_tts_to_file),
        ("sd_notify: READY, STATUS, WATCHDOG while idle, STOPPING", case_sd_notify),
        ("TLS with a CA file and a client certificate, broker login from a 0600 password file", case_tls_login,
         root),
    ]
    try:
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            futures = [pool.submit(run_case, c[0], c[1], *c[2:]) for c in cases]
            for f in futures:
                name, ok, reason, agents = f.result()
                with LOCK:
                    if ok:
                        S.result(name, True)
                    else:
                        S._fail(name, reason, show=agents)
    finally:
        BROKER.stop()
    # Every agent was stopped by its case; what remains is the sanitizer verdict.
    for d in list(S.daemons):
        if d.running():
            d.stop()
    dirty = [d for d in S.daemons if d.problems]
    S.result("agents exit cleanly%s" % (" with no sanitizer report" if ASAN else ""), not dirty,
             "; ".join("%s: %s" % (d.tmp, "; ".join(d.problems)) for d in dirty))
    S.daemons = []
    S.finish()


SCRIPT = None
BROKER = None

if __name__ == "__main__":
    main()
