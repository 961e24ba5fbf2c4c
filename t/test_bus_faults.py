"""SSEBus when things break: Redis frozen, stopped, killed with and
without AOF, failed over by Sentinel; the ingest connection killed in
Redis; the ingesting child restarted gracefully or killed. What a user
must never see: a 200 for an event that went nowhere, an open stream that
goes silent, an acknowledged event that never arrives for a client that
resumes (with Last-Event-ID, on any host), or one that arrives twice.
A 503 carries Retry-After, and clients here retry on it as told.
"""

import os
import random
import signal
import threading
import time

import pytest

from bus_harness import Follower, publish, random_host
from redis_harness import MISSING, LossyProxy, have_redis, have_sentinel
from sse_client import StreamClosed, fresh_name, http
from sse_harness import _alive, wait_until


@pytest.fixture(autouse=True)
def faults_under_event_unless_asked(mpm):
    """The faults are Redis's and the bus's, not the MPM's: by default they
    run under event only, to keep `make test` within CI's time; with
    BUS_FAULTS_ALL_MPMS=1 under all three (they pass under all three)."""
    if mpm != "event" and not os.environ.get("BUS_FAULTS_ALL_MPMS"):
        pytest.skip("bus fault tests run under event (BUS_FAULTS_ALL_MPMS=1 "
                    "for all three)")

pytestmark = pytest.mark.skipif(not have_redis(), reason=MISSING)

RETRY = 20.0        # how long a client keeps retrying a 503 here
BIG = {"SSEHistory": "4096", "SSEMaxListeners": "500"}


def followers(c, n, prefix, rng=None):
    """@n listeners of distinct names, streams spread over the hosts."""
    fs = []
    for i in range(n):
        host = i % len(c)
        f = Follower(c.api(host).make_id(fresh_name(prefix)))
        f.connect(c.api(host), host)
        fs.append(f)
    return fs


def connect_retrying(f, c, host, timeout=RETRY):
    """Reconnect @f to @host, again while it answers 503 (the bus is
    coming back) or the connection is cut."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return f.connect(c.api(host), host)
        except (AssertionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def publish_all(c, fs, taskids, acked, hosts=None, retry_for=0.0):
    """notify-completions of each taskid to each follower, round-robin over
    @hosts; records in @acked what was answered 200 (delivered must be
    1: one listener per name). Returns the statuses that were not 200."""
    hosts = list(range(len(c))) if hosts is None else hosts
    other = []
    n = 0
    for t in taskids:
        for f in fs:
            api = c.api(hosts[n % len(hosts)])
            n += 1
            try:
                status, delivered, resp = publish(
                    api, "notify-completions", f.id, t, retry_for=retry_for)
            except OSError as e:
                other.append(repr(e))
                continue
            if status == 200:
                assert delivered == 1, resp.describe()
                acked.setdefault(f.id, []).append(t)
            else:
                other.append(status)
    return other


def finish(c, fs, acked, rng, timeout=RETRY):
    """Every follower comes back on another host with Last-Event-ID; a
    last completion ("end") marks the end of the stream; then each must
    have every acknowledged completion exactly once, in order, with no
    `event: missed`, ids increasing across all its connections."""
    for f in fs:
        f.close()
        connect_retrying(f, c, random_host(rng, len(c), but=f.host))
    for f in fs:
        status, _, resp = publish(c.api(rng.randrange(len(c))),
                                  "notify-completions", f.id, "end",
                                  retry_for=RETRY)
        assert status == 200, resp.describe()
    problems = []
    for f in fs:
        try:
            f.wait_for(lambda f: "end" in f.taskids(), timeout, "the end")
        except (AssertionError, StreamClosed) as e:
            problems.append(str(e))
        want = acked.get(f.id, []) + ["end"]
        lost, dups = f.account(want)
        got = [t for t in f.taskids() if t in set(want)]
        if lost or dups or f.missed:
            problems.append("%s: lost %r, duplicated %r, missed %r"
                            % (f.id, lost, dups, f.missed))
        elif got != want:
            problems.append("%s: out of order: %r" % (f.id, got))
        f.assert_increasing()
        f.close()
    total = sum(len(v) for v in acked.values())
    assert not problems, "of %d acknowledged events:\n%s" % (
        total, "\n".join(problems))


def assert_503(resp, what):
    assert resp.status == 503, "%s while Redis is away: %s" % (
        what, resp.describe())
    assert "Retry-After" in resp.headers, resp.describe()


# -- Redis away ----------------------------------------------------------------

@pytest.mark.parametrize("how", ["sigstop", "stop"])
def test_redis_away_503s_keeps_streams_and_loses_nothing_acked(
        make_cluster, how):
    c = make_cluster(aof=(how == "stop"))
    c.expect_bus_trouble()
    r = c.redis
    rng = random.Random(1)
    key = fresh_name("k")
    fs = followers(c, 3, "away")
    fresh = c.api(0).make_id(fresh_name("fresh"))
    acked = {}
    assert publish_all(c, fs, ["before"], acked) == []
    for f in fs:
        f.wait_for(lambda f: f.taskids() == ["before"], 10, "before, live")
    c.wait_bus("up")
    if how == "sigstop":
        r.sigstop()
    else:
        r.stop()
    try:
        for i in range(3):
            api = c.api(i)
            assert_503(api.request("POST", "notify-listeners", key),
                       "host %d notify-listeners" % i)
            assert_503(api.request("POST", "notify-completions", fs[0].id,
                                   "never"), "host %d notify-completions" % i)
            assert_503(api.request("PUT", "listen", fs[i].id, key),
                       "host %d listen" % i)
            s = api.stream(fresh)
            try:
                assert s.status == 503 and "Retry-After" in s.headers, (
                    "host %d register-listener of a new listener: %s %r"
                    % (i, s.status, s.headers))
            finally:
                s.close()
        c.wait_bus("down")
        for f in fs:
            # open streams stay open and keep getting heartbeats (1 s)
            f.stream.wait_comment(10)
            f.stream.wait_comment(10)
            assert not f.stream.closed()
    finally:
        if how == "sigstop":
            r.sigcont()
        else:
            r.start()
    c.wait_bus("up")
    assert publish_all(c, fs, ["after1", "after2"], acked,
                       retry_for=RETRY) == []
    finish(c, fs, acked, rng)


def test_killing_the_ingest_connections_loses_nothing(cluster):
    c = cluster
    c.expect_bus_trouble()
    r = c.redis
    fs = followers(c, 6, "ingest")
    acked = {}
    readers = wait_until(lambda: (lambda l: l if len(l) >= 3 else None)(
        r.clients_running("xread")), 10,
        "each host's ingest connection blocked in XREAD")
    before = {i: c.status(i)["BusReconnects"] for i in range(3)}
    assert publish_all(c, fs, ["a1", "a2"], acked) == []
    for cl in readers:
        r.client_kill(cl["id"])
    assert publish_all(c, fs, ["b1", "b2"], acked, retry_for=RETRY) == []
    wait_until(lambda: len(r.clients_running("xread")) >= 3, 20,
               "every host's ingest back in XREAD")
    assert publish_all(c, fs, ["c1", "c2"], acked, retry_for=RETRY) == []
    # the streams that stayed open get it all, without reconnecting
    want = ["a1", "a2", "b1", "b2", "c1", "c2"]
    for f in fs:
        f.wait_for(lambda f: len(f.taskids()) >= 6, RETRY, "a1..c2 live")
        assert f.taskids() == want, f.taskids()
        assert not f.missed
    for i in range(3):
        assert c.status(i)["BusReconnects"] > before[i], (
            "host %d counts its ingest reconnect" % i)
    finish(c, fs, acked, random.Random(2))


def test_redis_killed_with_aof_continues_without_loss(make_cluster):
    c = make_cluster(aof=True, directives=BIG)
    c.expect_bus_trouble()
    rng = random.Random(3)
    fs = followers(c, 6, "aof")
    acked = {}
    assert publish_all(c, fs, ["a%d" % i for i in range(5)], acked) == []
    for f in fs[::2]:
        f.close()           # half are away when Redis dies
    old_max = 0
    for f in fs[1::2]:
        f.wait_for(lambda f: len(f.taskids()) == 5, 10, "a0..a4")
        old_max = max(old_max, f.last)
    c.redis.restart(kill=True)
    c.wait_bus("up", 30)
    assert publish_all(c, fs, ["b%d" % i for i in range(5)], acked,
                       retry_for=RETRY) == []
    finish(c, fs, acked, rng)
    assert all(f.seqs[-1] > old_max for f in fs)


def test_redis_killed_without_persistence_ids_rise_and_resume_says_missed(
        cluster):
    c = cluster
    c.expect_bus_trouble()
    key = fresh_name("k")
    f = Follower(c.api(0).make_id(fresh_name("lost")))
    f.connect(c.api(0), 0)
    c.api(1).listen(f.id, key)
    assert c.api(2).notify_listeners(key) == 1
    f.wait_for(lambda f: len(f.events) == 1, 10, "the first event")
    s0 = f.last
    f.close()
    for t in ("t1", "t2", "t3"):
        assert c.api(1).notify_completions(f.id, t) == 1
    # a witness's event, published after t1..t3, has an id above theirs
    wkey = fresh_name("w")
    w, ws = c.api(2).listener(fresh_name("witness"), keys=[wkey])
    with ws:
        assert c.api(0).notify_listeners(wkey) == 1
        highest = ws.next_event(10).seq
    c.redis.restart(kill=True)          # everything Redis held is gone
    c.wait_bus("up", 30)
    f.last = s0
    connect_retrying(f, c, 1)
    f.wait_for(lambda f: f.missed or len(f.taskids()) == 3, RETRY,
               "`event: missed` (or t1..t3)")
    assert f.missed or f.taskids() == ["t1", "t2", "t3"], (
        "t1..t3 were lost with Redis: the resuming client must be told "
        "(`event: missed`), not left with a silent hole")
    if f.missed:
        assert f.missed[0]["from"] > s0, (s0, f.missed)
    deadline = time.monotonic() + RETRY
    while c.api(2).request("PUT", "listen", f.id, key).status != 200:
        assert time.monotonic() < deadline, "listen never worked again"
        time.sleep(0.3)
    status, n, resp = publish(c.api(0), "notify-listeners", key,
                              retry_for=RETRY)
    assert (status, n) == (200, 1), resp.describe()
    f.wait_for(lambda f: f.events and f.events[-1].payload() ==
               "notify^" + key and f.events[-1].seq > highest, RETRY,
               "a new event with an id above every old one (%d)" % highest)
    f.close()


# -- the ingesting child -------------------------------------------------------

class Background(threading.Thread):
    """Publishes completions to @fs through @hosts until stopped,
    retrying 503s; acked as publish_all's."""

    def __init__(self, c, fs, hosts):
        super().__init__(daemon=True)
        self.c, self.fs, self.hosts = c, fs, hosts
        self.acked = {}
        self.other = []
        self.stop = threading.Event()
        self.n = 0
        self.error = None

    def run(self):
        try:
            while not self.stop.is_set():
                self.other += publish_all(self.c, self.fs, ["p%d" % self.n],
                                          self.acked, hosts=self.hosts,
                                          retry_for=RETRY)
                self.n += 1
                time.sleep(0.05)
        except BaseException as e:      # e.g. a 200 that delivered to 0
            self.error = e

    def count(self):
        return sum(len(v) for v in list(self.acked.values()))

    def finish(self):
        self.stop.set()
        self.join(RETRY * 3)
        assert not self.is_alive(), "the publisher is stuck"
        if self.error is not None:
            raise AssertionError("the publisher failed: %r" % (self.error,))


def ingest_pid(c, i):
    return wait_until(lambda: (lambda p: p if p in c[i].children() else
                               None)(c.ingest_pid(i)), 20,
                      "host %d names a child of its own as ingesting" % i)


@pytest.mark.parametrize("how", ["graceful", "sigkill"])
def test_the_ingesting_child_goes_and_another_takes_over(make_cluster, how):
    c = make_cluster(directives=BIG)
    c.expect_bus_trouble()
    rng = random.Random(4)
    fs = followers(c, 6, "takeover")
    pid = ingest_pid(c, 0)
    old = set(c[0].children())
    bg = Background(c, fs, hosts=[0, 1, 2])
    bg.start()
    try:
        time.sleep(1)
        if how == "graceful":
            c[0].graceful()
        else:
            c[0].expect_child_signal("Killed")
            os.kill(pid, signal.SIGKILL)
        new = wait_until(lambda: (lambda p: p if p != pid and p in
                                  c[0].children() else None)(
            c.ingest_pid(0)), 20, "another child of host 0 ingesting")
        if how == "graceful":
            assert new not in old
        assert not _alive(pid) or how == "graceful"
        c.wait_bus("up")
        n = bg.count()
        wait_until(lambda: bg.count() > n + 2 * len(fs), 20,
                   "publishes answered 200 after the takeover")
    finally:
        bg.finish()
    finish(c, fs, bg.acked, rng)


# -- durability -------------------------------------------------------------

def test_twenty_listeners_fifty_completions_each_none_lost_or_doubled(
        make_cluster):
    c = make_cluster(directives=BIG)
    rng = random.Random(5)
    fs = followers(c, 20, "dur")
    stop = threading.Event()
    errors = []

    def hop():
        r = random.Random(6)
        try:
            while not stop.is_set():
                f = r.choice(fs)
                f.close()
                f.connect(c.api(random_host(r, len(c), but=f.host)),
                          f.host)
                time.sleep(0.02)
        except Exception as e:      # reported below
            errors.append(repr(e))

    hopper = threading.Thread(target=hop, daemon=True)
    hopper.start()
    acked = {}
    try:
        other = publish_all(c, fs, ["t%02d" % i for i in range(50)], acked)
    finally:
        stop.set()
        hopper.join(30)
    assert not errors, errors
    assert other == [], "with Redis healthy every publish is a 200: %r" % (
        other[:10],)
    assert sum(len(v) for v in acked.values()) == 1000
    finish(c, fs, acked, rng)


# -- Sentinel ------------------------------------------------------------------

@pytest.mark.skipif(not have_sentinel(), reason=MISSING)
def test_sentinel_failover_under_load_loses_no_acknowledged_event(
        make_cluster, make_sentinels):
    ss = make_sentinels()
    c = make_cluster(bus=ss, directives=BIG)
    c.expect_bus_trouble()
    rng = random.Random(7)
    fs = followers(c, 10, "failover")
    c.wait_bus("up")
    bg = Background(c, fs, hosts=[0, 1, 2])
    bg.start()
    try:
        time.sleep(1.5)
        old = ss.master()
        new = ss.kill_master()          # the old one rejoins as replica
        assert new is not old
        c.wait_bus("up", 30)
        n = bg.count()
        wait_until(lambda: bg.count() > n + 2 * len(fs), 30,
                   "publishes answered 200 on the new master")
    finally:
        bg.finish()
    finish(c, fs, bg.acked, rng)


@pytest.mark.skipif(not have_sentinel(), reason=MISSING)
def test_a_replica_that_stops_acknowledging_slows_nothing_down_for_long(
        make_cluster, make_sentinels):
    """Hosts apply an entry, and answer its publish, once a replica has it
    (so that a failover neither loses nor repeats it). A replica that
    stops acknowledging is waited for at most half a second, the hosts say
    so once, and publishes go on; when it is back they say that too."""
    ss = make_sentinels()
    c = make_cluster(n=2, bus=ss)
    c.expect_bus_trouble()
    fs = followers(c, 2, "replica")
    c.wait_bus("up")
    acked = {}
    assert publish_all(c, fs, ["before"], acked) == []
    replica = ss.replicas()[0]
    replica.sigstop()
    try:
        assert publish_all(c, fs, ["stopped1", "stopped2"], acked) == []
        wait_until(lambda: any("SSE00216" in h.read_log() and "no replica "
                               "acknowledged" in h.read_log() for h in c),
                   10, "a host saying the replica does not acknowledge")
    finally:
        replica.sigcont()
    wait_until(lambda: (publish_all(c, fs, ["x"], {}) == [] and any(
        "acknowledges the log again" in h.read_log() for h in c)), 20,
        "a host saying a replica acknowledges again")
    for f in fs:
        f.wait_for(lambda f: f.taskids()[:3] == ["before", "stopped1",
                                                 "stopped2"], 10,
                   "every completion, once")


@pytest.mark.skipif(not have_sentinel(), reason=MISSING)
def test_a_master_that_refuses_wait_still_publishes(make_cluster,
                                                    make_sentinels):
    """An ACL (or a proxy) that refuses WAIT: the publish ran, so it is
    answered 200, never 503; the hosts say once that no replica
    acknowledges, and the events arrive."""
    ss = make_sentinels()
    ss.master().cmd("ACL", "SETUSER", "default", "on", "nopass", "~*", "&*",
                    "+@all", "-wait")
    c = make_cluster(n=2, bus=ss)
    c.expect_bus_trouble()
    fs = followers(c, 2, "nowait")
    c.wait_bus("up")
    acked = {}
    assert publish_all(c, fs, ["a", "b", "c"], acked) == []
    wait_until(lambda: any("SSE00216" in h.read_log() for h in c), 10,
               "a host saying no replica acknowledges")
    for f in fs:
        f.wait_for(lambda f: f.taskids() == ["a", "b", "c"], 10,
                   "every completion, once")


# -- a publish whose answer is lost ---------------------------------------------

@pytest.fixture
def lossy(make_cluster, make_redis):
    """Two hosts whose Redis is behind a LossyProxy; (cluster, proxy) with
    a follower whose stream is on host 0."""
    proxy = LossyProxy(make_redis())
    try:
        c = make_cluster(n=2, bus=proxy.url)
        c.expect_bus_trouble()
        f = followers(c, 1, "lost")[0]
        c.wait_bus("up")
        yield c, proxy, f
    finally:
        proxy.close()


def test_a_publish_whose_answer_is_lost_is_sent_again_and_happens_once(
        lossy):
    """Redis ran the publish, but the connection died before its answer
    came (what a Redis that dies after running a script does, its replica
    promoted with the publish in it): the host sends it again on a new
    connection, Redis recognises it and answers what it did the first
    time. The publisher gets 200, the listener gets the event once."""
    c, proxy, f = lossy
    t = fresh_name("lost-answer")
    proxy.lose_answer_to(t)
    status, delivered, resp = publish(c.api(1), "notify-completions", f.id, t)
    assert proxy.lost.is_set(), "the proxy never saw the publish"
    assert (status, delivered) == (200, 1), resp.describe()
    status, _, resp = publish(c.api(1), "notify-completions", f.id, "after")
    assert status == 200, resp.describe()
    f.wait_for(lambda f: "after" in f.taskids(), 10, "the next completion")
    assert f.taskids() == [t, "after"]


def test_a_publish_whose_answer_is_lost_and_no_master_answers_is_504(lossy):
    """The same, but no Redis answers for longer than the host keeps
    trying (15 s): the outcome is unknown, and the publisher is told so
    (504, not a 503 that would mean it did not happen). It did happen:
    the listener gets it once Redis is back."""
    c, proxy, f = lossy
    c.expect_log(r"SSE00215")
    t = fresh_name("lost-answer")
    proxy.lose_answer_to(t, then_refuse=18)
    api = c.api(1)
    resp = http(api.port, "POST", api.path("notify-completions", f.id, t),
                headers=api.headers, timeout=40)
    assert proxy.lost.is_set(), "the proxy never saw the publish"
    assert resp.status == 504, resp.describe()
    assert "may have been delivered" in resp.text, resp.describe()
    assert proxy.refused > 0, "the host never tried again"
    assert "SSE00215" in c[1].read_log()
    f.wait_for(lambda f: t in f.taskids(), 30, "the publish that ran")
    assert f.taskids() == [t]
