"""A real httpd for the mod_sse_mgr tests, in the manner of httpd's own
test/pyhttpd: one env writes its own ServerRoot and config, starts,
gracefully restarts and stops the server, and reads its error log so that
a test fails on any [warn] or worse line it did not declare, and on any
child that died of a signal unless it declared it killed one.
"""

import http.client as httplib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import time

from sse_client import TLS_HOST, SSEApi, SSEStream, http

APACHE2 = os.environ.get("APACHE2", "/usr/sbin/apache2")
MODULES_DIR = os.environ.get("APACHE_MODULES", "/usr/lib/apache2/modules")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = os.environ.get("SSE_MGR_MODULE",
                        os.path.join(REPO, ".libs", "mod_sse_mgr.so"))
MPMS = ("prefork", "worker", "event")

# Module directives every test server gets unless a test overrides them;
# a value of None drops the directive.
DEFAULT_DIRECTIVES = {
    "SSEPrefix": "/sse/",
    "SSEHeartbeat": "1",
    "SSEMaxListeners": "100",
    "SSEHistory": "256",
    # every test client is 127.0.0.1, one address standing for many
    # users (as behind a NAT): no per-client bound, but where a test is
    # about them (t/test_flood.py drops these to get the defaults)
    "SSEMaxListenersPerClient": "0",
    "SSEMaxStreamsPerClient": "0",
}

MPM_CONF = {
    "prefork": """\
StartServers 4
MinSpareServers 4
MaxSpareServers 8
MaxRequestWorkers 64
""",
    "worker": """\
StartServers 3
ServerLimit 8
ThreadsPerChild 25
MaxRequestWorkers 200
MinSpareThreads 25
MaxSpareThreads 200
""",
}
MPM_CONF["event"] = MPM_CONF["worker"]

# What users run: Debian 12's own mpm_*.conf ("debian"), and the ordinary
# tuning an admin of a busy site writes, spare-thread bounds left at
# httpd's defaults ("ordinary"). With these, httpd's idle-server
# maintenance stops children that look idle, as it does in production.
MPM_PROFILES = {
    "test": MPM_CONF,
    "debian": {
        "prefork": """\
StartServers 5
MinSpareServers 5
MaxSpareServers 10
MaxRequestWorkers 150
MaxConnectionsPerChild 0
""",
        "worker": """\
StartServers 2
MinSpareThreads 25
MaxSpareThreads 75
ThreadLimit 64
ThreadsPerChild 25
MaxRequestWorkers 150
MaxConnectionsPerChild 0
""",
    },
    "ordinary": {
        "prefork": """\
StartServers 8
MaxRequestWorkers 256
""",
        "worker": """\
StartServers 4
ThreadsPerChild 64
MaxRequestWorkers 512
""",
    },
}
for _p in ("debian", "ordinary"):
    MPM_PROFILES[_p]["event"] = MPM_PROFILES[_p]["worker"]

# The configuration the project ships, included verbatim.
SHIPPED_CONF = os.path.join(REPO, "conf", "sse_mgr.conf")

# [Tue Nov 25 08:44:00.123456 2025] [sse_mgr:debug] [pid 1:tid 2] ...
LOG_LINE = re.compile(r"^\[[^\]]*\] \[(?:(?P<module>[^:\]]*):)?"
                      r"(?P<level>[a-z0-9]+)\]")
BAD_LEVELS = {"emerg", "alert", "crit", "error", "warn"}
# A child that died of a signal: httpd says so at [notice] ("child pid N
# exit signal Segmentation fault (11)", AH00052; AH00051 with a core dump
# path), below the levels above, so these lines are checked on their own.
CHILD_SIGNAL = re.compile(r"AH0005[12]|exit signal")
READY_LINE = "resuming normal operations"


def selected_mpms():
    """MPM=event (or MPM=prefork,worker) narrows the run."""
    value = os.environ.get("MPM", "").strip()
    if not value:
        return list(MPMS)
    mpms = [m.strip() for m in value.split(",") if m.strip()]
    for m in mpms:
        if m not in MPMS:
            raise ValueError("MPM=%s: not one of %s" % (m, ", ".join(MPMS)))
    return mpms


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is gone for our purposes
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def child_pids(ppid):
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == ppid and fields[0] != "Z":
            pids.append(int(entry))
    return pids


def processes_mentioning(text):
    """Pids whose command line contains @text (a fresh directory of the
    test's own, so only what the test started)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                if text.encode() in f.read():
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


class HttpdEnv:
    """One httpd with its own ServerRoot, port and config."""

    _all = []

    def __init__(self, mpm, workdir, extra_conf="", directives=None,
                 module=None, profile="test", shipped_conf=False,
                 timeout=10, nofile=None, environ=None):
        if mpm not in MPMS:
            raise ValueError("unknown MPM %r" % mpm)
        self.mpm = mpm
        self.root = os.path.abspath(str(workdir))
        self.port = free_port()
        self.extra_conf = extra_conf
        self.module = module or MODULE
        self.mpm_conf = MPM_PROFILES[profile][mpm]
        self.shipped_conf = shipped_conf
        self.timeout = timeout
        # RLIMIT_NOFILE (soft) httpd starts with, as `ulimit -n` or
        # Debian's APACHE_ULIMIT_MAX_FILES sets it; None: this process's
        self.nofile = nofile
        # more environment for apache2 (and its children) only
        self.environ = dict(environ or {})
        self.directives = dict(DEFAULT_DIRECTIVES)
        self.directives.update(directives or {})
        self.conf_file = os.path.join(self.root, "conf", "httpd.conf")
        self.error_log = os.path.join(self.root, "logs", "error_log")
        self.pid_file = os.path.join(self.root, "run", "httpd.pid")
        self.running = False
        self._log_pos = 0
        self._log_partial = b""
        self._expected = []
        self._signals_expected = []
        self.last_stderr = ""
        for sub in ("conf", "logs", "run", "htdocs", "cores"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        os.chmod(os.path.join(self.root, "cores"), 0o1777)
        self._make_traversable()
        self.write_config()
        HttpdEnv._all.append(self)

    # -- configuration ----------------------------------------------------

    @property
    def prefix(self):
        return self.directives.get("SSEPrefix") or "/sse/"

    @property
    def api(self):
        return SSEApi(self.port, self.prefix)

    def _make_traversable(self):
        """Children run as www-data when we are root: let them reach the
        runtime dir (pytest makes its temp dirs 0700)."""
        if os.geteuid() != 0:
            return
        path = self.root
        while path not in ("/", ""):
            try:
                mode = os.stat(path).st_mode & 0o7777
                if mode & 0o001 == 0:
                    os.chmod(path, mode | 0o011)
            except OSError:
                pass
            if path in ("/tmp", "/var/tmp"):
                break
            path = os.path.dirname(path)
        os.chmod(self.root, 0o755)
        os.chmod(os.path.join(self.root, "run"), 0o755)

    def config_text(self):
        r = self.root
        user = ""
        if os.geteuid() == 0:
            user = "User www-data\nGroup www-data\n"
        sse = "".join("%s %s\n" % (k, v)
                      for k, v in self.directives.items() if v is not None)
        shipped = ""
        if self.shipped_conf:
            shipped = 'Include "%s"\n' % SHIPPED_CONF
        return f"""\
# written by t/sse_harness.py
ServerRoot "{r}"
DefaultRuntimeDir "{r}/run"
PidFile "{r}/run/httpd.pid"
# a child that crashes leaves a core here: unexpected_log_lines() adds
# its backtrace to the failure (httpd makes a child dumpable again only
# where this is set)
CoreDumpDirectory "{r}/cores"
ErrorLog "{r}/logs/error_log"
LogLevel warn
LogFormat "%h %t \\"%r\\" %>s %b pid=%P tid=%{{tid}}P %D" sse
CustomLog "{r}/logs/access_log" sse
Listen 127.0.0.1:{self.port}
ServerName 127.0.0.1
Timeout {self.timeout}
{user}
LoadModule mpm_{self.mpm}_module {MODULES_DIR}/mod_mpm_{self.mpm}.so
LoadModule authz_core_module {MODULES_DIR}/mod_authz_core.so
LoadModule authz_host_module {MODULES_DIR}/mod_authz_host.so
LoadModule mime_module {MODULES_DIR}/mod_mime.so
TypesConfig "{r}/conf/mime.types"
DocumentRoot "{r}/htdocs"

{self.mpm_conf}
LoadModule sse_mgr_module {self.module}
# after the LoadModule: a per-module level needs the module known
LogLevel warn sse_mgr:debug
{shipped}{sse}
{self.extra_conf}
"""

    def write_config(self):
        with open(os.path.join(self.root, "conf", "mime.types"), "w") as f:
            f.write("text/plain txt\ntext/html html\n")
        with open(self.conf_file, "w") as f:
            f.write(self.config_text())

    # -- running ------------------------------------------------------------

    def apachectl(self, *args, timeout=30):
        env = dict(os.environ, LANG="C")
        # t/sanitize.sh: apache2 is not instrumented, so the sanitizer
        # runtime a sanitized module needs must be preloaded into apache2,
        # and only there (not into pytest, curl or node).
        # ASAN_OPTIONS and UBSAN_OPTIONS pass through with the environment.
        preload = os.environ.get("SSE_TEST_PRELOAD")
        if preload:
            env["LD_PRELOAD"] = preload
        if "LD_PRELOAD" in self.environ and preload:
            env.update(self.environ)
            env["LD_PRELOAD"] = preload + ":" + self.environ["LD_PRELOAD"]
        else:
            env.update(self.environ)
        proc = subprocess.run([APACHE2, "-f", self.conf_file] + list(args),
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout,
                              env=env, preexec_fn=self._limits)
        out = proc.stdout.decode("utf-8", "replace")
        self.last_stderr = out
        return proc.returncode, out

    def _limits(self):
        hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
        resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
        if self.nofile is not None:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, hard))

    def check_config(self):
        """`apache2 -t`: (exit code, output)."""
        self.write_config()
        return self.apachectl("-t")

    def read_log(self):
        try:
            with open(self.error_log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def answers(self, timeout=1.0):
        try:
            http(self.port, "GET", "/", timeout=timeout)
            return True
        except OSError:
            return False

    def _wait_ready(self, what, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers():
                return
            time.sleep(0.1)
        raise RuntimeError("httpd (%s) did not answer on port %d within "
                           "%.0fs after %s.\n%s\n--- error log ---\n%s"
                           % (self.mpm, self.port, timeout, what,
                              self.last_stderr, self.read_log()[-6000:]))

    def start(self):
        if not os.path.exists(self.module):
            raise RuntimeError("module %s not built (set SSE_MGR_MODULE or "
                               "run make)" % self.module)
        self.write_config()
        rc, out = self.apachectl("-k", "start")
        if rc != 0:
            raise RuntimeError("apache2 -k start failed (%d):\n%s\n"
                               "--- error log ---\n%s"
                               % (rc, out, self.read_log()[-6000:]))
        self.running = True
        try:
            self._wait_ready("start")
        except Exception:
            self.stop()
            raise

    def main_pid(self):
        try:
            with open(self.pid_file) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def children(self):
        pid = self.main_pid()
        return child_pids(pid) if pid else []

    def graceful(self, timeout=15.0, old_gone=20.0):
        """apachectl graceful; returns once the new generation answers and
        every child of the old one has exited (an old child still accepting
        would answer from the old generation's state), within old_gone
        seconds (None: do not wait for them)."""
        old = set(self.children())
        before = self.read_log().count(READY_LINE)
        rc, out = self.apachectl("-k", "graceful")
        assert rc == 0, "apache2 -k graceful failed (%d): %s" % (rc, out)
        deadline = time.monotonic() + timeout
        while self.read_log().count(READY_LINE) <= before:
            if time.monotonic() > deadline:
                raise RuntimeError("no new generation %.0fs after graceful"
                                   "\n--- error log ---\n%s"
                                   % (timeout, self.read_log()[-6000:]))
            time.sleep(0.1)
        self._wait_ready("graceful")
        if old_gone is None:
            return
        deadline = time.monotonic() + old_gone
        while old & set(self.children()):
            if time.monotonic() > deadline:
                raise RuntimeError("children %r of the old generation still "
                                   "run %.0fs after graceful"
                                   % (sorted(old & set(self.children())),
                                      old_gone))
            time.sleep(0.1)

    def stop(self, timeout=20.0):
        if not self.running:
            return
        SSEStream.close_all(self.port)
        pid = self.main_pid()
        # httpd's own race at an immediate stop: the event MPM's main thread
        # closes the sockets its workers are using (close_worker_sockets),
        # and a worker that then lingers on one logs this EBADF
        self.expect_log(r"AH03092: process_lingering_close: apr_pollset_add")
        try:
            self.apachectl("-k", "stop")
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + timeout
        while pid and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid and _alive(pid):
            for p in child_pids(pid) + [pid]:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            self.running = False
            raise RuntimeError("httpd pid %d did not stop within %.0fs; "
                               "killed it" % (pid, timeout))
        self.running = False

    @classmethod
    def stop_all(cls):
        for env in cls._all:
            try:
                env.stop()
            except Exception:
                pass

    # -- error log check -------------------------------------------------

    def wait_reaped(self, pids, timeout=3.0):
        """Wait until these former children are reaped by the parent (gone
        from /proc, zombies no more), which then has logged how they
        ended."""
        deadline = time.monotonic() + timeout
        for pid in pids:
            while (os.path.exists("/proc/%d" % pid)
                   and time.monotonic() < deadline):
                time.sleep(0.05)
        if pids:
            time.sleep(0.05)    # the log line follows the reaping


    def expect_log(self, regex):
        """Declare a [warn]-or-worse line this test is known to cause. It
        does not cover a child's death by a signal: expect_child_signal()."""
        self._expected.append(re.compile(regex))

    def expect_child_signal(self, signame="Killed"):
        """Declare that this test makes children die of a signal (it kills
        them itself): their "exit signal <signame>" lines are not a
        failure. Any other signal (a segfault while the test kills with
        SIGKILL) still is."""
        self._signals_expected.append(
            re.compile(r"exit signal %s \(" % re.escape(signame)))

    def unexpected_log_lines(self):
        """Lines at warn or worse, and lines of a child that died of a
        signal at whatever level, since the last check that no expect_log()
        (expect_child_signal() for the latter) matched; moves the check
        point and forgets the expectations."""
        try:
            with open(self.error_log, "rb") as f:
                f.seek(self._log_pos)
                data = self._log_partial + f.read()
                self._log_pos = f.tell()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")
        self._log_partial = lines.pop()  # incomplete last line, if any
        bad = []
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            if CHILD_SIGNAL.search(line):
                if not any(rx.search(line) for rx in self._signals_expected):
                    bad.append(line)
                    bad.extend(self.core_backtraces())
                continue
            m = LOG_LINE.match(line)
            if not m or m.group("level") not in BAD_LEVELS:
                continue
            if any(rx.search(line) for rx in self._expected):
                continue
            bad.append(line)
        self._expected = []
        self._signals_expected = []
        return bad

    def core_backtraces(self):
        """From each core a child left (gdb): the crashing thread's
        backtrace, then every thread's top frames; once: the cores are
        removed after."""
        out = []
        cores = os.path.join(self.root, "cores")
        for name in sorted(os.listdir(cores)):
            path = os.path.join(cores, name)
            out.append("%s:" % path)
            try:
                gdb = subprocess.run(
                    ["gdb", "-batch", "-nx", "-ex", "bt 40",
                     "-ex", "thread apply all bt 8",
                     APACHE2, path], stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, timeout=60)
                text = gdb.stdout.decode("utf-8", "replace")
                out.extend([l for l in text.splitlines()
                            if l.startswith(("#", "Thread", "Program"))][:600])
            except (OSError, subprocess.TimeoutExpired) as e:
                out.append("  no backtrace: %s" % e)
            os.unlink(path)
        return out

    # -- which process holds a connection ---------------------------------

    def pid_holding(self, client_port):
        """The server pid whose socket is the peer of our local port, read
        from /proc (we run as root or as the server's user)."""
        return self.pids_holding([client_port]).get(client_port)

    def pids_holding(self, client_ports):
        """{our local port: server pid holding its peer}, in one pass over
        /proc (ports whose connection is gone are left out)."""
        wanted = set(client_ports)
        inodes = {}
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table) as f:
                    rows = f.readlines()[1:]
            except OSError:
                continue
            for row in rows:
                cols = row.split()
                lport = int(cols[1].rsplit(":", 1)[1], 16)
                rport = int(cols[2].rsplit(":", 1)[1], 16)
                if (lport == self.port and rport in wanted
                        and cols[3] == "01"):
                    inodes["socket:[%s]" % cols[9]] = rport
        found = {}
        for pid in self.children():
            fddir = "/proc/%d/fd" % pid
            try:
                fds = os.listdir(fddir)
            except OSError:
                continue
            for fd in fds:
                try:
                    port = inodes.get(os.readlink(os.path.join(fddir, fd)))
                except OSError:
                    continue
                if port is not None:
                    found[port] = pid
        return found

    def __repr__(self):
        return "HttpdEnv(%s, port %d, %s)" % (self.mpm, self.port, self.root)


# -- waiting -----------------------------------------------------------------

class WaitTimeout(AssertionError):
    """What wait_until() raises when the condition never held."""


def notify_on_one_connection(env, key, count, delivered):
    """count notify-listeners/key over one HTTP/1.1 keep-alive
    connection, as a publisher sends them: each answered 200 with
    {"delivered": delivered}, and the server never closes the
    connection."""
    conn = httplib.HTTPConnection("127.0.0.1", env.port, timeout=10)
    conn.connect()
    sock = conn.sock
    try:
        for i in range(count):
            conn.request("POST", env.api.path("notify-listeners", key))
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, (
                "notify %d on the keep-alive connection: HTTP %d %r"
                % (i, resp.status, body[:200]))
            assert json.loads(body) == {"delivered": delivered}, (
                "notify %d: every listener of the key: %r" % (i, body))
            assert conn.sock is sock, (
                "the server closed the publisher's keep-alive connection "
                "after %d notifies (%s)" % (i + 1,
                                            resp.getheader("Connection")))
    finally:
        conn.close()


def wait_until(cond, timeout, what, interval=0.05):
    """cond()'s first true value, polled until @timeout seconds passed;
    then a WaitTimeout saying @what never happened (and what cond last
    returned). For the waits a test does on a condition; a fixed sleep is
    only for time a test must let pass on purpose."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout("%s: not within %.1fs (last: %r)"
                              % (what, timeout, value))
        time.sleep(interval)


# -- mod_status's registry figures -----------------------------------------

STATUS_CONF = """
LoadModule status_module %s/mod_status.so
<Location /server-status>
    SetHandler server-status
</Location>
""" % MODULES_DIR

AUTO_LINE = re.compile(r"^SSERegistr(?:ies|y\[(\d+)\](.+)): (.*)$")


def status_auto(env):
    """{registry: {figure: value}} from /server-status?auto (the server
    needs STATUS_CONF), checked against the registry count it gives."""
    resp = http(env.port, "GET", "/server-status?auto")
    assert resp.status == 200, resp.describe()
    regs, count = {}, None
    for line in resp.text.splitlines():
        m = AUTO_LINE.match(line)
        if not m:
            continue
        if m.group(1) is None:
            count = int(m.group(3))
            continue
        value = m.group(3)
        regs.setdefault(int(m.group(1)), {})[m.group(2)] = (
            int(value) if value.isdigit() else value)
    assert count == len(regs), (
        "SSERegistries says %r, %d registries listed:\n%s"
        % (count, len(regs), resp.text))
    return regs


def wait_status(env, cond, what, timeout=8.0):
    """Registry 0's ?auto figures once cond(figures) holds."""
    seen = [None]

    def check():
        seen[0] = status_auto(env)[0]
        return seen[0] if cond(seen[0]) else None
    try:
        return wait_until(check, timeout, what, interval=0.1)
    except WaitTimeout:
        raise WaitTimeout("server-status never showed %s within %.0fs: %r"
                          % (what, timeout, seen[0]))


# -- the C API test module (t/modules/mod_sse_apitest.c) -------------------

APITEST = os.path.join(REPO, "t", "modules", ".libs", "mod_sse_apitest.so")
APITEST_CONF = """
LoadModule sse_apitest_module %s
<Location /apitest>
    SetHandler sse-apitest
</Location>
""" % APITEST

APR_SUCCESS = 0
APR_ENOENT = 2
APR_EINVAL = 22
APR_ENOSPC = 28


def apitest_call(env, *parts, timeout=10.0):
    """(apr_status_t, delivered, text) of one optional-function call made
    by mod_sse_apitest in the server (APITEST_CONF)."""
    path = "/apitest/" + "/".join(parts)
    status, _, body = http(env.port, "GET", path, timeout=timeout)
    assert status == 200, "%s: HTTP %d" % (path, status)
    m = re.match(r"rv=(-?\d+) n=(-?\d+) ?(.*)$", body.decode(), re.S)
    assert m, "unexpected answer %r" % body
    return int(m.group(1)), int(m.group(2)), m.group(3)


# -- TLS and HTTP/2 ----------------------------------------------------------

OPENSSL_CNF = """\
[req]
distinguished_name = dn
x509_extensions = ext
prompt = no
[dn]
CN = {name}
[ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:{name}{ip}
"""


def make_cert(conf_dir, name="localhost"):
    """A self-signed server certificate for @a name (localhost: and
    127.0.0.1): (cert, key) paths. Not a CA certificate, so mod_ssl has
    nothing to warn about."""
    tag = "" if name == "localhost" else "-" + name
    cnf = os.path.join(conf_dir, "openssl-test%s.cnf" % tag)
    cert = os.path.join(conf_dir, "test-cert%s.pem" % tag)
    key = os.path.join(conf_dir, "test-key%s.pem" % tag)
    with open(cnf, "w") as f:
        f.write(OPENSSL_CNF.format(
            name=name, ip=", IP:127.0.0.1" if name == "localhost" else ""))
    proc = subprocess.run(
        ["openssl", "req", "-x509", "-config", cnf, "-newkey", "ec",
         "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
         "-keyout", key, "-out", cert],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert proc.returncode == 0, proc.stdout.decode("utf-8", "replace")
    return cert, key


def tls_server(make_httpd, vhost_conf="", extra_conf="", directives=None,
               env=None):
    """A test server with a TLS virtual host on a port of its own, started;
    sets env.tls_port and env.cafile. The vhost has no SSE directive, so it
    serves the main server's registry. @a env: one made but not started
    (else a new one)."""
    env = env or make_httpd(directives=directives, start=False)
    env.cafile, key = make_cert(os.path.join(env.root, "conf"))
    env.tls_port = free_port()
    env.extra_conf = f"""
LoadModule socache_shmcb_module {MODULES_DIR}/mod_socache_shmcb.so
LoadModule ssl_module {MODULES_DIR}/mod_ssl.so
SSLSessionCache "shmcb:{env.root}/run/ssl_scache(512000)"
{extra_conf}
Listen 127.0.0.1:{env.tls_port} https
<VirtualHost 127.0.0.1:{env.tls_port}>
    ServerName {TLS_HOST}
    SSLEngine on
    SSLCertificateFile "{env.cafile}"
    SSLCertificateKeyFile "{key}"
{vhost_conf}
</VirtualHost>
"""
    # Debian's mod_ssl says so when libssl3 is older than the one it was
    # built with (an upgrade of libssl3 away); nothing of ours
    env.expect_log(r"\[ssl:warn\] .* AH01882: ")
    env.start()
    return env


H2_MODULE = "LoadModule http2_module %s/mod_http2.so\n" % MODULES_DIR
H2_VHOST = "    Protocols h2 http/1.1\n"


def h2_tls_server(make_httpd, mpm, extra_conf="", directives=None, env=None):
    """tls_server() whose TLS virtual host speaks h2 (and http/1.1);
    skips the test where HTTP/2 over TLS cannot be tested."""
    import pytest
    need_h2(mpm)
    if not os.path.exists(os.path.join(MODULES_DIR, "mod_ssl.so")):
        pytest.skip("mod_ssl is not installed")
    return tls_server(make_httpd, extra_conf=H2_MODULE + extra_conf,
                      vhost_conf=H2_VHOST, directives=directives, env=env)


def need_h2(mpm):
    """Skip the test unless HTTP/2 can be tested under @mpm."""
    import pytest
    if mpm == "prefork":
        pytest.skip("mod_http2 does not run under prefork")
    if not shutil.which("curl"):
        pytest.skip("curl is needed for HTTP/2")
    features = subprocess.run(["curl", "-V"], stdout=subprocess.PIPE,
                              text=True).stdout
    if "HTTP2" not in features:
        pytest.skip("this curl has no HTTP/2")
