#!/usr/bin/python3
"""The tower channel (channels/tower) in prakatd, against a real mosquitto on 127.0.0.1, with real
prakat-tower agents and simulated towers (mqtt_mini clients that ack like a tower).

Each case has its own daemon, topic prefix and MQTT client ids, so the cases run side by side
against one broker; the broker-restart case has a broker of its own.  Clocks are set with
PRAKAT_NOW a few seconds before a slot and run on from there (Clock); a process started later gets
the clock's current value, so daemon and towers agree to about a second.  Nothing asserts speed:
every wait polls with a generous timeout.  Under build-asan every daemon and agent must stop with
no sanitizer report.

A daemon with a tower job still waiting for acks takes the core's stop grace (10 s) to stop: the
job stays "sending" and is resumed after the next start, which is what the restart case relies on.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import (ASAN, BUILD, PRAKATD, SANITIZER_PATTERNS, TIMEOUT, Daemon, Suite, TestFailure,  # noqa: E402
                     asan_env, check, wait_for)
from mqtt_mini import Broker, MqttClient, MqttError  # noqa: E402
from tower_common import (AGENT, AgentProcess, check_no_overlap, epoch, install_play_script, iso,  # noqa: E402
                          make_pki)

PARALLEL = int(os.environ.get("PRAKAT_TOWER_TEST_JOBS", "6"))

S = Suite("tower_channel")
LOCK = threading.Lock()

class Clock:
    """A shifted clock shared by one case's processes: starts at `start` and runs with the wall clock."""

    def __init__(self, start):
        self.base = start
        self.wall0 = time.time()

    def now(self):
        return self.base + (time.time() - self.wall0)

    def iso(self):
        return iso(self.now())

    def env(self):
        return {"PRAKAT_NOW": self.iso()}


def villages_section(n):
    return "[villages]\n" + "".join("%d = บ้านทดสอบ %d\n" % (v, v) for v in range(1, n + 1))


class World:
    """One case: a daemon with a tower channel on its own prefix, an observer on PREFIX/#."""

    def __init__(self, tag, clock, villages="1-3", n_villages=5, extra="", broker=None, channel_extra="",
                 broker_url=None, host="127.0.0.1", client_kwargs=None):
        if broker is None:
            # A broker of its own: prakat-tower's client id is fixed per village (prakat-tower-N),
            # so cases sharing a broker would take each other's sessions.
            broker = Broker(S.tmpdir(tag + "-broker")).start()
            threading.current_thread().brokers.append(broker)
        self.broker = broker
        self.host = host
        self.client_kwargs = client_kwargs or {}
        self.tag = tag
        self.clock = clock
        self.prefix = "bokaeo/%s" % tag
        self.client_id = "prakatd-%s" % tag
        self.env = S.env(tag)
        self.tower_config = ("[channel tower]\nplugin = tower\nbroker = %s\ntopic_prefix = %s\n"
                             "villages = %s\nclient_id = %s\ngap = 1s\nconfirm_within = 2m\n%s" % (
                                 broker_url or "mqtt://127.0.0.1:%d" % self.broker.port, self.prefix, villages,
                                 self.client_id, extra))
        self.write_config(n_villages, channel_extra)
        self.daemon = Daemon(self.env)
        with LOCK:
            S.daemons.append(self.daemon)
        threading.current_thread().procs.append(self.daemon)
        self.obs = None
        self.connect_observer()
        self.agents = {}

    def write_config(self, n_villages=5, channel_extra=""):
        text = self.env.config_text(extra_config=self.tower_config + channel_extra)
        text = text.replace(harness.VILLAGES, villages_section(n_villages))
        self.env.write_config(text=text)

    def connect_observer(self):
        self.obs = MqttClient(self.host, self.broker.port, "obs-%s" % self.tag, **self.client_kwargs).connect()
        self.obs.subscribe(self.prefix + "/#", qos=1)

    def topic(self, village, leaf):
        return "%s/village/%d/%s" % (self.prefix, village, leaf)

    def start(self):
        self.daemon.start(extra_env=self.clock.env())
        return self

    def drop(self, name, text):
        return self.env.drop(name, text)

    # ---- what went over the broker ----

    def last(self, topic):
        msgs = self.obs.messages(topic)
        return msgs[-1] if msgs else None

    def wait_msg(self, predicate, what, timeout=None):
        try:
            return self.obs.wait_for(predicate, timeout or TIMEOUT, what)
        except MqttError as e:
            raise TestFailure("%s; seen: %s" % (e, [(m.topic, m.payload[:160]) for m in self.obs.messages()][-30:]))

    def wait_schedule(self, village, predicate, what="a schedule"):
        t = self.topic(village, "schedule")

        def match(m):
            s = m.json()
            return m.topic == t and isinstance(s, list) and predicate(s)
        return self.wait_msg(match, "%s for village %d" % (what, village)).json()

    def wait_ack(self, village, id, state, timeout=None):
        t = self.topic(village, "ack")
        return self.wait_msg(lambda m: m.topic == t and (m.json() or {}).get("id") == id and
                             (m.json() or {}).get("state") == state,
                             "ack %s %s from village %d" % (id, state, village), timeout).json()

    def tower_job(self, id):
        try:
            j = self.env.show_json(id)
        except (TestFailure, ValueError):
            return None
        for job in j.get("jobs", []):
            if job.get("channel") == "tower":
                return job
        return None

    def wait_receipt(self, name, timeout=None):
        folder, id, text = self.env.wait_published(name, timeout or TIMEOUT * 2)
        m = re.search(r"^- tower: (\S+).*\n(?:  .*\n)*?  note: (.*)$", text, re.M)
        check(m, "no tower line with a note in the receipt:\n" + text)
        return m.group(1), m.group(2), text

    def close(self):
        self.obs.disconnect()


class Agent(AgentProcess):
    """A real prakat-tower for one village; plays with the logging script (or --dry-run)."""

    def __init__(self, world, village, dry_run=False, late_limit="30m"):
        super().__init__(S.tmpdir("%s-agent%d" % (world.tag, village)), ["--dry-run"] if dry_run else [])
        self.world = world
        self.village = village
        with open(self.conf, "w") as f:
            f.write("[tower]\nvillage = %d\nbroker = mqtt://127.0.0.1:%d\ntopic_prefix = %s\nstate_dir = %s\n"
                    "player = %s %s audio {file}\ntts = %s %s tts {text}\nlate_limit = %s\nmax_play_time = 1m\n" % (
                        village, world.broker.port, world.prefix, self.state, SCRIPT, self.plays_path, SCRIPT,
                        self.plays_path, late_limit))
        world.agents[village] = self
        with LOCK:
            S.daemons.append(self)
        threading.current_thread().procs.append(self)

    def start(self, wait=True):
        self.spawn(self.world.clock.env())
        if wait:
            wait_for(lambda: "Connected to the broker" in self.text(True) or not self.running(), None,
                     "prakat-tower %d connected" % self.village)
            check(self.running(), "prakat-tower %d exited:\n%s" % (self.village, self.tail()))
        return self


class SimTower:
    """A simulated tower: follows its village's announce and schedule topics and acks every item it
    has not seen before: scheduled, then (when `play`) playing and played for each play_at instant.
    A cancel is acked skipped/cancelled.  A persistent session, as the real agent has."""

    def __init__(self, world, village, play=True):
        self.world = world
        self.village = village
        self.play = play
        self.seen = set()
        self.client = None
        self.stopped = False
        self.lock = threading.Lock()
        self.connect()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def connect(self):
        c = MqttClient(self.world.host, self.world.broker.port, "sim-%s-%d" % (self.world.tag, self.village),
                       clean_session=False, **self.world.client_kwargs)
        for _ in range(100):
            try:
                c.connect()
                break
            except (OSError, MqttError):
                time.sleep(0.1)
        c.subscribe(self.world.topic(self.village, "announce"), qos=1)
        c.subscribe(self.world.topic(self.village, "schedule"), qos=1)
        with self.lock:
            self.client = c
            self.index = 0

    def ack(self, id, state, slot, detail):
        payload = {"id": id, "state": state, "at": self.world.clock.iso(), "detail": detail, "slot": slot,
                   "village": self.village}
        try:
            self.client.publish(self.world.topic(self.village, "ack"), json.dumps(payload), qos=1)
        except (OSError, MqttError):
            pass

    def handle(self, item, cancel=False):
        id = item.get("id")
        if cancel:
            self.ack(id, "skipped", None, "cancelled")
            return
        if id in self.seen:
            return
        self.seen.add(id)
        for slot in item.get("play_at") or [None]:
            self.ack(id, "scheduled", slot, "scheduled")
            if self.play:
                self.ack(id, "playing", slot, "play 1 of 1: text-to-speech")
                self.ack(id, "played", slot, "played 1 of 1 times (text-to-speech)")

    def run(self):
        while not self.stopped:
            with self.lock:
                c = self.client
                msgs = c.messages()[self.index:]
                self.index += len(msgs)
            for m in msgs:
                o = m.json()
                if m.topic.endswith("/announce") and isinstance(o, dict):
                    self.handle(o, cancel=o.get("action") == "cancel")
                elif m.topic.endswith("/schedule") and isinstance(o, list):
                    for item in o:
                        if isinstance(item, dict):
                            self.handle(item)
            time.sleep(0.05)

    def close(self):
        self.stopped = True
        self.thread.join(timeout=5)
        try:
            self.client.disconnect()
        except (OSError, MqttError):
            pass


# 06:59:50 in Bangkok on 26 Nov 2026: the 07:00 slot is ten seconds away.
BEFORE_SLOT = epoch("2026-11-25T23:59:50Z")
SLOT = epoch("2026-11-26T00:00:00Z")


def announcement(id, title=None, body="เนื้อหาประกาศ", **headers):
    lines = ["ID: %s" % id, "หัวข้อ: %s" % (title or id)]
    lines += ["%s: %s" % (k.replace("_", "-"), v) for k, v in headers.items()]
    return "\n".join(lines) + "\n\n" + body + "\n"


# ---- the cases ----

def case_many_villages():
    """12 villages: 3 real agents and 9 simulated towers; all villages; schedules, announce, acks, receipt."""
    clock = Clock(BEFORE_SLOT)
    w = World("many", clock, villages="1-12", n_villages=12)
    agents = [Agent(w, v, dry_run=True) for v in (1, 2, 3)]
    for a in agents:
        a.start()
    sims = [SimTower(w, v) for v in range(4, 13)]
    w.start()
    w.wait_msg(lambda m: m.topic == w.prefix + "/daemon/status" and (m.json() or {}).get("state") == "online",
               "the daemon's online status")
    w.drop("many.txt", announcement("many-1", title="ประกาศทุกหมู่บ้าน"))
    for v in range(1, 13):
        sch = w.wait_schedule(v, lambda s: [i.get("id") for i in s] == ["many-1"], "the schedule with many-1")
        check(sch[0]["play_at"] == [iso(SLOT)], "village %d play_at %s, expected the 07:00 slot" % (v, sch[0]["play_at"]))
        check(sch[0]["priority"] == "normal" and sch[0]["repeat"] == 1 and sch[0]["gap"] == 1, "item: %s" % sch[0])
        ann = w.wait_msg(lambda m, v=v: m.topic == w.topic(v, "announce"), "the announce of village %d" % v).json()
        check(ann["action"] == "add" and ann["id"] == "many-1" and ann["title"] == "ประกาศทุกหมู่บ้าน", "announce %s" % ann)
    # A retained schedule is there for a tower that subscribes later.
    late = MqttClient("127.0.0.1", w.broker.port, "late-%s" % w.tag).connect()
    late.subscribe(w.topic(7, "schedule"), qos=1)
    m = late.wait_for(lambda m: m.topic == w.topic(7, "schedule"), TIMEOUT, "the retained schedule")
    check(m.retain, "the schedule is not retained")
    late.disconnect()
    state, note, receipt = w.wait_receipt("many.txt")
    check(state == "done", "tower job %s:\n%s" % (state, receipt))
    check("played: villages 1-12" in note, "note: %r" % note)
    check("ออกอากาศแล้ว: หมู่ 1-12" in receipt, "Thai note missing:\n%s" % receipt)
    for a in agents:
        check(a.text().count("Dry run: would play") == 1, "agent %d plays:\n%s" % (a.village, a.tail()))
        check(epoch(w.wait_ack(a.village, "many-1", "playing")["at"]) >= SLOT, "played before its slot")
    # After the plays the schedules are empty again (nothing upcoming).
    for v in (1, 5, 12):
        w.wait_schedule(v, lambda s: s == [], "an empty schedule")
    rc, out, err = w.env.cli("status", "--json")
    status = json.loads(out)
    tower = [c for c in status.get("channels", []) if c.get("name") == "tower"]
    check(tower and tower[0].get("healthy") and "connected to" in tower[0].get("health", ""), "prakat status: %s" % out)
    for s in sims:
        s.close()
    # The will: a daemon that vanishes is "offline" for the towers.
    w.daemon.kill9()
    w.wait_msg(lambda m: m.topic == w.prefix + "/daemon/status" and (m.json() or {}).get("state") == "offline",
               "the daemon's will")
    w.close()


def case_quiet_hours_emergency():
    """22:30 in Bangkok: a normal item goes to tomorrow 07:00 (or stays, where a village's quiet hours
    end earlier); an emergency plays at once everywhere."""
    night = epoch("2026-11-26T15:30:00Z")
    clock = Clock(night)
    w = World("quiet", clock, villages="1-3", extra="quiet_hours.2 = 23:00-05:00\n")
    agents = [Agent(w, v) for v in (1, 2, 3)]
    for a in agents:
        a.start()
    w.start()
    w.drop("night.txt", announcement("night-1", Broadcast_At="2026-11-26 22:35"))
    tomorrow = iso(epoch("2026-11-27T00:00:00Z"))
    for v, expect in ((1, tomorrow), (2, iso(epoch("2026-11-26T15:35:00Z"))), (3, tomorrow)):
        sch = w.wait_schedule(v, lambda s: any(i.get("id") == "night-1" for i in s))
        got = [i for i in sch if i["id"] == "night-1"][0]["play_at"]
        check(got == [expect], "village %d: play_at %s, expected [%s]" % (v, got, expect))
        w.wait_ack(v, "night-1", "scheduled")
    job = wait_for(lambda: w.tower_job("night-1"), None, "the tower job of night-1")
    check("quiet hours" in (job.get("message") or ""), "the note does not say it moved: %s" % job)
    w.drop("fire.txt", announcement("fire-1", title="ไฟไหม้ อพยพด่วน", Priority="ฉุกเฉิน"))
    for a in agents:
        played = w.wait_ack(a.village, "fire-1", "played")
        check(epoch(played["at"]) - night < 60, "the emergency did not play at once: %s" % played)
    state, note, receipt = w.wait_receipt("fire.txt")
    check(state == "done" and "played: villages 1-3" in note, "%s: %s" % (state, note))
    for a in agents:
        check(a.starts() == ["ไฟไหม้ อพยพด่วน"], "village %d played %s" % (a.village, a.plays()))
    w.close()


def case_slot_order_repeat_preempt():
    """One slot, four items: urgent first, then the others in arrival order, never overlapping;
    Repeat 2 with the configured gap; an emergency pre-empts the play in progress."""
    clock = Clock(epoch("2026-11-25T23:59:45Z"))
    w = World("order", clock, villages="1")
    agent = Agent(w, 1)
    agent.start()
    w.start()
    w.drop("a.txt", announcement("ord-a", title="ord-a secs=3", Repeat="2"))
    w.wait_ack(1, "ord-a", "scheduled")
    w.drop("b.txt", announcement("ord-b"))
    w.wait_ack(1, "ord-b", "scheduled")
    w.drop("u.txt", announcement("ord-u", Priority="urgent"))
    w.wait_ack(1, "ord-u", "scheduled")
    sch = w.wait_schedule(1, lambda s: len(s) == 3)
    check([i["id"] for i in sch] == ["ord-a", "ord-b", "ord-u"], "schedule order: %s" % [i["id"] for i in sch])
    check({i["id"]: i["priority"] for i in sch}["ord-u"] == "urgent", "urgent: %s" % sch)
    check(all(i["play_at"] == [iso(SLOT)] for i in sch), "one slot: %s" % sch)
    # While ord-a plays (three seconds), an emergency comes.
    wait_for(lambda: "ord-a secs=3" in agent.starts(), 40, "ord-a to start")
    w.drop("e.txt", announcement("ord-e", Priority="emergency"))
    for id in ("ord-u", "ord-a", "ord-b", "ord-e"):
        w.wait_ack(1, id, "played", timeout=60)
    plays = agent.plays()
    starts = agent.starts()
    check(starts[0] == "ord-u", "urgent did not play first: %s" % plays)
    check("ord-e" in starts and starts.index("ord-e") < starts.index("ord-b"), "the emergency waited: %s" % plays)
    check([p[1] for p in plays if p[3] == "ord-a secs=3"].count("killed") == 1, "no pre-emption: %s" % plays)
    check(starts.count("ord-a secs=3") == 3, "ord-a: two plays plus the pre-empted one: %s" % plays)
    check_no_overlap(plays)
    a_runs = [p for p in plays if p[3] == "ord-a secs=3"]
    ends = [p[0] for p in a_runs if p[1] == "end"]
    begins = [p[0] for p in a_runs if p[1] == "start"]
    check(len(ends) == 2 and begins[-1] - ends[0] >= 0.9, "the gap between the repeats: %s" % plays)
    for name in ("a.txt", "b.txt", "u.txt", "e.txt"):
        state, note, _ = w.wait_receipt(name)
        check(state == "done" and "played: village 1" in note, "%s: %s %s" % (name, state, note))
    w.close()


def case_midnight():
    """23:59:45 with slots 00:00 and 12:00: the item plays at midnight, on the next day."""
    clock = Clock(epoch("2026-11-26T16:59:45Z"))
    w = World("midnight", clock, villages="1-2", extra="slots = 00:00, 12:00\nquiet_hours = none\n")
    agent = Agent(w, 1, dry_run=True)
    agent.start()
    sim = SimTower(w, 2)
    w.start()
    w.drop("m.txt", announcement("mid-1"))
    sch = w.wait_schedule(1, lambda s: len(s) == 1)
    check(sch[0]["play_at"] == ["2026-11-26T17:00:00Z"], "play_at %s, expected midnight of the 27th" % sch[0]["play_at"])
    played = w.wait_ack(1, "mid-1", "played", timeout=60)
    check(epoch(played["at"]) >= epoch("2026-11-26T17:00:00Z"), "played before midnight: %s" % played)
    state, note, _ = w.wait_receipt("m.txt")
    check(state == "done" and "2026-11-27 00:00" in note, "%s: %s" % (state, note))
    sim.close()
    w.close()


def case_broker_restart(root):
    """The broker is killed (losing everything it had not saved) while the daemon publishes, and
    again while the towers play: nothing is lost, the job ends with every village played."""
    broker = Broker(os.path.join(root, "broker-restart")).start()
    try:
        clock = Clock(epoch("2026-11-25T23:59:35Z"))
        w = World("brk", clock, villages="1-6", n_villages=6, broker=broker)
        agents = [Agent(w, v, dry_run=True) for v in (1, 2)]
        for a in agents:
            a.start()
        sims = [SimTower(w, v, play=True) for v in range(3, 7)]
        w.start()
        w.daemon.wait_log("Connected to the broker")
        w.drop("brk.txt", announcement("brk-1"))
        w.daemon.wait_log("Planned for 6 towers")
        broker.kill()  # mid-publish: no save, so sessions and retained messages are gone
        w.daemon.wait_log("Lost the connection")
        wait_for(lambda: w.tower_job("brk-1"), None, "the tower job")
        time.sleep(1)
        broker.start()
        w.connect_observer()
        for s in sims:
            s.connect()
        for v in range(1, 7):
            w.wait_schedule(v, lambda s: any(i.get("id") == "brk-1" for i in s), "the schedule again")
        for a in agents:
            w.wait_ack(a.village, "brk-1", "scheduled")
        # Second kill: the towers play at 07:00 while the broker is away; their acks come later.
        broker.save()
        broker.kill()
        wait_for(lambda: all("Dry run: would play" in a.text() for a in agents), 60, "the plays without a broker")
        time.sleep(1)
        broker.start()
        w.connect_observer()
        for s in sims:
            s.connect()
        state, note, receipt = w.wait_receipt("brk.txt", timeout=90)
        check(state == "done" and "played: villages 1-6" in note, "%s: %s\n%s" % (state, note, receipt))
        for a in agents:
            check(a.text().count("Dry run: would play") == 1, "village %d played twice:\n%s" % (a.village, a.tail()))
        for s in sims:
            s.close()
        w.close()
    finally:
        broker.stop()


def case_agent_offline():
    """A tower that is off during the publish gets its schedule when it comes back, and plays."""
    clock = Clock(BEFORE_SLOT)
    w = World("offline", clock, villages="1-2")
    a1, a2 = Agent(w, 1, dry_run=True), Agent(w, 2, dry_run=True)
    a1.start()
    w.start()
    w.drop("off.txt", announcement("off-1"))
    w.wait_ack(1, "off-1", "played", timeout=60)
    job = wait_for(lambda: (lambda j: j if j and "played: village 1" in (j.get("message") or "") else None)(
        w.tower_job("off-1")), None, "a note with village 1 played")
    check(job["state"] == "sending", "the job ended without village 2: %s" % job)
    check(re.search(r"sent, no answer yet: village 2", job["message"]), "note: %s" % job["message"])
    a2.start()  # five seconds after the slot: within late_limit, so it still plays
    w.wait_ack(2, "off-1", "played")
    state, note, _ = w.wait_receipt("off.txt")
    check(state == "done" and "played: villages 1-2" in note, "%s: %s" % (state, note))
    w.close()


def case_restarts():
    """The daemon is killed after the publish and comes back after the slot; an agent restarts in
    between: the job resumes from the state folder, the acks queued by the broker arrive, nothing plays twice."""
    clock = Clock(epoch("2026-11-25T23:59:42Z"))
    w = World("restart", clock, villages="1-2")
    agents = [Agent(w, v, dry_run=True) for v in (1, 2)]
    for a in agents:
        a.start()
    w.start()
    w.drop("r.txt", announcement("rst-1"))
    for a in agents:
        w.wait_ack(a.village, "rst-1", "scheduled")
    wait_for(lambda: (w.tower_job("rst-1") or {}).get("message"), None, "a note")
    w.daemon.kill9()
    agents[0].stop()
    agents[0].start()
    wait_for(lambda: all("Dry run: would play" in a.text() for a in agents), 60, "the plays while prakatd is down")
    time.sleep(1)
    w.start()  # the clock goes on: PRAKAT_NOW is now after the slot
    state, note, receipt = w.wait_receipt("r.txt")
    check(state == "done" and "played: villages 1-2" in note, "%s: %s\n%s" % (state, note, receipt))
    check("(2 attempts)" in receipt, "the job was not resumed:\n%s" % receipt)
    check("interrupted" in w.daemon.log(since_start=True), "no resume in the log")
    for a in agents:
        check(a.text().count("Dry run: would play") == 1, "village %d played twice:\n%s" % (a.village, a.tail()))
    # Two hours later (a finished item has left memory and is read back from its file), a Cancel
    # still reaches every tower that had it.
    w.daemon.stop()
    clock.base += 2 * 3600
    w.start()
    w.drop("rc.txt", announcement("rst-x", Cancel="rst-1"))
    state, note, _ = w.wait_receipt("rc.txt")
    check(state == "done" and "withdrawn from the towers of villages 1-2 (2 had already played it)" in note,
          "%s: %s" % (state, note))
    check("[rst-1/tower]: Read back from" in w.daemon.log(since_start=True), "not read back from its file")
    for a in agents:
        w.wait_ack(a.village, "rst-1", "skipped")
    w.close()


def case_hostile_acks():
    """Malformed and hostile ack payloads are logged and ignored; the daemon goes on."""
    clock = Clock(BEFORE_SLOT)
    w = World("hostile", clock, villages="1")
    w.start()
    w.drop("h.txt", announcement("hos-1"))
    w.wait_schedule(1, lambda s: len(s) == 1)
    pub = MqttClient("127.0.0.1", w.broker.port, "hostile-%s" % w.tag).connect()
    good = {"id": "hos-1", "state": "played", "at": iso(SLOT), "detail": "x", "slot": iso(SLOT), "village": 1}
    bad = [b"", b"not json", b"{", b"null", b"[]", b"42", b'"played"', b"[" * 100000, b'{"a":' * 50000,
           b"\xff\xfe\x00garbage", os.urandom(4096), b"x" * 200000,
           json.dumps(dict(good, state="exploded")).encode(),
           json.dumps(dict(good, id="../../etc/passwd")).encode(),
           json.dumps(dict(good, id=5)).encode(),
           json.dumps(dict(good, slot="yesterday")).encode(),
           json.dumps(dict(good, slot=12345)).encode(),
           json.dumps(dict(good, village=2)).encode(),
           json.dumps(dict(good, detail={"nested": [1, 2, 3]})).encode(),
           json.dumps(dict(good, id="no-such-item")).encode(),
           json.dumps(dict(good, slot=iso(SLOT + 3600))).encode(),
           b'{"id":"hos-1","id":"hos-1","state":"played"}']
    for payload in bad:
        pub.publish(w.topic(1, "ack"), payload, qos=1)
    for t in ("%s/village/0/ack" % w.prefix, "%s/village/1000/ack" % w.prefix, "%s/village/abc/ack" % w.prefix,
              "%s/village/007/ack" % w.prefix):
        pub.publish(t, json.dumps(good), qos=1)
    time.sleep(1)
    check(w.daemon.running(), "prakatd died:\n" + w.daemon.tail())
    job = w.tower_job("hos-1")
    check(job and job["state"] == "sending", "a bad ack ended the job: %s" % job)
    log = w.daemon.log()
    check("not a JSON object" in log and "malformed" in log and "only counted" in log,
          "malformed acks not logged (or not limited):\n" + w.daemon.tail())
    # A good ack still counts.
    pub.publish(w.topic(1, "ack"), json.dumps(good), qos=1)
    state, note, _ = w.wait_receipt("h.txt")
    check(state == "done" and "played: village 1" in note, "%s: %s" % (state, note))
    pub.disconnect()
    w.close()


def case_cancel_replace():
    """Cancel withdraws an item from every tower (cancel + a schedule without it); Replaces
    withdraws the old id and schedules the new one."""
    clock = Clock(epoch("2026-11-25T23:00:00Z"))  # 06:00: the slot is an hour away
    w = World("cancel", clock, villages="1-2")
    agents = [Agent(w, v, dry_run=True) for v in (1, 2)]
    for a in agents:
        a.start()
    w.start()
    w.drop("c1.txt", announcement("can-a"))
    for a in agents:
        w.wait_ack(a.village, "can-a", "scheduled")
    # Every tower has it and the slot is an hour away: the job waits in the core, not "sending",
    # with the towers' progress as its note, so that a Cancel can come.
    job = wait_for(lambda: (lambda j: j if j and j["state"] == "deferred" else None)(w.tower_job("can-a")), None,
                   "the tower job waiting for its slot")
    check("scheduled: villages 1-2" in (job.get("message") or ""), "note while waiting: %s" % job)
    w.drop("c2.txt", announcement("can-x", Cancel="can-a", body="ประกาศผิด"))
    for a in agents:
        t = w.topic(a.village, "ack")
        w.wait_msg(lambda m, t=t: m.topic == t and (m.json() or {}).get("id") == "can-a" and
                   (m.json() or {}).get("detail") == "cancelled", "can-a cancelled in village %d" % a.village)
        w.wait_schedule(a.village, lambda s: not any(i.get("id") == "can-a" for i in s), "a schedule without can-a")
    state, note, _ = w.wait_receipt("c2.txt")
    check(state == "done" and "withdrawn from the towers of villages 1-2" in note, "cancel: %s: %s" % (state, note))
    state, note, _ = w.wait_receipt("c1.txt")
    check(state == "cancelled" and "withdrawn by can-x" in note, "the withdrawn one: %s: %s" % (state, note))
    w.drop("r1.txt", announcement("rep-b", title="นัดประชุม 9 โมง"))
    for a in agents:
        w.wait_ack(a.village, "rep-b", "scheduled")
    w.drop("r2.txt", announcement("rep-c", title="นัดประชุม 10 โมง", Replaces="rep-b"))
    for a in agents:
        w.wait_ack(a.village, "rep-b", "skipped")
        w.wait_ack(a.village, "rep-c", "scheduled")
        w.wait_schedule(a.village, lambda s: [i.get("id") for i in s] == ["rep-c"], "only rep-c")
    # The replaced one's job ends when the core gives it back (at its slot); the plugin knows now.
    w.daemon.wait_log("[rep-b/tower]: Withdrawn from the towers: replaced by rep-c")
    w.close()


def case_config_errors():
    """prakatd --check: a bad [channel tower] gives FILE:LINE and a non-zero exit."""
    clock = Clock(BEFORE_SLOT)
    w = World("config", clock, villages="1-3")
    secret = os.path.join(w.env.tmp, "broker.password")
    with open(secret, "w") as f:
        f.write("s3cret\n")
    os.chmod(secret, 0o644)

    def run(extra):
        w.write_config(channel_extra=extra)
        p = subprocess.run([PRAKATD, "--config", w.env.conf, "--check"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=dict(os.environ, **asan_env()), timeout=60)
        err = p.stderr.decode("utf-8", "replace")
        for pat in SANITIZER_PATTERNS:
            check(pat not in err, "sanitizer report from --check:\n" + err)
        return p.returncode, err, w.env.config_text

    def line_of(key):
        with open(w.env.conf, encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if line.startswith(key):
                    return i
        return None

    rc, err, _ = run("")
    check(rc == 0, "a good config: rc %d: %s" % (rc, err))
    for extra, key, words in (("colour = blue\n", "colour", "unknown key"),
                              ("slots = morning\n", "slots", "slots"),
                              ("quiet_hours.4 = late\n", "quiet_hours.4", "quiet_hours"),
                              ("quiet_hours = 25:00-06:00\n", "quiet_hours =", "quiet_hours"),
                              ("username = daemon\npassword_file = %s\n" % secret, "password_file", "chmod 0600")):
        rc, err, _ = run(extra)
        check(rc != 0 and ("%s:%d:" % (w.env.conf, line_of(key))) in err and words in err,
              "%r: rc %d, %s" % (extra, rc, err.strip()))
    w.tower_config = w.tower_config.replace("villages = 1-3\n", "")
    rc, err, _ = run("")
    check(rc != 0 and "villages is missing" in err, "missing villages: rc %d, %s" % (rc, err))
    w.close()


def case_wait_between_slots():
    """A job whose slot is more than a minute away waits in the core ("deferred", its note the towers'
    progress) and is taken up again at the slot; a daemon stop meanwhile does not wait for it."""
    clock = Clock(epoch("2026-11-25T23:58:45Z"))  # 06:58:45: the slot is 75 seconds away
    w = World("between", clock, villages="1-2")
    agents = [Agent(w, v, dry_run=True) for v in (1, 2)]
    for a in agents:
        a.start()
    w.start()
    w.drop("bw.txt", announcement("bw-1"))
    job = wait_for(lambda: (lambda j: j if j and j["state"] == "deferred" else None)(w.tower_job("bw-1")), None,
                   "the job waiting for its slot")
    check("scheduled: villages 1-2" in job["message"], "note: %s" % job)
    started = time.monotonic()
    w.daemon.stop()
    check(time.monotonic() - started < 8, "the stop waited for the deferred job")
    w.start()
    state, note, receipt = w.wait_receipt("bw.txt", timeout=150)
    check(state == "done" and "played: villages 1-2" in note, "%s: %s\n%s" % (state, note, receipt))
    # Waiting for the slot (and the restart meanwhile) is one attempt, not several: a receipt saying
    # "sent 2 times" would read as two broadcasts.
    job = w.tower_job("bw-1")
    check(job["attempts"] == 1, "the tower job counts %s attempts" % job["attempts"])
    check("attempts" not in receipt and "ส่ง 2 ครั้ง" not in receipt, "the receipt counts attempts:\n" + receipt)
    check("Will try again" not in w.daemon.log(), "waiting for the slot logged as a retry")
    for a in agents:
        check(a.text().count("Dry run: would play") == 1, "village %d:\n%s" % (a.village, a.tail()))
    w.close()


def case_audio():
    """An Audio file that staff did not list under Attachments too: the website publishes it with the
    attachments and the towers get its public URL, so they play the recording, not the text."""
    clock = Clock(BEFORE_SLOT)
    w = World("audio", clock, villages="1")
    sim = SimTower(w, 1)
    w.start()
    recording = b"ID3\x03\x00" + bytes(range(256)) * 8
    text = announcement("rec-1", title="เสียงผู้ใหญ่บ้าน", **{"เสียง": "ประกาศเช้า.mp3"})
    w.env.drop_bundle("rec", {"announcement.txt": text, "ประกาศเช้า.mp3": recording})
    sch = w.wait_schedule(1, lambda s: [i.get("id") for i in s] == ["rec-1"], "the schedule with rec-1")
    url = sch[0].get("audio_url") or ""
    prefix = w.env.base_url + "/files/rec-1/"
    check(url.startswith(prefix) and url.endswith(".mp3"), "audio_url %r, expected one under %s" % (url, prefix))
    published = os.path.join(w.env.site, "files", "rec-1", url[len(prefix):])
    check(os.path.isfile(published) and open(published, "rb").read() == recording,
          "the website does not have the recording at %s" % published)
    page = open(w.env.article("rec-1"), encoding="utf-8").read()
    check(url[len(w.env.base_url) + 1:] in page, "the article does not offer the recording")
    state, note, receipt = w.wait_receipt("rec")
    check(state == "done" and "no public URL" not in note, "%s: %s\n%s" % (state, note, receipt))
    sim.close()
    w.close()


def case_tls():
    """TLS with a CA file and a client certificate, the broker login from a 0600 password file; a
    broker whose certificate does not verify is refused."""
    import ssl
    d = S.tmpdir("pki")
    make_pki(d, "client", "prakatd-tls")
    pw = os.path.join(d, "broker.passwd")
    open(pw, "w").close()
    for user, password in (("daemon", "ความลับ d"), ("tower", "t-secret")):
        p = subprocess.run(["mosquitto_passwd", "-b", pw, user, password], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        check(p.returncode == 0, "mosquitto_passwd: %s" % p.stdout)
    tls = ("cafile %s/ca.crt\ncertfile %s/server.crt\nkeyfile %s/server.key\nrequire_certificate true\n"
           "use_identity_as_username false\npassword_file %s\n" % (d, d, d, pw))
    broker = Broker(S.tmpdir("tls-broker"), extra_config=tls, allow_anonymous=False).start()
    threading.current_thread().brokers.append(broker)
    ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))
    ctx.load_cert_chain(os.path.join(d, "client.crt"), os.path.join(d, "client.key"))
    secret = os.path.join(d, "daemon.password")
    with open(secret, "w") as f:
        f.write("ความลับ d\nthe second line is not part of it\n")
    os.chmod(secret, 0o600)
    extra = ("ca_file = %s/ca.crt\ncert_file = %s/client.crt\nkey_file = %s/client.key\nusername = daemon\n"
             "password_file = %s\n" % (d, d, d, secret))
    w = World("tls", Clock(BEFORE_SLOT), villages="1", broker=broker, broker_url="mqtts://localhost:%d" % broker.port,
              extra=extra, host="localhost",
              client_kwargs={"ssl_context": ctx, "username": "tower", "password": "t-secret"})
    sim = SimTower(w, 1)
    w.start()
    w.daemon.wait_log("Connected to the broker localhost:%d" % broker.port)
    w.drop("tls.txt", announcement("tls-1"))
    state, note, _ = w.wait_receipt("tls.txt")
    check(state == "done" and "played: village 1" in note, "%s: %s" % (state, note))
    rc, out, err = w.env.cli("status", "--json")
    tower = [c for c in json.loads(out).get("channels", []) if c.get("name") == "tower"]
    check(tower and "connected to mqtts://localhost" in tower[0].get("health", ""), "status: %s" % out)
    w.daemon.stop()
    # Another CA: the broker's certificate does not verify, so prakatd does not connect, and says so.
    w.tower_config = w.tower_config.replace("%s/ca.crt" % d, "%s/other-ca.crt" % d)
    w.write_config()
    w.start()
    w.daemon.wait_log("Cannot connect to the broker localhost")
    check("Connected to the broker" not in w.daemon.log(since_start=True), "connected with the wrong CA")
    rc, out, err = w.env.cli("status", "--json")
    tower = [c for c in json.loads(out).get("channels", []) if c.get("name") == "tower"]
    check(tower and not tower[0].get("healthy") and "not connected" in tower[0].get("health", ""),
          "status with the wrong CA: %s" % out)
    check("ความลับ" not in w.daemon.log() and "t-secret" not in w.daemon.log(), "a password in the log")
    sim.close()
    w.close()


def case_reload():
    """SIGHUP with a changed [channel tower] while a job waits for its acks: the new configuration
    takes the job over, one connection, and the job ends when the towers played."""
    clock = Clock(epoch("2026-11-25T23:59:45Z"))
    w = World("reload", clock, villages="1-2")
    agents = [Agent(w, v, dry_run=True) for v in (1, 2)]
    for a in agents:
        a.start()
    w.start()
    w.drop("rl.txt", announcement("rl-1"))
    for a in agents:
        w.wait_ack(a.village, "rl-1", "scheduled")
    wait_for(lambda: (w.tower_job("rl-1") or {}).get("message"), None, "a note")
    w.tower_config = w.tower_config.replace("gap = 1s", "gap = 2s")
    w.write_config()
    w.daemon.proc.send_signal(signal.SIGHUP)
    w.daemon.wait_log("Configuration reloaded")
    w.daemon.wait_log("Handed 1 jobs over")
    state, note, _ = w.wait_receipt("rl.txt")
    check(state == "done" and "played: villages 1-2" in note, "%s: %s" % (state, note))
    log = w.daemon.log()
    check(log.count("Lost the connection") == 0, "the two configurations fought over the session:\n" + log[-3000:])
    for a in agents:
        check(a.text().count("Dry run: would play") == 1, "village %d:\n%s" % (a.village, a.tail()))
    w.close()


# ---- running them ----

def run_case(name, fn, *args):
    procs = threading.current_thread().procs = []
    brokers = threading.current_thread().brokers = []
    try:
        fn(*args)
    except TestFailure as e:
        return name, False, str(e), procs
    except Exception as e:
        return name, False, "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc(limit=4)), procs
    finally:
        for p in procs:
            if p.running():
                p.stop()
        for b in brokers:
            b.stop()
    return name, True, "", procs


def main():
    global SCRIPT
    for path in (PRAKATD, AGENT, os.path.join(BUILD, "channels", "tower.so")):
        if not os.access(path, os.R_OK):
            S.result("tower_channel: build present", False, "%s is missing (run make)" % path)
            S.finish()
    root = S.tmpdir("run")
    SCRIPT = install_play_script(root)
    cases = [
        ("a job waits for its slot outside \"sending\" and is taken up again at the slot", case_wait_between_slots),
        ("12 villages (3 agents, 9 simulated): retained schedules, announces, every ack in the receipt, the will",
         case_many_villages),
        ("quiet hours move a normal item (per-village override), an emergency plays at once at night",
         case_quiet_hours_emergency),
        ("one slot: urgent first, arrival order, repeat with the gap, emergency pre-empts, no overlap",
         case_slot_order_repeat_preempt),
        ("a slot across midnight plays on the next day", case_midnight),
        ("broker killed mid-publish and during the plays: nothing lost", case_broker_restart, root),
        ("an agent offline during the publish gets the retained schedule and plays", case_agent_offline),
        ("daemon killed and agent restarted around the slot: the job resumes, nothing plays twice", case_restarts),
        ("malformed and hostile acks are logged and ignored", case_hostile_acks),
        ("Cancel and Replaces withdraw from every tower", case_cancel_replace),
        ("an Audio file not listed under Attachments is published and its URL goes to the towers", case_audio),
        ("--check: bad tower settings give FILE:LINE", case_config_errors),
        ("TLS with a CA file, a client certificate and a 0600 password file; a wrong CA is refused", case_tls),
        ("SIGHUP with a changed tower section hands the job in flight over", case_reload),
    ]
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        futures = [pool.submit(run_case, c[0], c[1], *c[2:]) for c in cases]
        for f in futures:
            name, ok, reason, procs = f.result()
            with LOCK:
                if ok:
                    S.result(name, True)
                else:
                    S._fail(name, reason, show=procs)
    for d in list(S.daemons):
        if d.running():
            d.stop()
        d.scan_sanitizer()
    dirty = [d for d in S.daemons if d.problems]
    S.result("daemons and agents exit cleanly%s" % (" with no sanitizer report" if ASAN else ""), not dirty,
             "; ".join("%s: %s" % (d.env.log, "; ".join(d.problems)) for d in dirty))
    S.daemons = []
    S.finish()


SCRIPT = None

if __name__ == "__main__":
    main()
