"""Step 2 of the design (event MPM): a held stream costs no worker thread.

The handler writes the opening; the child's dispatcher then holds the
stream: a plain HTTP/1.1 stream's socket as soon as its request ended,
any other as a suspended connection. These tests give httpd far fewer
threads than streams, so they pass only if streams are parked."""

import os
import time

import pytest

from sse_client import StreamClosed, fresh_name, raw_request
from sse_harness import (STATUS_CONF, notify_on_one_connection,
                         wait_status, wait_until)

THREADS = 5
CHILDREN = 2
STREAMS = 300

# 2 children of 5 threads: 10 streams in all if each held a thread. The
# event MPM counts parked connections against ThreadsPerChild +
# idle threads x AsyncRequestWorkerFactor per child (DESIGN §3).
FEW_THREADS = """\
StartServers %d
ServerLimit %d
ThreadsPerChild %d
MaxRequestWorkers %d
MinSpareThreads %d
MaxSpareThreads %d
AsyncRequestWorkerFactor 60
""" % (CHILDREN, 2 * CHILDREN, THREADS, THREADS * CHILDREN, THREADS,
       THREADS * CHILDREN)


@pytest.fixture
def few_threads(mpm, make_httpd):
    if mpm != "event":
        pytest.skip("streams are parked on the event MPM only; prefork "
                    "and worker hold one thread per stream by design")
    return make_httpd(directives={"SSEMaxListeners": "1000"},
                      extra_conf=FEW_THREADS)


def threads_of(pid):
    try:
        return len(os.listdir("/proc/%d/task" % pid))
    except OSError:
        return 0


def open_registered(api, ids, timeout=30.0):
    streams = [api.stream(id, wait_headers=False) for id in ids]
    for id, s in zip(ids, streams):
        s.wait_headers(timeout)
        assert s.status == 200, "register-listener/%s: %s" % (id, s.status)
        assert s.next_event(timeout).payload() == "registered^" + id
    return streams


def test_event_mpm_holds_many_more_streams_than_threads(few_threads):
    env, api = few_threads, few_threads.api
    key = fresh_name("k")
    ids = [api.make_id(fresh_name("p")) for _ in range(STREAMS)]
    streams = open_registered(api, ids)
    for id in ids:
        api.listen(id, key)
    # the publish itself needs a free worker: none is held by a stream
    assert api.notify_listeners(key) == STREAMS
    for s in streams:
        assert s.next_event(10).payload() == "notify^" + key
    threads = {pid: threads_of(pid) for pid in env.children()}
    # per child: its workers, the listener, the dispatcher, a few more
    assert all(n <= THREADS + 6 for n in threads.values()), (
        "%d streams should not cost a thread each: threads per child %r"
        % (STREAMS, threads))
    live = api.registrants()
    assert sum(1 for i in ids if live[i]["connected"]) == STREAMS


# Debian's mpm_event.conf with httpd's own AsyncRequestWorkerFactor (2):
# the event MPM counts about 25 + 25 x 2 connections per child of 25
# threads, so about 150 in the two children it starts (parked streams
# keep threads idle: it starts no more), and it stops accepting beyond.
# A plain HTTP/1.1 stream's request ends as any other and the MPM closes
# its connection as any other, the dispatcher keeping the socket
# (mod_sse_own.c): four times that many streams open at once, as after a
# restart every client reconnects, and a publisher's keep-alive
# connection is never closed.
OWNED_STREAMS = 600
OWNED_NOTIFIES = 50


def test_plain_streams_leave_the_mpms_count_of_connections(mpm, make_httpd):
    if mpm != "event":
        pytest.skip("streams are parked on the event MPM only")
    env = make_httpd(directives={"SSEMaxListeners": "1000"},
                     profile="debian")
    api = env.api
    key = fresh_name("k")
    ids = [api.make_id(fresh_name("own")) for _ in range(OWNED_STREAMS)]
    # all at once; the MPM would let about 150 of them in at a time, a
    # second apart, if each counted as a connection of its own
    streams = open_registered(api, ids, timeout=5)
    for id in ids:
        api.listen(id, key)
    notify_on_one_connection(env, key, OWNED_NOTIFIES, OWNED_STREAMS)
    for id, s in zip(ids, streams):
        events = s.next_events(OWNED_NOTIFIES, 30)
        assert [e.payload() for e in events] == \
            ["notify^" + key] * OWNED_NOTIFIES, id
    live = api.registrants()
    assert sum(1 for id in ids if live[id]["connected"]) == OWNED_STREAMS
    for s in streams:
        s.close()


# One child whose descriptor limit is 512 (`ulimit -n 512`), below the
# 25 x (1 + 70) connections its MPM would take (and owned streams, which
# the MPM does not count at all, have no MPM bound). The child keeps a
# margin for its other descriptors and sends streams beyond it to
# reconnect (EventSource does, after `retry:`), never failing accept()
# with EMFILE (after which the MPM stops the child).
ONE_CHILD = """\
StartServers 1
ServerLimit 1
ThreadsPerChild 25
MaxRequestWorkers 25
MinSpareThreads 1
MaxSpareThreads 25
AsyncRequestWorkerFactor 70
"""
NOFILE = 512
ROOM = NOFILE - (64 + NOFILE // 32)     # mod_sse_dispatch.c


def test_a_child_keeps_descriptors_to_spare(mpm, make_httpd):
    if mpm != "event":
        pytest.skip("prefork and worker hold a thread per stream, which "
                    "bounds their streams first")
    env = make_httpd(directives={"SSEMaxListeners": "1000"},
                     extra_conf=ONE_CHILD, nofile=NOFILE)
    api = env.api
    key = fresh_name("k")
    ids = [api.make_id(fresh_name("fd")) for _ in range(ROOM + 40)]
    opened, sent_away = [], []
    for i in range(0, len(ids), 40):
        batch = [api.stream(id, wait_headers=False) for id in ids[i:i + 40]]
        for id, s in zip(ids[i:i + 40], batch):
            s.wait_headers(10)
            assert s.status == 200, (id, s.status)
            try:
                event = s.next_event(10)
            except StreamClosed:
                sent_away.append(s)
                continue
            assert event.payload() == "registered^" + id
            opened.append((id, s))
        time.sleep(1.2)         # past the park grace
    assert len(opened) == ROOM and len(sent_away) == 40, (
        "%d streams open, %d sent to reconnect; room for %d"
        % (len(opened), len(sent_away), ROOM))
    assert all(b"retry:" in s.raw_bytes for s in sent_away)
    assert "SSE00219" in env.read_log()
    # the child is well: it answers, publishes reach every open stream,
    # and it is the same child (not stopped for want of descriptors)
    child = env.children()
    for id, _ in opened:
        api.listen(id, key)
    assert api.notify_listeners(key) == ROOM
    for id, s in opened:
        assert s.next_event(10).payload() == "notify^" + key, id
    assert env.children() == child
    log = env.read_log()
    assert "Too many open files" not in log and "AH00052" not in log
    for _, s in opened:
        s.close()


def test_a_parked_stream_whose_client_leaves_is_noticed(few_threads):
    api = few_threads.api
    ids = [api.make_id(fresh_name("g")) for _ in range(40)]
    streams = open_registered(api, ids)
    for s in streams[:20]:
        s.close()
    for id in ids[:20]:
        api.wait_disconnected(id)
    live = api.registrants()
    assert all(live[i]["connected"] for i in ids[20:]), (
        "closing 20 clients ended other parked streams")


def test_an_owned_streams_log_lines_name_its_client(few_threads):
    """Once its request ended the dispatcher owns the socket and the
    connection is gone; the stream's log lines still say which client,
    where httpd puts it for a connection's lines."""
    api = few_threads.api
    id = api.make_id(fresh_name("o"))
    s, = open_registered(api, [id])
    wait_until(lambda: "SSE00218: the dispatcher takes the socket of %s" % id
               in few_threads.read_log(), 5, "the socket owned")
    port = s.local_port
    s.close()
    api.wait_disconnected(id)
    wait_until(lambda: "SSE00045: stream ended for %s" % id
               in few_threads.read_log(), 5, "the stream's end logged")
    line = next(l for l in few_threads.read_log().splitlines()
                if "SSE00045: stream ended for %s" % id in l)
    assert "[client 127.0.0.1:%d] SSE00045" % port in line, line


def test_parked_streams_end_on_graceful_and_resume_without_loss(few_threads):
    env, api = few_threads, few_threads.api
    ids = [api.make_id(fresh_name("r")) for _ in range(30)]
    streams = open_registered(api, ids)
    last = {}
    for id, s in zip(ids, streams):
        api.notify_completions(id, "before")
        ev = s.next_event(10)
        last[id] = ev.seq
    env.graceful()
    for s in streams:
        with pytest.raises(StreamClosed):
            s.next_event(15)     # ended: clients reconnect
    for id in ids:
        api.notify_completions(id, "during")
    again = [api.stream(id, last_event_id=last[id]) for id in ids]
    for id, s in zip(ids, again):
        assert s.status == 200
        got = [s.next_event(10).payload() for _ in range(2)]
        assert got[0] == "registered^" + id
        assert "during" in got[1], "queued completion lost: %r" % got


def test_connections_that_close_at_once_do_not_hurt_the_server(few_threads):
    """A client that sends its GET and goes at once: the stream is parked
    while (or after) its peer vanished. The server must not crash."""
    env, api = few_threads, few_threads.api
    ids = [api.make_id(fresh_name("s")) for _ in range(20)]
    request = ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n")
    for round in range(10):
        for id in ids:
            raw_request(env.port, (request % api.path("register-listener",
                                                      id)).encode(),
                        reset=True)
    # let time pass beyond the close grace of parked streams: what the
    # server does with the vanished peers then is what is tested
    time.sleep(2.5)
    log = env.read_log()
    assert "exit signal" not in log, log[-3000:]
    for id in ids:
        api.wait_disconnected(id)
    # and the server still serves streams
    id = api.make_id(fresh_name("after"))
    s = api.register(id)
    api.notify_completions(id, "t1")
    assert "t1" in s.next_event(10).payload()


def test_the_request_is_logged_when_the_stream_parks(few_threads):
    env, api = few_threads, few_threads.api
    id = api.make_id(fresh_name("log"))
    s = api.register(id)
    line = api.path("register-listener", id) + " HTTP/1.1\" 200"

    def access_log():
        with open(os.path.join(env.root, "logs", "access_log")) as f:
            return line in f.read()
    wait_until(access_log, 5, "a parked stream's request in the access log "
               "while the stream is still open")
    assert not s.closed()


def test_start_up_says_when_fewer_streams_fit_than_listeners(few_threads):
    """2 x 5 x (1 + 60) = 610 connections, SSEMaxListeners 1000."""
    log = few_threads.read_log()
    assert "SSE00050" in log and "AsyncRequestWorkerFactor 60" in log \
        and "SSEMaxListeners 1000" in log, log[-2000:]


def test_no_capacity_notice_when_streams_fit(mpm, make_httpd):
    if mpm != "event":
        pytest.skip("the notice is about the event MPM's limit")
    env = make_httpd(directives={"SSEMaxListeners": "100"})
    assert "SSE00050" not in env.read_log()


# A client that stops reading: small socket buffers on both sides, so a
# few hundred events fill them. The stream must wait for its client up to
# httpd's Timeout (as any response does), then be ended and counted.
STALL_EVENTS = 1000


# How the stalled stream is held: a plain HTTP/1.1 stream's socket is
# the dispatcher's as soon as its request ended (mod_sse_own.c keeps what
# the socket does not take); in a child that may own none (its
# descriptor room, less the MPM's own connection limit, leaves none), it
# stays a connection of the MPM's, as a TLS stream does, and the core
# output filter holds those bytes.
HELD = {
    "owned": ("", None, True),
    "as-a-connection": (ONE_CHILD, NOFILE, False),
}


@pytest.fixture
def stall_env(mpm, make_httpd):
    def make(timeout, held):
        if mpm != "event":
            pytest.skip("the thread that holds a stream under prefork and "
                        "worker waits in a blocking write: test_status.py")
        extra, nofile, _ = HELD[held]
        return make_httpd(directives={"SSEHistory": "4096"},
                          extra_conf="Timeout %d\nSendBufferSize 8192\n%s%s"
                          % (timeout, STATUS_CONF, extra), nofile=nofile)
    return make


def stalled_stream(env, key, held):
    api = env.api
    id = api.make_id(fresh_name("stall"))
    s = api.stream(id, wait_headers=False, rcvbuf=2048, paused=True)
    wait_until(lambda: api.registrants().get(id, {}).get("connected"), 10,
               "the stream opening")
    api.listen(id, key)
    for _ in range(STALL_EVENTS):
        assert api.notify_listeners(key) == 1
    owned = "SSE00218: the dispatcher takes the socket of %s" % id
    assert (owned in env.read_log()) == HELD[held][2], (
        "the stream is held %s" % held)
    return id, s


@pytest.mark.parametrize("held", sorted(HELD))
def test_a_reader_that_stalls_briefly_keeps_its_stream_and_every_event(
        stall_env, held):
    env = stall_env(timeout=30, held=held)
    api = env.api
    key = "k" * 64
    id, s = stalled_stream(env, key, held)
    time.sleep(1)       # the client stalls a while, well within Timeout
    s.resume_reading()
    assert s.next_event(10).payload() == "registered^" + id
    got = s.next_events(STALL_EVENTS, 30)
    assert [e.payload() for e in got] == ["notify^" + key] * STALL_EVENTS, (
        "every event published while the client did not read arrives: %r"
        % [e for e in got if e.payload() != "notify^" + key][:3])
    seqs = [e.seq for e in got]
    assert seqs == sorted(set(seqs)), "in order, each once"
    assert api.registrants()[id]["connected"], "and the stream stays"
    assert api.notify_listeners(key) == 1
    assert s.next_event(10).payload() == "notify^" + key


@pytest.mark.parametrize("held", sorted(HELD))
def test_a_reader_stalled_for_timeout_is_ended_and_counted(stall_env, held):
    env = stall_env(timeout=3, held=held)
    api = env.api
    id, s = stalled_stream(env, "k" * 64, held)
    assert api.registrants()[id]["connected"], (
        "a full socket does not end the stream at once")
    fig = wait_status(env, lambda f: f["Connected"] == 0,
                      "the stalled stream ended", timeout=15)
    assert fig["EndedSlow"] == 1, (
        "the stream ended for not reading is counted: %r" % fig)
    s.close()
