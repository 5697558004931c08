"""What the fault suites share: one office with all four channels -- the website, a fake Facebook Page,
a fake LINE account (tests/fakes/fake_platforms.py, limits off) and a real mosquitto with three dry-run
prakat-tower agents -- plus Thai announcements addressed to its villages, and counters that say how
many times each announcement reached each channel."""

import glob
import json
import os
import re
import secrets
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "fakes"))
from harness import PLUGIN_DIR, check, make_env, wait_for  # noqa: E402
from fake_platforms import FakeFacebook, FakeLine  # noqa: E402
from mqtt_mini import Broker  # noqa: E402
from tower_common import AGENT, AgentProcess  # noqa: E402

PAGE = "104857600123456"
BASE_URL = "https://bokaeo.go.th/news"
TOWERS = (1, 2, 3)
VILLAGE_NAMES = {1: "บ้านบ่อแก้ว", 2: "บ้านโนนสวรรค์", 3: "บ้านหนองบัว"}
TOPICS = ["แจ้งงดจ่ายน้ำประปา", "เชิญร่วมประชุมประชาคมหมู่บ้าน", "รณรงค์ป้องกันไข้เลือดออก",
          "ประชาสัมพันธ์การชำระภาษีที่ดินและสิ่งปลูกสร้าง", "เปิดรับสมัครผู้ดูแลเด็กเล็ก"]


def require_channels(suite):
    for need in [os.path.join(PLUGIN_DIR, p + ".so") for p in ("facebook", "line", "tower")] + [AGENT]:
        if not os.path.exists(need):
            suite.result("%s: build present" % suite.name, False, "%s is missing" % need)
            suite.finish()


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

    def __init__(self, suite, broker, prefix, village):
        super().__init__(suite.tmpdir("tower%d" % village), ["--dry-run"])
        self.village = village
        with open(self.conf, "w") as f:
            f.write("[tower]\nvillage = %d\nbroker = mqtt://127.0.0.1:%d\ntopic_prefix = %s\nstate_dir = %s\n" %
                    (village, broker.port, prefix, self.state))
        suite.daemons.append(self)

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
    """The fakes, the broker, the towers (started) and one prakatd (not started) configured for them."""

    def __init__(self, suite, tag, facebook_extra="", line_extra="rate_per_hour = 3600\n", tower_extra="", **env_kw):
        self.prefix = "bokaeo/%s" % tag
        self.broker = Broker(suite.tmpdir("broker")).start()
        self.fb_token = "EAAGfault%s" % secrets.token_hex(16)
        self.line_token = "linefault%s" % secrets.token_hex(16)
        self.fb = FakeFacebook(page_id=PAGE, token=self.fb_token, limits=False)
        self.line = FakeLine(token=self.line_token, limits=False)
        fb_base, line_base = self.fb.start(), self.line.start()
        tmp = suite.tmpdir("daemon")
        for name, token in (("facebook.token", self.fb_token), ("line.token", self.line_token)):
            p = os.path.join(tmp, name)
            with open(p, "w") as f:
                f.write(token + "\n")
            os.chmod(p, 0o600)
        sections = (
            "[channel facebook]\nplugin = facebook\npage_id = %s\ntoken_file = facebook.token\napi_base = %s\n"
            "timeout = 2s\n%s\n"
            "[channel line]\nplugin = line\ntoken_file = line.token\napi_base = %s\n"
            "timeout = 2s\n%s\n"
            "[channel tower]\nplugin = tower\nbroker = mqtt://127.0.0.1:%d\ntopic_prefix = %s\nvillages = 1-3\n"
            "client_id = prakatd-%s\ngap = 1s\n%s\n" % (PAGE, fb_base, facebook_extra, line_base, line_extra,
                                                        self.broker.port, self.prefix, tag, tower_extra))
        self.env = make_env(tmp, extra_config=sections, base_url=BASE_URL, **env_kw)
        self.d = suite.daemon(self.env)
        self.towers = [Tower(suite, self.broker, self.prefix, v).start() for v in TOWERS]

    def stop(self):
        if self.d.running():
            self.d.stop(expect_rc=None)
        for t in self.towers:
            t.stop()
        self.fb.stop()
        self.line.stop()
        self.broker.stop()

    def articles(self):
        return sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(self.env.site, "a", "*.html")))

    def _count_ids(self, texts):
        out = {}
        for text in texts:
            for id in set(re.findall(re.escape(BASE_URL) + r"/a/([^\s\"?#]+)\.html", text)):
                out[id] = out.get(id, 0) + 1
        return out

    def fb_counts(self):
        """{id: posts ever made for it}, deleted ones too."""
        with self.fb.lock:
            return self._count_ids([p["message"] for p in self.fb.posts.values()])

    def line_counts(self):
        """{id: broadcasts accepted for it}."""
        with self.line.lock:
            return self._count_ids([json.dumps(s["messages"], ensure_ascii=False) for s in self.line.sent
                                    if s["kind"] == "broadcast"])

    def tower_counts(self):
        """{village: [ids in its schedule on disk]}."""
        return {t.village: t.scheduled_ids() for t in self.towers}
