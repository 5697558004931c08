#!/usr/bin/python3
"""The website channel's upload = sftp://… against a real OpenSSH sshd started on 127.0.0.1.

Debian's openssh-server (make deps installs it) runs as root on a spare port with its own
sshd_config, host key and authorized test key, all in a temporary folder; its SFTP root is a
folder of that tree standing in for the hosting company's web root.  Checked: the host ends with
exactly the local site's files and bytes; an update uploads only the files whose content changed
(host inode and mtime of every other file untouched); the connection cut mid-file and the host not
answering are retried until the site is complete, with no temporary file left; a full disk on the
host is a clear error, retried once there is room; a changed host key and a key the host does not
accept are refused with messages that say so (log, prakat show, prakat status); `prakat site sync`
puts back files the host lost.

FTPS (explicit, AUTH TLS) against Debian's vsftpd the same way, with a CA and certificate made by the
test: mirror, only changed files, removals, the connection cut mid-file, a certificate from another CA
and a wrong password.  vsftpd logs in local users through PAM, and SFTP with a password needs one
too, so the test adds a user prakat-up-PID (with a random password) and removes it at the end.
Needs root.
"""

import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import PRAKATD, TIMEOUT, Suite, check, read_text, require_build, tiny_png, wait_for  # noqa: E402

S = Suite("upload")
require_build(S)

SSHD = "/usr/sbin/sshd"
VSFTPD = "/usr/sbin/vsftpd"
# One login per run: two runs at once on one machine (make check twice) must not change each other's
# password or remove each other's user.  A user left by a run that died is removed by the next one.
TEST_USER_PREFIX = "prakat-up-"
TEST_USER = "%s%d" % (TEST_USER_PREFIX, os.getpid())
TMP_PREFIX = ".prakat-up-"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def passive_ports():
    """The ports for vsftpd's passive data connections: every port below the kernel's ephemeral range
    from 10000 on (vsftpd picks one at random and tries another if it is taken), so that the test's
    own outgoing connections and those of suites running beside it never hold one."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    return 10000, max(10001, low - 1)


def keygen(path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "prakat-test", "-f", path], check=True)


def descendants(pid):
    """Every process below `pid` (sshd's per-connection children)."""
    children = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = open(stat).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.split("/")[2]))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


class Server:
    """A server the test started (self.proc, self.port): waits until it listens, cuts its connections."""

    def wait_listening(self, name):
        def listening():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                check(self.proc.poll() is None, "%s exited" % name)
                return False
        wait_for(listening, what="%s listening on %d" % (name, self.port))
        return self

    def kill_sessions(self):
        """Cuts every open connection (the per-connection processes); the listener stays."""
        for pid in descendants(self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.kill_sessions()
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


def remove_stale_test_users():
    """Users of earlier runs whose process is gone (the run was killed before it removed its user)."""
    with open("/etc/passwd", encoding="utf-8", errors="replace") as f:
        names = [line.split(":", 1)[0] for line in f]
    for name in names:
        pid = name[len(TEST_USER_PREFIX):]
        if name.startswith(TEST_USER_PREFIX) and pid.isdigit() and not os.path.exists("/proc/%s" % pid):
            subprocess.run(["userdel", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_user(home, secret_dir):
    """The local user TEST_USER (made if missing, removed at the end) with a new random password, owning
    `home`; returns the password and a file holding it (mode 0600)."""
    password = "Test-" + secrets.token_hex(12)
    if subprocess.run(["id", TEST_USER], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode:
        subprocess.run(["useradd", "-M", "-d", home, "-s", "/bin/sh", TEST_USER], check=True)
    subprocess.run(["chpasswd"], input=("%s:%s\n" % (TEST_USER, password)).encode(), check=True)
    subprocess.run(["chown", "-R", TEST_USER, home], check=True)
    path = os.path.join(secret_dir, "password")
    with open(path, "w") as f:
        f.write(password + "\n")
    os.chmod(path, 0o600)
    return password, path


class Sshd(Server):
    """One sshd: TMP/sshd/{sshd_config, host_key, client_key, authorized_keys, known_hosts, www/}."""

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "sshd")
        self.www = os.path.join(self.dir, "www")
        os.makedirs(self.www)
        os.makedirs("/run/sshd", exist_ok=True)  # privilege separation folder, made by the package's unit
        self.port = free_port()
        self.host_key = os.path.join(self.dir, "host_key")
        self.client_key = os.path.join(self.dir, "client_key")
        self.known_hosts = os.path.join(self.dir, "known_hosts")
        keygen(self.host_key)
        keygen(self.client_key)
        shutil.copy(self.client_key + ".pub", os.path.join(self.dir, "authorized_keys"))
        self.write_known_hosts()
        self.log = os.path.join(self.dir, "sshd.log")
        self.proc = None

    def write_known_hosts(self):
        key = " ".join(read_text(self.host_key + ".pub").split()[:2])
        with open(self.known_hosts, "w") as f:
            f.write("[127.0.0.1]:%d %s\n" % (self.port, key))

    def config(self):
        path = os.path.join(self.dir, "sshd_config")
        with open(path, "w") as f:
            f.write("Port %d\nListenAddress 127.0.0.1\nHostKey %s\nPidFile %s/sshd.pid\n"
                    "AuthorizedKeysFile %s/authorized_keys\nUsePAM no\nStrictModes no\nPermitRootLogin yes\n"
                    "PubkeyAuthentication yes\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\n"
                    "Subsystem sftp internal-sftp\nLogLevel VERBOSE\n" % (self.port, self.host_key, self.dir,
                                                                         self.dir))
        return path

    def start(self):
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", self.config()], stdout=logf, stderr=logf)
        logf.close()
        return self.wait_listening("sshd (log: %s)" % self.log)

    def upload_config(self, extra=""):
        return ("upload = sftp://root@127.0.0.1:%d%s\nupload_key_file = %s\nupload_known_hosts = %s\n%s"
                % (self.port, self.www, self.client_key, self.known_hosts, extra))

    def password_config(self, password_file):
        return ("upload = sftp://%s@127.0.0.1:%d%s\nupload_password_file = %s\nupload_known_hosts = %s\n"
                % (TEST_USER, self.port, self.www, password_file, self.known_hosts))


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_ca(d, name):
    """A CA and a certificate for 127.0.0.1 signed by it: (ca.pem, server.pem, server.key)."""
    ca_key, ca = os.path.join(d, name + "-ca.key"), os.path.join(d, name + "-ca.pem")
    key, csr, cert = (os.path.join(d, name + x) for x in ("-server.key", "-server.csr", "-server.pem"))
    ext = os.path.join(d, name + "-ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
            "-subj", "/CN=prakat test CA " + name)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2",
            "-extfile", ext)
    return ca, cert, key


class Vsftpd(Server):
    """vsftpd with explicit TLS (AUTH TLS) on a spare port; TMP/ftp/{vsftpd.conf, host/www}. The login is
    a local user made for the test (vsftpd authenticates through PAM), removed at the end."""

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "ftp")
        self.host = os.path.join(self.dir, "host")
        self.www = os.path.join(self.host, "www")
        os.makedirs(self.www)
        os.makedirs(os.path.join(self.dir, "empty"))
        os.chmod(tmp, 0o755)  # the FTP user must reach its folder
        self.port = free_port()
        self.ca, self.cert, self.key = make_ca(self.dir, "good")
        self.other_ca = make_ca(self.dir, "other")[0]
        self.password, self.password_file = test_user(self.host, self.dir)
        self.log = os.path.join(self.dir, "vsftpd.log")
        self.proc = None

    def start(self):
        conf = os.path.join(self.dir, "vsftpd.conf")
        pasv_min, pasv_max = passive_ports()
        with open(conf, "w") as f:
            f.write("listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port=%d\nbackground=NO\n"
                    "anonymous_enable=NO\nlocal_enable=YES\nwrite_enable=YES\nlocal_umask=022\nlocal_root=%s\n"
                    "pam_service_name=vsftpd\nssl_enable=YES\nallow_anon_ssl=NO\nforce_local_data_ssl=YES\n"
                    "force_local_logins_ssl=YES\nrequire_ssl_reuse=NO\nrsa_cert_file=%s\nrsa_private_key_file=%s\n"
                    "pasv_enable=YES\npasv_min_port=%d\npasv_max_port=%d\npasv_address=127.0.0.1\n"
                    "secure_chroot_dir=%s/empty\nseccomp_sandbox=NO\nisolate=NO\nisolate_network=NO\n"
                    "vsftpd_log_file=%s\nxferlog_enable=YES\n"
                    % (self.port, self.host, self.cert, self.key, pasv_min, pasv_max, self.dir, self.log))
        self.proc = subprocess.Popen([VSFTPD, conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self.wait_listening("vsftpd (log: %s)" % self.log)

    def upload_config(self, ca=None, password_file=None):
        return ("upload = ftps://%s@127.0.0.1:%d/www\nupload_password_file = %s\nupload_ca_file = %s\n"
                % (TEST_USER, self.port, password_file or self.password_file, ca or self.ca))


SERVERS = []


def new_sshd(tmp):
    s = Sshd(tmp)
    SERVERS.append(s)
    return s.start()


def site_with_sshd(tag, upload_extra="", **env_kw):
    """A new sshd, an Env whose website uploads to it, and prakatd started on it."""
    sshd = new_sshd(S.tmpdir(tag))
    env = S.env(tag + "-env", website_extra=sshd.upload_config(upload_extra), **env_kw)
    d = S.daemon(env)
    d.start()
    return sshd, env, d


def tree(root, dot=False):
    """{relative path: bytes} of every file under root (dot-files only with dot=True).  The host's
    folder may be read while an upload goes on: a file gone between listing and reading is left out."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames:
            if n.startswith(".") and not dot:
                continue
            p = os.path.join(dirpath, n)
            try:
                with open(p, "rb") as f:
                    out[os.path.relpath(p, root)] = f.read()
            except FileNotFoundError:
                pass
    return out


def stamps(root):
    """{relative path: (inode, mtime)}; like tree(), a file gone meanwhile is left out."""
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for n in filenames:
            try:
                st = os.stat(os.path.join(dirpath, n))
            except FileNotFoundError:
                continue
            out[os.path.relpath(os.path.join(dirpath, n), root)] = (st.st_ino, st.st_mtime_ns)
    return out


def check_only_changed_sent(env, www, publish):
    """Runs publish(); the files the host got must be exactly those whose content changed locally.
    Returns the local files the host did not get again."""
    wait_mirrored(env, www)
    before_local, before_host = tree(env.site), stamps(www)
    publish()
    wait_mirrored(env, www)
    after_local, after_host = tree(env.site), stamps(www)
    changed_local = {p for p in after_local if before_local.get(p) != after_local[p]}
    touched_host = {p for p in after_host if before_host.get(p) != after_host[p]}
    check(touched_host == changed_local, "uploaded %s, but the changed files are %s" %
          (sorted(touched_host), sorted(changed_local)))
    return set(after_local) - touched_host


def leftovers(root):
    return [p for p in tree(root, dot=True) if os.path.basename(p).startswith(".")]


def wait_mirrored(env, www, timeout=None):
    """Waits until the host folder `www` has exactly the local site, and no temporary file."""
    def same():
        local, remote = tree(env.site), tree(www, dot=True)
        return local == remote and local
    try:
        wait_for(same, timeout, "the host to mirror the local site")
    except Exception:
        local, remote = tree(env.site), tree(www, dot=True)
        missing = sorted(set(local) - set(remote))
        extra = sorted(set(remote) - set(local))
        differ = sorted(p for p in set(local) & set(remote) if local[p] != remote[p])
        raise AssertionError("host differs from the site: missing %s, extra %s, differing %s" %
                             (missing[:8], extra[:8], differ[:8]))


def health(env):
    _, out, _ = env.cli("status")
    return out


def prakatd_refuses(env):
    """Runs prakatd on a config it should refuse; returns (exit code, output)."""
    p = subprocess.run([PRAKATD, "--config", env.conf], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=30)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def announce(n, title=None):
    return "หัวข้อ: %s\nหมวด: ข่าวทดสอบ\n\nรายละเอียดประกาศฉบับที่ %d\n" % (title or "ประกาศทดสอบการอัปโหลด %d" % n, n)


# ---- the cases ----

def basic_and_update():
    sshd, env, d = site_with_sshd("basic")

    def first():
        env.drop("a.txt", announce(1))
        env.drop_bundle("photo", {"announcement.txt": "หัวข้อ: ภาพกิจกรรม\nไฟล์แนบ: รูป.png, report.pdf\n\nภาพงาน\n",
                                  "รูป.png": tiny_png(8, 6), "report.pdf": b"%PDF-1.4\n" + os.urandom(3000)})
        _, id1, receipt = env.wait_published("a.txt")
        _, id2, _ = env.wait_published("photo")
        check("published on the website" in receipt, "receipt: %s" % receipt[-600:])
        wait_mirrored(env, sshd.www)
        check(os.path.exists(os.path.join(sshd.www, "a", id1 + ".html")), "the article is not on the host")
        check(glob.glob(os.path.join(sshd.www, "files", id2, "*.png")), "the attachment is not on the host")
        check(os.path.exists(os.path.join(env.state, "channels", "website", "upload-manifest")), "no manifest")
    S.case("upload: publishing puts exactly the local site on the host", first)

    def job_waits_for_upload():
        # The receipt of a publish exists only once the host has its files: check right at the receipt.
        env.drop("b.txt", announce(2))
        _, id3, _ = env.wait_published("b.txt")
        check(read_text(os.path.join(sshd.www, "a", id3 + ".html")) == read_text(env.article(id3)),
              "the receipt came before the article was on the host")
    S.case("upload: the job ends only once its files are on the host", job_waits_for_upload)

    def only_changed():
        untouched = check_only_changed_sent(env, sshd.www, lambda: (env.drop("c.txt", announce(3)),
                                                                     env.wait_published("c.txt")))
        check("style.css" in untouched and [p for p in untouched if p.startswith(("a/", "files/"))],
              "older articles or attachments were uploaded again (untouched: %s)" % sorted(untouched))
    S.case("upload: an update sends only the files whose content changed", only_changed)

    def withdrawal_removes():
        id2 = env.receipt_for("photo")[1]
        env.drop("cancel.txt", "Cancel: %s\n\nยกเลิกภาพกิจกรรม\n" % id2)
        env.wait_published("cancel.txt")
        wait_mirrored(env, sshd.www)
        check(not glob.glob(os.path.join(sshd.www, "files", id2, "*")), "the withdrawn attachments stay on the host")
    S.case("upload: a withdrawal removes the attachments from the host too", withdrawal_removes)

    def site_sync():
        for p in ("index.html", "feed.atom", "style.css"):
            os.unlink(os.path.join(sshd.www, p))
        shutil.rmtree(os.path.join(sshd.www, "a"))
        rc, out, err = env.cli("site", "sync")
        check(rc == 0, "prakat site sync exited %d: %s %s" % (rc, out, err))
        check("website:" in out and "127.0.0.1" in out, "prakat site sync said: %r" % out)
        wait_mirrored(env, sshd.www)
    S.case("upload: prakat site sync puts back what the host lost", site_sync)

    def status_ok():
        out = wait_for(lambda: "up to date" in health(env) and health(env), what="status: up to date")
        check("127.0.0.1:%d" % sshd.port in out, "status: %s" % out)
    S.case("upload: prakat status shows the host up to date", status_ok)

    def restart_uploads_difference():
        # Files changed while prakatd was down (a crash between writing and uploading) go up at start.
        S.stop_daemon(d, "upload: clean stop")
        with open(os.path.join(env.site, "style.css"), "a") as f:
            f.write("/* changed while prakatd was down */\n")
        os.unlink(os.path.join(sshd.www, "feed.atom"))  # not noticed: the manifest says it is there
        d.start()
        wait_for(lambda: tree(env.site)["style.css"] == tree(sshd.www).get("style.css"),
                 what="style.css changed offline to be uploaded at start")
        check(not os.path.exists(os.path.join(sshd.www, "feed.atom")), "everything was uploaded again at start")
        env.cli("site", "sync", check_rc=0)
        wait_mirrored(env, sshd.www)
    S.case("upload: at start, what changed since the manifest goes up", restart_uploads_difference)
    return env, d, sshd


def dropped_connection():
    sshd, env, d = site_with_sshd("drop", "upload_timeout = 5s\n", extra_prakat="max_file_size = 200M")
    env.drop("first.txt", announce(1))
    env.wait_published("first.txt")
    wait_mirrored(env, sshd.www)
    big = os.urandom(60 * 1024 * 1024)

    def cut():
        env.drop_bundle("big", {"announcement.txt": "หัวข้อ: แผนที่ขนาดใหญ่\nไฟล์แนบ: map.bin\n\nแผนที่\n",
                                "map.bin": big})

        def partial():
            return [p for p in glob.glob(os.path.join(sshd.www, "files", "*", TMP_PREFIX + "*"))
                    if os.path.getsize(p) > 0]
        temps = wait_for(partial, interval=0.005, what="the big attachment to start arriving")
        sshd.kill_sessions()
        final = temps[0].replace(TMP_PREFIX, "")
        check(not os.path.exists(final), "the attachment is in place while it is still being written")
        _, id, receipt = env.wait_published("big", timeout=TIMEOUT * 3)
        wait_mirrored(env, sshd.www)
        check(read_text(env.log).count("Failed to upload the website") >= 1, "the cut was not logged")
        attempts = env.show_json(id)
        check("attempt" in str(attempts), "show: %s" % attempts)
        check(not leftovers(sshd.www), "temporary files left on the host: %s" % leftovers(sshd.www))
    S.case("upload: connection cut mid-file: retried, complete, nothing half-written in place", cut)

    def blocked():
        sshd.proc.send_signal(signal.SIGSTOP)  # accepts TCP, never answers
        try:
            env.drop("blocked.txt", announce(5))
            d.wait_log("Failed to upload the website", timeout=TIMEOUT)
            check(not env.receipt_for("blocked.txt"), "published while the host did not answer")
        finally:
            sshd.proc.send_signal(signal.SIGCONT)
        env.wait_published("blocked.txt", timeout=TIMEOUT * 2)
        wait_mirrored(env, sshd.www)
        check(not leftovers(sshd.www), "temporary files left on the host: %s" % leftovers(sshd.www))
    S.case("upload: a host that does not answer: retried once it does", blocked)


def host_key_changed():
    sshd, env, d = site_with_sshd("hostkey")
    env.drop("one.txt", announce(1))
    env.wait_published("one.txt")
    # The host gets a new key: prakat must refuse it until known_hosts is fixed.
    sshd.stop()
    os.unlink(sshd.host_key)
    os.unlink(sshd.host_key + ".pub")
    keygen(sshd.host_key)
    sshd.start()

    def refused():
        env.drop("two.txt", announce(2))
        d.wait_log("is not the one recorded in %s" % sshd.known_hosts)
        log = read_text(env.log)
        check("CHANGED" in log and "ssh-keygen -R" in log, "the log does not say how to fix it: %s" % log[-800:])
        out = wait_for(lambda: "CHANGED" in health(env) and health(env), what="status naming the changed key")
        check("ขัดข้อง/FAIL" in out, "status: %s" % out)
        entry = [e for e in env.list_json() if e.get("original") == "two.txt" or "two" in str(e)]
        check(entry, "two.txt is not in the queue")
        check(not env.receipt_for("two.txt"), "published through a host with a changed key")
        check(not os.path.exists(os.path.join(sshd.www, "a")) or
              len(os.listdir(os.path.join(sshd.www, "a"))) == 1, "files were sent to the host with the changed key")
    S.case("upload: a changed host key is refused, clearly (log, status)", refused)

    def fixed():
        sshd.write_known_hosts()
        env.wait_published("two.txt", timeout=TIMEOUT * 2)
        wait_mirrored(env, sshd.www)
    S.case("upload: once known_hosts has the new key, the retry goes through", fixed)


def wrong_key_and_config():
    tmp = S.tmpdir("wrongkey")
    sshd = new_sshd(tmp)
    other = os.path.join(sshd.dir, "other_key")
    keygen(other)
    env = S.env("wrongkey-env", website_extra=sshd.upload_config().replace(sshd.client_key, other))
    d = S.daemon(env)
    d.start()

    def refused():
        env.drop("one.txt", announce(1))
        d.wait_log("refused the login")
        out = wait_for(lambda: "refused the login" in health(env) and health(env), what="status: login refused")
        check("failing" in out and "ขัดข้อง/FAIL" in out, "status: %s" % out)
        check(not env.receipt_for("one.txt"), "published although the host refused the key")
    S.case("upload: a key the host does not accept: a clear error, retried", refused)

    def group_readable():
        os.chmod(sshd.client_key, 0o640)
        try:
            env2 = S.env("badmode-env", website_extra=sshd.upload_config())
            rc, out = prakatd_refuses(env2)
            check(rc != 0, "prakatd started with a group-readable key")
            check("chmod 600 %s" % sshd.client_key in out, "no fix in the message: %s" % out[-600:])
        finally:
            os.chmod(sshd.client_key, 0o600)
    S.case("upload: a key readable by group or others is refused at start", group_readable)

    def no_known_hosts():
        env3 = S.env("noknown-env", website_extra=sshd.upload_config().replace(sshd.known_hosts, "/nonexistent/kh"))
        rc, out = prakatd_refuses(env3)
        check(rc != 0 and "ssh-keyscan" in out, "prakatd: rc %d, %s" % (rc, out[-600:]))
    S.case("upload: a missing known_hosts stops start-up with the fix", no_known_hosts)


def sftp_password():
    tmp = S.tmpdir("sftppw")
    os.chmod(tmp, 0o755)  # the user must reach its folder
    sshd = new_sshd(tmp)
    password, password_file = test_user(sshd.www, sshd.dir)
    env = S.env("sftppw-env", website_extra=sshd.password_config(password_file))
    d = S.daemon(env)
    d.start()

    def login():
        env.drop("a.txt", announce(1))
        env.wait_published("a.txt")
        wait_mirrored(env, sshd.www)
        check(password not in read_text(env.log), "the password is in the log")
    S.case("upload: SFTP with a password (upload_password_file)", login)


def disk_full():
    tmp = S.tmpdir("full")
    sshd = new_sshd(tmp)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", sshd.www], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    if p.returncode != 0:
        print("SKIP: upload: disk full (needs root to mount a tmpfs; nothing counted)", flush=True)
        return
    try:
        env = S.env("full-env", extra_prakat="max_file_size = 20M", website_extra=sshd.upload_config())
        d = S.daemon(env)
        d.start()

        def full():
            env.drop_bundle("big", {"announcement.txt": "หัวข้อ: เอกสารใหญ่\nไฟล์แนบ: doc.bin\n\nเอกสาร\n",
                                    "doc.bin": os.urandom(3 * 1024 * 1024)})
            d.wait_log("is its disk full")
            d.wait_log("Will try again")
            check(not env.receipt_for("big"), "published although the host's disk is full")
            check("disk full" in health(env), "status: %s" % health(env))
            subprocess.run(["mount", "-o", "remount,size=64m", sshd.www], check=True)
            env.wait_published("big", timeout=TIMEOUT * 2)
            wait_mirrored(env, sshd.www)
            check(not leftovers(sshd.www), "temporary files left on the host: %s" % leftovers(sshd.www))
        S.case("upload: host disk full: a clear error, retried once there is room", full)
        S.stop_daemon(d, "upload: disk-full daemon stops cleanly")
    finally:
        subprocess.run(["umount", "-l", sshd.www], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def ftps():
    if not os.access(VSFTPD, os.X_OK):
        print("SKIP: upload: FTPS (%s is missing; make deps installs vsftpd)" % VSFTPD, flush=True)
        return
    tmp = S.tmpdir("ftps")
    ftp = Vsftpd(tmp)
    SERVERS.append(ftp)
    ftp.start()
    env = S.env("ftps-env", website_extra=ftp.upload_config())
    d = S.daemon(env)
    d.start()

    def mirror():
        env.drop("a.txt", announce(1))
        env.drop_bundle("photo", {"announcement.txt": "หัวข้อ: ภาพ\nไฟล์แนบ: p.png\n\nภาพ\n", "p.png": tiny_png(5, 5)})
        env.wait_published("a.txt")
        env.wait_published("photo")
        wait_mirrored(env, ftp.www)
    S.case("upload: FTPS (vsftpd, AUTH TLS): the host mirrors the site", mirror)

    def update_and_withdraw():
        check_only_changed_sent(env, ftp.www, lambda: (env.drop("b.txt", announce(2)), env.wait_published("b.txt")))
        id2 = env.receipt_for("photo")[1]
        env.drop("cancel.txt", "Cancel: %s\n\nยกเลิก\n" % id2)
        env.wait_published("cancel.txt")
        wait_mirrored(env, ftp.www)
    S.case("upload: FTPS: only changed files, and removals", update_and_withdraw)

    def cut():
        env.drop_bundle("big", {"announcement.txt": "หัวข้อ: ไฟล์ใหญ่\nไฟล์แนบ: big.bin\n\nไฟล์\n",
                                "big.bin": os.urandom(15 * 1024 * 1024)})
        wait_for(lambda: glob.glob(os.path.join(ftp.www, "files", "*", TMP_PREFIX + "*")), interval=0.005,
                 what="the big file to start arriving")
        ftp.kill_sessions()
        env.wait_published("big", timeout=TIMEOUT * 3)
        wait_mirrored(env, ftp.www)
    S.case("upload: FTPS: connection cut mid-file: retried, complete, no temporary file", cut)
    S.stop_daemon(d, "upload: FTPS daemon stops cleanly")

    def wrong_ca():
        env2 = S.env("ftps-ca-env", website_extra=ftp.upload_config(ca=ftp.other_ca))
        d2 = S.daemon(env2)
        d2.start()
        env2.drop("a.txt", announce(1))
        d2.wait_log("TLS certificate of 127.0.0.1:%d was refused" % ftp.port)
        check(not env2.receipt_for("a.txt"), "published to a host whose certificate was refused")
        S.stop_daemon(d2, "upload: FTPS wrong-CA daemon stops cleanly")
    S.case("upload: FTPS: a certificate from another CA is refused, clearly", wrong_ca)

    def wrong_password():
        bad = os.path.join(ftp.dir, "bad-password")
        with open(bad, "w") as f:
            f.write("not-the-password\n")
        os.chmod(bad, 0o600)
        env3 = S.env("ftps-pw-env", website_extra=ftp.upload_config(password_file=bad))
        d3 = S.daemon(env3)
        d3.start()
        env3.drop("a.txt", announce(1))
        d3.wait_log("refused the login")
        check(ftp.password not in read_text(env3.log), "the password is in the log")
        S.stop_daemon(d3, "upload: FTPS wrong-password daemon stops cleanly")
    S.case("upload: FTPS: a wrong password is a clear error", wrong_password)


def main():
    if not os.access(SSHD, os.X_OK):
        S.result("upload: sshd present", False, "%s is missing (make deps installs openssh-server)" % SSHD)
        S.finish()
    remove_stale_test_users()
    try:
        S.group("upload: publish and update", basic_and_update)
        S.group("upload: faults", dropped_connection)
        S.group("upload: host key", host_key_changed)
        S.group("upload: credentials", wrong_key_and_config)
        S.group("upload: SFTP password", sftp_password)
        S.group("upload: disk full", disk_full)
        S.group("upload: FTPS", ftps)
    finally:
        for s in SERVERS:
            try:
                s.stop()
            except Exception:
                pass
        subprocess.run(["userdel", TEST_USER], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    S.finish()


if __name__ == "__main__":
    main()
