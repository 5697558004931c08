#!/usr/bin/python3
"""make bench: the tower channel (channels/tower) at the size of the largest office.  Printed, never asserted.

One announcement for all villages goes to VILLAGES simulated towers (999 by default: village numbers
run from 1 to 999, the most prakat takes) on a private mosquitto on 127.0.0.1.  Each simulated tower
is a plain MQTT connection that follows its village's announce and schedule topics and, for each new
item, acks "scheduled", "playing" and "played" at once (QoS 1), as a tower whose slot has come would.
The towers run in a few worker processes with one selector loop each, so that they, not prakatd,
are cheap.

Reported: drop -> first tower has the item, drop -> every tower has it, drop -> the receipt (every
village's acks counted and on disk: the tower job is DONE), the messages per second through the
daemon (what it published plus the acks it took), and prakatd's RSS (connected and idle, peak, after)
and CPU time.

    /usr/bin/python3 tests/bench/bench_towers.py build        (BENCH_DIR, BENCH_TOWERS, BENCH_WORKERS)
"""
import json
import multiprocessing
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(TOP, "build"))
VILLAGES = min(int(os.environ.get("BENCH_TOWERS", "999")), 999)
WORKERS = int(os.environ.get("BENCH_WORKERS", str(max(2, min(8, os.cpu_count() or 2)))))
PREFIX = "bench/tower"
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
from mqtt_mini import Broker, mqtt_string, packet  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_publish import cpu_seconds, record, start_prakatd, status  # noqa: E402


# ---- simulated towers: a bare MQTT 3.1.1 client per village, many per selector loop ----

class Tower:
    __slots__ = ("village", "sock", "buf", "pid", "seen", "got_at")

    def __init__(self, village, port):
        self.village = village
        self.buf = bytearray()
        self.pid = 0
        self.seen = set()
        self.got_at = None
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        body = mqtt_string("MQTT") + bytes([4, 0x02]) + struct.pack(">H", 0) + mqtt_string("bench-tower-%d" % village)
        self.sock.sendall(packet(1, 0, body))
        for leaf in ("announce", "schedule"):
            self.sock.sendall(packet(8, 2, struct.pack(">H", self.next_pid()) +
                                     mqtt_string("%s/village/%d/%s" % (PREFIX, village, leaf)) + b"\x01"))

    def next_pid(self):
        self.pid = self.pid % 65535 + 1
        return self.pid

    def ack(self, id, state, slot):
        payload = json.dumps({"id": id, "state": state, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "detail": state, "slot": slot, "village": self.village}).encode()
        self.sock.sendall(packet(3, 2, mqtt_string("%s/village/%d/ack" % (PREFIX, self.village)) +
                                 struct.pack(">H", self.next_pid()) + payload))

    def item(self, o):
        id = o.get("id")
        if not isinstance(id, str) or id in self.seen:
            return 0
        self.seen.add(id)
        if self.got_at is None:
            self.got_at = time.time()
        n = 0
        for slot in o.get("play_at") or [None]:
            for state in ("scheduled", "playing", "played"):
                self.ack(id, state, slot)
                n += 1
        return n

    def feed(self, data):
        """Handles whole packets in the buffer; returns (messages received, acks sent, subscribed)."""
        self.buf += data
        got = sent = subscribed = 0
        while len(self.buf) >= 2:
            length, shift, i = 0, 0, 1
            while True:
                if i >= len(self.buf):
                    return got, sent, subscribed
                byte = self.buf[i]
                length += (byte & 0x7F) << shift
                shift += 7
                i += 1
                if not byte & 0x80:
                    break
            if len(self.buf) < i + length:
                break
            kind, flags, body = self.buf[0] >> 4, self.buf[0] & 15, bytes(self.buf[i:i + length])
            del self.buf[:i + length]
            if kind == 9:
                subscribed += 1
            elif kind == 3:
                got += 1
                n = struct.unpack(">H", body[:2])[0]
                topic = body[2:2 + n].decode()
                pos = 2 + n
                if (flags >> 1) & 3:
                    self.sock.sendall(packet(4, 0, body[pos:pos + 2]))
                    pos += 2
                try:
                    o = json.loads(body[pos:]) if pos < len(body) else None
                except ValueError:
                    o = None
                if topic.endswith("/announce") and isinstance(o, dict):
                    sent += self.item(o)
                elif topic.endswith("/schedule") and isinstance(o, list):
                    for x in o:
                        if isinstance(x, dict):
                            sent += self.item(x)
        return got, sent, subscribed


def worker(port, villages, ready, results, stop, go):
    sel = selectors.DefaultSelector()
    towers = [Tower(v, port) for v in villages]
    for t in towers:
        sel.register(t.sock, selectors.EVENT_READ, t)
    subscribed = got = sent = got_after = 0
    reported = False
    while not stop.is_set():
        for key, _ in sel.select(0.2):
            t = key.data
            try:
                data = t.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                sel.unregister(t.sock)
                continue
            g, s, sub = t.feed(data)
            got, sent, subscribed = got + g, sent + s, subscribed + sub
            if go.is_set():
                got_after += g
        if not reported and subscribed >= 2 * len(towers):
            ready.put(len(towers))
            reported = True
    times = [t.got_at for t in towers if t.got_at]
    results.put({"towers": len(towers), "received": got_after, "acks": sent, "have": len(times),
                 "first": min(times) if times else None, "last": max(times) if times else None})
    for t in towers:
        t.sock.close()


# ---- the run ----

def main():
    root = tempfile.mkdtemp(prefix="prakat-bench-towers-", dir=os.environ.get("BENCH_DIR") or "/tmp")
    broker = Broker(os.path.join(root, "broker"), extra_config="max_inflight_messages 100\n").start()
    conf = os.path.join(root, "prakat.conf")
    with open(conf, "w") as f:
        f.write(f"""[prakat]
spool = {root}/spool
state = {root}/state
runtime_dir = {root}/run
settle = 200ms
plugin_dir = {BUILD}/channels
[villages]
""" + "".join(f"{v} = บ้านหมู่ที่ {v}\n" for v in range(1, VILLAGES + 1)) + f"""
[channel website]
plugin = website
output = {root}/site
base_url = https://bench.example.go.th/news
[channel tower]
plugin = tower
broker = mqtt://127.0.0.1:{broker.port}
topic_prefix = {PREFIX}
villages = 1-{VILLAGES}
client_id = prakatd-bench
""")
    log_path = os.path.join(root, "prakatd.log")
    log = open(log_path, "w")
    daemon = start_prakatd(BUILD, conf, log)
    procs = []
    stop, go = multiprocessing.Event(), multiprocessing.Event()
    try:
        deadline = time.time() + 60
        while "Connected to the broker" not in open(log_path).read():
            if time.time() > deadline or daemon.poll() is not None:
                raise SystemExit("prakatd did not connect; see " + log_path)
            time.sleep(0.05)
        ready, results = multiprocessing.Queue(), multiprocessing.Queue()
        chunks = [list(range(1, VILLAGES + 1))[i::WORKERS] for i in range(WORKERS)]
        for chunk in chunks:
            p = multiprocessing.Process(target=worker, args=(broker.port, chunk, ready, results, stop, go))
            p.start()
            procs.append(p)
        n = 0
        for _ in chunks:
            n += ready.get(timeout=120)
        time.sleep(1)  # the retained (empty) schedules have arrived; the daemon is idle again
        rss_idle = status(daemon.pid, "VmRSS")
        cpu0 = cpu_seconds(daemon.pid)

        incoming = os.path.join(root, "spool", "incoming")
        stage = os.path.join(root, "bench.txt")
        with open(stage, "w", encoding="utf-8") as f:
            f.write("ID: bench-all\nหัวข้อ: ประกาศถึงทุกหมู่บ้าน\nหมู่บ้าน: ทั้งหมด\n\n"
                    "ขอเชิญประชาชนทุกหมู่บ้านร่วมประชุมประชาคม ณ ศาลาประชาคม เวลา 09.00 น.\n")
        go.set()
        t0 = time.time()
        os.rename(stage, os.path.join(incoming, "bench.txt"))
        published = os.path.join(root, "spool", "published")
        peak = 0
        receipt = None
        while time.time() < t0 + 600:
            peak = max(peak, status(daemon.pid, "VmRSS"))
            found = [d for d in os.listdir(published) if not d.startswith(".")] if os.path.isdir(published) else []
            if found and os.path.exists(os.path.join(published, found[0], "receipt.txt")):
                receipt = time.time()
                break
            time.sleep(0.01)
        cpu1 = cpu_seconds(daemon.pid)
        hwm = status(daemon.pid, "VmHWM")
        time.sleep(1)
        rss_after = status(daemon.pid, "VmRSS")
        stop.set()
        got = [results.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=30)
        first = min(g["first"] for g in got if g["first"])
        last = max(g["last"] for g in got if g["last"])
        have = sum(g["have"] for g in got)
        acks = sum(g["acks"] for g in got)
        received = sum(g["received"] for g in got)
        text = open(os.path.join(published, found[0], "receipt.txt"), encoding="utf-8").read() if receipt else ""
        note = [line.strip() for line in text.splitlines() if line.startswith("  note:") and "played" in line]
        total = (receipt or time.time()) - t0

        print(f"towers: {VILLAGES} villages, one announcement for all, simulated towers in {WORKERS} processes, "
              f"mosquitto on 127.0.0.1, prakatd from {BUILD}")
        print(f"{'measure':46} {'value':>14}")
        print(f"{'towers that got the item':46} {have:>14}")
        print(f"{'drop -> first tower has it':46} {first - t0:>13.3f}s")
        print(f"{'drop -> every tower has it':46} {last - t0:>13.3f}s")
        print(f"{'drop -> receipt (all acks counted, job DONE)':46} " +
              (f"{total:>13.3f}s" if receipt else f"{'not in 600s':>14}"))
        print(f"{'messages to the towers (announce + schedules)':46} {received:>14}")
        item = os.path.join(root, "state", "channels", "tower", "items", "bench-all.json")
        if os.path.exists(item):
            print(f"{'state file of the item':46} {os.path.getsize(item) / 1024:>10.1f} KiB")
        print(f"{'acks from the towers':46} {acks:>14}")
        print(f"{'messages per second through prakatd':46} {(received + acks) / total:>14.0f}")
        print(f"{'prakatd CPU for the announcement':46} {cpu1 - cpu0:>13.3f}s")
        print(f"{'prakatd RSS connected, idle':46} {rss_idle / 1024:>11.1f} MiB")
        print(f"{'prakatd RSS peak during the run':46} {max(peak, 0) / 1024:>11.1f} MiB")
        print(f"{'prakatd RSS high-water mark (VmHWM)':46} {hwm / 1024:>11.1f} MiB")
        print(f"{'prakatd RSS after':46} {rss_after / 1024:>11.1f} MiB")
        if note:
            print("receipt: " + note[0][:160])
        record(f"towers: 1 announcement to {VILLAGES} villages (MQTT)", f"{(received + acks) / total:.0f} msg/s",
               "", f"{last - t0:.2f} s (last tower)", f"{hwm / 1024:.1f} MiB", f"{rss_idle / 1024:.1f} MiB",
               f"{(cpu1 - cpu0) * 1000:.0f} ms for all {VILLAGES}")
    finally:
        stop.set()
        for p in procs:
            if p.is_alive():
                p.terminate()
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
        broker.stop()
        log.close()
        if os.environ.get("PRAKAT_KEEP_TMP") != "1":
            shutil.rmtree(root, ignore_errors=True)
        else:
            print("kept " + root)


if __name__ == "__main__":
    main()
