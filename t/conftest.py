"""Fixtures for the mod_sse_mgr integration tests.

`httpd` is one shared server per MPM for the whole session (tests use fresh
names and never depend on an empty registry). `make_httpd` builds a server
of a test's own, with its own directives, for tests that clear the registry
or need other settings; it is stopped when the test ends. After every test
each server's error log is read and any [warn]-or-worse line the test did
not declare with env.expect_log() fails it, as does a child that died of
a signal (logged at [notice]) unless the test declared it killed children
with env.expect_child_signal().

The SSEBus tests add make_redis (a redis-server of the test's own),
make_sentinels (master, replica, three sentinels), make_cluster (N hosts
sharing SSESecret and SSEBus) and cluster (three of them over a fresh
redis); see t/redis_harness.py and t/bus_harness.py.

MPM=event (or MPM=prefork,worker) restricts the MPMs; SSE_MGR_MODULE names
the module to load (default: <repo>/.libs/mod_sse_mgr.so).
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sse_client import SSEStream  # noqa: E402
from sse_harness import (APITEST, APITEST_CONF, HttpdEnv,  # noqa: E402
                         selected_mpms)
from redis_harness import RedisServer, SentinelSet  # noqa: E402


def pytest_report_header(config):
    from sse_harness import APACHE2, MODULE
    return ["mod_sse_mgr: %s, httpd %s, MPMs %s"
            % (MODULE, APACHE2, ",".join(selected_mpms()))]


@pytest.fixture(scope="session", params=selected_mpms())
def mpm(request):
    return request.param


@pytest.fixture(scope="session")
def httpd(mpm, tmp_path_factory):
    # Every test leaves its listeners behind (closed streams stay listed
    # until dormant), so the shared server needs more than the default 100.
    env = HttpdEnv(mpm, tmp_path_factory.mktemp("shared-%s" % mpm),
                   directives={"SSEMaxListeners": "2000"})
    env.start()
    yield env
    SSEStream.close_all(env.port)
    env.stop()
    bad = env.unexpected_log_lines()
    if bad:
        pytest.fail("unexpected lines in %s's error log at shutdown:\n%s"
                    % (mpm, "\n".join(bad)), pytrace=False)


@pytest.fixture
def api(httpd):
    return httpd.api


@pytest.fixture
def make_httpd(mpm, tmp_path_factory):
    """make_httpd(directives={...}, extra_conf="", start=True, **kw) ->
    HttpdEnv of this test's own (kw: profile, shipped_conf, timeout: see
    HttpdEnv); stopped at the end of the test."""
    envs = []

    def _make(directives=None, extra_conf="", start=True, **kw):
        env = HttpdEnv(mpm, tmp_path_factory.mktemp("own-%s" % mpm),
                       extra_conf=extra_conf, directives=directives, **kw)
        envs.append(env)
        if start:
            env.start()
        return env

    yield _make
    errors = []
    for env in envs:
        try:
            env.stop()
        except Exception as e:
            errors.append("%r: %s" % (env, e))
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


@pytest.fixture
def apitest(make_httpd):
    """A server of this test's own with t/modules/mod_sse_apitest.c, which
    drives the manager through its C API (sse_harness.apitest_call)."""
    assert os.path.exists(APITEST), "make t/modules/.libs/mod_sse_apitest.so"
    return make_httpd(extra_conf=APITEST_CONF)


# -- Redis and SSEBus clusters (t/redis_harness.py, t/bus_harness.py) ------

@pytest.fixture
def make_redis(tmp_path_factory):
    """make_redis(aof=False, start=True, **kw) -> RedisServer of this
    test's own (its own dir and port); stopped at the end of the test."""
    servers = []

    def _make(aof=False, start=True, **kw):
        r = RedisServer(tmp_path_factory.mktemp("redis"), aof=aof, **kw)
        servers.append(r)
        if start:
            r.start()
        return r

    yield _make
    RedisServer.stop_all(servers)


@pytest.fixture
def make_sentinels(tmp_path_factory):
    """make_sentinels(**kw) -> a started SentinelSet (a master, a replica,
    three sentinels); stopped at the end of the test."""
    sets = []

    def _make(start=True, **kw):
        ss = SentinelSet(tmp_path_factory.mktemp("sentinel"), **kw)
        sets.append(ss)
        if start:
            ss.start()
        return ss

    yield _make
    for ss in sets:
        RedisServer.stop_all(ss.sentinels + ss.servers)


@pytest.fixture
def make_cluster(mpm, tmp_path_factory, make_redis):
    """make_cluster(n=3, bus=None, aof=False, directives={}, extra_conf="",
    start=True, **kw) -> bus_harness.Cluster of n hosts sharing SSESecret
    and SSEBus (bus: a RedisServer, SentinelSet or URL; default a fresh
    RedisServer, with AOF if aof); hosts stopped at the end of the test,
    before the redis servers."""
    from bus_harness import Cluster
    clusters = []

    def _make(n=3, bus=None, aof=False, directives=None, extra_conf="",
              start=True, **kw):
        if bus is None:
            bus = make_redis(aof=aof)
        c = Cluster(mpm, [tmp_path_factory.mktemp("bus-%s" % mpm)
                          for _ in range(n)], bus, directives=directives,
                    extra_conf=extra_conf, **kw)
        c.redis = bus
        clusters.append(c)
        if start:
            c.start()
        return c

    yield _make
    errors = []
    for c in clusters:
        try:
            c.stop()
        except Exception as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


@pytest.fixture(scope="module")
def _shared_cluster(mpm, tmp_path_factory):
    """Three hosts over one redis, shared by the tests of a module (per
    MPM), as the shared `httpd` is: tests that use it make their own ids,
    names and keys; one that needs other settings uses make_cluster."""
    from bus_harness import Cluster
    r = RedisServer(tmp_path_factory.mktemp("redis"))
    r.start()
    c = Cluster(mpm, [tmp_path_factory.mktemp("bus-%s" % mpm)
                      for _ in range(3)], r)
    c.redis = r
    try:
        c.start()
        yield c
    finally:
        try:
            c.stop()
        finally:
            RedisServer.stop_all([r])


@pytest.fixture
def cluster(_shared_cluster):
    """Three hosts over one redis (no AOF), started; shared by the module's
    tests (they make their own ids, names and keys)."""
    return _shared_cluster


@pytest.fixture(autouse=True)
def _error_log_guard():
    """Fail the test on [warn]-or-worse lines it did not expect, and on a
    child's death by a signal it did not cause."""
    before = {env: set(env.children()) for env in HttpdEnv._all
              if env.running}
    yield
    # httpd logs a child's death when its parent reaps it, up to a second
    # later: wait for that, so the line fails this test and not the next
    for env, pids in before.items():
        if env.running:
            env.wait_reaped(pids - set(env.children()))
    SSEStream.close_all()
    problems = []
    for env in HttpdEnv._all:
        bad = env.unexpected_log_lines()
        if bad:
            problems.append("%r:\n  %s" % (env, "\n  ".join(bad)))
    if problems:
        pytest.fail("unexpected error log lines:\n" + "\n".join(problems),
                    pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    HttpdEnv.stop_all()
    RedisServer.stop_all()
