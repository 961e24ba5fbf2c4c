"""bench/RESULTS.md from the records bench.py collected: one table per
scenario, the servers side by side, with the targets and the ratios."""

import os
import platform
import re
import shlex
import subprocess

LABELS = {"sse": "mod_sse_mgr", "node": "Node original", "nchan": "nchan"}
PEERS = ("node", "nchan")
DASH = "—"


def num(v, digits=0):
    if v is None:
        return DASH
    if digits == 0:
        return "{:,.0f}".format(v)
    return "{:,.{d}f}".format(v, d=digits)


def ms(us):
    """Microseconds as milliseconds, three significant figures."""
    if us is None:
        return DASH
    v = us / 1000.0
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    if v >= 1:
        return "%.2f" % v
    return "%.3f" % v


def ratio(a, b):
    if a is None or b is None or not isinstance(a, (int, float)) \
            or not isinstance(b, (int, float)) or b == 0:
        return DASH
    return "%.2f×" % (a / b)


class Notes:
    """Footnotes: a reason is written once, cells point to it."""

    def __init__(self):
        self.items = []

    def ref(self, text):
        if text not in self.items:
            self.items.append(text)
        return "n/a [%d]" % (self.items.index(text) + 1)

    def render(self, w):
        for i, t in enumerate(self.items, 1):
            w("[%d] %s  " % (i, t))
        if self.items:
            w("")


def api_fields(rec):
    m = re.search(r"\{(.*)\}", str(rec.get("api", ""))) if rec else None
    if not m:
        return {}
    return {k: float(v) for k, v in re.findall(r"(\w+)=(-?[0-9.]+)",
                                               m.group(1))}


def table(w, head, rows):
    w("| " + " | ".join(head) + " |")
    w("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        w("| " + " | ".join(r) + " |")
    w("")


# ---- header -------------------------------------------------------------


def file_sha256(path):
    import hashlib
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()[:16]
    except OSError:
        return "?"


def file_mtime(path):
    import time
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(
            os.path.getmtime(path)))
    except OSError:
        return "?"


def command_line(S):
    env = ["%s=%s" % (k, shlex.quote(os.environ[k]))
           for k in sorted(os.environ)
           if (k.startswith("BENCH_") or k == "SSE_MGR_MODULE")
           and k != "BENCH_NOTE" and os.environ[k].strip()]
    return " ".join(env + ["make bench"])


def versions():
    def first(cmd):
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               timeout=10)
            return p.stdout.strip().splitlines()[0]
        except Exception:
            return "?"

    def npm_version(name):
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "node", "node_modules", name, "package.json")
        try:
            import json
            with open(path) as f:
                return json.load(f)["version"]
        except Exception:
            return "?"

    return {
        "sse": first(["/usr/sbin/apache2", "-v"]).replace(
            "Server version: ", ""),
        "node": "node %s, @aphorica/server-event-mgr %s, express %s" % (
            first(["node", "--version"]),
            npm_version("@aphorica/server-event-mgr"),
            npm_version("express")),
        "nchan": "%s, libnginx-mod-nchan %s" % (
            first(["nginx", "-v"]).replace("nginx version: ", ""),
            first(["dpkg-query", "-W", "-f=${Version}",
                   "libnginx-mod-nchan"])),
    }


def header(w, S, info, res, servers, absent):
    w("# mod_sse_mgr: load figures side by side")
    w("")
    if S.quick:
        w("**Preliminary**: a short run (`BENCH_QUICK=1`: fewer listeners, "
          "shorter windows) on a machine shared with other engineers' test "
          "runs. `make bench` without `BENCH_QUICK` is the real run.")
        w("")
    w("- Command: `%s` (from the repository root)" % command_line(S))
    if os.environ.get("BENCH_NOTE", "").strip():
        w("- Note: %s" % os.environ["BENCH_NOTE"].strip())
    w("- When: %s, %.1f minutes" % (info["start"], info["minutes"]))
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    w("- Machine: %d cores, %d MB, Linux %s; descriptors per process "
      "%s (hard limit); load average (1, 5, 15 min) %s at the start, %s "
      "at the end" % (os.cpu_count(), mem, platform.release(),
                      os.popen("sh -c 'ulimit -Hn'").read().strip(),
                      info["load_start"], info["load_end"]))
    w("- Module: `%s` (sha256 %s, modified %s); holding model found by "
      "probe: %s" % (S.module, file_sha256(S.module_copy),
                     file_mtime(S.module_copy), info.get("probe", "not probed")))
    v = versions()
    for key in ("sse", "node", "nchan"):
        if key in absent:
            w("- %s: **not run** (%s)" % (LABELS[key], absent[key]))
        else:
            w("- %s: ran; %s" % (LABELS[key], v[key]))
    w("- Workload: fan-out %d messages per phase, one after another; "
      "targeted publisher %d keep-alive connections x %d request(s) in "
      "flight; heartbeats every 10 s (the original has none); idle window "
      "%d s; hold %d s after the last level; per-phase cap %d s"
      % (S.msgs, S.pub_conns, S.pub_depth, S.idle_s, S.hold_s, S.cap_s))
    w("- Clients: bench/out/ssebench, one process per 14,000 streams "
      "(or BENCH_CLIENT_PROCS), each from its own 127.0.0.x address")
    w("")
    w("How to read the tables: bench/README.md. Ratios are mod_sse_mgr's "
      "figure divided by the other's: below 1 is better for times, memory "
      "and CPU, above 1 for rates.")
    w("")


# ---- hold ------------------------------------------------------------------


def hold_cell(hold, key, L, notes, fn):
    h = hold.get(key)
    if h is None:
        return notes.ref("%s not run" % LABELS[key]), None
    if L in h.get("skipped", {}):
        return notes.ref(h["skipped"][L]), None
    r = h["levels"].get(L)
    if r is None:
        return notes.ref("not tried: a lower level was not held"), None
    if r["held"] < L:
        return "not held (%s of %s)" % (num(r["held"]), num(L)), None
    v = fn(r)
    return v, v


def hold_table(w, S, res, keys):
    hold = res["hold"]
    if not hold:
        return
    notes = Notes()
    w("## Hold: N idle streams")
    w("")
    w("Memory is the sum over the server's processes (smaps_rollup), "
      "after the streams opened minus before, per stream held. Idle CPU is "
      "the run time of every thread of the server over the idle window "
      "(%d s), heartbeats on; it starts 2 s after the last stream of the "
      "level opened." % S.idle_s)
    w("")
    metrics = [
        ("streams held", lambda L: "%s" % num(L) if L == 100000 else "",
         lambda r: r["held"], lambda v: num(v)),
        ("resident KB per stream (RSS)", lambda L: "≤ 11",
         lambda r: r["rss_per_stream_kb"], lambda v: num(v, 1)),
        ("proportional KB per stream (PSS)", lambda L: "",
         lambda r: r["pss_per_stream_kb"], lambda v: num(v, 1)),
        ("server threads", lambda L: "",
         lambda r: r["threads"], lambda v: num(v)),
        ("server processes", lambda L: "",
         lambda r: r["procs"], lambda v: num(v)),
        ("server descriptors per stream", lambda L: "",
         lambda r: r.get("fds_per_stream"), lambda v: num(v, 1)),
        ("idle CPU, % of one core", lambda L: "≈ 0",
         lambda r: r["idle_cpu_ms"] / (r["idle_s"] * 10.0),
         lambda v: num(v, 2)),
        ("heartbeats per stream per minute", lambda L: "",
         lambda r: r["hb"] / max(r["held"], 1) * 60 / r["idle_s"],
         lambda v: num(v, 1)),
        ("seconds to open them", lambda L: "",
         lambda r: r["connect_s"], lambda v: num(v, 1)),
    ]
    head = ["N", "metric", "target"] + [LABELS[k] for k in keys] + \
        ["÷ %s" % LABELS[k] for k in keys if k != "sse"]
    rows = []
    for L in S.hold_n:
        for label, target, get, show in metrics:
            cells, vals = [], {}
            for k in keys:
                c, v = hold_cell(hold, k, L, notes, get)
                cells.append(show(c) if v is not None else c)
                vals[k] = v
            rats = [ratio(vals.get("sse"), vals.get(k))
                    for k in keys if k != "sse"]
            rows.append([num(L), label, target(L)] + cells + rats)
    drops = []
    for k in keys:
        d = hold.get(k, {}).get("drops")
        drops.append("%s of %s over %s s" % (num(d["dropped"]),
                                             num(d["level"]),
                                             num(d["over_s"]))
                     if d else DASH)
    rows.append(["max held", "streams dropped by the server", "0"] + drops
                + ["" for k in keys if k != "sse"])
    table(w, head, rows)
    notes.render(w)
    for k in keys:
        if hold.get(k, {}).get("settings"):
            w("- %s: %s" % (LABELS[k], hold[k]["settings"]))
    w("")


# ---- fan-out and targeted ----------------------------------------------


def sess(res, key, n, part):
    s = res["session"].get(key, {}).get(n)
    if s is None:
        return None, "%s not run" % LABELS[key]
    if "skipped" in s:
        return None, s["skipped"]
    r = s.get(part)
    if r is None:
        return None, "no result (see bench/out/bench.log)"
    return r, None


def fan_table(w, S, res, keys):
    if not res["session"] or "fanout" not in S.scenarios:
        return
    notes = Notes()
    w("## Fan-out: N listeners on one key")
    w("")
    w("%d messages published one after another (each once every listener "
      "has the one before); latency from the publish request's write (or "
      "the floor's first write) to each receipt. The floor is one process "
      "writing the same event bytes to N local sockets." % S.msgs)
    w("")
    metrics = [
        ("last receipt, median message (ms)", "last_p50_us", ms,
         lambda n: "≤ 1.2× floor" if n == 10000 else ""),
        ("last receipt, worst message (ms)", "last_max_us", ms,
         lambda n: ""),
        ("receipt latency p50 (ms)", "p50_us", ms, lambda n: ""),
        ("receipt latency p99 (ms)", "p99_us", ms, lambda n: ""),
        ("receipt latency max (ms)", "max_us", ms, lambda n: ""),
        ("server CPU per delivery (µs)", "cpu_us_per_delivery",
         lambda v: num(v, 2), lambda n: "≤ 18" if n == 10000 else ""),
        ("messages lost", "lost", num, lambda n: "0"),
    ]
    head = ["N", "metric", "target", "floor"] + \
        [LABELS[k] for k in keys] + ["÷ floor"] + \
        ["÷ %s" % LABELS[k] for k in keys if k != "sse"]
    rows = []
    for n in S.n:
        fl = res["floor"].get(n, {}).get("fan_floor")
        for label, f, show, target in metrics:
            vals, cells = {}, []
            for k in keys:
                r, why = sess(res, k, n, "fan_http")
                vals[k] = r.get(f) if r else None
                cells.append(show(vals[k]) if r else notes.ref(why))
            fv = fl.get(f) if fl and "skipped" not in fl else None
            fcell = show(fv) if fv is not None else DASH
            if f == "cpu_us_per_delivery" and fv is not None:
                fcell += " (writer)"
            rows.append([num(n), label, target(n), fcell] + cells
                        + [ratio(vals.get("sse"), fv)]
                        + [ratio(vals.get("sse"), vals.get(k))
                           for k in keys if k != "sse"])
    table(w, head, rows)
    notes.render(w)


def tgt_table(w, S, res, keys):
    if not res["session"] or "targeted" not in S.scenarios:
        return
    notes = Notes()
    w("## Targeted: one completion per listener, as fast as the publisher "
      "sends")
    w("")
    w("notify-completions (nchan: a POST to the listener's channel) for "
      "each of N listeners in turn, through %d keep-alive connections with "
      "%d request(s) in flight each. The task id carries the send time; "
      "latency is to the receipt on that listener's stream."
      % (S.pub_conns, S.pub_depth))
    w("")
    metrics = [
        ("publishes per second (answered)", "pub_per_s", num, "≥ 25,000"),
        ("deliveries per second", "deliv_per_s", num, ""),
        ("delivery latency p50 (ms)", "p50_us", ms, "≤ 0.2"),
        ("delivery latency p99 (ms)", "p99_us", ms, "≤ 0.5"),
        ("delivery latency max (ms)", "max_us", ms, ""),
        ("publish round trip p50 (ms)", "rtt_p50_us", ms, ""),
        ("server CPU per delivery (µs)", "cpu_us_per_delivery",
         lambda v: num(v, 2), ""),
        ("completions lost (or not in the cap)", "lost", num, "0"),
    ]
    head = ["N", "metric", "target"] + [LABELS[k] for k in keys] + \
        ["÷ %s" % LABELS[k] for k in keys if k != "sse"]
    rows = []
    for n in S.n:
        for label, f, show, target in metrics:
            vals, cells = {}, []
            for k in keys:
                r, why = sess(res, k, n, "tgt_http")
                vals[k] = r.get(f) if r else None
                c = show(vals[k]) if r else notes.ref(why)
                if r and f == "lost" and r.get("capped"):
                    c += " (stopped at the %d s cap)" % S.cap_s
                cells.append(c)
            rows.append([num(n), label, target] + cells
                        + [ratio(vals.get("sse"), vals.get(k))
                           for k in keys if k != "sse"])
    table(w, head, rows)
    notes.render(w)


def capi_table(w, S, res):
    runs = res["session"].get("sse", {})
    if not runs or "capi" not in S.scenarios:
        return
    w("## Through the C API (mod_sse_mgr only)")
    w("")
    w("bench/mod_sse_bench.c publishes with the optional functions of "
      "include/mod_sse_mgr.h: `GET /bench/fanout?key=K&n=1` calls "
      "notify_listeners once per message (latency from just before the "
      "call); `POST /bench/completions?n=N` with the listeners' ids calls "
      "notify_completions for each in one loop, every task id carrying the "
      "time of its call. Same listeners, same run as the HTTP figures "
      "beside them.")
    w("")
    rows = []
    for n in S.n:
        s = runs.get(n, {})
        fc, fh = s.get("fan_capi"), s.get("fan_http")
        tc, th = s.get("tgt_capi"), s.get("tgt_http")
        api = api_fields(tc)

        def row(label, target, a, b, show):
            rows.append([num(n), label, target,
                         show(a) if a is not None else DASH,
                         show(b) if b is not None else DASH, ratio(a, b)])

        g = (lambda r, f: r.get(f) if r else None)
        row("fan-out: last receipt, median message (ms)", "",
            g(fc, "last_p50_us"), g(fh, "last_p50_us"), ms)
        row("fan-out: receipt latency p50 (ms)", "", g(fc, "p50_us"),
            g(fh, "p50_us"), ms)
        row("fan-out: receipt latency p99 (ms)", "", g(fc, "p99_us"),
            g(fh, "p99_us"), ms)
        row("fan-out: server CPU per delivery (µs)", "",
            g(fc, "cpu_us_per_delivery"), g(fh, "cpu_us_per_delivery"),
            lambda v: num(v, 2))
        row("fan-out: one notify_listeners call (µs, p50)", "",
            g(fc, "api_call_p50_us"), None, lambda v: num(v, 1))
        row("fan-out: messages lost", "0", g(fc, "lost"), g(fh, "lost"),
            num)
        row("targeted: publishes per second", "≥ 1,000,000 (C API)",
            api.get("per_s"), g(th, "pub_per_s"), num)
        row("targeted: publishing thread's CPU per call (µs)", "",
            api["cpu_ns"] / api["n"] / 1e3
            if api.get("cpu_ns") and api.get("n") else None, None,
            lambda v: num(v, 2))
        row("targeted: deliveries per second", "", g(tc, "deliv_per_s"),
            g(th, "deliv_per_s"), num)
        row("targeted: delivery latency p50 (ms)", "", g(tc, "p50_us"),
            g(th, "p50_us"), ms)
        row("targeted: delivery latency p99 (ms)", "", g(tc, "p99_us"),
            g(th, "p99_us"), ms)
        row("targeted: completions lost", "0", g(tc, "lost"),
            g(th, "lost"), num)
        if s.get("skipped"):
            rows.append([num(n), "skipped", "", s["skipped"], "", ""])
    table(w, ["N", "metric", "target", "C API", "HTTP (same run)",
              "C API ÷ HTTP"], rows)



# ---- payloads ------------------------------------------------------------

NO_PAYLOADS = ("the original has no payloads: its notify-listeners and "
               "notify-completions take no body (its figures without one "
               "are in the tables above)")


def payload_table(w, S, res, keys):
    """The payload phases beside the same run's phases without one, on
    the same listeners of the same server start."""
    want = [x for x in ("fanout-payload", "targeted-payload")
            if x in S.scenarios]
    if not res["session"] or not want:
        return
    P = S.payload
    peers = [k for k in keys if k in ("sse", "nchan")]
    w("## Payloads: a %s-byte JSON body, fan-out and targeted" % num(P))
    w("")
    w("The same listeners and server start as the tables above; the "
      "payload phases run after the phases without one. Every publish "
      "carries the same body to both servers, `Content-Type: "
      "application/json`, exactly %s bytes and already compact: "
      "`{\"t\":\"<tag>\",\"pad\":\"abc…\"}`, the tag `m<K>` for fan-out "
      "message K, `p<i>.<ns>` for the completion of listener i sent at ns "
      "(nchan has no task id: it is in the body, so both servers carry "
      "it; mod_sse_mgr gets it in the URL too). mod_sse_mgr validates "
      "the body and sends `id: N`, `event: notify`, `data: "
      "{\"key\":\"fan\",\"data\":<body>}` (or `event: completed`, "
      "`data: {\"timestamp\":…,\"id\":…,\"taskid\":…,\"data\":<body>}`); "
      "nchan sends `id: <time>:<n>` and `data: <body>` as received. The "
      "load generator checks every payload event whole (length, every "
      "byte of the body, the wrapper around it, the task id against the "
      "body's tag): one that fails counts as bad, never as delivered. "
      "The floor writes mod_sse_mgr's payload event. Bytes per delivery "
      "are what the streams read during the phase divided by receipts "
      "(HTTP chunk framing where the server uses it, and any heartbeat "
      "in the phase, included)." % num(P))
    w("")
    notes = Notes()
    g = (lambda r, f: r.get(f) if r else None)

    def cells_for(n, part, f, show):
        vals, cells = {}, []
        for k in peers:
            for pay in ("", "_pay"):
                r, why = sess(res, k, n, part + pay)
                vals[k + pay] = g(r, f)
                cells.append(show(vals[k + pay]) if r and
                             vals[k + pay] is not None else
                             (DASH if r else notes.ref(why)))
        return vals, cells

    def node_cell():
        return [notes.ref(NO_PAYLOADS)] if "node" in keys else []

    cols = []
    for k in peers:
        cols += ["%s, no body" % LABELS[k], "%s, %s B" % (LABELS[k], num(P))]
    if "fanout-payload" in want:
        w("### Fan-out: N listeners on one key, %d messages" % S.msgs)
        w("")
        metrics = [
            ("last receipt, median message (ms)", "last_p50_us", ms),
            ("last receipt, worst message (ms)", "last_max_us", ms),
            ("receipt latency p50 (ms)", "p50_us", ms),
            ("receipt latency p99 (ms)", "p99_us", ms),
            ("server CPU per delivery (µs)", "cpu_us_per_delivery",
             lambda v: num(v, 2)),
            ("bytes per delivery on the stream", "rx_per_delivery",
             lambda v: num(v)),
            ("bytes of one event (SSE text)", "ev_bytes", num),
            ("bytes of one publish request", "req_bytes", num),
            ("payloads received whole and checked", "checked", num),
            ("messages lost", "lost", num),
        ]
        head = (["N", "metric", "floor, no body", "floor, %s B" % num(P)]
                + cols + (["Node original, %s B" % num(P)]
                          if "node" in keys else [])
                + ["%s B ÷ no body" % num(P), "÷ floor (%s B)" % num(P)]
                + (["÷ nchan (%s B)" % num(P)] if "nchan" in peers else []))
        rows = []
        for n in S.n:
            fl = res["floor"].get(n, {})
            for label, f, show in metrics:
                vals, cells = cells_for(n, "fan_http", f, show)
                fv = [g(fl.get("fan_floor"), f), g(fl.get("fan_floor_pay"), f)]
                fc = [show(v) if v is not None else DASH for v in fv]
                if f == "cpu_us_per_delivery":
                    fc = [c + " (writer)" if c != DASH else c for c in fc]
                if f == "req_bytes":
                    fc = [DASH, DASH]   # the floor publishes nothing
                sp = vals.get("sse_pay")
                rows.append([num(n), label] + fc + cells + node_cell()
                            + [ratio(sp, vals.get("sse")),
                               ratio(sp, fv[1])]
                            + ([ratio(sp, vals.get("nchan_pay"))]
                               if "nchan" in peers else []))
        table(w, head, rows)
    if "targeted-payload" in want:
        w("### Targeted: one completion per listener, %d connections x %d "
          "in flight" % (S.pub_conns, S.pub_depth))
        w("")
        metrics = [
            ("publishes per second (answered)", "pub_per_s", num),
            ("deliveries per second", "deliv_per_s", num),
            ("delivery latency p50 (ms)", "p50_us", ms),
            ("delivery latency p99 (ms)", "p99_us", ms),
            ("delivery latency max (ms)", "max_us", ms),
            ("publish round trip p50 (ms)", "rtt_p50_us", ms),
            ("server CPU per delivery (µs)", "cpu_us_per_delivery",
             lambda v: num(v, 2)),
            ("bytes per delivery on the stream", "rx_per_delivery",
             lambda v: num(v)),
            ("bytes of one event (SSE text)", "ev_bytes", num),
            ("bytes of one publish request", "req_bytes", num),
            ("payloads received whole and checked", "checked", num),
            ("completions lost (or not in the cap)", "lost", num),
        ]
        head = (["N", "metric"] + cols + (["Node original, %s B" % num(P)]
                                          if "node" in keys else [])
                + ["%s B ÷ no body" % num(P)]
                + (["÷ nchan (%s B)" % num(P)] if "nchan" in peers else []))
        rows = []
        for n in S.n:
            for label, f, show in metrics:
                vals, cells = cells_for(n, "tgt_http", f, show)
                sp = vals.get("sse_pay")
                rows.append([num(n), label] + cells + node_cell()
                            + [ratio(sp, vals.get("sse"))]
                            + ([ratio(sp, vals.get("nchan_pay"))]
                               if "nchan" in peers else []))
        table(w, head, rows)
    notes.render(w)


def printable(text):
    """A server's log line as Markdown text: nchan writes NUL bytes into
    its channel ids; control characters show as \\xNN."""
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f`]",
                  lambda m: "\\x%02x" % ord(m.group()), text)

def settings_and_problems(w, res, keys):
    w("## Server settings and log lines")
    w("")
    for k in keys:
        seen, problems = set(), []
        for n, s in sorted(res["session"].get(k, {}).items()):
            if s.get("settings") and s["settings"] not in seen:
                seen.add(s["settings"])
                w("- %s, N = %s: %s" % (LABELS[k], num(n), s["settings"]))
            problems += s.get("problems", [])
        problems += res["hold"].get(k, {}).get("problems", [])
        if problems:
            w("- %s logged %d warn/error line(s); first: `%s`"
              % (LABELS[k], len(problems), printable(problems[0][:200])))
        else:
            w("- %s logged no warn/error line" % LABELS[k])
    w("")


def render(S, info, res, servers, absent, raw):
    out = []
    w = out.append
    keys = [k for k in ("sse", "node", "nchan")
            if any(s.key == k for s in servers)]
    header(w, S, info, res, servers, absent)
    hold_table(w, S, res, keys)
    fan_table(w, S, res, keys)
    tgt_table(w, S, res, keys)
    capi_table(w, S, res)
    payload_table(w, S, res, keys)
    settings_and_problems(w, res, keys)
    w("<details><summary>Raw result lines (ssebench)</summary>")
    w("")
    w("```")
    out.extend(raw)
    w("```")
    w("</details>")
    w("")
    return "\n".join(out)
