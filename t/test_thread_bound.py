"""SSEMaxStreamsPerChild: under prefork and worker every stream holds a
worker (a whole process under prefork); unbounded, streams take every
worker and the site stops answering. With Debian's own MPM settings and
the default bound (3/4 of the threads), a crowd of streams beyond the
bound gets 503 + Retry-After, and ordinary requests are still served.
Under event, HTTP/1.1 streams park and hold no thread: they are not
counted."""

import time

import pytest

from sse_client import StreamGroup, fresh_name, http
from sse_harness import wait_until

# Debian 12: prefork MaxRequestWorkers 150 (bound 112 in all children);
# worker ThreadsPerChild 25, MaxRequestWorkers 150 (bound 18 per child,
# 6 children: 108)
CROWD = 160
BOUND = {"prefork": 112, "worker": 108}


def open_crowd(api, n, group):
    ids = [api.make_id(fresh_name("crowd")) for _ in range(n)]
    return [api.stream(id, wait_headers=False, group=group) for id in ids]


def settle(streams, timeout=60):
    """Wait for every stream's response head (httpd starts children as
    the crowd comes in, so the last ones wait for them)."""
    deadline = time.monotonic() + timeout
    for s in streams:
        s.wait_headers(max(1.0, deadline - time.monotonic()))
    return [s.status for s in streams]


def ordinary_request_answers(env):
    """A static page and a make-id, each on a new connection, answered
    within a few seconds (a worker was free for them)."""
    for path in ("/", env.api.path("make-id", "passerby")):
        status, _, _ = http(env.port, "GET", path, timeout=5)
        assert status in (200, 403, 404), (path, status)
    return True


def test_streams_beyond_the_bound_get_503_and_the_site_still_answers(
        make_httpd, mpm):
    if mpm == "event":
        pytest.skip("HTTP/1.1 streams park on event: no thread to bound")
    env = make_httpd(profile="debian", shipped_conf=True, timeout=60,
                     directives={"SSEMaxListeners": "1000"})
    # 160 connections at once are more than 150 workers for a moment,
    # until the refused ones are answered: httpd says so (error level)
    env.expect_log(r"AH00286: server reached MaxRequestWorkers|"
                   r"AH00161: server reached MaxRequestWorkers")
    group = StreamGroup()
    try:
        streams = open_crowd(env.api, CROWD, group)
        statuses = settle(streams)
        ok = [s for s in streams if s.status == 200]
        print("%s: %d of %d streams served" % (mpm, len(ok), CROWD))
        refused = [s for s in streams if s.status != 200]
        assert len(ok) <= BOUND[mpm], (
            "at most %d streams hold workers: %d do" % (BOUND[mpm], len(ok)))
        assert len(ok) >= BOUND[mpm] // 2, (
            "streams up to the bound are served: %d" % len(ok))
        assert refused and all(s.status == 503 for s in refused), (
            sorted(set(statuses)))
        assert all(s.headers.get("Retry-After") for s in refused)
        assert ordinary_request_answers(env)
        log = env.read_log()
        assert "SSE00167" in log and "SSE00165" in log, log[-2000:]
        # streams that end give their workers back
        for s in ok[:10]:
            s.close()
        api = env.api
        wait_until(lambda: sum(1 for r in api.registrants().values()
                               if r["connected"]) <= len(ok) - 10, 10,
                   "ten streams ended")
        again = api.stream(api.make_id(fresh_name("again")), group=group,
                           timeout=15)
        assert again.status == 200, again.status
        again.close()
    finally:
        for s in locals().get("streams", []):
            s.close()
        group.close()


def test_parked_streams_hold_no_thread_and_are_not_counted(make_httpd, mpm):
    if mpm != "event":
        pytest.skip("streams park on the event MPM only")
    env = make_httpd(directives={"SSEMaxStreamsPerChild": "2"})
    group = StreamGroup()
    try:
        streams = open_crowd(env.api, 30, group)
        assert settle(streams, 20) == [200] * 30
        assert ordinary_request_answers(env)
    finally:
        for s in locals().get("streams", []):
            s.close()
        group.close()


def test_a_bad_bound_is_refused(make_httpd):
    env = make_httpd(start=False, directives={"SSEMaxStreamsPerChild": "0"})
    code, out = env.check_config()
    assert code != 0 and "SSEMaxStreamsPerChild" in out, out
