#!/usr/bin/python3
"""make bench: the core pipeline's figures (issue: core).  Printed, never asserted.

1. Fill an archive of ARCHIVE announcements (dropped in batches, renamed in).
2. Drop BURST more at once; report throughput, p50/p99 drop-to-page latency, peak RSS, CPU per announcement
   (the median of BENCH_REPEAT bursts, 3 by default, each into the archive the last one grew).
3. The cost (daemon CPU) of one publish into an archive of 100 versus ARCHIVE items.
4. Idle: RSS and wake-ups (context switches) over a quiet period with no watchdog.
"""
import os, shutil, signal, subprocess, sys, tempfile, time

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
ARCHIVE = int(os.environ.get("BENCH_ARCHIVE", "10000"))
BURST = int(os.environ.get("BENCH_BURST", "1000"))
REPEAT = max(1, int(os.environ.get("BENCH_REPEAT", "3")))
HZ = os.sysconf("SC_CLK_TCK")


def start_prakatd(build, conf, log):
    """prakatd on `conf`, stderr into the open file `log`, outside any systemd notification."""
    env = dict(os.environ)
    for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(k, None)
    return subprocess.Popen([f"{build}/prakatd", "--config", conf], stderr=log, env=env)


def print_table(rows):
    """[(measure, figure)] as a Markdown table, as the README records it."""
    width = max(len(r[0]) for r in rows)
    print(f"| {'measure':{width}} | figure |")
    print(f"|{'-' * (width + 2)}|--------|")
    for k, v in rows:
        print(f"| {k:{width}} | {v} |")


def record(name, throughput="", p50="", p99="", peak_rss="", idle_rss="", cpu=""):
    """One row of the summary table that `make bench` prints at the end (tests/bench/summary.py):
    appended as a JSON line to $BENCH_SUMMARY when it is set.  Figures are strings, units included."""
    path = os.environ.get("BENCH_SUMMARY")
    if not path:
        return
    import json
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"benchmark": name, "throughput": throughput, "p50": p50, "p99": p99,
                            "peak_rss": peak_rss, "idle_rss": idle_rss, "cpu": cpu}, ensure_ascii=False) + "\n")


def cpu_seconds(pid):
    """CPU time of the process in seconds, to the nanosecond (schedstat), not in clock ticks."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class Bench:
    def __init__(self, root):
        self.root = root
        self.incoming = os.path.join(root, "spool/incoming")
        self.published = os.path.join(root, "spool/published")
        self.site = os.path.join(root, "site")
        conf = os.path.join(root, "prakat.conf")
        with open(conf, "w") as f:
            f.write(f"""[prakat]
spool = {root}/spool
state = {root}/state
settle = 200ms
plugin_dir = {BUILD}/channels
[villages]
1 = บ้านบ่อแก้ว
[channel website]
plugin = website
output = {self.site}
base_url = https://bench.example.go.th/news
""")
        self.log = open(os.path.join(root, "prakatd.log"), "w")
        self.proc = start_prakatd(BUILD, conf, self.log)
        self.seq = 0
        while not os.path.isdir(self.incoming):
            time.sleep(0.02)
        time.sleep(0.3)

    def drop(self, n, tag):
        """Writes n announcements to a staging folder and renames them in; returns {name: drop time}."""
        stage = os.path.join(self.root, ".stage")
        os.makedirs(stage, exist_ok=True)
        names = []
        for _ in range(n):
            self.seq += 1
            name = f"{tag}-{self.seq:06d}.txt"
            with open(os.path.join(stage, name), "w", encoding="utf-8") as f:
                f.write(f"หัวข้อ: ประกาศทดสอบความเร็ว ฉบับที่ {self.seq}\nหมวด: หมวด{self.seq % 5}\n\n"
                        f"เนื้อหาประกาศฉบับที่ {self.seq} สำหรับวัดความเร็วของระบบ\nบรรทัดที่สอง\n")
            names.append(name)
        dropped = {}
        for name in names:
            dropped[name] = time.time()
            os.rename(os.path.join(stage, name), os.path.join(self.incoming, name))
        return dropped

    def count_published(self):
        """Receipt folders; a batch's hidden .tmp-* folders are not receipts yet."""
        return sum(1 for d in os.listdir(self.published) if not d.startswith("."))

    def wait_published(self, expected, timeout=600):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.count_published() >= expected:
                return expected
            time.sleep(0.01)
        raise SystemExit(f"timeout: {self.count_published()} of {expected} published")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def page_latencies(b, dropped):
    """Drop-to-page latency from each receipt folder's original (named like the drop) and the page's mtime."""
    lat = []
    for d in os.listdir(b.published):
        if d.startswith("."):
            continue
        for f in os.listdir(os.path.join(b.published, d)):
            if f in dropped:
                page = os.path.join(b.site, "a", d[11:] + ".html")
                lat.append(os.stat(page).st_mtime - dropped[f])
    lat.sort()
    return lat


def pct(v, p):
    return v[min(len(v) - 1, int(len(v) * p / 100))] if v else float("nan")


def one_publish_cost(b, total):
    costs = []
    for _ in range(5):
        c0 = cpu_seconds(b.proc.pid)
        b.drop(1, "one")
        total += 1
        b.wait_published(total)
        time.sleep(0.05)
        costs.append(cpu_seconds(b.proc.pid) - c0)
    costs.sort()
    return costs[len(costs) // 2], total


def main():
    root = tempfile.mkdtemp(prefix="prakat-bench-", dir=os.environ.get("BENCH_DIR") or None)
    rows = []
    try:
        b = Bench(root)
        # The cost of one publish into a small archive.
        b.drop(100, "small")
        total = b.wait_published(100)
        small_cost, total = one_publish_cost(b, total)
        # Fill the archive.
        t0 = time.time()
        c0 = cpu_seconds(b.proc.pid)
        remaining = ARCHIVE - total
        while remaining > 0:
            n = min(2000, remaining)
            b.drop(n, "fill")
            total = b.wait_published(total + n)
            remaining -= n
        fill_rate = (ARCHIVE - 105) / (time.time() - t0)
        fill_cpu = (cpu_seconds(b.proc.pid) - c0) / max(1, ARCHIVE - 105)
        big_cost, total = one_publish_cost(b, total)
        # The burst.
        c0 = cpu_seconds(b.proc.pid)
        t0 = time.time()
        dropped = b.drop(BURST, "burst")
        total = b.wait_published(total + BURST)
        elapsed = time.time() - t0
        cpu = cpu_seconds(b.proc.pid) - c0
        lat = page_latencies(b, dropped)
        peak = status(b.proc.pid, "VmHWM")
        # CPU figures on a VM move by 10-20 % from burst to burst: repeat the burst, report the median.
        cpus = [cpu / BURST]
        for _ in range(REPEAT - 1):
            time.sleep(0.5)
            c0 = cpu_seconds(b.proc.pid)
            b.drop(BURST, "again")
            total = b.wait_published(total + BURST)
            cpus.append((cpu_seconds(b.proc.pid) - c0) / BURST)
        cpus_sorted = sorted(cpus)
        cpu_median = cpus_sorted[len(cpus) // 2]
        # Idle.
        time.sleep(2)
        v0 = status(b.proc.pid, "voluntary_ctxt_switches") + status(b.proc.pid, "nonvoluntary_ctxt_switches")
        time.sleep(10)
        v1 = status(b.proc.pid, "voluntary_ctxt_switches") + status(b.proc.pid, "nonvoluntary_ctxt_switches")
        idle_rss = status(b.proc.pid, "VmRSS")
        b.stop()
        # A fresh daemon's idle RSS with the archive in place.
        b2 = Bench(root)
        time.sleep(1)
        fresh_idle = status(b2.proc.pid, "VmRSS")
        b2.stop()
        rows = [
            ("archive filled", f"{ARCHIVE} items at {fill_rate:.0f}/s, {fill_cpu*1000:.2f} ms CPU each"),
            (f"burst of {BURST} into {ARCHIVE}", f"{BURST/elapsed:.0f} announcements/s ({elapsed:.2f} s)"),
            ("drop-to-page latency", f"p50 {pct(lat,50)*1000:.0f} ms, p99 {pct(lat,99)*1000:.0f} ms"),
            ("daemon CPU per announcement", f"{cpu_median*1000:.3f} ms (median of {len(cpus)} bursts: "
                                            + ", ".join(f"{c*1000:.3f}" for c in cpus) + ")"),
            ("peak RSS", f"{peak/1024:.1f} MiB"),
            ("idle RSS (after the burst / fresh start)", f"{idle_rss/1024:.1f} MiB / {fresh_idle/1024:.1f} MiB"),
            ("wake-ups in 10 s idle (no watchdog)", f"{v1 - v0}"),
            ("one publish, archive of 100", f"{small_cost*1000:.1f} ms CPU"),
            (f"one publish, archive of {ARCHIVE}", f"{big_cost*1000:.1f} ms CPU"),
        ]
        record(f"core: {BURST} dropped at once into {ARCHIVE} (website)", f"{BURST/elapsed:.0f}/s",
               f"{pct(lat,50)*1000:.0f} ms", f"{pct(lat,99)*1000:.0f} ms", f"{peak/1024:.1f} MiB",
               f"{idle_rss/1024:.1f} MiB", f"{cpu_median*1000:.2f} ms")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print_table(rows)


if __name__ == "__main__":
    main()
