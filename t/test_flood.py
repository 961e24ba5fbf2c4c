"""A public make-id must not let one client deny everyone (issue 12).

One address registers and drops listeners a hundred times faster than the
table holds them; another keeps registering, streaming and receiving
throughout, and streams opened before the flood live through it. The
per-client bounds answer 429 + Retry-After, a table full of live streams
503, and a client whose listener was reclaimed is told what it missed.

Clients are told apart by source address: Linux routes all of 127/8 to
lo, so a socket bound to 127.0.0.2 is another client to the server.
"""

import json
import socket
import threading
import time

import pytest

from sse_client import SSEApi, fresh_name, raw_request, raw_status
from sse_harness import STATUS_CONF, status_auto, wait_until

TABLE = 50                      # SSEMaxListeners of these tests
FLOOD = 100 * TABLE             # register-then-close requests
FLOODERS = 8                    # concurrent connections of the flood
FLOOD_SECONDS = 240             # bound on the flood's time

# the per-client bounds at the module's defaults (the harness turns them
# off for the other tests, whose every client is 127.0.0.1)
DEFAULTS = {"SSEMaxListeners": str(TABLE),
            "SSEMaxListenersPerClient": None,
            "SSEMaxStreamsPerClient": None}
STREAMS_PER_CLIENT = 32         # SSEMaxStreamsPerClient's default

ONE, TWO, THREE, FOUR = "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"


def _can_bind(addr):
    try:
        with socket.socket() as s:
            s.bind((addr, 0))
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    not all(_can_bind(a) for a in (TWO, THREE, FOUR)),
    reason="this host cannot send from 127.0.0.2-4")


# The event MPM ends a parked stream a second after it parked at the
# earliest (SSE_PARK_GRACE in mod_sse_park.c): a flood of short streams
# keeps that many connections open, which the MPM must have room for.
CHURN = """\
<IfModule mpm_event_module>
    AsyncRequestWorkerFactor 50
</IfModule>
"""


def api_from(env, source):
    return SSEApi(env.port, env.prefix, source=source)


def flood_one(env, name):
    """make-id, then register-listener read up to its registered event
    and closed: the status of the register-listener request."""
    prefix = env.prefix.encode()
    answer = raw_request(env.port, b"GET %smake-id/%s HTTP/1.1\r\nHost: x\r\n"
                         b"Connection: close\r\n\r\n"
                         % (prefix, name.encode()), until=None)
    assert raw_status(answer) == 200, answer
    id = answer.split(b"\r\n\r\n", 1)[1]
    answer = raw_request(env.port, b"GET %sregister-listener/%s HTTP/1.1\r\n"
                         b"Host: x\r\nConnection: close\r\n\r\n"
                         % (prefix, id), until=b"registered^")
    return raw_status(answer)


def flood(env, count, codes, deadline):
    """FLOODERS threads of register-then-close from 127.0.0.1 until
    @count are done or @deadline passes; statuses into @codes."""
    todo = iter(range(count))
    lock = threading.Lock()

    def run():
        while time.monotonic() < deadline:
            with lock:
                if next(todo, None) is None:
                    return
            try:
                status = flood_one(env, fresh_name("flood"))
            except (OSError, AssertionError) as e:
                status = repr(e)
            with lock:
                codes[status] = codes.get(status, 0) + 1

    threads = [threading.Thread(target=run) for _ in range(FLOODERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def use_the_service(api, key_prefix, stop, done, failures):
    """Another client meanwhile: register, listen, be notified, close;
    again until @stop."""
    while not stop.is_set():
        key = fresh_name(key_prefix)
        try:
            id = api.make_id(fresh_name("other"))
            with api.register(id) as s:
                api.listen(id, key)
                assert api.notify_listeners(key) == 1, "not delivered"
                ev = s.next_event(10)
                assert ev.payload() == "notify^" + key, ev
            done.append(id)
        except Exception as e:     # noqa: BLE001 - reported by the test
            failures.append("%s: %r" % (key, e))
            stop.set()


def test_one_address_flooding_register_listener_denies_no_one(make_httpd):
    env = make_httpd(directives=DEFAULTS, extra_conf=STATUS_CONF + CHURN)
    one, two = api_from(env, ONE), api_from(env, TWO)
    key = fresh_name("before")
    before = []
    for api in (one, two):
        for _ in range(5):
            id, s = api.listener(fresh_name("before"), keys=[key])
            before.append(s)
    stop, done, failures, codes = threading.Event(), [], [], {}
    other = threading.Thread(target=use_the_service,
                             args=(two, "during", stop, done, failures))
    other.start()
    try:
        flood(env, FLOOD, codes, time.monotonic() + FLOOD_SECONDS)
    finally:
        stop.set()
        other.join(30)
    flooded = sum(v for v in codes.values())
    assert not failures, ("another address was denied during the flood "
                          "(flood answers %r): %s" % (codes, failures[:3]))
    assert flooded == FLOOD, "the flood did not finish in time: %r" % codes
    assert set(codes) <= {200, 429}, (
        "the flood gets streams (or 429 for its own many streams), never "
        "a 503: %r" % codes)
    # its closed streams are noticed and given back to its own bound
    # (STREAMS_PER_CLIENT at once): it gets a stream many times over. How
    # often depends on how fast 8 threads' closes are seen on the loaded
    # machine: 2,184-3,659 of 5,000 in 32 runs on 2 cores (2026-12-07;
    # this build, the one before, and this one without its mutex spin
    # alike), so half is no bound; a stream never given back would leave
    # it about 27.
    assert codes.get(200, 0) > FLOOD // 4, codes
    assert len(done) >= 3, "the other client got %d turns" % len(done)
    # the streams opened before the flood are all there, and still served
    assert not [s for s in before if s.closed()], "a live stream was ended"
    assert one.notify_listeners(key) == len(before)
    for s in before:
        assert s.next_event(10).payload() == "notify^" + key
    fig = status_auto(env)[0]
    print("flood answers %r; the other client's turns %d; %r"
          % (codes, len(done), fig))
    created = codes[200] + len(done) + len(before)
    assert fig["Reclaimed"] >= created - TABLE, fig
    assert fig["RejectedFull"] == 0, fig
    assert fig["Listeners"] <= TABLE


def test_the_33rd_stream_from_one_address_gets_429(make_httpd):
    env = make_httpd(directives=DEFAULTS, extra_conf=STATUS_CONF)
    one, two = api_from(env, ONE), api_from(env, TWO)
    streams = [one.listener()[1] for _ in range(STREAMS_PER_CLIENT)]
    extra = one.stream(one.make_id(fresh_name("extra")))
    assert extra.status == 429, extra.status
    assert int(extra.headers.get("Retry-After")) > 0, extra.headers
    extra.body(5)
    # another address still gets streams
    _, s2 = two.listener()
    assert not s2.closed()
    # a reconnect of one's own stream (same id) is not one more
    first = streams[0]
    again = one.register(first.path.rsplit("/", 1)[1])
    assert again.status == 200
    assert first.wait_closed(10), "the older stream of the id ends"
    streams[0] = again
    # one stream fewer: room for one more
    streams.pop().close()
    id = one.make_id(fresh_name("room"))
    wait_until(lambda: one.stream(id).status == 200, 10,
               "a stream once one of the 32 ended")
    assert status_auto(env)[0]["RejectedClient"] >= 1
    log = env.read_log()
    assert "SSE00170" in log and "SSEMaxStreamsPerClient" in log \
        and ONE in log, "the refusal says who and which directive"


def test_a_table_full_of_live_streams_gets_503(make_httpd):
    # 50 streams are more than prefork's default thread bound allows with
    # the test profile's MaxRequestWorkers 64 (48): this test is about the
    # table (the bound is t/test_thread_bound.py's)
    env = make_httpd(directives=dict(DEFAULTS, SSEMaxStreamsPerChild="60"),
                     extra_conf=STATUS_CONF)
    one, two, three = (api_from(env, a) for a in (ONE, TWO, THREE))
    held = [api.listener()[1] for api in (one, two) for _ in range(TABLE // 2)]
    full = three.stream(three.make_id(fresh_name("full")))
    assert full.status == 503 and full.headers.get("Retry-After"), (
        full.status, full.headers)
    assert b"too many listeners" in full.body(5)
    assert status_auto(env)[0]["RejectedFull"] == 1
    # a listener whose stream ended makes room
    held.pop().close()
    id = three.make_id(fresh_name("room"))
    wait_until(lambda: three.stream(id).status == 200, 10,
               "a stream once a live one ended")
    assert status_auto(env)[0]["Reclaimed"] == 1


def connected(api, id):
    return api.registrants().get(id, {}).get("connected")


def test_past_its_listener_bound_a_client_gives_up_its_own_oldest(
        make_httpd):
    env = make_httpd(directives=dict(DEFAULTS, SSEMaxListenersPerClient="3"),
                     extra_conf=STATUS_CONF)
    one, two = api_from(env, ONE), api_from(env, TWO)
    theirs, their_stream = two.listener()
    their_stream.close()
    mine = [one.listener() for _ in range(3)]
    new = one.stream(one.make_id(fresh_name("fourth")))
    assert new.status == 429 and new.headers.get("Retry-After"), new.status
    new.body(5)
    assert "SSE00171" in env.read_log()
    mine[1][1].close()
    wait_until(lambda: connected(one, mine[1][0]) is False, 10,
               "the closed stream's listener idle")
    id, s = one.listener(fresh_name("fourth"))
    ids = one.registrants()
    assert mine[1][0] not in ids, "its own idle listener was reclaimed"
    assert theirs in ids, "not another address's"
    assert mine[0][0] in ids and mine[2][0] in ids and id in ids


def test_a_reclaimed_listener_comes_back_told_what_it_missed(make_httpd):
    env = make_httpd(directives=dict(DEFAULTS, SSEMaxListenersPerClient="2"))
    three, four = api_from(env, THREE), api_from(env, FOUR)
    key = fresh_name("k")
    a, sa = three.listener(keys=[key])
    assert three.notify_listeners(key) == 1
    last = sa.next_event(10).seq
    sa.close()
    wait_until(lambda: connected(three, a) is False, 10, "a idle")
    b, sb = three.listener(keys=[key])
    c, sc = three.listener()            # a, its oldest idle, goes
    assert a not in three.registrants()
    assert three.notify_listeners(key) == 1      # b only: a misses it
    # a's client comes back (from another address: three's two are live)
    s = four.stream(a, last_event_id=last)
    assert s.status == 200
    reg = s.next_event(10)
    assert reg.payload() == "registered^" + a
    missed = s.next_event(10)
    assert missed.event == "missed", missed
    gap = json.loads(missed.data)
    assert gap["from"] == last + 1 and gap["to"] == reg.seq > last, (
        gap, last, reg)
