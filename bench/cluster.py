"""The cluster scenario of `make bench` (BENCH_SCENARIOS=cluster): two
hosts of the server under test on this machine, one Redis between them.

Listeners connect to host A only (mod_sse_mgr: make-id, register-listener
and listen on A; nchan: the subscriber request on A); every publish goes to
host B only (notify-completions / notify-listeners; nchan's /pub/...). So
every receipt has crossed Redis. Per (server, N): a fresh redis-server
(own directory, no persistence), host A, host B, one `ssebench session`
with -p A -Q B -R <redis port>, then all three stopped (finally).

- nchan + Redis: two nginx with `worker_processes` 1 each
  (BENCH_CLUSTER_NGINX_WORKERS), the channels of the single-host nchan
  scenario, every location `nchan_redis_pass` to one upstream with
  `nchan_redis_storage_mode distributed` (BENCH_NCHAN_REDIS_MODE): the
  mode in which any number of nginx share channels through Redis
  (`backup` keeps messages local and is for one server only).
- mod_sse_mgr: two httpd as in the single-host scenario, each with the same
  `SSESecret` and `SSEBus redis://127.0.0.1:<port>` in the server config.
  A build without SSEBus fails `apache2 -t`: the table then says so
  instead of a figure, and the rest of the run goes on.

Redis commands per publish: INFO commandstats before and after each phase
(ssebench -R), the difference divided by the phase's publishes, per
command name (the snapshots' own INFO left out). The section goes into
BENCH_RESULTS between the cluster markers, replacing an earlier one;
bench.py keeps it when a full run rewrites the file.
"""

import os
import secrets
import shlex
import signal
import subprocess
import time

BEGIN = ("<!-- cluster:begin: bench/cluster.py writes this section; "
         "a full make bench keeps it -->")
END = "<!-- cluster:end -->"
TITLE = "# Cluster (two hosts, one Redis)"
UNSUPPORTED = "mod_sse_mgr: SSEBus not supported by this build"
LABELS = {"sse": "mod_sse_mgr", "nchan": "nchan + Redis"}
# the issue's own measurement: two nginx with one worker each, one Redis,
# 1,000 listeners
ISSUE_NCHAN = {"tgt_per_s": 9524, "p50_ms": 0.41, "p99_ms": 1.7,
               "fan_ms": 14.2, "n": 1000}

B = None        # bench.py, as it runs (its Settings, log, ssebench, ...)


def env_str(name, default):
    v = os.environ.get(name, "").strip()
    return v if v else default


# ---- Redis -------------------------------------------------------------


class Redis:
    def __init__(self, root):
        self.root = root
        self.proc = None
        self.port = None
        self.pid = None
        self.binary = env_str("REDIS_SERVER", "redis-server")

    def available(self):
        if subprocess.run(["sh", "-c", "command -v %s"
                           % shlex.quote(self.binary)],
                          stdout=subprocess.DEVNULL).returncode:
            return "redis-server not installed (apt-get install redis-server)"
        return None

    def version(self):
        return B.version_of([self.binary, "--version"])

    def start(self):
        self.stop()
        os.makedirs(self.root, exist_ok=True)
        self.port = B.free_port()
        conf = os.path.join(self.root, "redis.conf")
        log = os.path.join(self.root, "redis.log")
        if os.path.exists(log):
            os.unlink(log)
        with open(conf, "w") as f:
            f.write("# written by bench/cluster.py\n"
                    "bind 127.0.0.1\nport %d\ndir %s\nsave \"\"\n"
                    "appendonly no\ndaemonize no\nlogfile %s\n"
                    "maxclients 10000\n" % (self.port, self.root, log))
        self.proc = subprocess.Popen([self.binary, conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 20
        while not B.answers(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start (%s)" % log)
            time.sleep(0.05)

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        self.proc = None
        self.pid = None


# ---- the two hosts ------------------------------------------------------


def host_classes():
    """Subclasses of bench.py's servers (defined once bench.py is known)."""

    class NchanHost(B.NchanServer):
        def __init__(self, name, redis):
            super().__init__()
            self.name = name
            self.redis = redis
            self.root = os.path.join(B.S.out, "cluster", "nchan-" + name)

        def config(self, n):
            workers = int(env_str("BENCH_CLUSTER_NGINX_WORKERS", "1"))
            mode = env_str("BENCH_NCHAN_REDIS_MODE", "distributed")
            text = super().config(n)
            lines = []
            for line in text.splitlines():
                if line.startswith("worker_processes "):
                    line = "worker_processes %d;" % workers
                lines.append(line)
                if line.strip() == "http {":
                    lines += ["    # every channel in one Redis, shared "
                              "with the other host (bench/cluster.py)",
                              "    upstream redis_bus {",
                              "        nchan_redis_server "
                              "redis://127.0.0.1:%d;" % self.redis.port,
                              "    }"]
                # in every location: nchan does not inherit
                # nchan_redis_pass from the server block
                if line.strip().startswith("nchan_channel_id "):
                    lines += ["            nchan_redis_pass redis_bus;",
                              "            nchan_redis_storage_mode %s;"
                              % mode]
            self.settings = ("host %s: %d worker(s), worker_connections "
                             "19000, nchan_redis_pass to one upstream "
                             "(nchan_redis_server redis://127.0.0.1), "
                             "nchan_redis_storage_mode %s, EventSource ping "
                             "%d s" % (self.name.upper(), workers, mode,
                                       B.HEARTBEAT_S))
            return "\n".join(lines) + "\n"

        def configtest(self, n):
            for sub in ("logs", "tmp"):
                os.makedirs(os.path.join(self.root, sub), exist_ok=True)
            errlog = os.path.join(self.root, "logs", "error.log")
            if os.path.exists(errlog):
                os.unlink(errlog)
            conf = os.path.join(self.root, "nginx.conf")
            self.port = B.free_port()
            with open(conf, "w") as f:
                f.write(self.config(n))
            p = subprocess.run(["nginx", "-t", "-p", self.root, "-c", conf],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               timeout=60)
            return None if p.returncode == 0 else p.stdout.strip()

    class SseHost(B.SseServer):
        def __init__(self, name, redis, secret):
            super().__init__()
            self.name = name
            self.redis = redis
            self.secret = secret
            self.root = os.path.join(B.S.out, "cluster", "sse-" + name)
            for sub in ("conf", "logs", "run"):
                os.makedirs(os.path.join(self.root, sub), exist_ok=True)
            B.make_traversable(os.path.join(self.root, "run"))

        def config(self, n, kind):
            text = super().config(n, kind)
            self.settings = "host %s: %s, SSESecret (the same on both), " \
                "SSEBus redis://127.0.0.1" % (self.name.upper(),
                                              self.settings)
            return text + ("# the cluster (bench/cluster.py)\n"
                           "SSESecret %s\nSSEBus redis://127.0.0.1:%d\n"
                           % (self.secret, self.redis.port))

        def configtest(self, n):
            self.port = B.free_port()
            errlog = os.path.join(self.root, "logs", "error_log")
            if os.path.exists(errlog):
                os.unlink(errlog)
            with open(os.path.join(self.root, "conf", "httpd.conf"),
                      "w") as f:
                f.write(self.config(n, "session"))
            p = self.apachectl("-t")
            return None if p.returncode == 0 else p.stdout.strip()

    return NchanHost, SseHost


# ---- one run --------------------------------------------------------------


def run_one(key, n, redis, hosts):
    """Redis, host A, host B, one ssebench session; everything stopped."""
    S = B.S
    res = {"n": n}
    a, b = hosts
    try:
        redis.start()
        why = a.configtest(n)
        if why:
            first = next((l for l in why.splitlines() if "SSEBus" in l),
                         why.splitlines()[0] if why else "?")
            if key == "sse" and "SSEBus" in why:
                res["skipped"] = "%s (`apache2 -t`: %s)" % (
                    UNSUPPORTED, B_printable(first[:200]))
                res["unsupported"] = True
            else:
                res["skipped"] = "configuration refused: %s" % \
                    B_printable(first[:200])
            B.log("cluster %s %d: %s" % (key, n, res["skipped"]))
            return res
        port_a, pid_a = a.start(n, "session")
        port_b, pid_b = b.start(n, "session")
        res["settings"] = [a.settings, b.settings]
        timeout = 4 * S.cap_s + S.msgs * 12 + n // 100 + 120
        recs = B.ssebench(["session", "-f", a.flavor(), "-p", str(port_a),
                           "-Q", str(port_b), "-R", str(redis.port),
                           "-n", str(n), "-m", str(S.msgs), "-k", "fan",
                           "-a", "ft", "-C", str(S.cap_s),
                           "-c", str(S.pub_conns), "-d", str(S.pub_depth),
                           "-P", "%d,%d,%d" % (pid_a, pid_b, redis.pid),
                           "-t", B.next_tag("c")], n, timeout)
        for r in recs:
            if r["what"] == "redis":
                res["redis_" + r["phase"]] = r
            elif r["what"] in ("fanout", "targeted"):
                res[r["what"]] = r
            else:
                res[r["what"]] = r
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        B.log("cluster %s %d failed: %s" % (key, n, e))
        res["skipped"] = "failed to run: %s" % e
    finally:
        problems = []
        for h in (a, b):
            h.stop()
            B.keep_log(h, "cluster-%s-%d" % (h.name, n))
            problems += ["host %s: %s" % (h.name.upper(), l)
                         for l in h.problems]
        redis.stop()
        res["problems"] = problems
    return res


def B_printable(text):
    import bench_report
    return bench_report.printable(text)


def run(bench, servers, absent):
    """Every server asked for (sse, nchan) at every BENCH_CLUSTER_N.
    Returns what render() needs."""
    global B
    B = bench
    S = B.S
    NchanHost, SseHost = host_classes()
    ns = [int(x) for x in B.env_list("BENCH_CLUSTER_N", "1000 10000")]
    redis = Redis(os.path.join(S.out, "cluster", "redis"))
    out = {"n": ns, "res": {}, "absent": {}, "redis": None,
           "raw_from": len(B.RAW)}
    why = redis.available()
    if why:
        out["absent"] = {k: why for k in ("sse", "nchan")}
        return out
    out["redis"] = redis.version()
    keys = [s.key for s in servers if s.key in ("sse", "nchan")]
    for k in ("sse", "nchan"):
        if k not in keys:
            out["absent"][k] = absent.get(k, "not asked for (BENCH_SERVERS)")
    secret = secrets.token_hex(16)
    probed = next((s for s in servers if s.key == "sse"), None)
    for n in ns:
        for k in keys:
            if k == "sse":
                hosts = (SseHost("a", redis, secret),
                         SseHost("b", redis, secret))
                for h in hosts:     # what bench.py's probe found
                    h.model = probed.model
                    h.fds_per_stream = probed.fds_per_stream
            else:
                hosts = (NchanHost("a", redis), NchanHost("b", redis))
            r = run_one(k, n, redis, hosts)
            out["res"].setdefault(k, {})[n] = r
            if r.get("unsupported"):
                # no other N will be different: say so once, run no more
                for m in ns:
                    out["res"][k].setdefault(m, r)
                keys = [x for x in keys if x != k]
    out["raw"] = B.RAW[out["raw_from"]:]
    return out


# ---- RESULTS.md section ------------------------------------------------------


def render(out, info):
    import bench_report as R
    S = B.S
    lines = []
    w = lines.append
    ns = out["n"]
    w(BEGIN)
    w("")
    w(TITLE)
    w("")
    w("Two hosts of the same server on this machine and one Redis: the "
      "listeners connect to host A only, every publish goes to host B "
      "only, so every receipt crossed Redis (bench/cluster.py; how to run "
      "it: bench/README.md, \"Cluster\").")
    w("")
    w("- Command: `%s` (from the repository root)" % R.command_line(S))
    if os.environ.get("BENCH_NOTE", "").strip():
        w("- Note: %s" % os.environ["BENCH_NOTE"].strip())
    w("- When: %s; load average (1, 5, 15 min) %s at the start, %s at the "
      "end, on %d cores" % (info["start"], info["load_start"],
                            info["load_end"], os.cpu_count()))
    w("- Redis: %s, one server per run (fresh for every server and N), "
      "`save \"\"`, `appendonly no`" % (out.get("redis") or "not run"))
    v = R.versions()
    sse_res = out["res"].get("sse", {})
    for k in ("sse", "nchan"):
        if k in out["absent"]:
            w("- %s: **not run** (%s)" % (LABELS[k], out["absent"][k]))
        elif k == "sse" and any(r.get("unsupported")
                                for r in sse_res.values()):
            w("- **%s**; module `%s` (sha256 %s)"
              % (UNSUPPORTED, S.module, R.file_sha256(S.module_copy)))
        else:
            w("- %s: ran; %s%s" % (LABELS[k], v[k], "; module `%s` "
                                   "(sha256 %s)" % (S.module,
                                                    R.file_sha256(
                                                        S.module_copy))
                                   if k == "sse" else ""))
    w("- Workload: N listeners on host A, each on its own id and on the "
      "key `fan`; fan-out: %d notify-listeners to host B, one after "
      "another (each once every listener has the one before); targeted: "
      "one notify-completions per listener to host B through %d "
      "keep-alive connection(s) x %d request(s) in flight, cap %d s"
      % (S.msgs, S.pub_conns, S.pub_depth, S.cap_s))
    w("")
    w("Targeted rate = receipts on host A / time from the first publish to "
      "the last receipt; latency = publish request's write to the receipt "
      "on A. Fan-out = publish to the *last* of the N listeners' receipts "
      "(median and worst message). CPU = both hosts and Redis, per "
      "delivery. Redis commands: INFO commandstats before and after each "
      "phase, divided by the phase's publishes (set-up: by listeners; "
      "idle: per second, the 2 s after set-up).")
    w("")

    keys = ["nchan", "sse"]
    notes = R.Notes()

    def get(k, n, part, field):
        r = out["res"].get(k, {}).get(n)
        if r is None:
            return None, notes.ref(out["absent"].get(k, "not run"))
        if r.get("skipped"):
            return None, notes.ref(r["skipped"])
        rec = r.get(part)
        if rec is None or field not in rec:
            return None, notes.ref("no %s result (bench/out/bench.log)"
                                   % part)
        return rec[field], None

    def cell(k, n, part, field, show):
        val, ref = get(k, n, part, field)
        return (show(val) if ref is None else ref), val

    def per_s(v):
        return R.num(v)

    def msus(v):
        return R.ms(v)

    rows = []
    spec = [
        ("listeners ready on A", "setup", "ready", R.num, None),
        ("targeted: receipts per second on A", "targeted", "deliv_per_s",
         per_s, "rate"),
        ("targeted: publishes answered per second by B", "targeted",
         "pub_per_s", per_s, None),
        ("targeted: latency p50 (ms)", "targeted", "p50_us", msus, "p50"),
        ("targeted: latency p99 (ms)", "targeted", "p99_us", msus, "p99"),
        ("targeted: latency max (ms)", "targeted", "max_us", msus, None),
        ("targeted: publish round trip to B, p50 (ms)", "targeted",
         "rtt_p50_us", msus, None),
        ("targeted: lost", "targeted", "lost", R.num, None),
        ("targeted: CPU per delivery, A + B + Redis (µs)", "targeted",
         "cpu_us_per_delivery", lambda v: R.num(v, 1), None),
        ("fan-out: last receipt, median message (ms)", "fanout",
         "last_p50_us", msus, "fan"),
        ("fan-out: last receipt, worst message (ms)", "fanout",
         "last_max_us", msus, None),
        ("fan-out: receipt latency p50 / p99 (ms)", "fanout", "p50_us",
         None, None),
        ("fan-out: lost", "fanout", "lost", R.num, None),
        ("fan-out: CPU per delivery, A + B + Redis (µs)", "fanout",
         "cpu_us_per_delivery", lambda v: R.num(v, 1), None),
        ("Redis commands per targeted publish (of which script calls)",
         "redis_targeted",
         "per_unit", lambda v: R.num(v, 2), None),
        ("Redis commands per fan-out publish (script calls)",
         "redis_fanout", "per_unit",
         lambda v: R.num(v, 2), None),
        ("Redis commands per listener set up (script calls)",
         "redis_setup", "per_unit",
         lambda v: R.num(v, 2), None),
        ("Redis commands per second, idle (script calls)", "redis_idle",
         "per_unit",
         lambda v: R.num(v, 1), None),
    ]
    for n in ns:
        for label, part, field, show, tgt in spec:
            if show is None:        # p50 / p99 in one cell
                cells = []
                for k in keys:
                    a, ra = get(k, n, part, "p50_us")
                    b, _ = get(k, n, part, "p99_us")
                    cells.append(ra if ra else "%s / %s" % (R.ms(a), R.ms(b)))
                rows.append([R.num(n), label, "", "", cells[0], cells[1],
                             R.DASH])
                continue
            if part.startswith("redis_"):   # total (of which scripts)
                cells, vals = [], []
                for k in keys:
                    a, ra = get(k, n, part, "per_unit")
                    b, _ = get(k, n, part, "scripts_per_unit")
                    vals.append(a)
                    cells.append(ra if ra else "%s (%s)" % (show(a),
                                                            show(b)))
                rows.append([R.num(n), label, "written down", "",
                             cells[0], cells[1], R.ratio(vals[1], vals[0])])
                continue
            nv, sv = [], []
            for k in keys:
                c, val = cell(k, n, part, field, show)
                nv.append(c)
                sv.append(val)
            target, issue = "", ""
            ref = sv[0]
            if tgt == "rate":
                target = "≥ %s (2× nchan)" % R.num(2 * ref) if ref else "≥ 2× nchan"
                issue = R.num(ISSUE_NCHAN["tgt_per_s"])
            elif tgt in ("p50", "p99", "fan"):
                target = "≤ %s (nchan)" % R.ms(ref) if ref else "≤ nchan"
                issue = {"p50": "%.2f", "p99": "%.1f", "fan": "%.1f"}[tgt] \
                    % ISSUE_NCHAN[{"p50": "p50_ms", "p99": "p99_ms",
                                   "fan": "fan_ms"}[tgt]]
            if n != ISSUE_NCHAN["n"]:
                issue = ""
            rows.append([R.num(n), label, target, issue, nv[0], nv[1],
                         R.ratio(sv[1], sv[0])])
    w("| N | metric | target for mod_sse_mgr | issue's nchan + Redis (1k) "
      "| nchan + Redis | mod_sse_mgr | mod_sse_mgr ÷ nchan |")
    w("|---|---|---|---|---|---|---|")
    for r in rows:
        w("| " + " | ".join(r) + " |")
    w("")
    notes.render(w)

    # Redis commands by name
    w("Redis commands by name, per unit (INFO commandstats). Redis counts "
      "the commands a Lua script runs as well as the script call itself "
      "(`evalsha`: nchan's scripts), so the client's round trips per unit "
      "are the script calls plus the commands no script ran, which "
      "commandstats cannot tell apart; the total is what Redis executed.")
    w("")
    w("| N | server | phase | per | commands per unit | script calls | "
      "by command |")
    w("|---|---|---|---|---|---|---|")
    for n in ns:
        for k in keys:
            r = out["res"].get(k, {}).get(n) or {}
            if r.get("skipped"):
                continue
            for ph in ("targeted", "fanout", "setup", "idle"):
                rec = r.get("redis_" + ph)
                if not rec:
                    continue
                if rec.get("error"):
                    w("| %s | %s | %s | %s | Redis did not answer | | |"
                      % (R.num(n), LABELS[k], ph, rec.get("per")))
                    continue
                pairs = [x.split(":") for x in str(rec.get("each", "-"))
                         .split(",") if ":" in x]
                pairs.sort(key=lambda x: (-float(x[1]), x[0]))
                each = ", ".join("%s %s" % (c, R.num(float(v), 2))
                                 for c, v in pairs) or "-"
                w("| %s | %s | %s | %s | %s | %s | %s |"
                  % (R.num(n), LABELS[k], ph, rec.get("per"),
                     R.num(rec.get("per_unit"), 2),
                     R.num(rec.get("scripts_per_unit"), 2), each))
    w("")
    w("Settings and log lines:")
    w("")
    for k in keys:
        seen, problems = set(), []
        for n, r in sorted(out["res"].get(k, {}).items()):
            for s in r.get("settings", []):
                if s not in seen:
                    seen.add(s)
                    w("- %s, N = %s: %s" % (LABELS[k], R.num(n), s))
            problems += r.get("problems", [])
        if out["res"].get(k):
            if problems:
                w("- %s logged %d warn/error line(s); first: `%s`"
                  % (LABELS[k], len(problems),
                     R.printable(problems[0][:200])))
            elif not any(r.get("skipped")
                         for r in out["res"][k].values()):
                w("- %s logged no warn/error line" % LABELS[k])
    w("")
    w("<details><summary>Raw result lines (ssebench, cluster)</summary>")
    w("")
    w("```")
    lines.extend(out.get("raw", []))
    w("```")
    w("</details>")
    w("")
    w(END)
    return "\n".join(lines) + "\n"


def splice(text, section):
    """text with its cluster section replaced by section (appended when it
    has none)."""
    i, j = text.find(BEGIN), text.find(END)
    if i >= 0 and j > i:
        return text[:i] + section.rstrip("\n") + text[j + len(END):]
    return text.rstrip("\n") + ("\n\n" if text.strip() else "") + section


def section_of(text):
    i, j = text.find(BEGIN), text.find(END)
    return text[i:j + len(END)] + "\n" if i >= 0 and j > i else None
