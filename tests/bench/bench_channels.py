#!/usr/bin/python3
"""make bench: website + Facebook + LINE (issue: Facebook and LINE).  Printed, never asserted.

BURST announcements (default 1,000) are dropped at once into a daemon whose Facebook and LINE channels
point at the local fakes (tests/fakes/fake_platforms.py, run as a separate process with their rate
limits off).  Reported: throughput and latency until every receipt is written, the daemon's peak RSS and
CPU per announcement, and, as each fake saw it, the requests, the most transfers at once and the TCP
connections opened (keep-alive means far fewer connections than requests).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_publish import cpu_seconds, pct, print_table, record, start_prakatd, status  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
BURST = int(os.environ.get("BENCH_CHANNELS_BURST", "1000"))
TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOKEN = "bench-token-not-a-secret"


def control(url, name):
    with urllib.request.urlopen(f"{url}/{name}", timeout=10) as r:
        return json.loads(r.read())


def main():
    root = tempfile.mkdtemp(prefix="prakat-bench-ch-", dir=os.environ.get("BENCH_DIR") or None)
    fakes = daemon = None
    try:
        token = os.path.join(root, "token")
        with open(token, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(token, 0o600)
        urls = os.path.join(root, "urls")
        fakes = subprocess.Popen([sys.executable, os.path.join(TOP, "tests/fakes/fake_platforms.py"), "--no-limits",
                                  "--token-file", token, "--urls-file", urls], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while not (os.path.exists(urls) and os.path.getsize(urls) > 0) and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        env = dict(line.strip().split("=", 1) for line in open(urls) if "=" in line)
        conf = os.path.join(root, "prakat.conf")
        with open(conf, "w") as f:
            f.write(f"""[prakat]
spool = {root}/spool
state = {root}/state
runtime_dir = {root}/run
settle = 200ms
plugin_dir = {BUILD}/channels
[villages]
1 = บ้านบ่อแก้ว
[channel website]
plugin = website
output = {root}/site
base_url = https://bench.example.go.th/news
[channel facebook]
plugin = facebook
page_id = 123456789
token_file = {token}
api_base = {env["FAKE_FACEBOOK_API_BASE"]}
[channel line]
plugin = line
token_file = {token}
api_base = {env["FAKE_LINE_API_BASE"]}
rate_per_hour = 3600
""")
        log = open(os.path.join(root, "prakatd.log"), "w")
        daemon = start_prakatd(BUILD, conf, log)
        incoming, published = f"{root}/spool/incoming", f"{root}/spool/published"
        while not os.path.isdir(incoming):
            time.sleep(0.02)
        time.sleep(0.5)

        stage = os.path.join(root, ".stage")
        os.makedirs(stage)
        names = []
        for i in range(BURST):
            name = f"ch-{i:05d}.txt"
            with open(os.path.join(stage, name), "w", encoding="utf-8") as f:
                f.write(f"หัวข้อ: ประกาศทดสอบทุกช่องทาง ฉบับที่ {i}\n\nเนื้อหาประกาศฉบับที่ {i} "
                        "ถึงเว็บไซต์ เฟซบุ๊ก และไลน์\n")
            names.append(name)
        c0, t0 = cpu_seconds(daemon.pid), time.time()
        dropped = {}
        for name in names:
            dropped[name] = time.time()
            os.rename(os.path.join(stage, name), os.path.join(incoming, name))

        def receipts():
            return [d for d in os.listdir(published) if not d.startswith(".")]
        deadline = time.time() + 900
        while len(receipts()) < BURST and time.time() < deadline:
            time.sleep(0.05)
        elapsed, cpu = time.time() - t0, cpu_seconds(daemon.pid) - c0
        done = receipts()
        lat = sorted(os.stat(os.path.join(published, d, "receipt.txt")).st_mtime - dropped[n]
                     for d in done for n in os.listdir(os.path.join(published, d)) if n in dropped)
        peak = status(daemon.pid, "VmHWM")
        fb = control(env["FAKE_FACEBOOK_CONTROL"], "stats")
        ln = control(env["FAKE_LINE_CONTROL"], "stats")
        fb_posts = len(control(env["FAKE_FACEBOOK_CONTROL"], "state").get("posts", {}))
        ln_sent = len(control(env["FAKE_LINE_CONTROL"], "state").get("sent", []))
        rows = [
            (f"{BURST} announcements, website + Facebook + LINE",
             f"{len(done)} receipts in {elapsed:.1f} s: {len(done) / elapsed:.0f} announcements/s"),
            ("drop-to-receipt latency", f"p50 {pct(lat, 50):.1f} s, p99 {pct(lat, 99):.1f} s"),
            ("daemon CPU per announcement", f"{cpu / max(1, len(done)) * 1000:.2f} ms (all three channels)"),
            ("daemon peak RSS", f"{peak / 1024:.1f} MiB"),
            ("Facebook: posts / requests / most at once / TCP connections",
             f"{fb_posts} / {fb['requests']} / {fb['max_concurrent']} / {fb['api_connections']}"),
            ("LINE: messages / requests / most at once / TCP connections",
             f"{ln_sent} / {ln['requests']} / {ln['max_concurrent']} / {ln['api_connections']}"),
        ]
        record(f"channels: {BURST} through website + Facebook + LINE (fakes)", f"{len(done) / elapsed:.0f}/s",
               f"{pct(lat, 50):.1f} s", f"{pct(lat, 99):.1f} s", f"{peak / 1024:.1f} MiB", "",
               f"{cpu / max(1, len(done)) * 1000:.2f} ms")
    finally:
        if daemon:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
        if fakes:
            fakes.send_signal(signal.SIGTERM)
            fakes.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)
    print_table(rows)


if __name__ == "__main__":
    main()
