#!/usr/bin/python3
"""Bad input (issue 7): every hostile or broken input of tests/data/bad/ (listed with its expected
reason in tests/data/bad/EXPECTED), plus the ones that cannot be committed (sizes, symlinks, FIFOs, a
socket: made here), dropped at once into one running prakatd.  Each must land in rejected/ untouched,
with NAME.error.txt in Thai and English giving the expected reason (and line); nothing is published;
`prakat validate` says the same and exits non-zero; and the daemon is still alive and publishes a good
announcement afterwards.  test_intake.py has the first bad-input cases; this suite goes wide."""

import os
import re
import shutil
import socket
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DATA, Suite, check, check_error_text, read_bytes, read_text, require_build,  # noqa: E402
                     tiny_png, wait_for)

S = Suite("bad_input")
require_build(S)

BAD = os.path.join(DATA, "bad")
LIMIT = 256 * 1024  # max_file_size of this suite's config
TITLE = "หัวข้อ: ประชาสัมพันธ์การรับสมัครอาสาสมัคร\n"
BODY = "\nผู้สนใจติดต่อสำนักปลัด องค์การบริหารส่วนตำบลบ่อแก้ว\n"


def read_expected():
    """[(name, line or None, reason, flags)] from tests/data/bad/EXPECTED."""
    out = []
    with open(os.path.join(BAD, "EXPECTED"), encoding="utf-8") as f:
        for raw in f:
            if raw.startswith("#") or not raw.strip():
                continue
            fields = raw.rstrip("\n").split("\t")
            name, line, reason = fields[:3]
            flags = fields[3].split(",") if len(fields) > 3 and fields[3] else []
            out.append((name, None if line == "-" else int(line), reason, flags))
    return out


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


def generate(name, path, outside):
    """Makes the inputs EXPECTED marks `generated` at `path` (not yet in incoming/)."""
    if name == "size-over-limit.txt":
        text = (TITLE + BODY).encode("utf-8")
        write(path, text + b"x" * (LIMIT + 1 - len(text)))
    elif name == "size-bundle-file-over-limit":
        write(os.path.join(path, "announcement.txt"), TITLE + "ไฟล์แนบ: ภาพใหญ่.png\n" + BODY)
        write(os.path.join(path, "ภาพใหญ่.png"), tiny_png() + b"\0" * (LIMIT + 1))
    elif name == "size-bundle-total-over-limit":
        write(os.path.join(path, "announcement.txt"), TITLE + BODY)
        for i in range(6):
            write(os.path.join(path, "ภาพ%d.png" % i), tiny_png() + bytes([i]) * (LIMIT - 6 * 1024))
    elif name == "path-symlink-to-folder":
        target = os.path.join(outside, "a-folder")
        write(os.path.join(target, "announcement.txt"), TITLE + BODY)
        os.symlink(target, path)
    elif name == "path-dangling-symlink.txt":
        os.symlink(os.path.join(outside, "not-there.txt"), path)
    elif name == "path-bundle-symlinked-folder":
        write(os.path.join(path, "announcement.txt"), TITLE + "ไฟล์แนบ: etc/passwd\n" + BODY)
        os.symlink("/etc", os.path.join(path, "etc"))
    elif name == "path-fifo.json":
        os.mkfifo(path)
    elif name == "path-bundle-with-fifo":
        write(os.path.join(path, "announcement.txt"), TITLE + BODY)
        os.mkfifo(os.path.join(path, "pipe"))
    elif name == "path-socket.txt":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.close()
    else:
        raise AssertionError("EXPECTED names %s as generated, but nothing makes it" % name)


def snapshot(path):
    """What an input is, to compare after it was rejected: bytes, link targets, kinds, whole trees."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(path))
    if stat.S_ISREG(st.st_mode):
        return ("file", read_bytes(path))
    if stat.S_ISDIR(st.st_mode):
        return ("dir", sorted((os.path.relpath(os.path.join(dp, n), path), snapshot(os.path.join(dp, n)))
                              for dp, dns, fns in os.walk(path) for n in dns + fns))
    return ("special", stat.S_IFMT(st.st_mode))


def problem_lines(text):
    """The Thai "ปัญหา:", English "Problem:" and "Line:" lines of an error text (a file or validate's output)."""
    return [l for l in text.splitlines() if re.match(r"^(ปัญหา|Problem|Line|บรรทัดที่)[: ]", l)]


def bad_corpus():
    expected = read_expected()
    names = [e[0] for e in expected]
    S.result("EXPECTED lists at least 50 inputs, each once", len(expected) >= 50 and len(set(names)) == len(names),
             "%d entries, %d distinct" % (len(expected), len(set(names))))
    on_disk = sorted(n for n in os.listdir(BAD) if n != "EXPECTED")
    committed = [e[0] for e in expected if "generated" not in e[3]]
    S.result("every file in tests/data/bad is in EXPECTED and every committed entry is there",
             on_disk == sorted(committed), "not listed: %s; missing: %s" % (
                 sorted(set(on_disk) - set(committed)), sorted(set(committed) - set(on_disk))))

    env = S.env("corpus", extra_prakat="max_file_size = 256K",
                extra_config="[channel facebook]\nplugin = facebook\nenabled = no\n")
    stage = os.path.join(env.tmp, "stage")
    outside = os.path.join(env.tmp, "outside")
    os.makedirs(stage)
    os.makedirs(outside)
    before = {}
    for name, _, _, flags in expected:
        path = os.path.join(stage, name)
        if "generated" in flags:
            generate(name, path, outside)
        elif os.path.isdir(os.path.join(BAD, name)):
            shutil.copytree(os.path.join(BAD, name), path)
        else:
            shutil.copyfile(os.path.join(BAD, name), path)
        before[name] = snapshot(path)
    outside_before = snapshot(outside)

    # prakat validate first (the daemon would take the files away): same message, non-zero exit.
    validated = {}
    for name, line, reason, flags in expected:
        if "intake-only" in flags:
            continue
        rc, out, err = env.cli("validate", os.path.join(stage, name), timeout=30)
        validated[name] = (rc, out, err)

    d = S.daemon(env)
    d.start()
    for name, _, _, _ in expected:  # rename: an atomic drop, the way a careful script writes
        os.rename(os.path.join(stage, name), os.path.join(env.incoming, name))

    for name, line, reason, flags in expected:
        def one(name=name, line=line, reason=reason, flags=flags):
            text = env.wait_rejected(name)
            check_error_text(text, reason, line=line)
            check(snapshot(os.path.join(env.rejected, name)) == before[name],
                  "rejected/%s is not the original, unchanged" % name)
            if name in validated:
                rc, out, err = validated[name]
                check(rc != 0, "prakat validate %s exited 0:\n%s" % (name, out))
                check(problem_lines(out) == problem_lines(text),
                      "prakat validate says\n%s\nbut the error file says\n%s" % (
                          "\n".join(problem_lines(out)) or out + err, "\n".join(problem_lines(text))))
        S.case("rejected: %s (%s)" % (name, reason), one)

    def aftermath():
        check(d.running(), "prakatd died")
        check(env.visible_incoming() == [], "left in incoming/: %s" % env.visible_incoming())
        check(env.receipts() == [], "bad input was published: %s" % [r[2] for r in env.receipts()])
        check(not os.listdir(env.site) or not os.path.isdir(os.path.join(env.site, "a")) or
              os.listdir(os.path.join(env.site, "a")) == [], "article pages were written for bad input")
        check(snapshot(outside) == outside_before, "a file outside incoming/ was changed through a link")
        log = d.log()
        missing = [e[0] for e in expected if ("Rejected %s" % e[0]) not in log]
        check(not missing, "the log does not say why these were rejected: %s" % missing)
    S.case("after %d bad inputs: daemon alive, nothing published, incoming/ empty, every rejection logged" %
           len(expected), aftermath)

    def still_publishes():
        t = "ประชาสัมพันธ์หลังจากได้รับไฟล์เสียกว่าร้อยไฟล์"
        env.drop("good-after.txt", "หัวข้อ: %s\nหมู่บ้าน: 1-5\n\nระบบยังทำงานตามปกติ\n" % t)
        folder, id, receipt = env.wait_published("good-after.txt")
        check(("หัวข้อ: %s" % t) in receipt, "the receipt lacks the title:\n" + receipt)
        art = env.article(id)
        wait_for(lambda: os.path.exists(art), what="article page %s" % art)
        check(t in read_text(art), "the article page lacks the title")
        check(len(env.receipts()) == 1, "receipts: %s" % [r[2] for r in env.receipts()])
    S.case("then a good announcement is published normally", still_publishes)
    S.stop_daemon(d, "bad input corpus: daemon stops cleanly")


S.group("bad input corpus", bad_corpus)
S.finish()
