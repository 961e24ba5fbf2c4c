"""Heartbeat punctuality of parked streams with some blocked (issue 11).

    python3 bench/punct.py new=.libs/mod_sse_mgr.so old=/tmp/old/.libs/mod_sse_mgr.so

Builds bench/out/ssebench and the bench module (as run.sh does), then for
each module in turn (PUNCT_REPEAT rounds, the modules alternating) starts
httpd as bench.py does (event MPM, its own root under bench/out/, Timeout
60) with SSEHeartbeat PUNCT_HB and `SendBufferSize 8192`, runs
`ssebench punct` and stops it. Writes the R lines and a table to
PUNCT_RESULTS (bench/RESULTS-punct.md). Knobs (environment):

    PUNCT_N 100000, PUNCT_BLOCKED N/100, PUNCT_HB 2, PUNCT_WINDOW 10,
    PUNCT_BURST 400, PUNCT_REPEAT 1, PUNCT_RESULTS, PUNCT_NOTE

Nothing here is asserted: the figures depend on the machine.
"""

import argparse
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the servers and the ssebench runner)

BENCH = bench.BENCH
REPO = bench.REPO


def env_int(name, default):
    v = os.environ.get(name, "").strip()
    return int(v) if v else default


def build(out):
    os.makedirs(os.path.join(out, "mod"), exist_ok=True)
    src = [os.path.join(BENCH, f) for f in
           ("sb_main.c", "sb_worker.c", "sb_pub.c", "sb_conn.c",
            "sb_proc.c", "sb_punct.c")]
    subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror",
                    "-std=gnu99", "-o", os.path.join(out, "ssebench")]
                   + src, check=True)
    shutil.copy(os.path.join(BENCH, "mod_sse_bench.c"),
                os.path.join(out, "mod"))
    subprocess.run([os.environ.get("APXS", "apxs"), "-c",
                    "-Wc,-Wall -Wextra -Werror -std=gnu99", "-I" + REPO,
                    "mod_sse_bench.c"], cwd=os.path.join(out, "mod"),
                   check=True, stdout=subprocess.DEVNULL)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def run_one(label, module, out, n, blocked, hb, window, burst):
    copy = os.path.join(out, "mod", "punct-%s.so" % label)
    shutil.copy(module, copy + ".new")  # httpd maps it: never rewrite
    os.replace(copy + ".new", copy)     # the file a child has open
    bench.S = bench.Settings(argparse.Namespace(
        out=out, module=module, module_copy=copy,
        bench_module=os.path.join(out, "mod", ".libs", "mod_sse_bench.so"),
        ssebench=os.path.join(out, "ssebench")))
    bench.S.sse_extra = "SendBufferSize 8192"
    bench.HEARTBEAT_S = hb
    srv = bench.SseServer()
    srv.model = "parked"        # what bench.py's probe finds (RESULTS.md)
    srv.fds_per_stream = 1.0
    recs = []
    load0 = bench.loadavg()
    try:
        port, pid = srv.start(n, "hold")
        bench.log("%s: %s" % (label, srv.settings))
        recs = bench.ssebench(
            ["punct", "-p", str(port), "-n", str(n), "-B", str(blocked),
             "-e", str(hb), "-i", str(window), "-u", str(burst),
             "-P", str(pid), "-t", bench.next_tag("q")], n,
            n // 200 + 6 * window + 300)
    finally:
        srv.stop()
        bench.keep_log(srv, "punct-%s" % label)
    return {"label": label, "module": module, "sha": sha256(module),
            "settings": srv.settings, "recs": recs, "raw": list(bench.RAW),
            "problems": srv.problems, "load": (load0, bench.loadavg())}


def fmt(r, k, f="%.1f"):
    return f % r[k] if k in r else "?"


def render(runs, cmd, params, t0):
    n, blocked, hb, window, burst = params
    lines = [
        "# Heartbeat punctuality with blocked streams (`bench/punct.py`)",
        "",
        "%s, %s; 2 cores, 24 GiB, other work running on the machine "
        "meanwhile (load averages below)." % (
            time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(t0)),
            os.uname().release),
        "",
        "    " + cmd,
        "",
        "N %d parked streams, %d blocked (2 KB SO_RCVBUF, never read after "
        "%d notify-listeners on their key), SSEHeartbeat %d, Timeout 60, "
        "window %d s; httpd: %s, SendBufferSize 8192." % (
            n, blocked, burst, hb, window, runs[0]["settings"]),
    ]
    if os.environ.get("PUNCT_NOTE"):
        lines += ["", os.environ["PUNCT_NOTE"]]
    lines += [
        "",
        "Lateness = arrival - (previous arrival + %d s), over the heartbeats"
        " of the reading streams in the window (negative: the dispatcher "
        "sends what is due within 50 ms early). CPU: utime + stime of "
        "httpd's children over the window." % hb,
        "",
        "| module | p50 ms | p99 ms | max ms | mean ms | > 100 ms | > 1 s "
        "| samples / expected | no sample | CPU ms (% core) | blocked seen "
        "(Send-Q > 0) | load avg before / after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        p = next((r for r in run["recs"] if r["what"] == "punct"), None)
        b = next((r for r in run["recs"] if r["what"] == "burst"), {})
        if p is None:
            lines.append("| %s | failed: no result (see bench/out/"
                         "bench.log) |" % run["label"])
            continue
        lines.append(
            "| %s | %s | %s | %s | %s | %d | %d | %d / %d | %d | %s (%s %%) "
            "| %s, after %s | %s / %s |" % (
                run["label"], fmt(p, "late_p50_ms", "%.2f"),
                fmt(p, "late_p99_ms", "%.2f"), fmt(p, "late_max_ms", "%.1f"),
                fmt(p, "late_mean_ms", "%.2f"), p["over_100ms"],
                p["over_1s"], p["samples"], p["expected"], p["no_sample"],
                fmt(p, "cpu_tick_ms", "%.0f"), fmt(p, "cpu_pct_core"),
                int(b.get("send_q_nonempty", -1)),
                int(p["send_q_nonempty_after"]),
                run["load"][0], run["load"][1]))
    lines += ["", "Modules:", ""]
    seen = set()
    for run in runs:
        if run["label"] not in seen:
            seen.add(run["label"])
            lines.append("- %s: `%s` sha256 %s" % (run["label"],
                                                    run["module"],
                                                    run["sha"]))
    lines += ["", "Raw lines of ssebench, in run order:", "", "```"]
    for run in runs:
        lines.append("# %s" % run["label"])
        lines += [r for r in run["raw"]]
        if run["problems"]:
            lines += ["# server log: " + p for p in run["problems"][:5]]
    lines += ["```", ""]
    return "\n".join(lines)


def main():
    mods = []
    for a in sys.argv[1:]:
        label, _, path = a.partition("=")
        if not path or not os.path.exists(path):
            sys.exit("usage: punct.py label=module.so ... (%s?)" % a)
        mods.append((label, os.path.abspath(path)))
    if not mods:
        sys.exit("usage: punct.py label=module.so ...")
    n = env_int("PUNCT_N", 100000)
    blocked = env_int("PUNCT_BLOCKED", n // 100)
    hb = env_int("PUNCT_HB", 2)
    window = env_int("PUNCT_WINDOW", 10)
    burst = env_int("PUNCT_BURST", 400)
    repeat = env_int("PUNCT_REPEAT", 1)
    results = os.environ.get("PUNCT_RESULTS",
                             os.path.join(BENCH, "RESULTS-punct.md"))
    out = os.path.join(BENCH, "out")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.makedirs(out, exist_ok=True)
    bench.make_traversable(out)
    bench.LOG = open(os.path.join(out, "punct.log"), "a")
    t0 = time.time()
    build(out)
    runs = []
    for _ in range(repeat):
        for label, path in mods:
            bench.RAW.clear()
            runs.append(run_one(label, path, out, n, blocked, hb, window,
                                burst))
    cmd = " ".join(["PUNCT_%s=%s" % (k, os.environ["PUNCT_" + k])
                    for k in ("N", "BLOCKED", "HB", "WINDOW", "BURST",
                              "REPEAT") if os.environ.get("PUNCT_" + k)]
                   + ["python3", "bench/punct.py"]
                   + ["%s=%s" % m for m in sys.argv[1:] and
                      [a.partition("=")[::2] for a in sys.argv[1:]]])
    with open(results, "w") as f:
        f.write(render(runs, cmd, (n, blocked, hb, window, burst), t0))
    bench.log("wrote %s" % results)


if __name__ == "__main__":
    main()
