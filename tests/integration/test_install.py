#!/usr/bin/python3
"""Installing prakat the way an office would: `make install` and `make uninstall` into a DESTDIR tree
(also with PREFIX=/usr/local), the systemd units (`systemd-analyze verify`, and the offline security
score, at most 2.0), sysusers.d and tmpfiles.d applied to a scratch root (who may touch which spool
folder), the man pages lint-clean, the Samba example, and the Debian packages: `make deb` builds
prakat and prakat-tower, lintian finds no error, and as root `dpkg -i` then `dpkg --purge` leaves the
machine as it was.

systemd is never booted on this machine: units are checked offline.  `make check-nspawn` (PRAKAT_NSPAWN=1)
adds one case that boots systemd 252 in a Debian root made by debootstrap, inside systemd-nspawn, and
runs the packaged prakatd.service there under its real sandbox.  Under PRAKAT_BUILD=.../build-asan the
packaging cases are left out (they do not depend on the build and run once, with build/)."""

import glob
import grp
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ASAN, BUILD, TOP, Suite, TestFailure, check, read_text, require_build  # noqa: E402

S = Suite("install")
require_build(S)

MAX_EXPOSURE = 2.0
DAEMON_UNITS = ["prakatd.service", "prakatd@.service"]
TOWER_UNIT = os.path.join(TOP, "systemd", "prakat-tower.service")
TOWER_BIN = os.path.join(BUILD, "prakat-tower")
TOWER_MAN = os.path.join(TOP, "man", "prakat-tower.8")
TOWER_CONF = os.path.join(TOP, "conf", "prakat-tower.conf.example")
IS_ROOT = os.geteuid() == 0


def run(argv, timeout=300, env=None, cwd=TOP):
    """Runs argv; returns (exit code, stdout + stderr as text)."""
    e = dict(os.environ)
    e.pop("MAKEFLAGS", None)
    e.pop("MFLAGS", None)
    if env:
        e.update(env)
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd, env=e,
                       timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def make(*args, timeout=300):
    """make in the source tree with BUILD set; never rebuilds the programs (-o), so a test run does not
    compile while someone edits the sources, and the sanitizer build is installed as it is."""
    built = [os.path.join(BUILD, "prakatd"), os.path.join(BUILD, "prakat")]
    built += glob.glob(os.path.join(BUILD, "channels", "*.so"))
    if os.path.exists(TOWER_BIN):
        built.append(TOWER_BIN)
    old = [a for f in built for a in ("-o", f)]
    flags = ["BUILD=" + BUILD] + (["SANITIZE=1"] if ASAN else [])
    rc, out = run(["make", "--no-print-directory"] + flags + old + list(args), timeout=timeout)
    check(rc == 0, "make %s failed (exit %d):\n%s" % (" ".join(args), rc, out[-3000:]))
    return out


def files_under(root):
    """Every non-directory below root, as paths relative to it."""
    found = []
    for d, _, names in os.walk(root):
        for n in names:
            found.append(os.path.relpath(os.path.join(d, n), root))
    return sorted(found)


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def man_pages():
    return sorted(glob.glob(os.path.join(TOP, "man", "*.[1-8]")))


# ---- make install / make uninstall ----

def expected_files(prefix, unitdir, sysusersdir, tmpfilesdir):
    p = prefix.lstrip("/")
    want = {
        p + "/sbin/prakatd": 0o755,
        p + "/bin/prakat": 0o755,
        unitdir.lstrip("/") + "/prakatd.service": 0o644,
        unitdir.lstrip("/") + "/prakatd@.service": 0o644,
        sysusersdir.lstrip("/") + "/prakat.conf": 0o644,
        tmpfilesdir.lstrip("/") + "/prakat.conf": 0o644,
        "etc/prakat/prakat.conf": 0o644,
        p + "/share/doc/prakat/README.md": 0o644,
        p + "/share/doc/prakat/examples/samba-prakat.conf.example": 0o644,
        p + "/share/doc/prakat/examples/prakat.conf.example": 0o644,
        p + "/share/doc/prakat/examples/04-kadyaek-photos/announcement.txt": 0o644,
    }
    for so in glob.glob(os.path.join(BUILD, "channels", "*.so")):
        want["%s/lib/prakat/channels/%s" % (p, os.path.basename(so))] = 0o644
    for page in man_pages():
        name = os.path.basename(page)
        want["%s/share/man/man%s/%s" % (p, name[-1], name)] = 0o644
    if os.path.exists(TOWER_BIN):
        want[p + "/sbin/prakat-tower"] = 0o755
    if os.path.exists(TOWER_UNIT):
        want[unitdir.lstrip("/") + "/prakat-tower.service"] = 0o644
    if os.path.exists(TOWER_CONF):
        want["etc/prakat/prakat-tower.conf"] = 0o644
    return want


def check_tree(tree, want):
    missing = [f for f in want if not os.path.isfile(os.path.join(tree, f))]
    check(not missing, "not installed: %s\ninstalled: %s" % (missing, files_under(tree)))
    wrong = ["%s is %o, not %o" % (f, mode_of(os.path.join(tree, f)), m) for f, m in want.items()
             if mode_of(os.path.join(tree, f)) != m]
    check(not wrong, "; ".join(wrong))


def install_tree_usr(tree):
    make("install", "DESTDIR=" + tree, "PREFIX=/usr", "SYSCONFDIR=/etc", "UNITDIR=/lib/systemd/system",
         "SYSUSERSDIR=/usr/lib/sysusers.d", "TMPFILESDIR=/usr/lib/tmpfiles.d")
    check_tree(tree, expected_files("/usr", "/lib/systemd/system", "/usr/lib/sysusers.d",
                                    "/usr/lib/tmpfiles.d"))
    unit = read_text(os.path.join(tree, "lib/systemd/system/prakatd.service"))
    check("ExecStart=/usr/sbin/prakatd --config /etc/prakat/prakat.conf\n" in unit,
          "prakatd.service does not run /usr/sbin/prakatd on /etc/prakat/prakat.conf")
    with open(os.path.join(TOP, "conf", "prakat.conf.example"), "rb") as a, \
            open(os.path.join(tree, "etc/prakat/prakat.conf"), "rb") as b:
        check(a.read() == b.read(), "/etc/prakat/prakat.conf is not conf/prakat.conf.example")


def uninstall_tree_usr(tree):
    make("uninstall", "DESTDIR=" + tree, "PREFIX=/usr", "SYSCONFDIR=/etc", "UNITDIR=/lib/systemd/system",
         "SYSUSERSDIR=/usr/lib/sysusers.d", "TMPFILESDIR=/usr/lib/tmpfiles.d")
    left = files_under(tree)
    check(not left, "make uninstall left files: %s" % left)
    for d in ("usr/lib/prakat", "usr/share/doc/prakat", "etc/prakat"):
        check(not os.path.exists(os.path.join(tree, d)), "make uninstall left the folder %s" % d)


def install_local_prefix(tree):
    """PREFIX=/usr/local: paths in the units follow; an edited config survives install and uninstall."""
    make("install", "DESTDIR=" + tree, "PREFIX=/usr/local")
    local = "usr/local/lib/systemd/system"
    check_tree(tree, expected_files("/usr/local", "/" + local, "/usr/local/lib/sysusers.d",
                                    "/usr/local/lib/tmpfiles.d"))
    unit = read_text(os.path.join(tree, local, "prakatd.service"))
    check("ExecStart=/usr/local/sbin/prakatd --config /etc/prakat/prakat.conf\n" in unit,
          "PREFIX=/usr/local: ExecStart is not /usr/local/sbin/prakatd:\n%s" % [
              line for line in unit.splitlines() if line.startswith("ExecStart")])
    conf = os.path.join(tree, "etc/prakat/prakat.conf")
    with open(conf, "a", encoding="utf-8") as f:
        f.write("\n; edited by the office\n")
    out = make("install", "DESTDIR=" + tree, "PREFIX=/usr/local")
    check("edited by the office" in read_text(conf), "a second make install overwrote the edited config")
    check("KEEP" in out, "make install did not say it kept the existing config")
    make("uninstall", "DESTDIR=" + tree, "PREFIX=/usr/local")
    left = files_under(tree)
    check(left == ["etc/prakat/prakat.conf"], "after uninstall, expected only the edited config, found %s"
          % left)


# ---- systemd units ----

def unit_files(tree):
    units = [os.path.join(tree, "lib/systemd/system", u) for u in DAEMON_UNITS]
    if os.path.exists(TOWER_UNIT):
        units.append(os.path.join(tree, "lib/systemd/system", "prakat-tower.service"))
    return units


def verify_units(tree, scratch):
    """systemd-analyze verify needs the ExecStart= programs and the man pages of Documentation=: point
    the units at the DESTDIR tree's programs and MANPATH at its man pages."""
    os.makedirs(scratch, exist_ok=True)
    problems = []
    for src in unit_files(tree):
        text = read_text(src)
        text = re.sub(r"(?<![\w/])/usr/(s?bin)/prakat", tree + r"/usr/\1/prakat", text)
        dst = os.path.join(scratch, os.path.basename(src))
        with open(dst, "w", encoding="utf-8") as f:
            f.write(text)
        args = ["systemd-analyze", "verify"]
        if os.path.basename(src).startswith("prakat-tower") and not os.path.exists(TOWER_MAN):
            args.append("--man=no")
        rc, out = run(args + [dst], timeout=60,
                      env={"MANPATH": os.path.join(tree, "usr/share/man") + ":", "SYSTEMD_PAGER": "",
                           "SYSTEMD_LOG_COLOR": "0"})
        ours = [line for line in out.splitlines() if "prakat" in line]
        if rc != 0 or ours:
            problems.append("%s (exit %d):\n%s" % (os.path.basename(src), rc, out.strip()))
    check(not problems, "\n".join(problems))


def exposure(unit_path):
    rc, out = run(["systemd-analyze", "security", "--offline=true", "--no-pager", unit_path], timeout=60,
                  env={"SYSTEMD_COLORS": "0"})
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    check(m is not None, "no overall exposure level for %s (exit %d):\n%s" % (unit_path, rc, out[-2000:]))
    return float(m.group(1))


def security_score(unit_path):
    score = exposure(unit_path)
    check(score <= MAX_EXPOSURE, "%s: exposure %.1f, more than %.1f" % (os.path.basename(unit_path), score,
                                                                      MAX_EXPOSURE))
    print("# %s: exposure %.1f" % (os.path.basename(unit_path), score))


def hardening_settings(unit_path):
    """What the issue asks of the unit, stated directly, so that a lower score never hides a lost
    setting."""
    text = read_text(unit_path)
    settings = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    need = {
        "Type": "notify", "Restart": "on-failure", "User": "prakat", "ProtectSystem": "strict",
        "NoNewPrivileges": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes", "ProtectHome": "yes",
        "CapabilityBoundingSet": "",
    }
    wrong = ["%s=%s (want %s)" % (k, settings.get(k), v) for k, v in need.items()
             if settings.get(k) != [v]]
    for key in ("WatchdogSec", "StateDirectory", "RuntimeDirectory", "ReadWritePaths", "ExecReload",
                "LoadCredential", "SystemCallFilter", "RestrictAddressFamilies"):
        if key not in settings:
            wrong.append("%s= is missing" % key)
    check("kill -HUP" in " ".join(settings.get("ExecReload", [])), "ExecReload= does not send SIGHUP")
    for cred in settings.get("LoadCredential", []):
        # A path would stop the unit when the file is missing; a name is looked up in the credstore.
        check(":" in cred and not cred.split(":", 1)[1].startswith("/"),
              "LoadCredential=%s: an absolute path fails the unit when the token file is missing" % cred)
    check(not wrong, "; ".join(wrong))


# ---- sysusers.d and tmpfiles.d ----

def apply_sysusers_tmpfiles(tree, root):
    """Creates the users and the spool in a scratch root, never on this machine."""
    os.makedirs(os.path.join(root, "etc"), exist_ok=True)
    with open(os.path.join(root, "etc/group"), "w") as f:
        f.write("root:x:0:\nwww-data:x:33:\n")
    with open(os.path.join(root, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n")
    rc, out = run(["systemd-sysusers", "--root=" + root, os.path.join(tree, "usr/lib/sysusers.d/prakat.conf")])
    check(rc == 0, "systemd-sysusers failed:\n" + out)
    passwd = read_text(os.path.join(root, "etc/passwd"))
    groups = read_text(os.path.join(root, "etc/group"))
    check(re.search(r"^prakat:x:\d+:\d+:[^:]*:/var/lib/prakat:/usr/sbin/nologin$", passwd, re.M),
          "no system user prakat:\n" + passwd)
    gid = {line.split(":")[0]: int(line.split(":")[2]) for line in groups.splitlines() if line}
    uid = {line.split(":")[0]: int(line.split(":")[2]) for line in passwd.splitlines() if line}
    check("prakat-staff" in gid and "prakat" in gid, "groups prakat and prakat-staff not created:\n" + groups)
    check(uid["prakat"] < 1000 and gid["prakat-staff"] < 1000, "prakat is not a system user/group")
    if not IS_ROOT:
        print("# tmpfiles.d not applied: needs root to set owners")
        return
    rc, out = run(["systemd-tmpfiles", "--root=" + root, "--create",
                   os.path.join(tree, "usr/lib/tmpfiles.d/prakat.conf")])
    check(rc == 0, "systemd-tmpfiles failed:\n" + out)
    spool = os.path.join(root, "var/spool/prakat")
    want = {  # folder: (mode, owner, group)
        "": (0o750, "prakat", "prakat-staff"),
        "incoming": (0o2770, "prakat", "prakat-staff"),
        "published": (0o2750, "prakat", "prakat-staff"),
        "rejected": (0o2750, "prakat", "prakat-staff"),
        "pending": (0o750, "prakat", "prakat"),
    }
    wrong = []
    for sub, (mode, owner, group) in want.items():
        st = os.stat(os.path.join(spool, sub))
        got = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        if got != (mode, uid[owner], gid[group]):
            wrong.append("spool/%s: mode %o uid %d gid %d, want %o %s:%s" % (sub, got[0], got[1], got[2], mode,
                                                                             owner, group))
    st = os.stat(os.path.join(root, "var/lib/prakat"))
    if stat.S_IMODE(st.st_mode) & 0o007:
        wrong.append("/var/lib/prakat is open to others")
    st = os.stat(os.path.join(root, "var/www/html/news"))
    if st.st_uid != uid["prakat"] or st.st_gid != 33 or stat.S_IMODE(st.st_mode) & 0o007:
        wrong.append("/var/www/html/news: want prakat:www-data, closed to others")
    check(not wrong, "; ".join(wrong))

    # What the staff group may do, read from the modes: write incoming/, read published/ and
    # rejected/, nothing in pending/; everyone else nothing.
    def group_can(sub, bits):
        return stat.S_IMODE(os.stat(os.path.join(spool, sub)).st_mode) & bits == bits
    check(group_can("incoming", 0o070), "staff cannot write incoming/")
    check(group_can("published", 0o050) and not group_can("published", 0o020), "published/ is not read-only")
    check(group_can("rejected", 0o050) and not group_can("rejected", 0o020), "rejected/ is not read-only")
    check(os.stat(os.path.join(spool, "pending")).st_gid != gid["prakat-staff"], "staff can enter pending/")
    for sub in want:
        check(stat.S_IMODE(os.stat(os.path.join(spool, sub)).st_mode) & 0o007 == 0, "others can enter spool/" + sub)


# ---- man pages, Samba ----

def lint_man_pages():
    pages = man_pages()
    check(len(pages) >= 4, "expected at least 4 man pages, found %s" % pages)
    for name in ("prakatd.8", "prakat.1", "prakat.conf.5", "prakat-announcement.5"):
        check(os.path.join(TOP, "man", name) in pages, "man/%s is missing" % name)
    problems = []
    for page in pages:
        rc, out = run(["mandoc", "-Tlint", "-Wwarning", page])
        if rc != 0 or out.strip():
            problems.append("mandoc -Tlint %s:\n%s" % (os.path.basename(page), out.strip()))
        rc, out = run(["groff", "-ww", "-z", "-k", "-Tutf8", "-mandoc", page])
        if rc != 0 or out.strip():
            problems.append("groff -ww %s:\n%s" % (os.path.basename(page), out.strip()))
    check(not problems, "\n".join(problems))
    thai = read_text(os.path.join(TOP, "man", "prakat-announcement.5"))
    check(re.search("[\u0e00-\u0e7f]", thai) and "Title:" in thai and "หัวข้อ:" in thai,
          "prakat-announcement(5) lacks Thai and English examples")
    conf = read_text(os.path.join(TOP, "man", "prakat.conf.5"))
    keys = ["spool", "state", "runtime_dir", "timezone", "settle", "max_file_size", "max_attachments",
            "retry_min", "retry_max", "give_up_after", "default_category", "require_approval", "plugin_dir",
            "plugin", "enabled", "output", "base_url", "site_title", "office_name", "per_page", "feed_items",
            "upload", "page_id", "token_file", "token_credential", "api_base", "mode", "rate_per_hour",
            "style", "broker", "topic_prefix", "slots", "quiet_hours"]
    missing = [k for k in keys if not re.search(r"\.(It|Cm) .*\b%s\b" % re.escape(k), conf)]
    check(not missing, "prakat.conf(5) does not document: %s" % missing)


def samba_example():
    text = read_text(os.path.join(TOP, "conf", "samba-prakat.conf.example"))
    shares = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        m = re.match(r"^\[(.+)\]$", line)
        if m:
            current = shares.setdefault(m.group(1), {})
            continue
        if current is not None and "=" in line:
            k, v = line.split("=", 1)
            current[k.strip()] = v.strip()
    paths = {s.get("path"): s for s in shares.values()}
    for sub, writable in (("incoming", True), ("published", False), ("rejected", False)):
        share = paths.get("/var/spool/prakat/" + sub)
        check(share is not None, "no share for /var/spool/prakat/%s" % sub)
        check(share.get("valid users") == "@prakat-staff", "%s/: not limited to @prakat-staff" % sub)
        check(share.get("read only") == ("no" if writable else "yes"), "%s/: wrong 'read only'" % sub)
    incoming = paths["/var/spool/prakat/incoming"]
    check(incoming.get("force group") == "prakat-staff", "incoming/: no force group = prakat-staff")
    for name in ("~$*", "Thumbs.db", "desktop.ini"):
        check(name in incoming.get("veto files", ""), "incoming/: %s is not vetoed" % name)
    check(not any(p.endswith("pending") for p in paths if p), "pending/ must not be shared")


# ---- Debian packages ----

def build_packages(out_dir):
    make("deb", "DEB_OUT=" + out_dir, timeout=600)
    debs = {os.path.basename(p).split("_")[0]: p for p in glob.glob(os.path.join(out_dir, "*.deb"))}
    check("prakat" in debs and "prakat-tower" in debs, "make deb built %s" % sorted(debs))
    rc, contents = run(["dpkg-deb", "-c", debs["prakat"]])
    for path in ("./usr/sbin/prakatd", "./usr/bin/prakat", "./usr/lib/prakat/channels/website.so",
                 "./lib/systemd/system/prakatd.service", "./lib/systemd/system/prakatd@.service",
                 "./usr/lib/sysusers.d/prakat.conf", "./usr/lib/tmpfiles.d/prakat.conf",
                 "./usr/share/man/man8/prakatd.8.gz", "./usr/share/man/man5/prakat.conf.5.gz",
                 "./etc/prakat/prakat.conf"):
        check(re.search(r"\s%s$" % re.escape(path), contents, re.M), "prakat.deb lacks %s" % path)
    work = os.path.join(out_dir, "control")
    os.makedirs(work, exist_ok=True)
    rc, out = run(["dpkg-deb", "-e", debs["prakat"], work])
    check(rc == 0, out)
    check("/etc/prakat/prakat.conf" in read_text(os.path.join(work, "conffiles")).split(),
          "/etc/prakat/prakat.conf is not a conffile")
    if os.path.exists(TOWER_BIN) or os.path.exists(os.path.join(TOP, "src", "prakat-tower.c")):
        rc, contents = run(["dpkg-deb", "-c", debs["prakat-tower"]])
        check("./usr/sbin/prakat-tower" in contents, "prakat-tower.deb lacks /usr/sbin/prakat-tower")
    return debs


def lintian_clean(debs):
    rc, out = run(["lintian", "--no-tag-display-limit", debs["prakat"], debs["prakat-tower"]], timeout=300)
    errors = [line for line in out.splitlines() if line.startswith("E:")]
    check(not errors, "lintian errors:\n" + "\n".join(errors))
    for line in out.splitlines():
        if line.startswith("W:"):
            print("# lintian " + line)


# Where install and purge leave traces: the whole of it is compared, before and after.
SNAPSHOT_ROOTS = ("/etc", "/lib/systemd", "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/share/doc",
                  "/usr/share/man", "/var", "/run/prakat", "/srv")
# What dpkg, man-db and the shadow tools change on any install, whatever the package.
SNAPSHOT_SKIP = ("/var/lib/dpkg", "/var/cache/man", "/var/log", "/var/cache/apt", "/var/lib/apt",
                 "/var/cache/debconf", "/var/backups", "/var/tmp", "/var/cache/ldconfig", "/etc/ld.so.cache",
                 "/etc/passwd-", "/etc/group-", "/etc/shadow-", "/etc/gshadow-", "/etc/subuid-", "/etc/subgid-")
# A difference elsewhere is reported but not counted: other work on this machine may be creating
# files at the same moment.
OURS = re.compile(r"prakat|^/var/www|^/etc/systemd/|^/var/lib/systemd/|^/etc/credstore|^/run/prakat")


def snapshot():
    seen = set()
    for top in SNAPSHOT_ROOTS:
        for d, dirs, names in os.walk(top):
            dirs[:] = [x for x in dirs if not os.path.join(d, x).startswith(SNAPSHOT_SKIP)]
            for n in dirs + names:
                path = os.path.join(d, n)
                if not path.startswith(SNAPSHOT_SKIP):
                    seen.add(path)
    return seen


def installed(package):
    rc, out = run(["dpkg-query", "-W", "-f=${Status}", package])
    return rc == 0 and "installed" in out and "not-installed" not in out


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def install_and_purge(debs):
    before = snapshot()
    try:
        rc, out = run(["dpkg", "-i", debs["prakat"], debs["prakat-tower"]], timeout=300,
                      env={"DEBIAN_FRONTEND": "noninteractive"})
        check(rc == 0, "dpkg -i failed:\n" + out[-3000:])
        check(user_exists("prakat") and group_exists("prakat-staff"), "no user prakat or group prakat-staff")
        st = os.stat("/var/spool/prakat/incoming")
        check(stat.S_IMODE(st.st_mode) == 0o2770 and st.st_gid == grp.getgrnam("prakat-staff").gr_gid,
              "incoming/ is not 2770 prakat-staff")
        check(os.path.islink("/etc/systemd/system/multi-user.target.wants/prakatd.service"),
              "prakatd.service is not enabled")
        # The installed daemon, as its user, accepts the installed configuration and finds its plugins
        # in the compiled-in directory.
        rc, out = run(["setpriv", "--reuid=prakat", "--regid=prakat", "--groups=prakat-staff",
                       "/usr/sbin/prakatd", "--check"], cwd="/")
        seen = ""
        if rc != 0:  # what the state folder and the user looked like, for whoever reads the log
            seen = run(["ls", "-ldn", "/var/lib/prakat", "/var/lib/prakat/queue", "/var/spool/prakat"])[1]
            seen += run(["id", "prakat"])[1]
        check(rc == 0, "prakatd --check as prakat on the installed config failed:\n%s\n%s" % (out, seen))
        rc, out = run(["man", "-w", "prakat.conf"], env={"MANPATH": "/usr/share/man"})
        check(rc == 0, "man prakat.conf not found after install")
    finally:
        rc, out = run(["dpkg", "--purge", "prakat-tower", "prakat"], timeout=300,
                      env={"DEBIAN_FRONTEND": "noninteractive"})
    check(rc == 0, "dpkg --purge failed:\n" + out[-3000:])
    check(not user_exists("prakat"), "the user prakat is still there after purge")
    check(not group_exists("prakat") and not group_exists("prakat-staff"), "groups still there after purge")
    after = snapshot()
    left = sorted(p for p in after - before if OURS.search(p))
    gone = sorted(p for p in before - after if OURS.search(p))
    others = sorted((after - before) - set(left)) + sorted((before - after) - set(gone))
    if others:
        print("# changed meanwhile, not by prakat's packages: %s" % others[:20])
    check(not left, "purge left: %s" % left[:40])
    check(not gone, "install + purge removed what was there before: %s" % gone[:40])


# ---- optional: the unit under a real systemd, in a container ----

NSPAWN_CACHE = os.environ.get("PRAKAT_NSPAWN_ROOT", "/var/tmp/prakat-nspawn-root")
NSPAWN_PACKAGES = "systemd,systemd-sysv,dbus,libcurl4,libjansson4,libinih1,libmosquitto1,libsystemd0,passwd,procps"

# Runs inside the container once it has booted; prints "CHECK name: ok|FAIL ..." lines into
# /nspawn-result.txt, then powers the container off.
NSPAWN_CHECK = r"""#!/bin/sh
exec > /nspawn-result.txt 2>&1
state() { systemctl show prakatd -p ActiveState --value; }
ok() { if "$@"; then echo "CHECK $name: ok"; else echo "CHECK $name: FAIL"; fi; }
i=0; until [ "$(state)" = active ] || [ $i -ge 60 ]; do sleep 1; i=$((i+1)); done
name="started by systemd (Type=notify, READY=1)"; ok test "$(state)" = active
useradd -M -N -g prakat-staff -s /usr/sbin/nologin somsri
as_staff() { setpriv --reuid=somsri --regid=prakat-staff --init-groups sh -c "umask 007; $1" 2>/dev/null; }
fails() { if "$@"; then return 1; else return 0; fi; }
active_after() { systemctl "$1" prakatd && [ "$(state)" = active ]; }
as_staff 'cp /usr/share/doc/prakat/examples/01-prachakhom.txt /var/spool/prakat/incoming/ประชาคม.txt'
i=0; until ls /var/spool/prakat/published/*/receipt.txt >/dev/null 2>&1 || [ $i -ge 60 ]; do sleep 1; i=$((i+1)); done
name="a file dropped by staff is published"; ok ls /var/spool/prakat/published/*/receipt.txt
name="the web output is written"; ok test -s /var/www/html/news/index.html
name="staff read the receipt"; ok as_staff 'cat /var/spool/prakat/published/*/receipt.txt >/dev/null'
name="staff cannot write published/"; ok fails as_staff 'touch /var/spool/prakat/published/x'
name="staff cannot enter pending/"; ok fails as_staff 'ls /var/spool/prakat/pending'
www_reads() { setpriv --reuid=www-data --regid=www-data --init-groups cat /var/www/html/news/index.html >/dev/null; }
name="web server group reads the pages"; ok www_reads
name="systemctl reload (SIGHUP, RELOADING=1)"; ok active_after reload
name="restart"; ok active_after restart
name="no restarts by Restart=on-failure or the watchdog"; ok test "$(systemctl show prakatd -p NRestarts --value)" = 0
systemctl stop prakatd
name="stops cleanly"; ok test "$(systemctl show prakatd -p ExecMainStatus --value)" = 0
systemd-analyze security prakatd.service | tail -n 1
journalctl -u prakatd --no-pager -o cat | tail -n 30
echo "== done"
systemctl poweroff
"""

NSPAWN_UNIT = """[Unit]
Description=prakat check inside the container
After=prakatd.service
Wants=prakatd.service

[Service]
Type=oneshot
ExecStart=/usr/local/bin/prakat-nspawn-check

[Install]
WantedBy=multi-user.target
"""


def nspawn_root(work):
    """A fresh copy of a cached Debian 12 root with systemd (debootstrap once, about 250 MB)."""
    if not os.path.exists(os.path.join(NSPAWN_CACHE, "usr/lib/systemd/systemd")):
        shutil.rmtree(NSPAWN_CACHE, ignore_errors=True)
        rc, out = run(["debootstrap", "--variant=minbase", "--include=" + NSPAWN_PACKAGES, "bookworm",
                       NSPAWN_CACHE, "http://deb.debian.org/debian"], timeout=900)
        check(rc == 0, "debootstrap failed:\n" + out[-3000:])
    os.makedirs(work, exist_ok=True)
    root = os.path.join(work, "root")
    rc, out = run(["cp", "-a", NSPAWN_CACHE, root], timeout=300)
    check(rc == 0, "copying the root failed:\n" + out)
    return root


def unit_in_nspawn(debs, work):
    for tool in ("debootstrap", "systemd-nspawn"):
        check(shutil.which(tool), "%s is missing: apt-get install debootstrap systemd-container" % tool)
    root = nspawn_root(work)
    try:
        shutil.copy(debs["prakat"], os.path.join(root, "prakat.deb"))
        rc, out = run(["chroot", root, "dpkg", "-i", "/prakat.deb"], timeout=300)
        check(rc == 0, "dpkg -i in the container root failed:\n" + out[-3000:])
        script = os.path.join(root, "usr/local/bin/prakat-nspawn-check")
        with open(script, "w", encoding="utf-8") as f:
            f.write(NSPAWN_CHECK)
        os.chmod(script, 0o755)
        with open(os.path.join(root, "etc/systemd/system/prakat-nspawn-check.service"), "w") as f:
            f.write(NSPAWN_UNIT)
        wants = os.path.join(root, "etc/systemd/system/multi-user.target.wants")
        os.makedirs(wants, exist_ok=True)
        os.symlink("/etc/systemd/system/prakat-nspawn-check.service",
                   os.path.join(wants, "prakat-nspawn-check.service"))
        # The container has its own root, mount namespace, /tmp and network: booting its systemd
        # touches nothing of this machine.
        rc, out = run(["systemd-nspawn", "-q", "-D", root, "--boot", "--register=no", "--keep-unit",
                       "--private-network", "--console=passive"], timeout=300)
        result_path = os.path.join(root, "nspawn-result.txt")
        check(os.path.exists(result_path), "the container did not run the check (nspawn exit %d):\n%s"
              % (rc, out[-3000:]))
        result = read_text(result_path)
        checks = re.findall(r"^CHECK (.+): (ok|FAIL)$", result, re.M)
        failed = [n for n, v in checks if v != "ok"]
        check(len(checks) >= 11 and not failed, "in the container: %s\n%s" % (failed or "too few checks",
                                                                                result[-4000:]))
        m = re.search(r"Overall exposure level for prakatd.service: ([0-9.]+)", result)
        check(m and float(m.group(1)) <= MAX_EXPOSURE, "online security score: %s" % (m and m.group(1)))
        print("# in systemd-nspawn: %d checks ok, exposure %s" % (len(checks), m.group(1)))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def packaging(top_tmp):
    out_dir = os.path.join(top_tmp, "deb")
    debs = S.case("make deb builds prakat and prakat-tower", build_packages, out_dir)
    if not debs:
        return
    S.case("lintian: no errors", lintian_clean, debs)
    if os.environ.get("PRAKAT_NSPAWN") == "1" and IS_ROOT:
        S.case("prakatd.service under systemd 252 in systemd-nspawn: starts, publishes, reloads, stops",
               unit_in_nspawn, debs, os.path.join(top_tmp, "nspawn"))
    if not IS_ROOT:
        print("# dpkg -i / --purge not run: needs root")
        return
    if installed("prakat") or installed("prakat-tower") or user_exists("prakat"):
        print("# dpkg -i / --purge not run: prakat is installed on this machine, or the user prakat exists")
        return
    S.case("dpkg -i, then dpkg --purge leaves no file and no user", install_and_purge, debs)


def main():
    tmp = S.tmpdir("tree")
    usr = os.path.join(tmp, "usr-tree")
    if S.case("make install DESTDIR (PREFIX=/usr): every file, mode and path", install_tree_usr, usr):
        S.case("units: systemd-analyze verify", verify_units, usr, os.path.join(tmp, "units"))
        for u in DAEMON_UNITS:
            path = os.path.join(usr, "lib/systemd/system", u)
            S.case("%s: offline security exposure <= %.1f" % (u, MAX_EXPOSURE), security_score, path)
            S.case("%s: notify, watchdog, reload, user, sandbox, credentials" % u, hardening_settings, path)
        if os.path.exists(TOWER_UNIT):
            try:
                print("# prakat-tower.service: exposure %.1f (not enforced here)" % exposure(
                    os.path.join(usr, "lib/systemd/system/prakat-tower.service")))
            except TestFailure as e:
                print("# prakat-tower.service: %s" % e)
        S.case("sysusers.d and tmpfiles.d: users, and a spool staff may only write incoming/",
               apply_sysusers_tmpfiles, usr, os.path.join(tmp, "root"))
        S.case("make uninstall DESTDIR leaves no files", uninstall_tree_usr, usr)
    S.case("make install PREFIX=/usr/local: paths follow; an edited config is kept",
           install_local_prefix, os.path.join(tmp, "local-tree"))
    S.case("man pages: mandoc -Tlint and groff -ww clean; every config key documented", lint_man_pages)
    S.case("Samba example: incoming/ writable, published/ and rejected/ read-only, for prakat-staff",
           samba_example)
    if not ASAN:
        packaging(tmp)
    if IS_ROOT and os.path.exists(os.path.join(tmp, "root")):
        shutil.rmtree(os.path.join(tmp, "root"), ignore_errors=True)
    S.finish()


if __name__ == "__main__":
    main()
