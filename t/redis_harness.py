"""Redis for the SSEBus tests: a redis-server of a test's own (its own
directory, config file and free port on 127.0.0.1), a minimal RESP client
(no redis-cli, no pip package), and a Sentinel set (a master, a replica
and three sentinels) for failover; with a password (requirepass) where
asked. Besides, two fakes for the connection layer's tests (a listener
that answers nothing or drips bytes, and a port whose SYNs are dropped).

Every process started here is remembered and stopped by stop_all() (the
conftest calls it at the end of the session), besides the fixtures'
finalizers; and each is started with PR_SET_PDEATHSIG, so that a pytest
that dies takes them with it. Start and restart them from the test's main
thread (the death signal follows the thread that started the process).

Used by the SSEBus tests (t/test_bus*.py, t/bus_harness.py) and the
connection tests (t/test_redis_conn.py, through t/probe/redis_probe).
"""

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

from sse_harness import free_port, wait_until

REDIS_SERVER = os.environ.get("REDIS_SERVER") or shutil.which(
    "redis-server") or "/usr/bin/redis-server"
REDIS_SENTINEL = os.environ.get("REDIS_SENTINEL") or shutil.which(
    "redis-sentinel")

MISSING = ("redis-server is not installed (`sh t/install-deps.sh test` "
           "installs redis-server, redis-sentinel and redis-tools)")


def have_redis():
    return os.access(REDIS_SERVER, os.X_OK)


def have_sentinel():
    # Debian's redis-sentinel is redis-server run as a sentinel; without
    # the binary, `redis-server <conf> --sentinel` is the same thing
    return have_redis()


_libc = None


def _die_with_parent():
    """preexec_fn: SIGKILL this process when the test process goes."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl(1, signal.SIGKILL)      # PR_SET_PDEATHSIG
    except Exception:
        pass


# -- RESP ---------------------------------------------------------------

class RespError(Exception):
    """An error reply (-ERR ...) from the server."""


class RespClient:
    """One connection speaking RESP2: command(*args) -> reply (str for
    simple strings, bytes for bulk strings, int, list, None; an error
    reply raises RespError). With @password, AUTH first."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0, password=None):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        if password is not None:
            try:
                self.command("AUTH", password)
            except BaseException:
                self.close()
                raise

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, int):
                a = str(a)
            if isinstance(a, str):
                a = a.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("redis closed the connection")
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read_reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self.read_reply() for _ in range(n)]
        raise ConnectionError("not RESP: %r" % line[:100])

    def command(self, *args):
        self.sock.sendall(self.encode(args))
        reply = self.read_reply()
        if isinstance(reply, RespError):
            raise reply
        return reply


def call(port, *args, timeout=5.0, password=None):
    """One command on a connection of its own (after AUTH with
    @password)."""
    with RespClient(port, timeout=timeout, password=password) as c:
        return c.command(*args)


def parse_info(text):
    """INFO's text as {field: value} (numbers as int)."""
    if isinstance(text, bytes):
        text = text.decode()
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        k, v = line.split(":", 1)
        out[k] = int(v) if v.lstrip("-").isdigit() else v
    return out


def parse_client_list(text):
    """CLIENT LIST as [{field: value}] (id=.. addr=.. cmd=.. ...)."""
    if isinstance(text, bytes):
        text = text.decode()
    clients = []
    for line in text.splitlines():
        if not line.strip():
            continue
        entry = {}
        for field in line.split(" "):
            k, _, v = field.partition("=")
            entry[k] = v
        clients.append(entry)
    return clients


# -- one server -----------------------------------------------------------

class RedisServer:
    """A redis-server (or, sentinel=True, a sentinel) with its own
    directory under @workdir, config file and port. aof=True: appendonly
    yes, appendfsync always (nothing acknowledged is lost to a SIGKILL).
    Without AOF nothing is persisted (save ""). password: requirepass
    (and masterauth, for a replica of a server with the same one); every
    command here sends it. replicaof: the port of the master on 127.0.0.1
    this server replicates."""

    _all = []

    def __init__(self, workdir, name="redis", aof=False, port=None,
                 extra_conf="", sentinel=False, password=None,
                 replicaof=None):
        self.name = name
        self.dir = os.path.join(os.path.abspath(str(workdir)), name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or free_port()
        self.aof = aof
        self.extra_conf = extra_conf
        self.sentinel = sentinel
        self.password = password
        self.replicaof = replicaof
        self.conf_file = os.path.join(self.dir, "sentinel.conf" if sentinel
                                      else "redis.conf")
        self.log_file = os.path.join(self.dir, "redis.log")
        self.proc = None
        self.stopped = False        # SIGSTOPped
        self.write_config()
        RedisServer._all.append(self)

    # -- configuration -------------------------------------------------

    def config_text(self):
        lines = ["# written by t/redis_harness.py",
                 "port %d" % self.port,
                 "bind 127.0.0.1",
                 'dir "%s"' % self.dir,
                 'logfile "%s"' % self.log_file,
                 "daemonize no"]
        if not self.sentinel:
            lines += ['save ""',
                      "appendonly %s" % ("yes" if self.aof else "no")]
            if self.aof:
                lines.append("appendfsync always")
            if self.password is not None:
                lines += ["requirepass %s" % self.password,
                          "masterauth %s" % self.password]
            if self.replicaof:
                lines.append("replicaof 127.0.0.1 %d" % self.replicaof)
        lines.append(self.extra_conf)
        return "\n".join(lines) + "\n"

    def write_config(self):
        """Written once, at creation: a sentinel, and a server that
        sentinels reconfigure, rewrite this file themselves."""
        with open(self.conf_file, "w") as f:
            f.write(self.config_text())

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    # -- running -------------------------------------------------------

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def read_log(self):
        try:
            with open(self.log_file, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=30):
        """The last @n lines of its log, for a failure message."""
        return "".join(self.read_log().splitlines(True)[-n:]) or "(no log)"

    def start(self, timeout=15.0):
        if self.running():
            raise RuntimeError("%r already runs" % self)
        if self.sentinel and REDIS_SENTINEL:
            argv = [REDIS_SENTINEL, self.conf_file]
        elif self.sentinel:
            argv = [REDIS_SERVER, self.conf_file, "--sentinel"]
        else:
            argv = [REDIS_SERVER, self.conf_file]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent)
        self.stopped = False
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("%r exited (%d) at start; its log:\n%s"
                                   % (self, self.proc.returncode,
                                      self.log_tail()))
            try:
                if self.ping(timeout=1.0):
                    break
            except (OSError, RespError):
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("%r did not answer PING within %.0fs; "
                                   "its log:\n%s"
                                   % (self, timeout, self.log_tail()))
            time.sleep(0.05)
        return self

    def ping(self, timeout=2.0):
        """True when the server answers PING now. A server still loading
        its AOF answers -LOADING: not ready."""
        try:
            return self.cmd("PING", timeout=timeout) == "PONG"
        except RespError as e:
            if str(e).startswith("LOADING"):
                return False
            raise

    def stop(self, timeout=15.0):
        """SIGTERM (an AOF is fsynced), SIGKILL after @timeout."""
        if not self.running():
            return
        if self.stopped:
            self.sigcont()
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise RuntimeError("%r did not stop within %.0fs; killed it"
                               % (self, timeout))

    def kill(self):
        """SIGKILL, and reap it."""
        if not self.running():
            return
        self.proc.kill()
        self.proc.wait(10)
        self.stopped = False

    def sigstop(self):
        """Freeze it: connections stay open, nothing is answered."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.stopped = True

    def sigcont(self):
        os.kill(self.proc.pid, signal.SIGCONT)
        self.stopped = False

    def restart(self, timeout=15.0, kill=False):
        """Stop (SIGKILL with kill=True) and start again: same port, dir
        and config (as a sentinel may have rewritten it)."""
        if kill:
            self.kill()
        else:
            self.stop()
        self.start(timeout)
        return self

    @classmethod
    def stop_all(cls, servers=None):
        """SIGKILL every server started here (or those of @servers)
        that still runs, frozen or not."""
        for r in list(cls._all if servers is None else servers):
            try:
                if r.running():
                    if r.stopped:
                        r.sigcont()
                    r.kill()
            except Exception:
                pass

    # -- commands ------------------------------------------------------

    def client(self, timeout=5.0):
        return RespClient(self.port, timeout=timeout, password=self.password)

    def cmd(self, *args, timeout=5.0):
        return call(self.port, *args, timeout=timeout,
                    password=self.password)

    def info(self, section="default"):
        return parse_info(self.cmd("INFO", section))

    def client_list(self):
        return parse_client_list(self.cmd("CLIENT", "LIST"))

    def client_kill(self, client_id):
        """CLIENT KILL ID <id>: number of connections closed."""
        return self.cmd("CLIENT", "KILL", "ID", str(client_id))

    def clients_running(self, command):
        """Connections whose last or current command is @command (e.g.
        "xread": one blocked reading a stream)."""
        return [c for c in self.client_list()
                if c.get("cmd", "").lower() == command.lower()]

    def keys(self, pattern="*"):
        return sorted(k.decode() for k in self.cmd("KEYS", pattern))

    def key_type(self, key):
        return self.cmd("TYPE", key)

    def streams(self):
        """The keys that hold a stream."""
        return [k for k in self.keys() if self.key_type(k) == "stream"]

    def xlen(self, key):
        return self.cmd("XLEN", key)

    def role(self):
        """"master", "slave" or "sentinel"."""
        r = self.cmd("ROLE")
        return r[0].decode()

    def __repr__(self):
        return "RedisServer(%s, port %d, %s)" % (self.name, self.port,
                                                 self.dir)


# -- Sentinel ---------------------------------------------------------------

class SentinelSet:
    """A master, a replica and three sentinels (quorum 2), all on
    127.0.0.1, each with its own directory and writable config. bus_url
    is the SSEBus value. Fast timings: a master down for
    @down_after_ms is failed over. password: the master's and the
    replica's (the sentinels are given it as auth-pass; they have none of
    their own)."""

    def __init__(self, workdir, master_name="mymaster", aof=False,
                 sentinels=3, quorum=2, down_after_ms=1000,
                 failover_timeout_ms=6000, password=None):
        self.master_name = master_name
        self.down_after_ms = down_after_ms
        # a replica syncs at once (not after the default 5 s wait for
        # more replicas to share a diskless transfer)
        fast = "repl-diskless-sync-delay 0"
        self.servers = [RedisServer(workdir, name="master", aof=aof,
                                    extra_conf=fast, password=password)]
        self.servers.append(RedisServer(
            workdir, name="replica", aof=aof, extra_conf=fast,
            password=password, replicaof=self.servers[0].port))
        self.sentinels = []
        for i in range(sentinels):
            s = RedisServer(workdir, name="sentinel%d" % i, sentinel=True)
            # the config must be in place before start (the port is the
            # sentinel's own); a sentinel rewrites it as it learns
            lines = [
                "sentinel monitor %s 127.0.0.1 %d %d"
                % (master_name, self.servers[0].port, quorum),
                "sentinel down-after-milliseconds %s %d"
                % (master_name, down_after_ms),
                "sentinel failover-timeout %s %d"
                % (master_name, failover_timeout_ms),
                "sentinel parallel-syncs %s 1" % master_name]
            if password is not None:
                lines.append("sentinel auth-pass %s %s"
                             % (master_name, password))
            s.extra_conf = "\n".join(lines)
            s.write_config()
            self.sentinels.append(s)

    @property
    def bus_url(self):
        return "redis-sentinel://%s/%s" % (
            ",".join("127.0.0.1:%d" % s.port for s in self.sentinels),
            self.master_name)

    def start(self, timeout=30.0):
        for r in self.servers:
            r.start()
        self.wait_replicated(timeout)
        for s in self.sentinels:
            s.start()
        self.wait_settled(timeout)
        return self

    def stop(self):
        errors = []
        for r in self.sentinels + self.servers:
            try:
                r.stop()
            except Exception as e:
                errors.append(str(e))
        if errors:
            raise RuntimeError("; ".join(errors))

    def server_at(self, port):
        for r in self.servers:
            if r.port == port:
                return r
        raise KeyError("no server of this set on port %d" % port)

    def master_addr(self, sentinel=0):
        """(host, port) of the master as sentinel @sentinel sees it."""
        host, port = self.sentinels[sentinel].cmd(
            "SENTINEL", "get-master-addr-by-name", self.master_name)
        return host.decode(), int(port)

    def master(self, sentinel=0):
        """The RedisServer the sentinels call master."""
        return self.server_at(self.master_addr(sentinel)[1])

    def replicas(self):
        m = self.master()
        return [r for r in self.servers if r is not m]

    def _sentinel_view(self, s):
        flat = s.cmd("SENTINEL", "MASTER", self.master_name)
        return {flat[i].decode(): flat[i + 1].decode()
                for i in range(0, len(flat), 2)}

    def wait_replicated(self, timeout=30.0):
        """Every replica's link to the master is up."""
        def linked():
            m = self.master_by_role()
            if m is None:
                return False
            for r in self.servers:
                if r is m or not r.running():
                    continue
                info = r.info("replication")
                if info.get("master_link_status") != "up" or \
                        info.get("master_port") != m.port:
                    return False
            return True
        wait_until(linked, timeout, "replicas linked to the master",
                   interval=0.1)

    def master_by_role(self):
        """The one running server that says it is master (None if not
        exactly one)."""
        masters = []
        for r in self.servers:
            try:
                if r.running() and not r.stopped and r.role() == "master":
                    masters.append(r)
            except (OSError, RespError):
                continue
        return masters[0] if len(masters) == 1 else None

    def wait_settled(self, timeout=30.0):
        """Every sentinel knows the master, the other sentinels and the
        running replicas, and agrees on who the master is."""
        want_replicas = len([r for r in self.servers if r.running()]) - 1

        def settled():
            addrs = set()
            for s in self.sentinels:
                if not s.running():
                    continue
                try:
                    view = self._sentinel_view(s)
                    addrs.add(self.master_addr(self.sentinels.index(s)))
                except (OSError, RespError):
                    return False
                if int(view.get("num-other-sentinels", 0)) < \
                        len(self.sentinels) - 1:
                    return False
                if int(view.get("num-slaves", 0)) < want_replicas:
                    return False
                if "s_down" in view.get("flags", "") or \
                        "o_down" in view.get("flags", ""):
                    return False
            return len(addrs) == 1
        wait_until(settled, timeout, "sentinels agree on one master, "
                   "know each other and the replicas", interval=0.2)

    def wait_master_change(self, old_port, timeout=30.0):
        """Wait until every sentinel names a master other than @old_port
        and that server says it is master: the new master."""
        def moved():
            ports = set()
            for i, s in enumerate(self.sentinels):
                if not s.running():
                    continue
                try:
                    ports.add(self.master_addr(i)[1])
                except (OSError, RespError):
                    return None
            if len(ports) != 1 or old_port in ports:
                return None
            new = self.server_at(ports.pop())
            try:
                return new if new.role() == "master" else None
            except (OSError, RespError):
                return None
        return wait_until(moved, timeout, "the sentinels failed over from "
                          "port %d" % old_port, interval=0.1)

    def failover(self, timeout=30.0):
        """SENTINEL FAILOVER (the master stays up and is turned into a
        replica): the new master, once every sentinel names it and the
        old master replicates from it."""
        old = self.master()
        self.sentinels[0].cmd("SENTINEL", "FAILOVER", self.master_name)
        new = self.wait_master_change(old.port, timeout)
        self.wait_replicated(timeout)
        return new

    def kill_master(self, timeout=30.0, restart_old=True):
        """SIGKILL the master; the sentinels fail over to the replica
        (after down_after_ms); with restart_old the old master comes back
        and is made a replica of the new one. The new master."""
        old = self.master()
        old.kill()
        new = self.wait_master_change(old.port, timeout)
        if restart_old:
            old.start()
            self.wait_replicated(timeout)
        return new

    def __repr__(self):
        return "SentinelSet(%s: %s)" % (self.master_name, ", ".join(
            "%s:%d" % (r.name, r.port) for r in self.servers +
            self.sentinels))


# -- fakes: what a real server will not do ------------------------------------

class _Fake:
    """A TCP listener on a free port of 127.0.0.1 whose thread hands each
    connection it accepts to self._accepted(c); close() stops it and
    closes self.conns."""

    def __init__(self, backlog=8):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        self.sock.settimeout(0.1)
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self._accepted(c)

    def close(self):
        self.stopping = True
        self.thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


class SilentServer(_Fake):
    """A TCP listener that accepts and says nothing, or, with @answer,
    sends those bytes one chunk every @interval seconds."""

    def __init__(self, answer=(), interval=0.0):
        super().__init__()
        self.answer = list(answer)
        self.interval = interval
        self.thread.start()

    def _accepted(self, c):
        self.conns.append(c)
        try:
            for chunk in self.answer:
                if self.stopping:
                    break
                c.sendall(chunk)
                time.sleep(self.interval)
        except OSError:
            pass


class FullBacklog:
    """A port whose listen queue is full: a SYN there is dropped, so a
    connect() hangs until its timeout, like an unreachable host."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fill = []
        for _ in range(3):
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fill.append(c)

    def close(self):
        for c in self.fill:
            c.close()
        self.sock.close()


class LossyProxy(_Fake):
    """A TCP proxy in front of a RedisServer that can lose an answer: once
    armed with lose_answer_to(marker, then_refuse=0), the first command
    whose bytes hold @marker reaches Redis and runs, but the proxy closes
    the client's connection instead of passing Redis's answer (its first
    that is not an error, such as NOSCRIPT) on (what a
    client sees when Redis dies after running a command); with
    then_refuse, it then cuts every connection and closes new ones at once
    for that many seconds (no master to reach meanwhile)."""

    def __init__(self, redis):
        super().__init__(backlog=64)
        self.redis = redis
        self.marker = None
        self.then_refuse = 0.0
        self.lost = threading.Event()       # an answer was lost
        self.refuse_until = 0.0
        self.refused = 0
        self.pairs = []
        self.lock = threading.Lock()
        self.thread.start()

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def lose_answer_to(self, marker, then_refuse=0.0):
        with self.lock:
            self.marker = marker.encode()
            self.then_refuse = then_refuse
            self.lost.clear()

    def _lose(self):
        if self.then_refuse:
            self.refuse_until = time.monotonic() + self.then_refuse
            for p in list(self.pairs):
                self._cut(p)
        self.lost.set()

    def _accepted(self, c):
        if time.monotonic() < self.refuse_until:
            self.refused += 1
            c.close()
            return
        try:
            up = socket.create_connection(("127.0.0.1", self.redis.port))
        except OSError:
            c.close()
            return
        self.conns += [c, up]
        pair = {"client": c, "up": up, "drop": False}
        self.pairs.append(pair)
        for args in ((pair, c, up, True), (pair, up, c, False)):
            threading.Thread(target=self._pump, args=args,
                             daemon=True).start()

    def _pump(self, pair, src, dst, upstream):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if upstream:
                    with self.lock:
                        if self.marker is not None and self.marker in data:
                            self.marker = None
                            pair["drop"] = True
                elif pair["drop"] and not data.startswith(b"-"):
                    self._lose()        # an error (NOSCRIPT) is passed on
                    break
                dst.sendall(data)
        except OSError:
            pass
        self._cut(pair)

    @staticmethod
    def _cut(pair):
        for s in (pair["client"], pair["up"]):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
