"""sse_redis_connect() (src/sse_redis_conn.c) against real redis-server and
redis-sentinel processes, through t/probe/redis_probe: the bus reaches the
master with its password and db, never a replica, follows a Sentinel
failover, and gives up on a dead or silent address within its timeout
with a one-line reason."""

import os
import re
import subprocess
import time

import pytest

from redis_harness import (MISSING, FullBacklog, RespError, SilentServer,
                           have_redis, have_sentinel)
from sse_harness import free_port, wait_until

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# REDIS_PROBE: another build of it (e.g. under ASan: the checks below fail
# on any sanitizer report on its stderr)
PROBE = os.environ.get("REDIS_PROBE") or os.path.join(TOP, "t", "probe",
                                                      "redis_probe")

pytestmark = pytest.mark.skipif(not (have_redis() and have_sentinel()),
                                reason=MISSING)

PASSWORD = "p@ss/w:rd"                  # every character a URL must escape
PASSWORD_URL = ":p%40ss%2Fw%3Ard@"


@pytest.fixture(scope="module", autouse=True)
def probe():
    if not os.environ.get("REDIS_PROBE"):
        subprocess.run(["make", "-s", "t/probe/redis_probe"], cwd=TOP,
                       check=True)
    return PROBE


@pytest.fixture
def fakes():
    made = []
    yield made
    for f in made:
        f.close()


class Attempt:
    def __init__(self, line):
        self.line = line
        m = re.search(r" ms=(\d+)$", line)
        self.ms = int(m.group(1)) if m else None
        self.ok = line.startswith("connected ")
        self.reason = None if self.ok else re.sub(
            r"^error | ms=\d+$", "", line)
        m = re.match(r"connected (\S+):(\d+) first=(\d+)", line)
        self.port = int(m.group(2)) if m else None
        self.first = int(m.group(3)) if m else None


def run_probe(url, *command, timeout_ms=1000, n=1):
    """The probe's lines: (attempts, other lines, exit code)."""
    proc = subprocess.run([PROBE, "-t", str(timeout_ms), "-n", str(n), url]
                          + [str(c) for c in command],
                          capture_output=True, text=True, timeout=60)
    assert not re.search(r"Sanitizer|runtime error", proc.stderr), (
        "the probe's memory checks failed on %s:\n%s" % (url, proc.stderr))
    lines = proc.stdout.splitlines()
    attempts = [Attempt(l) for l in lines
                if l.startswith(("connected ", "error "))]
    rest = [l for l in lines if not l.startswith(("connected ", "error "))]
    assert len(attempts) == n or proc.returncode == 2, (
        "probe printed %r (stderr %r)" % (proc.stdout, proc.stderr))
    return attempts, rest, proc.returncode


def connect_once(url, *command, timeout_ms=1000):
    attempts, rest, rc = run_probe(url, *command, timeout_ms=timeout_ms)
    return attempts[0], rest, rc


# ---- redis:// --------------------------------------------------------------

# Redis processes come from conftest's make_redis and make_sentinels
# (t/redis_harness.py): killed when the test ends, whatever happened.

def test_password_and_db_reach_the_master(make_redis):
    master = make_redis(name="master", password=PASSWORD)
    url = "redis://%s127.0.0.1:%d/3" % (PASSWORD_URL, master.port)
    a, rest, rc = connect_once(url, "CLIENT", "INFO")
    assert a.ok and rc == 0, "no connection with the right password: %s" % (
        a.line)
    assert a.port == master.port
    assert rest and " db=3 " in rest[0], (
        "the context is not on db 3 (SELECT not done?): %r" % rest)


def test_a_wrong_or_missing_password_is_refused_with_the_reason(
        make_redis):
    master = make_redis(name="master", password=PASSWORD)
    a, _, rc = connect_once("redis://:wrong-sekret@127.0.0.1:%d" % master.port)
    assert not a.ok and rc == 1
    assert a.reason.startswith("redis 127.0.0.1:%d: AUTH refused: WRONGPASS"
                               % master.port), a.reason
    assert "wrong-sekret" not in a.reason, "the reason shows the password"
    a, _, _ = connect_once("redis://127.0.0.1:%d" % master.port)
    assert not a.ok and "NOAUTH" in a.reason, (
        "without a password the server's NOAUTH should be the reason: %s"
        % a.reason)


def test_a_replica_is_refused(make_redis):
    master = make_redis(name="master")
    replica = make_redis(name="replica", replicaof=master.port)
    a, _, rc = connect_once("redis://127.0.0.1:%d" % replica.port)
    assert not a.ok and rc == 1
    assert a.reason == ("127.0.0.1:%d is a replica, not the master"
                        % replica.port), a.reason


def test_a_refused_port_fails_at_once():
    port = free_port()
    a, _, _ = connect_once("redis://127.0.0.1:%d" % port)
    assert a.reason == "redis 127.0.0.1:%d: Connection refused" % port
    assert a.ms < 500


# ---- unreachable, silent and hostile servers --------------------------------

def test_an_unreachable_address_fails_within_the_timeout(fakes):
    blackhole = FullBacklog()
    fakes.append(blackhole)
    a, _, _ = connect_once("redis://127.0.0.1:%d" % blackhole.port,
                           timeout_ms=500)
    assert not a.ok
    assert a.reason == ("redis 127.0.0.1:%d: Connection timed out"
                        % blackhole.port), a.reason
    assert 450 <= a.ms < 1500, "connect gave up after %d ms" % a.ms


def test_a_silent_server_fails_within_the_timeout(fakes):
    silent = SilentServer()
    fakes.append(silent)
    a, _, _ = connect_once("redis://127.0.0.1:%d" % silent.port,
                           timeout_ms=500)
    assert a.reason == ("redis 127.0.0.1:%d: ROLE: no answer within 500 ms"
                        % silent.port), a.reason
    assert 450 <= a.ms < 1500, "ROLE gave up after %d ms" % a.ms


def test_a_server_that_drips_its_answer_is_cut_off(fakes):
    # a byte every 0.3 s: each read() is within SO_RCVTIMEO, the whole
    # answer is not within the timeout
    drip = SilentServer([bytes([b]) for b in b"*1\r\n$6\r\nmaster\r\n"],
                        interval=0.3)
    fakes.append(drip)
    a, _, _ = connect_once("redis://127.0.0.1:%d" % drip.port,
                           timeout_ms=500)
    assert a.reason.endswith("ROLE: no answer within 500 ms"), a.reason
    assert a.ms < 1500, "a dripping server held the connect %d ms" % a.ms


def test_a_huge_announced_answer_is_refused(fakes):
    huge = SilentServer([b"*1\r\n$100000000\r\n"] + [b"x" * 16384] * 8)
    fakes.append(huge)
    a, _, _ = connect_once("redis://127.0.0.1:%d" % huge.port,
                           timeout_ms=2000)
    assert a.reason.endswith("ROLE: answer longer than 65536 bytes"), (
        a.reason)


def test_bad_sentinel_answers_are_not_used(fakes):
    bad_port = SilentServer([b"*2\r\n$9\r\n127.0.0.1\r\n$5\r\n99999\r\n"])
    bad_host = SilentServer([b"*2\r\n$3\r\na b\r\n$4\r\n6379\r\n"])
    not_array = SilentServer([b":42\r\n"])
    fakes.extend([bad_port, bad_host, not_array])
    url = "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d/m" % (
        bad_port.port, bad_host.port, not_array.port)
    a, _, _ = connect_once(url, timeout_ms=500)
    assert a.reason == (
        "no sentinel answered for master 'm' (3 asked; last: sentinel "
        "127.0.0.1:%d: unexpected answer)" % not_array.port), a.reason


def test_silent_and_unreachable_sentinels_are_skipped_within_the_timeout(
        fakes):
    silent, blackhole = SilentServer(), FullBacklog()
    fakes.extend([silent, blackhole])
    url = "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d/m" % (silent.port,
                                                            blackhole.port)
    a, _, _ = connect_once(url, timeout_ms=400)
    assert a.reason == (
        "no sentinel answered for master 'm' (2 asked; last: sentinel "
        "127.0.0.1:%d: Connection timed out)" % blackhole.port), a.reason
    assert a.ms < 2 * 400 + 600, "two sentinels took %d ms" % a.ms


# ---- Sentinel ---------------------------------------------------------------

def start_sentinel_group(make_sentinels):
    """A master and a replica (both with PASSWORD), three sentinels (quorum
    2, master down after 1 s, failover timeout 5 s) that know both and each
    other: started once the replica is in sync and the sentinels settled."""
    ss = make_sentinels(master_name="m", password=PASSWORD,
                        down_after_ms=1000, failover_timeout_ms=5000)
    master, replica = ss.servers
    return master, replica, ss.sentinels


def role(server):
    """ROLE's first word; None while the server cannot say."""
    try:
        return server.role()
    except (OSError, RespError):
        return None


def sentinel_url(sentinels, master="m", db=2, extra=()):
    hosts = ["127.0.0.1:%d" % p for p in extra] + [
        "127.0.0.1:%d" % s.port for s in sentinels]
    return "redis-sentinel://%s%s/%s/%d" % (PASSWORD_URL, ",".join(hosts),
                                            master, db)


@pytest.mark.parametrize("how", ["sigkill", "sentinel-failover"])
def test_sentinel_leads_to_the_master_and_follows_a_failover(
        make_sentinels, how):
    master, replica, sentinels = start_sentinel_group(make_sentinels)

    a, rest, _ = connect_once(sentinel_url(sentinels), "CLIENT", "INFO")
    assert a.ok and a.port == master.port, a.line
    assert " db=2 " in rest[0], rest

    a, _, _ = connect_once(sentinel_url(sentinels, master="nosuch"))
    assert a.reason == "no sentinel knows master 'nosuch' (3 asked)", (
        a.reason)
    a, _, _ = connect_once("redis://127.0.0.1:%d" % sentinels[0].port)
    assert a.reason.endswith("is a sentinel, not the master (use "
                             "redis-sentinel://)"), a.reason

    # SIGKILL: the sentinels see the master down after 1 s, elect a leader
    # and promote the replica; until then connecting fails. SENTINEL
    # FAILOVER: one sentinel promotes the replica at once and demotes the
    # master, which a stale answer may still name: it must be refused.
    if how == "sigkill":
        master.kill()
    else:
        assert sentinels[0].cmd("SENTINEL", "FAILOVER", "m") == "OK"
    killed = time.monotonic()
    errors, still_old = [], []

    def promoted():
        a, _, _ = connect_once(sentinel_url(sentinels), timeout_ms=300)
        if not a.ok:
            errors.append(a.reason)
        elif a.port == master.port:
            still_old.append(a)     # ROLE said master: not yet demoted
        return a if a.ok and a.port == replica.port else None

    a = wait_until(promoted, 40, "a connection to the promoted replica",
                   interval=0.1)
    took = time.monotonic() - killed
    print("failover (%s): new master reachable after %.2f s; %d "
          "connections to the old master meanwhile; %d failed attempts; "
          "reasons seen: %r" % (how, took, len(still_old), len(errors),
                                sorted(set(errors))))
    assert replica.role() == "master"
    for reason in errors:
        assert "\n" not in reason and "master 'm'" in reason, reason
    a, rest, _ = connect_once(sentinel_url(sentinels), "SET", "k", "v")
    assert a.ok and rest == ["reply status OK", "reconnect 0"], rest
    if how != "sigkill":
        # the old master, now a replica, answers a write with READONLY:
        # the engine must reconnect
        wait_until(lambda: role(master) == "slave", 20,
                   "the old master demoted")
        a, _, _ = connect_once("redis://%s127.0.0.1:%d" % (PASSWORD_URL,
                                                           master.port))
        assert a.reason == ("127.0.0.1:%d is a replica, not the master"
                            % master.port), a.reason


def test_the_sentinel_that_answered_is_asked_first_next_time(
        make_sentinels, fakes):
    master, _, sentinels = start_sentinel_group(make_sentinels)
    blackhole = FullBacklog()
    fakes.append(blackhole)
    url = sentinel_url(sentinels[:1], extra=[blackhole.port])
    attempts, _, rc = run_probe(url, timeout_ms=400, n=3)
    assert rc == 0 and all(a.ok and a.port == master.port
                           for a in attempts), [a.line for a in attempts]
    assert attempts[0].ms >= 380, (
        "the first attempt should wait out the unreachable sentinel: %s"
        % attempts[0].line)
    assert [a.first for a in attempts] == [1, 1, 1]
    assert all(a.ms < 380 for a in attempts[1:]), (
        "later attempts asked the unreachable sentinel again: %r"
        % [a.line for a in attempts])
