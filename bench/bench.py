"""The driver of `make bench` (bench/run.sh builds, then runs this).

Starts each server with its own root under bench/out/ -- httpd with
mod_sse_mgr (event MPM), the original Node package on Express, nginx with
nchan -- runs the same workload against each with bench/out/ssebench, reads
its "R ..." lines and writes bench/RESULTS.md. Knobs are environment
variables (bench/README.md lists them).
"""

import argparse
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
APACHE2 = os.environ.get("APACHE2", "/usr/sbin/apache2")
APACHE_MODULES = os.environ.get("APACHE_MODULES", "/usr/lib/apache2/modules")
NCHAN_SO = "/usr/lib/nginx/modules/ngx_nchan_module.so"
HEARTBEAT_S = 10
FD_PER_PROCESS = 15000          # streams per server process we ask for
LABELS = {"sse": "mod_sse_mgr", "node": "Node original", "nchan": "nchan"}


def env_str(name, default):
    v = os.environ.get(name, "").strip()
    return v if v else default


def env_int(name, default):
    return int(env_str(name, str(default)))


def env_list(name, default):
    return [x for x in env_str(name, default).replace(",", " ").split()]


class Settings:
    def __init__(self, args):
        q = env_str("BENCH_QUICK", "0") == "1"
        self.quick = q
        path = os.path.abspath
        self.out = path(args.out)
        self.module = path(args.module)              # as asked for
        self.module_copy = path(args.module_copy)    # what httpd loads
        self.bench_module = path(args.bench_module)
        self.ssebench = path(args.ssebench)
        self.results = env_str("BENCH_RESULTS",
                               os.path.join(BENCH, "RESULTS.md"))
        self.n = [int(x) for x in env_list("BENCH_N", "100 1000" if q
                                           else "100 1000 10000")]
        self.hold_n = [int(x) for x in env_list(
            "BENCH_HOLD_N", "100 1000 10000" if q
            else "100 1000 10000 50000 100000")]
        self.servers = env_list("BENCH_SERVERS", "sse node nchan")
        self.scenarios = env_list("BENCH_SCENARIOS",
                                  "floor hold fanout targeted capi "
                                  "fanout-payload targeted-payload")
        self.payload = env_int("BENCH_PAYLOAD_BYTES", 1024)
        self.msgs = env_int("BENCH_MSGS", 5 if q else 10)
        self.idle_s = env_int("BENCH_IDLE_SECONDS", 10 if q else 20)
        self.hold_s = env_int("BENCH_HOLD_SECONDS", 15 if q else 60)
        self.cap_s = env_int("BENCH_CAP_SECONDS", 20 if q else 60)
        self.pub_conns = env_int("BENCH_PUB_CONNS", 4)
        self.pub_depth = env_int("BENCH_PUB_DEPTH", 1)
        self.client_procs = env_int("BENCH_CLIENT_PROCS", 0)
        self.step1_max = env_int("BENCH_SSE_STEP1_MAX_THREADS", 12000)
        # parked streams: connections the event MPM lets a child hold
        # (ThreadsPerChild x (1 + AsyncRequestWorkerFactor)). Owned
        # streams do not count, so only streams in their first second
        # (a storm) and a child's last ones before its descriptor limit
        # (mod_sse_dispatch.c) need them. 0: as before the owned
        # sockets, enough for every stream of a child
        self.sse_conns = env_int("BENCH_SSE_CONNS_PER_CHILD", 2048)
        self.sse_extra = env_str("BENCH_SSE_EXTRA_CONF", "")


S = None
LOG = None


def log(msg):
    line = time.strftime("%H:%M:%S ") + msg
    print(line, file=sys.stderr, flush=True)
    if LOG:
        LOG.write(line + "\n")
        LOG.flush()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def children(ppid):
    out = []
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open("/proc/%s/stat" % e) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == ppid and fields[0] != "Z":
                out.append(int(e))
    return out


def threads_of(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def make_traversable(path):
    """Server children run as www-data when we are root."""
    if os.geteuid() != 0:
        return
    while path not in ("/", ""):
        try:
            mode = os.stat(path).st_mode & 0o7777
            if mode & 0o005 != 0o005:
                os.chmod(path, mode | 0o005)
        except OSError:
            pass
        path = os.path.dirname(path)


def bad_log_lines(path, levels):
    """Lines at these levels, and any child that died of a signal (httpd
    says so at notice)."""
    try:
        with open(path, errors="replace") as f:
            return [l.rstrip() for l in f
                    if any("[%s]" % lv in l or ":%s]" % lv in l
                           for lv in levels)
                    or "exit signal" in l]
    except OSError:
        return []


def version_of(cmd):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=10)
        return p.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


# ---- servers ---------------------------------------------------------------


class Server:
    key = "?"
    pid = None
    port = None
    proc = None

    def __init__(self):
        self.root = os.path.join(S.out, self.key)
        self.problems = []      # warn/error lines seen, per run
        self.settings = ""      # what the last start used

    def capacity(self, n):
        return None

    def available(self):
        return None

    def flavor(self):
        return "sse"

    def stop(self):
        if self.pid and alive(self.pid):
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if alive(self.pid):
                for p in children(self.pid) + [self.pid]:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass
        if self.proc:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.pid = None
        self.proc = None

    def wait_up(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if answers(self.port):
                return
            time.sleep(0.1)
        raise RuntimeError("%s did not answer on %d" % (self.key, self.port))


class SseServer(Server):
    key = "sse"
    model = "unknown"
    fds_per_stream = 1.0

    def __init__(self):
        super().__init__()
        for sub in ("conf", "logs", "run"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        make_traversable(os.path.join(self.root, "run"))

    def available(self):
        if not os.path.exists(S.module_copy):
            return "module %s not built" % S.module
        return None

    def capacity(self, n):
        if self.model == "thread per stream" and n > S.step1_max:
            return ("not held: thread per stream (step 1) and this run "
                    "allows %d threads (BENCH_SSE_STEP1_MAX_THREADS; "
                    "kernel.pid_max here is %s)"
                    % (S.step1_max, open("/proc/sys/kernel/pid_max")
                       .read().strip()))
        return None

    def sizing(self, n, kind):
        """Children, threads per child, AsyncRequestWorkerFactor: enough
        children that each stays under the descriptor limit with what a
        stream costs (the probe measured it)."""
        if kind == "probe":
            return 1, 8, 16
        per_child = min(FD_PER_PROCESS, int(18000 / self.fds_per_stream))
        c = max(2, math.ceil(n / per_child))
        if self.model == "thread per stream":
            t = math.ceil(n / c) + 32
        else:
            t = 64
        if self.model == "thread per stream" or S.sse_conns == 0:
            f = max(2, math.ceil(n / c / t) + 2)
        else:
            f = max(2, math.ceil(S.sse_conns / t) - 1)
        return c, t, f

    def config(self, n, kind):
        r = self.root
        c, t, f = self.sizing(n, kind)
        history = 4096 if kind != "session" else min(65536, 2 * n + 1024)
        user = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
        self.settings = ("event MPM, %d children x %d threads, "
                         "AsyncRequestWorkerFactor %d, SSEMaxListeners %d, "
                         "SSEHistory %d, SSEHeartbeat %d"
                         % (c, t, f, n + 1000, history, HEARTBEAT_S))
        self.threads_per_child = t
        self.nchildren = c
        m = APACHE_MODULES
        return f"""# written by bench/bench.py
ServerRoot "{r}"
DefaultRuntimeDir "{r}/run"
PidFile "{r}/run/httpd.pid"
ErrorLog "{r}/logs/error_log"
LogLevel warn
Listen 127.0.0.1:{self.port}
ListenBacklog 4096
ServerName 127.0.0.1
Timeout 60
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 300
{user}
LoadModule mpm_event_module {m}/mod_mpm_event.so
LoadModule authz_core_module {m}/mod_authz_core.so
LoadModule authz_host_module {m}/mod_authz_host.so
StartServers {c}
ServerLimit {c}
ThreadLimit {t}
ThreadsPerChild {t}
MaxRequestWorkers {c * t}
MinSpareThreads 1
MaxSpareThreads {c * t}
AsyncRequestWorkerFactor {f}
MaxConnectionsPerChild 0
LoadModule sse_mgr_module "{S.module_copy}"
LoadModule sse_bench_module "{S.bench_module}"
SSEPrefix /sse/
SSEMaxListeners {n + 1000}
SSEHistory {history}
SSEHeartbeat {HEARTBEAT_S}
# the load generator holds up to 14,000 streams per source address: no
# per-client bound (a module from before them does not know the names)
<IfDirective SSEMaxStreamsPerClient>
    SSEMaxStreamsPerClient 0
    SSEMaxListenersPerClient 0
</IfDirective>
<Location /bench/>
    SetHandler sse-bench
</Location>
{S.sse_extra}
"""

    def apachectl(self, *args):
        conf = os.path.join(self.root, "conf", "httpd.conf")
        return subprocess.run([APACHE2, "-f", conf] + list(args),
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              timeout=60, env=dict(os.environ, LANG="C"))

    def start(self, n, kind):
        self.stop()             # one left from an interrupted run
        self.port = free_port()
        errlog = os.path.join(self.root, "logs", "error_log")
        if os.path.exists(errlog):
            os.unlink(errlog)
        with open(os.path.join(self.root, "conf", "httpd.conf"), "w") as f:
            f.write(self.config(n, kind))
        p = self.apachectl("-k", "start")
        if p.returncode != 0:
            raise RuntimeError("apache2 -k start: %s" % p.stdout)
        self.wait_up()
        pidfile = os.path.join(self.root, "run", "httpd.pid")
        deadline = time.monotonic() + 30
        while self.pid is None and time.monotonic() < deadline:
            try:
                with open(pidfile) as f:
                    self.pid = int(f.read().strip())
            except (OSError, ValueError):
                time.sleep(0.1)
        if self.pid is None:
            raise RuntimeError("httpd wrote no %s" % pidfile)
        # every child up with all its threads, so "before" is complete
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            kids = children(self.pid)
            if (len(kids) >= self.nchildren
                    and all(threads_of(k) >= self.threads_per_child
                            for k in kids)):
                break
            time.sleep(0.2)
        return self.port, self.pid

    def stop(self):
        if self.pid is None:    # a start that failed half-way
            try:
                with open(os.path.join(self.root, "run", "httpd.pid")) as f:
                    self.pid = int(f.read().strip())
            except (OSError, ValueError):
                pass
        if self.pid and alive(self.pid):
            self.apachectl("-k", "stop")
        super().stop()
        self.problems = bad_log_lines(
            os.path.join(self.root, "logs", "error_log"),
            ("warn", "error", "crit", "alert", "emerg"))


class NodeServer(Server):
    key = "node"

    def available(self):
        pkg = os.path.join(BENCH, "node", "node_modules", "@aphorica",
                           "server-event-mgr")
        if not os.path.isdir(pkg):
            return "bench/node/node_modules missing (npm ci in bench/node)"
        if subprocess.run(["sh", "-c", "command -v node"],
                          stdout=subprocess.DEVNULL).returncode:
            return "node not installed"
        return None

    def capacity(self, n):
        if n > 19000:
            return ("not held: the original keeps every listener in one "
                    "process, and one process gets 20,000 descriptors here")
        return None

    def start(self, n, kind):
        self.port = free_port()
        os.makedirs(self.root, exist_ok=True)
        self.logf = open(os.path.join(self.root, "node.log"), "w")
        self.proc = subprocess.Popen(
            ["node", os.path.join(BENCH, "node", "server.js"),
             str(self.port), "/sse/"], cwd=os.path.join(BENCH, "node"),
            stdout=self.logf, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self.settings = "one process (the original's design), Express 4"
        self.wait_up()
        return self.port, self.pid

    def stop(self):
        super().stop()
        if getattr(self, "logf", None) is None:
            return
        self.logf.close()
        self.logf = None
        with open(os.path.join(self.root, "node.log"),
                  errors="replace") as f:
            self.problems = [l.rstrip() for l in f
                             if "rror" in l or "arn" in l]


class NchanServer(Server):
    key = "nchan"

    def flavor(self):
        return "nchan"

    def available(self):
        if not os.path.exists(NCHAN_SO) or subprocess.run(
                ["sh", "-c", "command -v nginx"],
                stdout=subprocess.DEVNULL).returncode:
            return "nginx or libnginx-mod-nchan not installed"
        return None

    def config(self, n):
        r = self.root
        w = max(2, math.ceil(n / FD_PER_PROCESS))
        user = "user www-data;" if os.geteuid() == 0 else ""
        self.settings = ("%d workers%s, worker_connections 19000, "
                         "EventSource ping %d s"
                         % (w, "" if w == 2 else
                            " (2 give too few descriptors for %d)" % n,
                            HEARTBEAT_S))
        sub = f"""nchan_subscriber eventsource;
            nchan_subscriber_first_message newest;
            nchan_eventsource_ping_interval {HEARTBEAT_S};
            nchan_eventsource_ping_event "";
            nchan_eventsource_ping_comment "heartbeat";"""
        tok = "([A-Za-z0-9._~-]+)"
        return f"""# written by bench/bench.py
load_module {NCHAN_SO};
worker_processes {w};
worker_rlimit_nofile 20000;
pid {r}/nginx.pid;
error_log {r}/logs/error.log warn;
{user}
events {{ worker_connections 19000; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {r}/tmp/body;
    proxy_temp_path {r}/tmp/proxy;
    fastcgi_temp_path {r}/tmp/fastcgi;
    uwsgi_temp_path {r}/tmp/uwsgi;
    scgi_temp_path {r}/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    nchan_shared_memory_size 1024M;
    nchan_message_buffer_length 4;
    nchan_message_timeout 60s;
    server {{
        listen 127.0.0.1:{self.port} backlog=4096;
        # a listener: its id's channel (register-listener)
        location ~ ^/sub/id/{tok}$ {{
            nchan_channel_id "id_$1";
            {sub}
        }}
        # a listener holding one key: both channels on one stream
        location ~ ^/sub/multi/{tok}/{tok}$ {{
            nchan_channel_id "id_$1" "key_$2";
            {sub}
        }}
        # notify-completions, notify-listeners
        location ~ ^/pub/id/{tok}$ {{
            nchan_publisher http;
            nchan_channel_id "id_$1";
        }}
        location ~ ^/pub/key/{tok}$ {{
            nchan_publisher http;
            nchan_channel_id "key_$1";
        }}
    }}
}}
"""

    def start(self, n, kind):
        self.port = free_port()
        for sub in ("logs", "tmp"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        errlog = os.path.join(self.root, "logs", "error.log")
        if os.path.exists(errlog):
            os.unlink(errlog)
        conf = os.path.join(self.root, "nginx.conf")
        with open(conf, "w") as f:
            f.write(self.config(n))
        self.proc = subprocess.Popen(
            ["nginx", "-p", self.root, "-c", conf, "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = self.proc.pid
        self.wait_up()
        return self.port, self.pid

    def stop(self):
        super().stop()
        self.problems = [l for l in bad_log_lines(
            os.path.join(self.root, "logs", "error.log"),
            ("warn", "error", "crit", "alert", "emerg"))
            if "Using " not in l]


# ---- running ssebench ---------------------------------------------------

SRC_BASE = [1]
TAGS = [0]


def next_tag(prefix):
    TAGS[0] += 1
    return "%s%dx" % (prefix, TAGS[0])


def parse_line(line):
    parts = line.split(" ", 2)
    rec = {"what": parts[1]}
    for k, v in re.findall(r"(\w+)=(\{[^}]*\}|\S+)", parts[2]
                           if len(parts) > 2 else ""):
        try:
            rec[k] = float(v) if re.match(r"^-?[0-9.]+$", v) else v
        except ValueError:
            rec[k] = v
    return rec


def ssebench(args, n, timeout):
    workers = S.client_procs or max(1, math.ceil(n / 14000))
    base = SRC_BASE[0]
    SRC_BASE[0] = base + workers if base + 2 * workers < 240 else 1
    cmd = [S.ssebench] + args + ["-w", str(workers), "-b", str(base)]
    log("$ " + " ".join(cmd))
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=LOG,
                           text=True, timeout=timeout)
        out = p.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout or ""
        if isinstance(out, bytes):
            out = out.decode()
        log("ssebench timed out after %ds" % timeout)
    recs = []
    for line in out.splitlines():
        if line.startswith("R "):
            log(line)
            RAW.append(line)
            recs.append(parse_line(line))
    return recs


RAW = []
RUNS = [0]


def keep_log(srv, what):
    """Each run's server log, kept under out/logs/ for a later look."""
    src = {"sse": os.path.join(srv.root, "logs", "error_log"),
           "nchan": os.path.join(srv.root, "logs", "error.log"),
           "node": os.path.join(srv.root, "node.log")}[srv.key]
    RUNS[0] += 1
    dst = os.path.join(S.out, "logs", "%02d-%s-%s.log" % (RUNS[0], srv.key,
                                                         what))
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    try:
        with open(src, "rb") as f, open(dst, "wb") as g:
            g.write(f.read())
    except OSError:
        pass


def probe_model(srv):
    """Thread per stream (step 1) or parked (step 2)? One child with 8
    threads is asked to hold 8 streams (what each costs in descriptors:
    the load generator's few control connections are the fraction, so
    the whole part is the figure), then 32."""
    try:
        port, pid = srv.start(32, "probe")
        recs = ssebench(["hold", "-p", str(port), "-L", "8,32", "-s", "4",
                         "-i", "1", "-H", "0", "-P", str(pid),
                         "-t", next_tag("p")], 32, 120)
    finally:
        srv.stop()
    held = {int(r["level"]): r for r in recs if r["what"] == "hold"}
    n = int(held[32]["held"]) if 32 in held else 0
    if 8 in held and held[8]["held"] == 8:
        srv.fds_per_stream = max(1.0, math.floor(
            held[8]["fds_per_stream"] + 0.01))
    srv.model = "parked" if n > 8 else "thread per stream"
    return ("one child with 8 threads held %d of 32 streams: %s; "
            "%.1f descriptors per stream" % (n, srv.model,
                                            srv.fds_per_stream))


def run_floor(n, payload=0):
    recs = ssebench(["floor", "-n", str(n), "-m", str(S.msgs),
                     "-t", next_tag("f")]
                    + (["-z", str(payload)] if payload else []), n, 300)
    return {"fan_floor": next((r for r in recs if r["what"] == "fanout"),
                              None),
            "setup": next((r for r in recs if r["what"] == "setup"), None)}


PAYLOAD_SCENARIOS = ("fanout-payload", "targeted-payload")
SESSION_SCENARIOS = ("fanout", "targeted") + PAYLOAD_SCENARIOS
NO_PAYLOADS = ("no payloads: the original's notify-listeners and "
               "notify-completions take no body")


def run_hold(srv):
    levels = [L for L in S.hold_n if srv.capacity(L) is None]
    res = {"levels": {}, "skipped": {L: srv.capacity(L) for L in S.hold_n
                                     if srv.capacity(L)}}
    if not levels:
        return res
    top = max(levels)
    recs = []
    try:
        port, pid = srv.start(top, "hold")
        res["settings"] = srv.settings
        timeout = len(levels) * (S.idle_s + 60) + S.hold_s + top // 200 + 120
        recs = ssebench(["hold", "-f", srv.flavor(), "-p", str(port),
                         "-L", ",".join(str(L) for L in levels),
                         "-i", str(S.idle_s), "-H", str(S.hold_s),
                         "-P", str(pid), "-t", next_tag("h")], top, timeout)
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        log("hold on %s failed: %s" % (srv.key, e))
        res["skipped"] = {L: "failed to run: %s" % e for L in levels}
    finally:
        srv.stop()
        keep_log(srv, "hold")
    res["problems"] = srv.problems
    for r in recs:
        if r["what"] == "hold":
            res["levels"][int(r["level"])] = r
        elif r["what"] in ("base", "drops"):
            res[r["what"]] = r
    return res


def run_session(srv, n):
    why = srv.capacity(n)
    if why:
        return {"skipped": why}
    phases = ""
    if "fanout" in S.scenarios:
        phases += "f"
        if srv.key == "sse" and "capi" in S.scenarios:
            phases += "F"
    if "targeted" in S.scenarios:
        phases += "t"
        if srv.key == "sse" and "capi" in S.scenarios:
            phases += "T"
    # the payload phases on the same listeners, after the others
    if srv.key != "node":
        if "fanout-payload" in S.scenarios:
            phases += "p"
        if "targeted-payload" in S.scenarios:
            phases += "q"
    if not phases:
        return {"skipped": NO_PAYLOADS}
    res, recs = {}, []
    try:
        port, pid = srv.start(n, "session")
        res["settings"] = srv.settings
        timeout = 6 * S.cap_s + S.msgs * 3 * 12 + n // 100 + 120
        recs = ssebench(["session", "-f", srv.flavor(), "-p", str(port),
                         "-n", str(n), "-m", str(S.msgs), "-k", "fan",
                         "-a", phases, "-C", str(S.cap_s),
                         "-c", str(S.pub_conns), "-d", str(S.pub_depth),
                         "-z", str(S.payload),
                         "-P", str(pid), "-t", next_tag("s")], n, timeout)
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        log("session on %s failed: %s" % (srv.key, e))
        res["skipped"] = "failed to run: %s" % e
    finally:
        srv.stop()
        keep_log(srv, "session-%d" % n)
    res["problems"] = srv.problems
    for r in recs:
        pay = "_pay" if "payload" in r else ""
        if r["what"] == "fanout":
            res["fan_" + r["via"] + pay] = r
        elif r["what"] == "targeted":
            res["tgt_" + r["via"] + pay] = r
        else:
            res[r["what"]] = r
    return res


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    global S, LOG
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--module", required=True)
    ap.add_argument("--module-copy", required=True)
    ap.add_argument("--bench-module", required=True)
    ap.add_argument("--ssebench", required=True)
    S = Settings(ap.parse_args())
    os.makedirs(S.out, exist_ok=True)
    make_traversable(S.out)
    LOG = open(os.path.join(S.out, "bench.log"), "w")
    info = {"start": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "load_start": loadavg(), "t0": time.monotonic()}
    all_servers = {"sse": SseServer(), "node": NodeServer(),
                   "nchan": NchanServer()}
    servers, absent = [], {}
    for key in S.servers:
        srv = all_servers[key]
        why = srv.available()
        if why:
            absent[key] = why
        else:
            servers.append(srv)
    for key in all_servers:
        if key not in S.servers:
            absent[key] = "not asked for (BENCH_SERVERS)"
    res = {"floor": {}, "hold": {}, "session": {}}
    clu = None
    sse = all_servers["sse"]
    if sse in servers:
        try:
            info["probe"] = probe_model(sse)
            log(info["probe"])
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            log("probe failed: %s" % e)
            servers.remove(sse)
            absent["sse"] = "httpd with the module did not start: %s" % e
    try:
        if "floor" in S.scenarios and "fanout" in S.scenarios:
            for n in S.n:
                res["floor"][n] = run_floor(n)
        if "floor" in S.scenarios and "fanout-payload" in S.scenarios:
            for n in S.n:
                res["floor"].setdefault(n, {})["fan_floor_pay"] = \
                    run_floor(n, S.payload)["fan_floor"]
        if "hold" in S.scenarios:
            for srv in servers:
                res["hold"][srv.key] = run_hold(srv)
        if any(x in S.scenarios for x in SESSION_SCENARIOS):
            for n in S.n:
                for srv in servers:
                    res["session"].setdefault(srv.key, {})[n] = \
                        run_session(srv, n)
        if "cluster" in S.scenarios:
            import cluster
            clu = cluster.run(sys.modules[__name__], servers, absent)
    finally:
        for srv in servers:
            srv.stop()
    info["load_end"] = loadavg()
    info["minutes"] = (time.monotonic() - info["t0"]) / 60
    import bench_report
    import cluster
    try:
        with open(S.results) as f:
            old = f.read()
    except OSError:
        old = ""
    if "cluster" in S.scenarios:
        section = cluster.render(clu, info)
    else:
        section = cluster.section_of(old)   # kept from an earlier run
    if S.scenarios == ["cluster"]:
        text = cluster.splice(old, section)     # the rest stays as it is
    else:
        text = bench_report.render(S, info, res, servers, absent, RAW)
        if section:
            text = cluster.splice(text, section)
    with open(S.results, "w") as f:
        f.write(text)
    log("wrote %s (%.1f min)" % (S.results, info["minutes"]))


if __name__ == "__main__":
    main()
