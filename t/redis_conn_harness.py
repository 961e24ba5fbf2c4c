"""Real redis-server and redis-sentinel processes for the connection tests
(t/test_redis_conn.py): each on a free port, in its own directory, with a
config file of its own (a sentinel rewrites its file), stopped by the
fixture that made it, killed when it will not stop.

Named for the connection layer (sse_redis_conn.c); the Redis engine's
tests have a harness of their own.
"""

import os
import signal
import socket
import subprocess
import time

from sse_harness import free_port

REDIS_SERVER = "/usr/bin/redis-server"
REDIS_SENTINEL = "/usr/bin/redis-sentinel"


class RespError(Exception):
    """A Redis error reply (-ERR ...)."""


def _read_reply(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed mid-reply")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RespError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise ConnectionError("bad reply %r" % line)


def redis_call(port, *args, password=None, timeout=2.0):
    """One command to 127.0.0.1:port (after AUTH when given a password);
    the reply as Python values, RespError for an error reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        f = s.makefile("rb")
        cmds = ([("AUTH", password)] if password else []) + [args]
        for cmd in cmds:
            out = b"*%d\r\n" % len(cmd)
            for a in cmd:
                a = str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            reply = _read_reply(f)
        return reply


def info_field(text, name):
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


def wait_until(what, check, timeout=20.0, interval=0.05):
    """Poll check() until it returns a true value (returned) or the
    deadline passes (AssertionError naming what was awaited)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (OSError, RespError, ConnectionError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError("%s: not within %.0f s (last: %r)"
                         % (what, timeout, last))


class RedisProc:
    """One redis-server or redis-sentinel on 127.0.0.1:<free port>."""

    def __init__(self, tmp, name, sentinel=False):
        self.name = name
        self.dir = os.path.join(str(tmp), name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.sentinel = sentinel
        self.conf = os.path.join(self.dir, "%s.conf" % name)
        self.log = os.path.join(self.dir, "%s.log" % name)
        self.proc = None
        self.lines = ["port %d" % self.port, "bind 127.0.0.1",
                      "dir %s" % self.dir, "logfile %s" % self.log,
                      "daemonize no", "protected-mode no"]

    def start(self, password=None):
        with open(self.conf, "w") as f:
            f.write("\n".join(self.lines) + "\n")
        exe = REDIS_SENTINEL if self.sentinel else REDIS_SERVER
        self.proc = subprocess.Popen([exe, self.conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_until("%s answering PING" % self.name,
                   lambda: self.alive() and redis_call(
                       self.port, "PING", password=password) == "PONG",
                   timeout=10)
        return self

    def alive(self):
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError("%s is not running; its log:\n%s"
                                 % (self.name, self.log_tail()))
        return True

    def log_tail(self, n=30):
        try:
            with open(self.log) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def kill(self):
        """SIGKILL, as a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()


def redis_server(tmp, name, password=None, replicaof=None):
    """A redis-server without persistence; a replica of port @replicaof
    when given (authenticating with the same password)."""
    r = RedisProc(tmp, name)
    r.lines += ['save ""', "appendonly no"]
    if password:
        r.lines += ["requirepass %s" % password, "masterauth %s" % password]
    if replicaof:
        r.lines.append("replicaof 127.0.0.1 %d" % replicaof)
    r.password = password
    return r


def redis_sentinel(tmp, name, master, master_port, password=None,
                   quorum=2):
    """A sentinel watching 127.0.0.1:master_port as @master: down after
    1 s, failover timeout 5 s."""
    s = RedisProc(tmp, name, sentinel=True)
    s.lines += ["sentinel monitor %s 127.0.0.1 %d %d"
                % (master, master_port, quorum),
                "sentinel down-after-milliseconds %s 1000" % master,
                "sentinel failover-timeout %s 5000" % master]
    if password:
        s.lines.append("sentinel auth-pass %s %s" % (master, password))
    return s


def sentinel_master_state(port, master):
    """SENTINEL MASTER <master> as a dict."""
    flat = redis_call(port, "SENTINEL", "MASTER", master)
    return dict(zip(flat[0::2], flat[1::2]))


class SilentServer:
    """A TCP listener that accepts and says nothing, or, with @answer,
    sends those bytes one chunk every @interval seconds."""

    def __init__(self, answer=(), interval=0.0):
        import threading
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.answer = list(answer)
        self.interval = interval
        self.conns = []
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.1)
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(c)
            try:
                for chunk in self.answer:
                    if self.stopping:
                        break
                    c.sendall(chunk)
                    time.sleep(self.interval)
            except OSError:
                pass

    def close(self):
        self.stopping = True
        self.thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


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
