#!/usr/bin/python3
"""control_group (issue 5): the control socket belongs to the configured group, members may use every
command, others are refused -- by the file's permissions, and by the daemon itself when the socket's
mode is opened up by mistake -- with a message that says what to ask for, not "prakatd is not running".

The callers are made with setpriv: uid 65534 (nobody) with or without the group `users` (gid 100 on
Debian).  Needs root; without it the suite says SKIP and counts nothing.  A config naming a group
that does not exist is refused with file:line.
"""

import grp
import os
import shutil
import stat
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import PRAKAT, Suite, asan_env, check, require_build  # noqa: E402

S = Suite("control_group")
require_build(S)

GROUP = "users"


def as_nobody(env, groups, *args):
    """Runs prakat as uid/gid 65534 with the given supplementary gids; returns (rc, stdout, stderr)."""
    e = dict(os.environ)
    e.update(asan_env())
    cmd = ["setpriv", "--reuid=65534", "--regid=65534"]
    cmd += ["--groups=" + ",".join(str(g) for g in groups)] if groups else ["--clear-groups"]
    p = subprocess.run(cmd + [PRAKAT, "--config", env.conf] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=e, timeout=60)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def main():
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        print("SKIP: control_group: needs root and setpriv (nothing counted)", flush=True)
        return
    try:
        gid = grp.getgrnam(GROUP).gr_gid
    except KeyError:
        print("SKIP: control_group: no group %s on this machine (nothing counted)" % GROUP, flush=True)
        return

    env = S.env("group", extra_prakat="control_group = %s" % GROUP)
    # nobody must be able to reach the config and the runtime folder's parent.
    os.chmod(env.tmp, 0o711)
    os.chmod(env.conf, 0o644)
    d = S.daemon(env)
    d.start()
    sock = os.path.join(env.runtime, "control.sock")

    def owned():
        st = os.stat(sock)
        check(st.st_gid == gid, "control.sock belongs to gid %d, not %s (%d)" % (st.st_gid, GROUP, gid))
        check(stat.S_IMODE(st.st_mode) == 0o660, "control.sock mode %o" % stat.S_IMODE(st.st_mode))
        rt = os.stat(env.runtime)
        check(rt.st_gid == gid and stat.S_IMODE(rt.st_mode) & 0o050 == 0o050,
              "the runtime folder does not let %s in: gid %d mode %o" % (GROUP, rt.st_gid, stat.S_IMODE(rt.st_mode)))
    S.case("control_group: the socket and its folder belong to the group, mode 0660", owned)

    def member():
        rc, out, err = as_nobody(env, [gid], "status")
        check(rc == 0 and "is running" in out, "a member's prakat status: rc %d\n%s%s" % (rc, out, err))
        rc, out, err = as_nobody(env, [gid], "retry", "20991231-nothere")
        check("not allowed" not in err and "ไม่มีสิทธิ์" not in err,
              "a member was refused: rc %d %s" % (rc, err))
    S.case("control_group: a member of the group may ask the daemon", member)

    def outsider():
        rc, out, err = as_nobody(env, [], "status")
        check(rc == 77, "an outsider's prakat status exited %d, expected 77 (EX_NOPERM)\n%s%s" % (rc, out, err))
        check("not allowed" in err and GROUP in err and "ไม่มีสิทธิ์" in err,
              "the refusal does not say what to ask for: %s" % err)
        check("not running" not in out + err, "an outsider is told the daemon is not running")
        rc, out, err = as_nobody(env, [], "hold", "20991231-nothere")
        check(rc == 77 and "not allowed" in err, "an outsider's hold: rc %d %s" % (rc, err))
    S.case("control_group: anyone else is refused with a clear message (exit 77)", outsider)

    def daemon_checks():
        # A socket opened up by mistake: the daemon still refuses whoever is not in the group.
        os.chmod(sock, 0o666)
        os.chmod(env.runtime, 0o755)
        rc, out, err = as_nobody(env, [], "status")
        check(rc != 0 and "not allowed" in out + err and "nobody" in out + err,
              "the daemon answered an outsider: rc %d\n%s%s" % (rc, out, err))
        rc, out, err = as_nobody(env, [gid], "status")
        check(rc == 0, "a member was refused: rc %d %s" % (rc, err))
    S.case("control_group: the daemon itself refuses outsiders, by SO_PEERCRED and SO_PEERGROUPS", daemon_checks)
    S.stop_daemon(d, "control_group: daemon stops cleanly")

    def unknown_group():
        bad = S.env("nogroup", extra_prakat="control_group = prakat-no-such-group")
        rc, out, err = bad.cli("status")
        check(rc == 78 and "prakat.conf:" in err and "prakat-no-such-group" in err and "groupadd" in err,
              "an unknown group: rc %d %s" % (rc, err))
    S.case("control_group: a group that does not exist is a config error with file:line and the fix",
           unknown_group)


S.group("control_group", main)
S.finish()
