"""Several httpd servers as one SSE service over Redis (SSEBus, SPEC 8):
a Cluster of HttpdEnv hosts (same MPM, each its own ServerRoot and port,
SSESecret shared, SSEBus pointing at a RedisServer or a SentinelSet,
mod_status loaded for the Bus* figures), and the client-side bookkeeping
the bus tests share: a Follower that follows one listener from host to
host with Last-Event-ID and counts what it got, and publishes that retry
on 503.

Write a test with the conftest's fixtures:

    def test_x(cluster):                  # 3 hosts, a fresh redis
        a, b = cluster.api(0), cluster.api(1)
        id, s = a.listener(fresh_name("x"), keys=["k"])
        assert b.notify_listeners("k") == 1
        assert s.next_event(10).payload() == "notify^k"

or make_cluster(n=2, aof=True, directives={...}, extra_conf=...) for
other settings, make_cluster(bus=make_sentinels()) for Sentinel.
"""

import json
import time

from redis_harness import RedisServer, SentinelSet
from sse_client import StreamTimeout
from sse_harness import STATUS_CONF, HttpdEnv, status_auto, wait_until

SECRET = "bus-test-secret-0123456789abcdef"

# What the hosts may log at [warn] or worse while the test itself breaks
# the bus (freezes, kills or restarts redis, kills the ingest connection
# or child): the module says so, in words that name the bus or Redis.
BUS_TROUBLE = r"(?i)redis|SSEBus|\bbus\b"

BUS_FIGURES = ("BusState", "BusIngestPid", "BusSeq", "BusLagMs",
               "BusReconnects", "BusErrors")


def bus_url(bus):
    if isinstance(bus, (RedisServer, SentinelSet)):
        return bus.url if isinstance(bus, RedisServer) else bus.bus_url
    return bus


class Cluster:
    """@n HttpdEnv hosts of one MPM sharing SSESecret and SSEBus.
    directives and extra_conf (besides STATUS_CONF) go to every host;
    kw as HttpdEnv's (profile, timeout...)."""

    def __init__(self, mpm, workdirs, bus, secret=SECRET, directives=None,
                 extra_conf="", **kw):
        self.bus = bus
        d = {"SSESecret": secret, "SSEBus": bus_url(bus)}
        d.update(directives or {})
        self.hosts = [HttpdEnv(mpm, wd, extra_conf=STATUS_CONF + extra_conf,
                               directives=d, **kw) for wd in workdirs]

    # -- hosts -----------------------------------------------------------

    def __len__(self):
        return len(self.hosts)

    def __iter__(self):
        return iter(self.hosts)

    def __getitem__(self, i):
        return self.hosts[i]

    def api(self, i):
        return self.hosts[i].api

    @property
    def apis(self):
        return [h.api for h in self.hosts]

    def start(self):
        for h in self.hosts:
            h.start()
        return self

    def stop(self):
        errors = []
        for h in self.hosts:
            try:
                h.stop()
            except Exception as e:
                errors.append("%r: %s" % (h, e))
        if errors:
            raise RuntimeError("\n".join(errors))

    def expect_log(self, regex):
        for h in self.hosts:
            h.expect_log(regex)

    def expect_bus_trouble(self):
        """This test breaks the bus on purpose: the hosts may say so."""
        self.expect_log(BUS_TROUBLE)

    # -- status ----------------------------------------------------------

    def status(self, i, retry_for=5.0):
        """Registry 0's ?auto figures on host @i. A connection cut is
        retried: after a child is killed, one that its listener had
        accepted is reset."""
        deadline = time.monotonic() + retry_for
        while True:
            try:
                return status_auto(self.hosts[i])[0]
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def wait_bus(self, state="up", timeout=20.0, hosts=None):
        """Every host (of @hosts) shows BusState @state; their figures."""
        idx = range(len(self.hosts)) if hosts is None else hosts
        seen = {}

        def all_there():
            for i in idx:
                seen[i] = self.status(i)
                if seen[i].get("BusState") != state:
                    return None
            return dict(seen)
        try:
            return wait_until(all_there, timeout, "BusState %s" % state,
                              interval=0.2)
        except AssertionError:
            raise AssertionError("not every host showed BusState: %s within "
                                 "%.0fs: %r" % (state, timeout, seen)) \
                from None

    def ingest_pid(self, i):
        return self.status(i).get("BusIngestPid")

    def wait_seq(self, seq, timeout=20.0):
        """Every host has ingested up to @seq at least (BusSeq)."""
        return wait_until(lambda: all(self.status(i).get("BusSeq", -1) >= seq
                                      for i in range(len(self.hosts))),
                          timeout, "every host ingested seq %d" % seq,
                          interval=0.2)

    def __repr__(self):
        return "Cluster(%s)" % ", ".join("%s:%d" % (h.mpm, h.port)
                                         for h in self.hosts)


# -- publishing ---------------------------------------------------------------

def publish(api, route, *segments, body=None, headers=None, retry_for=0.0,
            method="POST"):
    """POST a notify-* route; (status, delivered or None, response). With
    retry_for, a 503 (or a connection cut) is retried until that many
    seconds passed: what a client told to Retry-After does. A 503 must
    carry Retry-After."""
    deadline = time.monotonic() + retry_for
    while True:
        try:
            resp = api.request(method, route, *segments, body=body,
                               headers=headers)
        except OSError:
            if time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            raise
        if resp.status == 503:
            assert "Retry-After" in resp.headers, (
                "a 503 must say when to retry:\n" + resp.describe())
            if time.monotonic() < deadline:
                time.sleep(0.2)
                continue
        delivered = None
        if resp.status == 200:
            doc = json.loads(resp.body)
            delivered = doc["delivered"]
        return resp.status, delivered, resp


# -- following a listener from host to host -----------------------------------

class Follower:
    """One listener's client, as an EventSource is: it holds a stream on
    some host, and when it reconnects (to any host) it sends the id of
    the last event it got. Counts completions by taskid: what never came,
    what came twice, and every `event: missed`."""

    def __init__(self, id):
        self.id = id
        self.stream = None
        self.host = None
        self.last = None            # Last-Event-ID to send
        self.events = []            # every event but `registered`
        self.missed = []
        self.seqs = []

    def connect(self, api, host=None, timeout=10.0):
        """Open a stream on @api with Last-Event-ID (none at first)."""
        self.close()
        s = api.register(self.id, last_event_id=self.last, timeout=timeout)
        if self.last is None:
            self.last = s.registered.seq
        self.stream, self.host = s, host
        return s

    def drain(self):
        """Take what the stream has received so far."""
        s = self.stream
        if s is None:
            return
        while s.pending():
            self._take(s.next_event(0.1))

    def _take(self, ev):
        if ev.event == "missed":
            self.missed.append(json.loads(ev.data))
            return
        self.events.append(ev)
        if ev.id is not None:
            self.seqs.append(ev.seq)
            self.last = ev.seq

    def wait_for(self, cond, timeout, what):
        """Read events until cond(self) holds."""
        deadline = time.monotonic() + timeout
        self.drain()
        while not cond(self):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%s: %s not within %.0fs (got %d events"
                                     ", missed %r)" % (self.id, what, timeout,
                                                       len(self.events),
                                                       self.missed))
            try:
                self._take(self.stream.next_event(min(left, 1.0)))
            except StreamTimeout:
                continue
        return self

    def close(self):
        if self.stream is not None:
            self.drain()
            self.stream.close()
            self.stream = None

    def taskids(self):
        """Task ids of the completions received, in order."""
        out = []
        for ev in self.events:
            p = None
            if ev.event == "completed":
                p = json.loads(ev.data)
            elif ev.event is None:
                text = ev.payload()
                if text.startswith("completed^"):
                    p = json.loads(text.split("^", 1)[1])
            if p is not None:
                out.append(p["taskid"])
        return out

    def account(self, expected):
        """(lost, duplicated) task ids against the list @expected."""
        got = self.taskids()
        seen = set()
        dups = []
        for t in got:
            if t in seen:
                dups.append(t)
            seen.add(t)
        lost = [t for t in expected if t not in seen]
        return lost, dups

    def assert_increasing(self):
        assert all(a < b for a, b in zip(self.seqs, self.seqs[1:])), (
            "%s: event ids not strictly increasing across reconnects: %r"
            % (self.id, self.seqs))


def random_host(rng, n, but=None):
    choices = [i for i in range(n) if i != but]
    return rng.choice(choices)
