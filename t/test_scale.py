"""At the sizes the module is built for: a publisher on one keep-alive
connection while two thousand streams are parked (event MPM), and
list-registrants with the table at its default size of 10,000."""

import concurrent.futures
import http.client
import threading

import pytest

from sse_client import StreamGroup, fresh_name, raw_request, raw_status
from sse_harness import notify_on_one_connection

PARKED = 2000
NOTIFIES = 200
# At most 40 threads in all, so 2,000 streams pass only if parked; a child
# of 10 threads parks 10 + 10 x 150 connections (DESIGN §3), 2 children
# 3020: room for the streams, the publisher and the rest, and no SSE00050
# notice (SSEMaxListeners below it).
PARKING = """\
StartServers 2
ServerLimit 4
ThreadsPerChild 10
MaxRequestWorkers 40
MinSpareThreads 10
MaxSpareThreads 40
AsyncRequestWorkerFactor 150
MaxKeepAliveRequests 0
"""


class KeepAlive(threading.local):
    """One keep-alive connection per thread, for the many set-up
    requests (make-id, listen)."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method, path):
        try:
            self.conn.request(method, path)
            resp = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError,
                BrokenPipeError):
            # the server closed the idle connection as the request went
            # out: retried once on a new one, as clients do (RFC 9112
            # 9.3.1; make-id and listen are idempotent)
            self.conn.close()
            self.conn.request(method, path)
            resp = self.conn.getresponse()
        body = resp.read()
        assert resp.status == 200, "%s %s: HTTP %d %r" % (
            method, path, resp.status, body[:200])
        return body.decode()


def parallel(fn, args, workers=8):
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, args))


def test_a_keep_alive_publisher_reaches_thousands_of_parked_streams(
        mpm, make_httpd):
    if mpm != "event":
        pytest.skip("streams are parked on the event MPM only; prefork and "
                    "worker hold a thread per stream")
    env = make_httpd(directives={"SSEMaxListeners": "2100"},
                     extra_conf=PARKING)
    # 2,000 stream requests at once against MaxRequestWorkers 150: while
    # they wait for a worker to park them the MPM may warn that it nears
    # its limit (any 2,000 requests would); reaching it (AH00484) still
    # fails the test, and what it checks is below
    env.expect_log(r"AH10159")
    api = env.api
    ka = KeepAlive(env.port)
    key = fresh_name("crowd")
    ids = parallel(lambda _: ka.call("GET", api.path("make-id",
                                                     fresh_name("park"))),
                   range(PARKED))
    group = StreamGroup()
    try:
        streams = [api.stream(id, wait_headers=False, group=group)
                   for id in ids]
        for id, s in zip(ids, streams):
            s.wait_headers(30)
            assert s.status == 200, "register-listener/%s: %s" % (id,
                                                                  s.status)
            assert s.next_event(30).payload() == "registered^" + id
        parallel(lambda id: ka.call("PUT", api.path("listen", id, key)), ids)
        assert "SSE00050" not in env.read_log()

        # the publisher: one HTTP/1.1 connection, reused for every notify
        notify_on_one_connection(env, key, NOTIFIES, PARKED)

        short = {}
        for id, s in zip(ids, streams):
            events = s.next_events(NOTIFIES, 30)
            bad = [e for e in events if e.payload() != "notify^" + key]
            seqs = [e.seq for e in events]
            if bad or seqs != sorted(set(seqs)):
                short[id] = (bad[:3], seqs[:5])
        assert not short, (
            "%d of %d parked streams did not get the %d notifies in order, "
            "each once: %r" % (len(short), PARKED, NOTIFIES,
                               dict(list(short.items())[:3])))
        live = api.registrants()
        assert sum(1 for id in ids if live[id]["connected"]) == PARKED, (
            "a parked stream ended under the publishing")
    finally:
        group.close()


# The event MPM closes a parked stream a second after it parked at the
# earliest (SSE_PARK_GRACE in mod_sse_park.c), so registering and closing
# hundreds of streams a second keeps as many connections open: room for
# them, else the server is full (AH00484) and the test slows to a crawl.
CHURN = """\
<IfModule mpm_event_module>
    AsyncRequestWorkerFactor 50
</IfModule>
"""


def test_list_registrants_lists_a_table_of_the_default_10000(make_httpd):
    env = make_httpd(directives={"SSEMaxListeners": None}, extra_conf=CHURN)
    made = [line for line in env.read_log().splitlines()
            if "SSE00012" in line]
    assert made and "of 10000 listeners" in made[-1], (
        "SSEMaxListeners defaults to 10000: %r" % made)
    api = env.api
    ka = KeepAlive(env.port)

    def add_listener(_):
        id = ka.call("GET", api.path("make-id", fresh_name("ten")))
        request = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                   % api.path("register-listener", id)).encode()
        # the listener stays, dormant, when its stream closes
        event = ('data:"registered^%s"\n\n' % id).encode()
        answer = raw_request(env.port, request, timeout=30, until=event)
        assert raw_status(answer) == 200 and event in answer, (
            id, answer and answer[:300])
        return id

    ids = parallel(add_listener, range(10000))
    resp = api.request("GET", "list-registrants")
    assert resp.status == 200, resp.describe()
    regs = resp.json()
    missing = [id for id in ids if id not in regs]
    assert not missing, (
        "list-registrants of a full table of 10000 lists %d entries; "
        "missing %d, e.g. %r" % (len(regs), len(missing), missing[:3]))
    assert len(regs) == 10000, len(regs)
    # the table is full of listeners without a stream: the 10,001st
    # reclaims one of them (SPEC "Full table")
    last = api.make_id(fresh_name("ten"))
    full = api.stream(last)
    try:
        assert full.status == 200, (
            "the 10,001st listener takes a dormant one's slot: %s"
            % full.status)
    finally:
        full.close()
    regs = api.registrants()
    missing = [id for id in ids if id not in regs]
    assert last in regs and len(regs) == 10000 and len(missing) == 1, (
        "one listener reclaimed for the 10,001st: %d listed, %d missing"
        % (len(regs), len(missing)))
