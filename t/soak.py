#!/usr/bin/python3
"""make soak: minutes of churn against a real httpd per MPM, and the
proof that nothing drifts. Not part of `make test` (pytest collects
test_*.py only); run it as

    make soak                          # 10 minutes per MPM
    SOAK_MINUTES=2 MPM=event make soak # one MPM, shorter
    /usr/bin/python3 t/soak.py         # the same, without make

Per MPM, one httpd with Debian's MPM profile and the shipped
conf/sse_mgr.conf (SSEHeartbeat 2, Timeout 10, GracefulShutdownTimeout 15,
SSEHistory 8192, SSEMaxListeners 1000, mod_status):

  load    HELD clients (all keys) keep a stream the whole run; CHURN
          clients (1-2 keys) open, hold 2-25 s, close, stay away 0.5-8 s,
          reopen with Last-Event-ID; every 15 s a storm closes and opens
          half of them at once; now and then one is abandoned (stays away
          until the end) and a fresh id replaces it. A publisher POSTs
          notify-listeners/<key> on 4 keys, PUBLISH_RATE a second.
  faults  `apache2 -k graceful` every minute; SIGKILL of one child that
          holds streams every two minutes (at 1:30, 3:30, ...). A client
          whose stream the server ended reconnects with Last-Event-ID.
  checks  see check_sample(), quiet_check(), final_checks(): the status
          counters every second, Connected exactly at quiet points,
          events lost, old children gone, child memory, the error log.

Exit status 0 when every MPM ran without a violation, 1 otherwise.
"""

import collections
import json
import os
import random
import re
import signal
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from sse_client import (SSEStream, StreamClosed, StreamTimeout,  # noqa: E402
                        fresh_name, http)
from sse_harness import (BAD_LEVELS, LOG_LINE, HttpdEnv,  # noqa: E402
                         _alive, selected_mpms)
from test_status import STATUS_CONF, status_auto  # noqa: E402

MINUTES = float(os.environ.get("SOAK_MINUTES", "10"))
SEED = int(os.environ.get("SOAK_SEED", str(int(time.time()))))
KEYS = ["k0", "k1", "k2", "k3"]
HELD = 10                 # clients holding one stream for the whole run
CHURN = 50                # churn clients alive at a time
PUBLISH_RATE = 4.0        # notify-listeners per second
RESTART_EVERY = 60.0
KILL_EVERY = 120.0
KILL_AT = 90.0            # first kill: between two restarts
GRACEFUL_SHUTDOWN = 15    # GracefulShutdownTimeout
STORM_EVERY = 15.0
QUIET_EVERY = 20.0
ABANDON_P = 0.02
# How long the server may take to see a stream ended by its client (EOF
# is seen at once; this covers our reader's polling and the server's).
CLOSE_GRACE = 3.0
# After a graceful restart the old children end their streams at once
# (a parked stream within about a second); after a SIGKILL the parent's
# child_status hook frees the dead child's streams at once, or failing
# that its monitor, about every 10 s.
SETTLE_RESTART = 6.0
# prefork forks one child a second for 10 s after a restart
# (hold_off_on_exponential_spawning), and each stream holds a child: the
# streams coming back queue in the listen backlog, and every other
# request behind them (measured: heads after 15 s, notify and
# server-status timing out at 10 s).
SETTLE_RESTART_PREFORK = 25.0
SETTLE_KILL = 15.0
WARMUP = 30.0             # RSS samples count from here
RSS_EVERY = 5.0
FLAT_RATIO = 0.10         # "flat": private memory grew < 10% ...
FLAT_SLACK_KB = 1024      # ... or < 1 MiB, from age >= 15 s to the last
# SOAK_SELFTEST=drop: one held client forgets its 50th notify, and
# SOAK_SELFTEST=leak: a stream is held open outside the soak's books
# from 20 s on; either run must FAIL (lost 1; Connected above its bound), which
# shows the checks can see what they look for.
SELFTEST = os.environ.get("SOAK_SELFTEST", "")
# A burst of reconnections after a graceful restart may wait in the
# listen backlog while prefork forks (1, 2, 4 ... 32 children a second);
# an EventSource waits as long.
HEAD_WAIT = 30.0
MAX_OPEN = 70             # streams the soak holds at most (prefork: 150
                          # processes for streams and every other request)

DIRECTIVES = {
    "SSEHeartbeat": "2",
    "SSEMaxListeners": "1000",
    "SSEHistory": "8192",
    "SSEDormantTimeout": "3600",
}
EXTRA_CONF = STATUS_CONF + "GracefulShutdownTimeout %d\n" % GRACEFUL_SHUTDOWN


def now():
    return time.monotonic()


class Session:
    """One stream, as the soak saw it: request sent, `registered` read,
    ended (closed by us or seen ended)."""

    __slots__ = ("client", "t_req", "t_reg", "t_end", "by", "stream",
                 "last_sent", "top")

    def __init__(self, client, last_sent):
        self.client = client
        self.t_req = now()
        self.t_reg = None
        self.t_end = None
        self.by = None
        self.stream = None
        self.last_sent = last_sent  # Last-Event-ID we sent, or None
        self.top = None             # highest id seen on this stream


class Soak:
    def __init__(self, mpm, workdir):
        self.mpm = mpm
        self.rnd = random.Random(SEED)
        self.env = HttpdEnv(mpm, workdir, directives=DIRECTIVES,
                            extra_conf=EXTRA_CONF, profile="debian",
                            shipped_conf=True, timeout=10)
        self.api = self.env.api
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.stop = threading.Event()       # churn and publisher stop
        self.draining = False
        self.quiet = False                  # no opens/closes by us
        self.active = 0                     # opens/closes under way
        self.open_slots = threading.BoundedSemaphore(MAX_OPEN)
        self.sessions = []
        self.clients = []
        self.last_transition = now()
        self.disruptions = []               # (time, what, settle)
        self.violations = []
        self.notes = collections.Counter()
        self.publishes = collections.Counter()   # key -> ok
        self.pub_unknown = collections.Counter()
        self.pub_stopped_at = None
        self.registered_ids = set()
        self.register_sent = set()
        self.max_connected = 0
        self.generation = 0
        self.gen_of = {}
        self.rss_rows = []
        self.killed = []
        self.restarts = 0
        self.prev_fig = None
        self.start_t = None

    # -- bookkeeping ----------------------------------------------------

    def violation(self, text):
        with self.lock:
            self.violations.append("%7.1fs %s" % (now() - self.start_t, text))
        print("  VIOLATION %s" % text, flush=True)

    def transition(self):
        self.last_transition = now()

    def in_settle(self, t=None):
        """The latest disruption whose settle window covers t, or None."""
        t = now() if t is None else t
        for at, what, settle in reversed(self.disruptions):
            if at <= t <= at + settle:
                return at, what, settle
        return None

    def disrupted_since(self, t):
        return any(at >= t for at, _, _ in self.disruptions)

    def begin_action(self):
        with self.cond:
            while self.quiet and not self.stop.is_set():
                self.cond.wait(0.5)
            self.active += 1

    def end_action(self):
        with self.cond:
            self.active -= 1
            self.cond.notify_all()

    def retrying(self, what, fn, tries=6):
        """A plain request, retried a few times: it may land on a child
        being killed or stopped."""
        for i in range(tries):
            try:
                return fn()
            except (OSError, AssertionError) as e:
                err = e
                time.sleep(0.3 * (i + 1))
        self.violation("%s failed %d times: %s" % (what, tries, err))
        return None

    def head_seq(self):
        return status_auto(self.env)[0]["HeadSeq"]

    # -- the run ----------------------------------------------------------

    def run(self):
        env = self.env
        print("== soak %s: %.1f min, seed %d, %s" % (self.mpm, MINUTES, SEED,
                                                     env.root), flush=True)
        env.start()
        self.start_t = now()
        for pid in env.children():
            self.gen_of[pid] = 0
        for i in range(HELD):
            self.new_client(held=True)
        for i in range(CHURN):
            self.new_client(held=False)
        threads = [threading.Thread(target=self.publisher, daemon=True),
                   threading.Thread(target=self.sampler, daemon=True)]
        for t in threads:
            t.start()
        end = self.start_t + MINUTES * 60
        next_restart = self.start_t + RESTART_EVERY
        next_kill = self.start_t + KILL_AT
        next_storm = self.start_t + STORM_EVERY
        next_quiet = self.start_t + QUIET_EVERY
        watchers = []
        leaked = None
        while now() < end:
            t = now()
            if SELFTEST == "leak" and not leaked and t > self.start_t + 20:
                leaked = self.api.register(self.api.make_id("leak"))
            if t >= next_restart:
                watchers.append(self.graceful())
                next_restart += RESTART_EVERY
            elif t >= next_kill:
                self.kill_one()
                next_kill += KILL_EVERY
            elif t >= next_storm:
                self.storm()
                next_storm += STORM_EVERY
            elif t >= next_quiet:
                if self.in_settle(t + 12) is None and min(
                        next_restart, next_kill) - t > 14:
                    self.quiet_check()
                next_quiet += QUIET_EVERY
            time.sleep(0.2)
        self.finish(watchers)
        return not self.violations

    def new_client(self, held):
        c = Client(self, held)
        with self.lock:
            self.clients.append(c)
        c.thread = threading.Thread(target=c.run, daemon=True,
                                    name="client %s" % c.id)
        c.thread.start()
        return c

    # -- load ---------------------------------------------------------------

    def publisher(self):
        # every publish must reach a listener (HELD listen to every key),
        # so each one writes one ring entry
        while not self.stop.is_set():
            for c in self.clients[:HELD]:
                c.ready.wait(30)
            break
        period = 1.0 / PUBLISH_RATE
        nxt = now()
        while not self.stop.is_set():
            key = self.rnd.choice(KEYS)
            try:
                n = self.api.notify_listeners(key)
                if n < HELD:
                    self.violation("notify-listeners/%s reached %d listeners,"
                                   " fewer than the %d held" % (key, n, HELD))
                with self.lock:
                    self.publishes[key] += 1
            except (OSError, AssertionError) as e:
                with self.lock:
                    self.pub_unknown[key] += 1
                if self.in_settle() is None:
                    self.violation("notify-listeners/%s failed outside a "
                                   "restart or kill: %s" % (key, e))
            nxt += period
            time.sleep(max(0.0, nxt - now()))
        self.pub_stopped_at = now()

    def storm(self):
        with self.lock:
            churn = [c for c in self.clients
                     if not c.held and not c.abandoned]
        picked = [c for c in churn if self.rnd.random() < 0.5]
        for c in picked:
            c.deadline = now()
        self.notes["storms"] += 1
        self.notes["storm moves"] += len(picked)

    # -- faults ---------------------------------------------------------

    def graceful(self):
        env = self.env
        old = set(env.children())
        t0 = now()
        # marked before the restart begins: its old children end their
        # streams while env.graceful() still waits for them to exit
        with self.lock:
            self.disruptions.append((t0, "graceful",
                                     SETTLE_RESTART_PREFORK
                                     if self.mpm == "prefork"
                                     else SETTLE_RESTART))
        env.graceful()
        self.restarts += 1
        with self.lock:
            self.generation += 1
        print("  %6.1fs graceful restart %d (%d old children)"
              % (t0 - self.start_t, self.restarts, len(old)), flush=True)
        w = threading.Thread(target=self.watch_old, args=(old, t0),
                             daemon=True)
        w.start()
        return w

    def watch_old(self, old, t0):
        """Every child of the generation before a graceful restart exits
        within GracefulShutdownTimeout of the restart."""
        left = set(old)
        while left and now() < t0 + GRACEFUL_SHUTDOWN + 1:
            left = {p for p in left if _alive(p)}
            time.sleep(0.1)
        if left:
            self.violation("old-generation children %s still alive %ds "
                           "after graceful restart" % (sorted(left),
                                                       GRACEFUL_SHUTDOWN))
        else:
            self.notes["old gen gone, max s"] = max(
                self.notes["old gen gone, max s"], round(now() - t0 + 0.5))

    def kill_one(self):
        env = self.env
        with self.lock:
            ports = [s.stream.local_port for s in self.sessions
                     if s.t_end is None and s.stream is not None]
        held = env.pids_holding(ports)
        per_pid = collections.Counter(held.values())
        if per_pid:
            victim = self.rnd.choice(sorted(per_pid))
        else:
            victim = self.rnd.choice(env.children())
        with self.lock:
            self.killed.append(victim)
            self.disruptions.append((now(), "kill %d" % victim, SETTLE_KILL))
        os.kill(victim, signal.SIGKILL)
        print("  %6.1fs SIGKILL child %d (holding %d of our streams)"
              % (now() - self.start_t, victim, per_pid.get(victim, 0)),
              flush=True)

    # -- the counters, every second -----------------------------------------

    def sampler(self):
        next_rss = self.start_t + WARMUP
        while not self.stop.is_set():
            t0 = now()
            try:
                self.check_sample()
            except (OSError, AssertionError) as e:
                if self.in_settle() is None:
                    self.violation("server-status failed: %s" % e)
            if now() >= next_rss:
                self.sample_rss()
                next_rss += RSS_EVERY
            time.sleep(max(0.0, 1.0 - (now() - t0)))

    def bounds(self, t0, t1, strict=False):
        """(lo, hi) for Connected read between t0 and t1.

        hi: sessions whose request was sent by t1 and that had not ended
        (by us or seen ended) more than CLOSE_GRACE before t0 -- or, in a
        settle window, ended at all before the disruption's start.
        lo: sessions registered by t0 and not ended by t1; within a settle
        window only those registered a second after its disruption (the
        server may have ended the others before we read their EOF)."""
        settle = None if strict else self.in_settle(t0)
        with self.lock:
            sessions = list(self.sessions)
        lo = hi = 0
        for s in sessions:
            if s.t_req <= t1:
                if s.t_end is None or s.t_end + CLOSE_GRACE >= t0 or (
                        settle and s.t_end >= settle[0] - 1):
                    hi += 1
            if (s.t_reg is not None and s.t_reg <= t0
                    and (s.t_end is None or s.t_end >= t1)):
                if settle is None or s.t_reg >= settle[0] + 1:
                    lo += 1
        return lo, hi, settle

    def check_sample(self):
        with self.lock:
            seen = len(self.registered_ids)     # before the read ...
        t0 = now()
        fig = status_auto(self.env)[0]
        t1 = now()
        with self.lock:
            made = len(self.register_sent)      # ... and after it
        lo, hi, settle = self.bounds(t0, t1)
        conn = fig["Connected"]
        self.max_connected = max(self.max_connected, conn)
        where = "Connected %d" % conn
        if settle:
            where += " (%.1fs after %s)" % (t0 - settle[0], settle[1])
        if settle:
            # how long the strict bounds stay broken after a disruption:
            # the settle window actually needed, for the summary
            slo, shi, _ = self.bounds(t0, t1, strict=True)
            if not slo <= conn <= shi:
                what = settle[1].split()[0]
                key = "Connected settled after %s, s >" % what
                self.notes[key] = max(self.notes[key],
                                      round(t1 - settle[0], 1))
        if not lo <= conn <= hi:
            self.violation("%s outside [%d, %d] (streams registered and "
                           "open .. opened and not long closed)"
                           % (where, lo, hi))
        if not seen <= fig["Listeners"] <= made:
            self.violation("Listeners %d outside [%d registered, %d "
                           "register requests sent]"
                           % (fig["Listeners"], seen, made))
        if conn > fig["Listeners"]:
            self.violation("Connected %d > Listeners %d"
                           % (conn, fig["Listeners"]))
        for k in ("Listeners", "Connected", "Published", "Delivered",
                  "Missed", "RejectedFull", "EndedSlow", "Repairs",
                  "Children"):
            if not isinstance(fig.get(k), int) or fig[k] > 10 ** 9:
                self.violation("status %s is %r" % (k, fig.get(k)))
        for k in ("RejectedFull", "EndedSlow", "Missed"):
            if fig[k]:
                self.violation("status %s is %d" % (k, fig[k]))
                self.notes["status %s" % k] = fig[k]
        if fig["Repairs"] > len(self.killed):
            self.violation("Repairs %d with %d kills"
                           % (fig["Repairs"], len(self.killed)))
        if fig["HeadSeq"] - fig["OldestSeq"] != fig["RingEvents"]:
            self.violation("RingEvents %d != HeadSeq - OldestSeq" %
                           fig["RingEvents"])
        prev = self.prev_fig
        if prev:
            for k in ("Published", "Delivered", "HeadSeq", "Repairs"):
                if fig[k] < prev[k]:
                    self.violation("%s went back: %d -> %d"
                                   % (k, prev[k], fig[k]))
        self.prev_fig = fig
        # processes listed as holding streams are this server's live
        # children (a killed one may linger until its settle ends)
        if not (settle and settle[1].startswith("kill")):
            kids = set(self.env.children())
            for i in range(fig["Children"]):
                pid = fig.get("Child[%d]Pid" % i)
                if pid not in kids and self.in_settle(t0 - 1) is None:
                    self.violation("status lists child %s holding %s "
                                   "streams; it is not a live child"
                                   % (pid, fig.get("Child[%d]Streams" % i)))

    def quiet_check(self):
        """Exact count at a quiet point: no opens or closes by us for
        CLOSE_GRACE, no restart or kill settling: Connected must equal the
        streams we hold and saw registered, within a further 4 s."""
        with self.cond:
            self.quiet = True
        t_q = now()
        try:
            with self.cond:
                while self.active and now() < t_q + 15:
                    self.cond.wait(0.2)
            if self.active:
                self.notes["quiet checks skipped (busy)"] += 1
                return
            deadline = now() + 10
            while now() - self.last_transition < CLOSE_GRACE:
                if now() > deadline:
                    self.notes["quiet checks skipped (server ends)"] += 1
                    return
                time.sleep(0.1)
            t_from = now()
            last = None
            while now() < t_from + 4:
                with self.lock:
                    held = sum(1 for s in self.sessions
                               if s.t_end is None and s.t_reg is not None)
                    opening = sum(1 for s in self.sessions
                                  if s.t_end is None and s.t_reg is None)
                fig = status_auto(self.env)[0]
                if self.disrupted_since(t_q) or self.last_transition > t_from:
                    self.notes["quiet checks skipped (disturbed)"] += 1
                    return
                last = (fig["Connected"], held, opening)
                if opening == 0 and fig["Connected"] == held:
                    self.notes["quiet checks passed"] += 1
                    return
                time.sleep(0.5)
            self.violation("quiet point: Connected %d, the soak holds %d "
                           "registered streams (%d opening), %.0fs after "
                           "its last open or close" % (last + (
                               now() - self.last_transition,)))
        finally:
            with self.cond:
                self.quiet = False
                self.cond.notify_all()

    # -- memory -----------------------------------------------------------

    def sample_rss(self):
        t = now() - self.start_t
        parent = self.env.main_pid()
        pids = [(parent, "parent")] + [(p, "child")
                                       for p in self.env.children()]
        for pid, role in pids:
            with self.lock:
                gen = self.gen_of.setdefault(pid, self.generation)
            vals = read_mem(pid)
            if vals is None:
                continue
            rss, pss, priv, start = vals
            self.rss_rows.append((round(t, 1), gen if role == "child"
                                  else -1, pid, role,
                                  round(start - self.start_t, 1),
                                  rss, pss, priv))

    # -- the end -------------------------------------------------------------

    def finish(self, watchers):
        self.stop.set()
        with self.cond:
            self.quiet = False
            self.cond.notify_all()
        t_stop = now()
        while self.pub_stopped_at is None and now() < t_stop + 15:
            time.sleep(0.1)
        for w in watchers:
            w.join(GRACEFUL_SHUTDOWN + 5)
        # drain: every client (held, churn, abandoned) has a stream again
        # that registered after the last publish, and reads until quiet
        self.draining = True
        with self.lock:
            clients = list(self.clients)
        for c in clients:
            c.drain_go.set()
        for c in clients:
            c.thread.join(120)
            if c.thread.is_alive():
                self.violation("client %s did not drain in 120 s" % c.id)
        # all closed: Connected back to 0
        deadline = now() + CLOSE_GRACE + 5
        fig = status_auto(self.env)[0]
        while fig["Connected"] and now() < deadline:
            time.sleep(0.3)
            fig = status_auto(self.env)[0]
        if fig["Connected"]:
            self.violation("Connected %d %.0fs after every stream closed"
                           % (fig["Connected"], CLOSE_GRACE + 5))
        self.final_fig = fig
        self.env.stop()
        self.final_checks()

    def final_checks(self):
        # truth: every notify seq anyone received, per key
        truth = collections.defaultdict(set)
        for c in self.clients:
            for seq, key in c.received.items():
                truth[key].add(seq)
        self.lost = self.missed = self.delivered = 0
        for key in KEYS:
            ok, unk = self.publishes[key], self.pub_unknown[key]
            if len(truth[key]) < ok:
                self.violation("key %s: %d publishes answered 200 but only "
                               "%d distinct events were received by anyone"
                               % (key, ok, len(truth[key])))
                self.lost += ok - len(truth[key])
            elif len(truth[key]) > ok + unk:
                self.violation("key %s: %d distinct events received, only "
                               "%d publishes" % (key, len(truth[key]),
                                                 ok + unk))
        for c in self.clients:
            if c.cutoff is None:        # never listened: nothing owed
                self.delivered += len(c.received)
                continue
            exp = set()
            for k in c.keys:
                exp |= {s for s in truth[k] if s >= c.cutoff}
            missing = exp - set(c.received)
            missed = {s for s in missing
                      if any(a <= s <= b for a, b in c.missed_ranges)}
            lost = missing - missed
            self.delivered += len(c.received)
            self.missed += len(missed)
            self.lost += len(lost)
            if lost:
                self.violation("client %s (%s, keys %s, %d sessions): %d "
                               "events lost, e.g. %s"
                               % (c.id, "held" if c.held else "churn",
                                  ",".join(c.keys), c.nsessions, len(lost),
                                  sorted(lost)[:5]))
            wrong = [s for s, k in c.received.items() if k not in c.keys]
            if wrong:
                self.violation("client %s got %d events of keys it does not "
                               "listen to" % (c.id, len(wrong)))
        if self.missed:
            self.violation("%d events missed (event: missed) with SSEHistory "
                           "%s" % (self.missed, DIRECTIVES["SSEHistory"]))
        self.check_log()
        self.check_rss()

    def check_log(self):
        killed = set(self.killed)
        exit_line = re.compile(r"child pid (\d+) exit signal (\S+)")
        self.log_expected = collections.Counter()
        for line in self.env.read_log().splitlines():
            m = exit_line.search(line)
            if m:
                # httpd logs no line for SIGKILL (nor TERM, HUP,
                # WINCH); AH00052 at notice, logged whatever LogLevel
                # says, is a child that crashed
                if int(m.group(1)) in killed and m.group(2) == "Killed":
                    self.log_expected["AH00052 (our kills)"] += 1
                    continue
                self.violation("log: an exit signal we did not cause: "
                               + line)
                continue
            lm = LOG_LINE.match(line)
            if not lm or lm.group("level") not in BAD_LEVELS:
                continue
            # a kill inside the registry lock: the next locker rebuilds
            if "SSE00004" in line and killed:
                self.log_expected["SSE00004 (kill inside the lock)"] += 1
                continue
            self.violation("log: " + line)

    def check_rss(self):
        path = os.path.join(self.env.root, "rss.tsv")
        with open(path, "w") as f:
            f.write("t_s\tgen\tpid\trole\tproc_start_s\tvmrss_kb\tpss_kb"
                    "\tprivate_kb\n")
            for row in self.rss_rows:
                f.write("\t".join(str(v) for v in row) + "\n")
        self.rss_file = path
        byproc = collections.defaultdict(list)
        for row in self.rss_rows:
            byproc[(row[1], row[2], row[3])].append(row)
        self.rss_by_gen = {}
        for (gen, pid, role), rows in sorted(byproc.items()):
            # from the first sample at which the process is 15 s old
            start = rows[0][4]
            rows = [r for r in rows if r[0] - start >= 15]
            if len(rows) < 2 or rows[-1][0] - rows[0][0] < 10:
                continue
            first, last = rows[0], rows[-1]
            grow = last[7] - first[7]
            flat = grow < max(FLAT_RATIO * first[7], FLAT_SLACK_KB)
            g = self.rss_by_gen.setdefault(
                (gen, role), {"procs": 0, "max_rss": 0, "max_grow_kb": 0,
                              "not_flat": []})
            g["procs"] += 1
            g["max_rss"] = max(g["max_rss"], max(r[5] for r in rows))
            g["max_grow_kb"] = max(g["max_grow_kb"], grow)
            if not flat:
                g["not_flat"].append(pid)
                self.violation("%s %d (generation %s): private memory %d -> "
                               "%d KB over %.0fs (RSS %d -> %d KB)"
                               % (role, pid, gen, first[7], last[7],
                                  last[0] - first[0], first[5], last[5]))

    def summary(self):
        fig = self.final_fig
        pub = sum(self.publishes.values())
        print("-- soak %s summary (seed %d, %.1f min)" % (self.mpm, SEED,
                                                           MINUTES))
        print("   published %d (+%d with no answer), delivered %d, lost %d, "
              "missed %d" % (pub, sum(self.pub_unknown.values()),
                             self.delivered, self.lost, self.missed))
        print("   restarts %d, kills %d %s, max Connected %d, ids %d, "
              "sessions %d" % (self.restarts, len(self.killed), self.killed,
                               self.max_connected, len(self.registered_ids),
                               len(self.sessions)))
        print("   status at end: Listeners %d Published %d Delivered %d "
              "Missed %d EndedSlow %d RejectedFull %d Repairs %d"
              % tuple(fig[k] for k in (
                  "Listeners", "Published", "Delivered", "Missed",
                  "EndedSlow", "RejectedFull", "Repairs")))
        ends = collections.Counter(s.by for s in self.sessions)
        print("   session ends: %s" % dict(ends))
        print("   notes: %s" % dict(self.notes))
        print("   expected log lines: %s" % dict(self.log_expected))
        print("   memory (%s; flat = private KB grew < %d%% or < %d KB "
              "from age 15 s to last sample):"
              % (self.rss_file, FLAT_RATIO * 100, FLAT_SLACK_KB))
        for (gen, role), g in sorted(self.rss_by_gen.items()):
            print("     %-6s gen %2s: %2d procs, max VmRSS %6d KB, max "
                  "private growth %5d KB, %s"
                  % (role, "-" if gen < 0 else gen, g["procs"], g["max_rss"],
                     g["max_grow_kb"], "flat" if not g["not_flat"]
                     else "NOT flat: %s" % g["not_flat"]))
        print("   violations: %d" % len(self.violations))
        for v in self.violations[:40]:
            print("     " + v)
        print("   RESULT %s: %s" % (self.mpm, "PASS" if not self.violations
                                    else "FAIL"), flush=True)


def read_mem(pid):
    """(VmRSS, Pss, Private_Clean + Private_Dirty) in KB, and when the
    process started on time.monotonic()'s clock (from its age)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            status = f.read()
        with open("/proc/%d/smaps_rollup" % pid) as f:
            roll = f.read()
        with open("/proc/%d/stat" % pid) as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None

    def field(text, name):
        m = re.search(r"^%s:\s+(\d+) kB" % name, text, re.M)
        return int(m.group(1)) if m else 0
    age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    start = now() - age
    return (field(status, "VmRSS"), field(roll, "Pss"),
            field(roll, "Private_Clean") + field(roll, "Private_Dirty"),
            start)


class Client:
    """One id: HELD ones keep a stream, CHURN ones come and go; each
    resumes with Last-Event-ID and keeps every notify seq it received."""

    def __init__(self, soak, held):
        self.soak = soak
        self.held = held
        self.abandoned = False
        rnd = soak.rnd
        self.keys = list(KEYS) if held else rnd.sample(KEYS,
                                                       rnd.choice((1, 2)))
        self.rnd = random.Random(rnd.random())
        self.id = None
        self.last_id = None
        self.received = {}          # seq -> key
        self.missed_ranges = []
        self.cutoff = None          # HeadSeq after our listens
        self.nsessions = 0
        self.deadline = 0.0
        self.ready = threading.Event()
        self.drain_go = threading.Event()
        self.sess = None

    # -- one stream --------------------------------------------------------

    def open(self):
        """Open a stream and read `registered`; True when registered."""
        soak = self.soak
        soak.open_slots.acquire()
        soak.begin_action()
        s = Session(self, self.last_id)
        try:
            with soak.lock:
                soak.sessions.append(s)
                soak.register_sent.add(self.id)
                soak.transition()
            self.sess = s
            self.nsessions += 1
            try:
                # keep the stream before waiting for its head: one that
                # times out must still be closed (else it lives on, read
                # by its thread, and the server rightly counts it)
                s.stream = soak.api.stream(self.id,
                                           last_event_id=self.last_id,
                                           wait_headers=False)
                t_ask = now()
                s.stream.wait_headers(HEAD_WAIT)
                waited = round(now() - t_ask, 1)
                key = "max wait for a response head, s"
                soak.notes[key] = max(soak.notes[key], waited)
                if s.stream.status != 200:
                    body = s.stream.body(2)
                    soak.violation("register-listener/%s answered %d: %r"
                                   % (self.id, s.stream.status, body[:200]))
                    self.end(s, "refused")
                    return False
                ev = s.stream.next_event(10)
            except (OSError, StreamClosed, StreamTimeout) as e:
                soak.notes["open failed"] += 1
                if soak.in_settle() is None:
                    soak.violation("register-listener/%s failed outside a "
                                   "restart or kill: %s" % (self.id, e))
                self.end(s, "open failed")
                return False
            if ev.data != json.dumps("registered^" + self.id):
                soak.violation("first event on %s: %r" % (self.id, ev))
            self.on_id(s, ev)
            with soak.lock:
                s.t_reg = now()
                soak.registered_ids.add(self.id)
                soak.transition()
            return True
        finally:
            soak.end_action()

    def end(self, s, by):
        # t_end before the socket closes: from then on the server may
        # drop it from Connected
        with self.soak.lock:
            if s.t_end is not None:
                return
            s.t_end = now()
            s.by = by
            self.soak.transition()
        if s.stream is not None:
            s.stream.close()
        self.soak.open_slots.release()

    def close(self):
        """Our own close, as a quiet point allows."""
        self.soak.begin_action()
        try:
            self.end(self.sess, "client")
        finally:
            self.soak.end_action()

    def on_id(self, s, ev):
        if ev.id is None:
            return
        seq = int(ev.id)
        if s.top is not None and seq <= s.top:
            self.soak.violation("%s: id %d after %d on one stream"
                                % (self.id, seq, s.top))
        if s.last_sent is not None and seq < s.last_sent:
            self.soak.violation("%s: id %d below Last-Event-ID %d"
                                % (self.id, seq, s.last_sent))
        s.top = seq
        self.last_id = seq

    def on_event(self, s, ev):
        soak = self.soak
        if ev.event == "missed":
            d = json.loads(ev.data)
            self.missed_ranges.append((d["from"], d["to"]))
            soak.notes["event: missed"] += 1
            return
        self.on_id(s, ev)
        try:
            payload = ev.payload()
        except ValueError:
            payload = None
        if isinstance(payload, str) and payload.startswith("notify^"):
            seq = int(ev.id)
            if SELFTEST == "drop" and self is soak.clients[0]:
                self.selftest = getattr(self, "selftest", 0) + 1
                if self.selftest == 50:
                    return
            if seq in self.received:
                soak.violation("%s: event %d received twice" % (self.id,
                                                                seq))
            self.received[seq] = payload.split("^", 1)[1]
        else:
            soak.notes["other events"] += 1
            if soak.notes["other events"] <= 5:
                print("  note: %s got %r" % (self.id, ev), flush=True)

    def pump(self, until, quiet_for=None):
        """Read events until `until` (monotonic) or the stream ends:
        True when it ended. quiet_for: return once no event came for
        that long."""
        s = self.sess
        last = now()
        while True:
            t = now()
            if t >= until or (quiet_for and t - last >= quiet_for):
                return False
            try:
                ev = s.stream.next_event(min(0.2, max(0.01, until - t)))
            except StreamTimeout:
                continue
            except StreamClosed:
                self.end(s, "server")
                return True
            last = now()
            self.on_event(s, ev)

    # -- a life ------------------------------------------------------------

    def setup(self):
        soak = self.soak
        name = fresh_name("soak-h" if self.held else "soak-c")
        self.id = soak.retrying("make-id", lambda: soak.api.make_id(name))
        if self.id is None:
            return False
        while not self.open():
            if soak.stop.is_set():
                return False
            time.sleep(0.5)
        for k in self.keys:
            if soak.retrying("listen/%s" % k,
                             lambda: soak.api.listen(self.id, k) or True,
                             ) is None:
                self.ready.set()
                return False
        # every notify of our keys from this seq on is ours to receive
        self.cutoff = soak.retrying("status", soak.head_seq)
        self.ready.set()
        return True

    def run(self):
        soak = self.soak
        try:
            if not self.setup():
                return
            while not soak.stop.is_set():
                if self.sess.t_end is not None:
                    # away: until our deadline, then back with Last-Event-ID
                    while now() < self.deadline and not soak.stop.is_set():
                        time.sleep(0.1)
                    if soak.stop.is_set():
                        break
                    if not self.open():
                        self.deadline = now() + self.rnd.uniform(0.2, 2)
                        continue
                    self.deadline = now() + (10 ** 6 if self.held
                                             else self.rnd.uniform(2, 25))
                ended = self.pump(min(self.deadline, now() + 1))
                if ended:
                    soak.notes["ended by server"] += 1
                    self.deadline = now() + self.rnd.uniform(0.2, 3)
                elif now() >= self.deadline and not soak.stop.is_set():
                    self.close()
                    if self.rnd.random() < ABANDON_P:
                        self.abandoned = True
                        soak.notes["abandoned"] += 1
                        soak.new_client(held=False)
                        break
                    self.deadline = now() + self.rnd.uniform(0.5, 8)
            self.drain()
        except Exception as e:  # a soak bug or a protocol surprise
            soak.violation("client %s crashed: %r" % (self.id, e))
            import traceback
            traceback.print_exc()
            if self.sess is not None:
                self.end(self.sess, "crash")

    def drain(self):
        """After the last publish: a stream that registered after it,
        read until 2 s without events, then closed."""
        soak = self.soak
        self.drain_go.wait()
        if self.id is None or self.cutoff is None:
            return
        s = self.sess
        stopped = soak.pub_stopped_at or now()
        if s is None or s.t_end is not None or s.t_reg is None or \
                s.t_reg < stopped:
            if s is not None and s.t_end is None and s.t_reg is not None:
                # open since before the end: the live path must have it all
                if not self.pump(now() + 30, quiet_for=2.0):
                    self.close()
                    return
            for _ in range(5):
                if self.open():
                    break
                time.sleep(1)
            else:
                return
        if not self.pump(now() + 30, quiet_for=2.0):
            self.close()


def main():
    mpms = selected_mpms()
    ok = True
    results = []
    base = tempfile.mkdtemp(prefix="sse-soak-")
    for mpm in mpms:
        soak = Soak(mpm, os.path.join(base, mpm))
        try:
            passed = soak.run()
        except Exception:
            import traceback
            traceback.print_exc()
            passed = False
            SSEStream.close_all()
            try:
                soak.env.stop()
            except Exception:
                pass
        else:
            soak.summary()
        results.append((mpm, passed))
        ok = ok and passed
        SSEStream.close_all()
    print("== soak: " + ", ".join("%s %s" % (m, "PASS" if p else "FAIL")
                                  for m, p in results))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
