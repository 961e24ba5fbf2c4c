"""The Debian package, installed as an administrator installs modules.

`make deb`, then into this machine's own apache2: dpkg -i, a2enmod
sse_mgr, `apache2ctl configtest` of the system's configuration, and a
server started with apache2ctl from the system's /etc/apache2 (its
mods-enabled, conf-enabled and sites-enabled, its default MPM), on a free
port of its own: a stream and a notify through it; then a2dismod and
dpkg --purge.

The machine is left as the test found it, pass or fail (try/finally),
and the test checks that it is: /etc/apache2, a2enmod's state in
/var/lib/apache2, httpd's modules and headers, whether the system's
apache2 runs. It never touches the system's own server: the one it
starts has its own free port, pid file, run, lock and log directories
(an envvars file of its own, through APACHE_ENVVARS, and a copy of
apache2.conf without ports.conf through APACHE_ARGUMENTS), and it stops
only that one, by its pid file. It needs root and dpkg, and apache2
installed (t/install-deps.sh installs it; the test installs no other
package); it skips, saying why, otherwise. SSE_MGR_DEB names a .deb to
install instead of building one.
"""

import fcntl
import glob
import hashlib
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time

import pytest

from sse_client import SSEApi, http
from sse_harness import BAD_LEVELS, CHILD_SIGNAL, LOG_LINE, REPO, \
    child_pids, free_port, wait_until

PACKAGE = "libapache2-mod-sse-mgr"
CONFDIR = "/etc/apache2"
SO = "/usr/lib/apache2/modules/mod_sse_mgr.so"
LOAD = CONFDIR + "/mods-available/sse_mgr.load"
CONF = CONFDIR + "/mods-available/sse_mgr.conf"
HEADER = "/usr/include/apache2/mod_sse_mgr.h"
DOCDIR = "/usr/share/doc/" + PACKAGE
SHIPPED = (SO, LOAD, CONF, HEADER, DOCDIR + "/copyright",
           DOCDIR + "/README.Debian", DOCDIR + "/docs/operations.md.gz")
# What installing, a2enmod, a2dismod and purging may change, compared
# before and after. Directories count by their entries, not their times.
WATCHED = (CONFDIR, "/var/lib/apache2", "/usr/lib/apache2/modules",
           "/usr/include/apache2", DOCDIR)
# a2enmod's memory of what the administrator and packages enabled
A2_STATE = "/var/lib/apache2"
SYSTEM_PID_FILE = "/run/apache2/apache2.pid"
# httpd's own race at an immediate stop (see HttpdEnv.stop)
ALLOWED_LOG = re.compile(r"AH03092: process_lingering_close")


def run(cmd, env=None, timeout=300, check=True):
    """(exit code, stdout+stderr) of @cmd; an AssertionError naming it
    when @check and it failed."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, env=env,
                          timeout=timeout, cwd=REPO)
    out = proc.stdout.decode("utf-8", "replace")
    assert not check or proc.returncode == 0, (
        "%s failed (%d):\n%s" % (" ".join(cmd), proc.returncode, out))
    return proc.returncode, out


def dpkg(*args):
    """dpkg, waiting up to 2 minutes for a lock another apt or dpkg
    holds."""
    deadline = time.monotonic() + 120
    while True:
        rc, out = run(["dpkg"] + list(args), check=False,
                      env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if rc == 0 or "lock" not in out or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert rc == 0, "dpkg %s failed (%d):\n%s" % (" ".join(args), rc, out)
    return out


def package_status():
    """dpkg's status of the package: '' when dpkg does not know it."""
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", PACKAGE],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return proc.stdout.decode().strip() if proc.returncode == 0 else ""


def installed(status):
    return bool(status) and not status.endswith(" not-installed")


def apache2_installed():
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "apache2"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return proc.stdout.decode().endswith("ok installed")


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def system_apache2_running():
    pid = read_pid(SYSTEM_PID_FILE)
    return bool(pid and pid_alive(pid))


def snapshot():
    """{path: what it is} for everything under WATCHED: a directory's
    mode, a link's target, a file's mode, owner and content hash."""
    seen = {}
    for top in WATCHED:
        if not os.path.lexists(top):
            continue
        seen[top] = ("dir",)
        for dirpath, dirs, files in os.walk(top):
            for name in dirs + files:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                if stat.S_ISLNK(st.st_mode):
                    seen[path] = ("link", os.readlink(path))
                elif stat.S_ISDIR(st.st_mode):
                    seen[path] = ("dir", oct(st.st_mode))
                else:
                    with open(path, "rb") as f:
                        digest = hashlib.sha256(f.read()).hexdigest()
                    seen[path] = ("file", oct(st.st_mode), st.st_uid,
                                  st.st_gid, digest)
    return seen


def differences(before, after):
    lines = []
    for path in sorted(set(before) | set(after)):
        if before.get(path) != after.get(path):
            lines.append("  %s: %r -> %r" % (path, before.get(path),
                                              after.get(path)))
    return lines


def save_files(top):
    """{path: (mode, content)} of the files under @top: a2enmod's state
    (who enabled or disabled what), which a2enmod, a2dismod and a purge
    each rewrite."""
    saved = {}
    for dirpath, _, files in os.walk(top):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                saved[path] = (os.lstat(path).st_mode & 0o7777, f.read())
    return saved


def restore_files(top, saved):
    for path in save_files(top):
        if path not in saved:
            os.unlink(path)
    for path, (mode, content) in saved.items():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)
        os.chmod(path, mode)


def remove_new_empty_dirs(before):
    """rmdir what the test's tools created and left empty, deepest
    first."""
    after = snapshot()
    for path in sorted(set(after) - set(before), reverse=True):
        if after[path][0] == "dir":
            try:
                os.rmdir(path)
            except OSError:
                pass


def enabled_modules():
    return set(os.listdir(os.path.join(CONFDIR, "mods-enabled")))


def build_deb():
    given = os.environ.get("SSE_MGR_DEB")
    if given:
        assert os.path.isfile(given), "SSE_MGR_DEB=%s: no such file" % given
        return given
    run(["make", "deb"], timeout=900)
    found = glob.glob(os.path.join(REPO, "build", "deb", PACKAGE + "_*.deb"))
    assert len(found) == 1, "make deb left %r in build/deb" % found
    return found[0]


class SystemServer:
    """apache2 from the system's /etc/apache2, through apache2ctl, with a
    free port, pid file, run, lock and log directories of its own."""

    def __init__(self, root):
        self.root = root
        self.port = free_port()
        for sub in ("run", "lock", "log"):
            os.makedirs(os.path.join(root, sub))
        self.pid_file = os.path.join(root, "run", "apache2.pid")
        self.error_log = os.path.join(root, "log", "error.log")
        self.envvars = os.path.join(root, "envvars")
        with open(self.envvars, "w") as f:
            f.write(". %s/envvars\n" % CONFDIR)
            for var, sub in (("APACHE_PID_FILE", "run/apache2.pid"),
                             ("APACHE_RUN_DIR", "run"),
                             ("APACHE_LOCK_DIR", "lock"),
                             ("APACHE_LOG_DIR", "log")):
                f.write("export %s=%s/%s\n" % (var, root, sub))
        self.conf = os.path.join(root, "apache2.conf")
        with open(os.path.join(CONFDIR, "apache2.conf")) as f:
            text = f.read()
        # ports.conf's Listen 80 (and 443) cannot be undone later: the
        # copy listens on the free port instead
        text, n = re.subn(r"(?m)^\s*Include\s+ports\.conf\s*$",
                          "Listen 127.0.0.1:%d" % self.port, text)
        if n != 1:
            pytest.skip("%s/apache2.conf has no 'Include ports.conf' line to "
                        "put a free port in its place" % CONFDIR)
        with open(self.conf, "w") as f:
            f.write('ServerRoot "%s"\nServerName localhost\n%s'
                    % (CONFDIR, text))
        self.started = False

    def ctl(self, *args, own_conf=True, check=True):
        """apache2ctl ARGS with this server's envvars; the system's
        apache2.conf unless @own_conf. `-k start` and not `start`: the
        latter hands over to systemctl when systemd runs the machine."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("APACHE_")}
        env["APACHE_ENVVARS"] = self.envvars
        if own_conf:
            env["APACHE_ARGUMENTS"] = "-f %s" % self.conf
        return run(["apache2ctl"] + list(args), env=env, timeout=60,
                   check=check)

    def start(self):
        self.started = True
        self.ctl("-k", "start")

        def answers():
            try:
                http(self.port, "GET", "/", timeout=1)
                return True
            except OSError:
                return False
        wait_until(answers, 15, "apache2 answering on port %d" % self.port,
                   interval=0.1)

    def stop(self):
        """apachectl -k stop; the processes of this server's pid file are
        killed only if they outlive 20 s."""
        if not self.started:
            return
        self.started = False
        pid = read_pid(self.pid_file)
        self.ctl("-k", "stop", check=False)
        if pid is None:
            return
        try:
            wait_until(lambda: not pid_alive(pid), 20,
                       "apache2 pid %d stopped" % pid, interval=0.1)
        except AssertionError:
            for p in child_pids(pid) + [pid]:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            raise

    def bad_log_lines(self):
        try:
            with open(self.error_log, errors="replace") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        bad = []
        for line in lines:
            m = LOG_LINE.match(line)
            if CHILD_SIGNAL.search(line) or (
                    m and m.group("level") in BAD_LEVELS
                    and not ALLOWED_LOG.search(line)):
                bad.append(line)
        return bad


def skip_unless_possible():
    if os.environ.get("SSE_MGR_MODULE"):
        pytest.skip("SSE_MGR_MODULE names a module to test (make sanitize, "
                    "an old build): this test tests the package's own")
    if os.geteuid() != 0:
        pytest.skip("installing a package needs root")
    for tool in ("dpkg", "dpkg-query", "apache2ctl", "a2enmod", "a2dismod",
                 "a2query"):
        if not shutil.which(tool):
            pytest.skip("%s is not available (not a Debian system with "
                        "apache2?)" % tool)
    if not apache2_installed():
        pytest.skip("apache2 is not installed (t/install-deps.sh installs "
                    "it); this test installs no package but its own")
    status = package_status()
    if installed(status):
        pytest.skip("%s is on this machine (%s): the test installs and "
                    "purges it, and leaves the administrator's alone"
                    % (PACKAGE, status))
    there = [p for p in (SO, LOAD, CONF, HEADER) if os.path.lexists(p)]
    if there:
        pytest.skip("files the package would own are already there "
                    "(make install? make uninstall removes them): %s"
                    % ", ".join(there))


def lock_against_another_run():
    """Serialise with this test run from another checkout: an flock on
    /etc/apache2 itself, so no lock file is left behind."""
    fd = os.open(CONFDIR, os.O_RDONLY)
    deadline = time.monotonic() + 600
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                pytest.fail("another run of test_deb held %s for 10 min"
                            % CONFDIR)
            time.sleep(1)


def sse_prefix():
    """SSEPrefix as the installed sse_mgr.conf sets it."""
    with open(CONF) as f:
        m = re.search(r"(?m)^\s*SSEPrefix\s+(\S+)", f.read())
    return m.group(1) if m else "/sse/"


def test_debian_package_installs_disabled_serves_once_enabled_and_purges():
    skip_unless_possible()
    lock = lock_against_another_run()
    try:
        _install_use_purge_and_restore()
    finally:
        os.close(lock)


def _install_use_purge_and_restore():
    before = snapshot()
    a2_before = save_files(A2_STATE)
    mods_before = enabled_modules()
    system_running = system_apache2_running()
    root = tempfile.mkdtemp(prefix="sse-deb-")
    os.chmod(root, 0o755)      # the children, www-data, reach run/
    server = None
    try:
        server = SystemServer(root)
        deb = build_deb()
        _install_and_check(deb)
        _enable_and_serve(server)
        _disable_and_purge()
    finally:
        # raised here, a failure shows the test's own failure with it
        problems = []
        for step in (lambda: server and server.stop(),
                     lambda: _undo(mods_before),
                     lambda: restore_files(A2_STATE, a2_before),
                     lambda: shutil.rmtree(root),
                     lambda: remove_new_empty_dirs(before)):
            try:
                step()
            except Exception as e:
                problems.append("  restoring: %s" % e)
        problems += differences(before, snapshot())
        if system_apache2_running() != system_running:
            problems.append("  the system's apache2 was %s before the test"
                            % ("running" if system_running else "stopped"))
        assert not problems, ("the test left the system changed:\n"
                              + "\n".join(problems))


def _install_and_check(deb):
    _, listing = run(["dpkg-deb", "-c", deb])
    for path in SHIPPED:
        assert "." + path in listing, "%s is not in %s:\n%s" % (
            path, deb, listing)
    dpkg("-i", deb)
    owned = dpkg("-L", PACKAGE).split()
    for path in SHIPPED:
        assert path in owned and os.path.exists(path), (
            "%s not installed by %s" % (path, PACKAGE))
    with open(LOAD) as f:
        m = re.search(r"(?m)^\s*LoadModule\s+sse_mgr_module\s+(\S+)", f.read())
    assert m and m.group(1) == SO, (
        "%s loads %r, the package installs %s" % (LOAD, m and m.group(1), SO))
    assert not [m for m in enabled_modules() if m.startswith("sse_mgr.")], (
        "installing the package enabled the module")
    rc, out = run(["a2query", "-m", "sse_mgr"], check=False)
    assert rc != 0, "a2query says sse_mgr is enabled after install: " + out


def _enable_and_serve(server):
    run(["a2enmod", "-q", "sse_mgr"])
    # the system's configuration as it is, ports.conf included
    rc, out = server.ctl("configtest", own_conf=False)
    assert "Syntax OK" in out, out
    _, mpm = run(["a2query", "-M"])
    server.start()
    _, loaded = server.ctl("-M")
    assert "sse_mgr_module (shared)" in loaded, loaded
    assert "mpm_%s_module" % mpm.strip() in loaded, (
        "the server does not run the system's MPM %s:\n%s" % (mpm, loaded))

    api = SSEApi(server.port, sse_prefix())
    id = api.make_id("debadmin")
    stream = api.register(id)
    try:
        resp = api.request("PUT", "listen", id, "news")
        assert resp.status == 200, resp.describe()
        resp = api.request("POST", "notify-listeners", "news")
        assert resp.status == 200, resp.describe()
        assert resp.json() == {"delivered": 1}, resp.describe()
        ev = stream.next_event(5)
        assert ev.payload() == "notify^news", ev
    finally:
        stream.close()
    server.stop()
    bad = server.bad_log_lines()
    assert not bad, "the server's error log:\n" + "\n".join(bad)


def _disable_and_purge():
    run(["a2dismod", "-q", "sse_mgr"])
    owned = [p for p in dpkg("-L", PACKAGE).split()
             if not os.path.isdir(p)]
    dpkg("--purge", PACKAGE)
    assert not installed(package_status()), package_status()
    left = [p for p in owned if os.path.lexists(p)]
    assert not left, "still there after the purge: %r" % left


def _undo(mods_before):
    """Whatever the test body left undone: the module disabled, and what
    a2enmod enabled for it (its .load's "# Depends:"), the package
    purged. a2enmod's state is put back afterwards."""
    if os.path.lexists(os.path.join(CONFDIR, "mods-enabled", "sse_mgr.load")):
        run(["a2dismod", "-q", "-f", "sse_mgr"], check=False)
    for name in enabled_modules() - mods_before:
        os.unlink(os.path.join(CONFDIR, "mods-enabled", name))
    if installed(package_status()):
        dpkg("--purge", PACKAGE)
