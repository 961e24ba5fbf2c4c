"""Streams over HTTP/2: cleartext (h2c, prior knowledge) and over TLS (h2
chosen by ALPN), with curl as the client. Over TLS several EventSource
streams share one connection, each receives its own events, closing one
stream ends only its SSE stream, and a fresh connection serves six streams
at once (mod_http2's starting limit) and queues the rest until one ends,
and each stream holds one of its child's H2MaxWorkers for its life.
An HTTP/2 GET gives the module no client descriptor to poll: when the
client leaves, mod_http2 marks its streams aborted, which a stream looks
at four times a second; a stream the client resets shows at its next
write (a heartbeat at the latest).

Where curl cannot say which frames go out, H2Client (python3-h2) does: a
stream whose window stays shut while the server writes a burst to it, then
RST_STREAM on it; and a graceful restart's GOAWAY with streams open."""

import os
import re
import subprocess
import threading
import time

import pytest

from sse_client import TLS_HOST as HOST
from h2_client import H2Client
from sse_client import TLSApi, fresh_name
from sse_harness import H2_MODULE, h2_tls_server, need_h2, wait_until


# These tests are about streams held over HTTP/2, which the default
# (SSEHTTP2 downgrade) sends back to HTTP/1.1: test_h2_downgrade.py
SERVE = {"SSEHTTP2": "serve"}


@pytest.fixture
def h2env(make_httpd, mpm):
    need_h2(mpm)
    return make_httpd(extra_conf=H2_MODULE + "Protocols h2c http/1.1\n",
                      directives=SERVE)


@pytest.fixture
def h2tls(make_httpd, mpm):
    return h2_tls_server(make_httpd, mpm, directives=SERVE)


def connected(regs, ids):
    return sum(1 for i in ids if regs.get(i, {}).get("connected"))


def wait_connected(api, ids, n, timeout=5.0):
    """The registrants once at least n of ids have a stream."""
    def check():
        regs = api.registrants()
        return regs if connected(regs, ids) >= n else None
    return wait_until(check, timeout, "%d of %d streams connected"
                      % (n, len(ids)))


class CurlH2:
    """One curl, streams of register-listener over h2 + TLS. Each URL is a
    --next group with its own -m and output file; curl multiplexes them
    on one connection. Results by id: (num_connects, http_version,
    exitcode), from -w."""

    def __init__(self, env, api, ids, seconds, outdir):
        self.ids, self.outdir = ids, outdir
        args = ["curl", "-Z"]
        for i, (id, secs) in enumerate(zip(ids, seconds)):
            if i:
                args.append("--next")
            args += ["-sN", "--no-progress-meter", "--http2",
                     "--cacert", env.cafile, "-m", str(secs),
                     "-o", self.path(id),
                     "-w", "%{url} %{num_connects} %{http_version} "
                           "%{exitcode}\\n",
                     "https://%s:%d%s" % (HOST, env.tls_port,
                                          api.path("register-listener", id))]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def path(self, id):
        return os.path.join(self.outdir, id + ".txt")

    def output(self, id):
        with open(self.path(id)) as f:
            return f.read()

    def finish(self, timeout=20):
        out, err = self.proc.communicate(timeout=timeout)
        results = {}
        for line in out.splitlines():
            url, conns, version, code = line.rsplit(" ", 3)
            results[url.rsplit("/", 1)[1]] = (int(conns), version, int(code))
        assert set(results) == set(self.ids), (out, err)
        return results

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def curl_h2(tmp_path):
    started = []

    def _start(env, api, ids, seconds):
        c = CurlH2(env, api, ids, seconds, str(tmp_path))
        started.append(c)
        return c

    yield _start
    for c in started:
        c.stop()


def test_streams_over_h2c_receive_their_events(h2env):
    api = h2env.api
    ids = [api.make_id(fresh_name("h2")) for _ in range(3)]
    base = "http://127.0.0.1:%d" % h2env.port
    # one curl, three concurrent streams, each on a connection of its own:
    # curl 7.88 fails streams it adds to a prior-knowledge h2c connection
    # ("Error in the HTTP2 framing layer", client side); multiplexing is
    # tested over TLS below
    args = ["curl", "-sN", "--no-progress-meter", "--http2-prior-knowledge",
            "-m", "6", "-Z", "--parallel-immediate"]
    for id in ids:
        args += [base + api.path("register-listener", id)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        wait_connected(api, ids, 3)
        for id in ids:
            api.listen(id, "h2key")
            api.notify_completions(id, "t-" + id[-4:])
        assert api.notify_listeners("h2key") == 3
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    for id in ids:
        assert 'data:"registered^%s"' % id in out, out[:2000]
        assert '\\"taskid\\":\\"t-%s\\"' % id[-4:] in out, out[:2000]
    assert out.count('data:"notify^h2key"') == 3, out[:2000]
    assert "Segmentation fault" not in h2env.read_log()


def test_streams_share_one_h2_connection_over_tls(h2tls, curl_h2):
    api = TLSApi(h2tls)
    ids = [api.make_id(fresh_name("h2tls")) for _ in range(3)]
    curl = curl_h2(h2tls, api, ids, [5] * 3)
    wait_connected(api, ids, 3)
    for id in ids:
        api.listen(id, "h2news")
        assert api.notify_completions(id, "t-" + id[-4:]) == 1
    assert api.notify_listeners("h2news") == 3
    results = curl.finish()
    assert sum(r[0] for r in results.values()) == 1, (
        "one TCP connection for the three streams: %r" % results)
    assert {r[1] for r in results.values()} == {"2"}, (
        "HTTP/2 chosen by ALPN: %r" % results)
    assert {r[2] for r in results.values()} == {28}, (
        "every stream stayed open until curl's -m: %r" % results)
    for id in ids:
        out = curl.output(id)
        assert out.count('data:"registered^%s"' % id) == 1, out
        assert out.count('\\"taskid\\":\\"t-') == 1, (
            "only its own completion: %r" % out)
        assert '\\"taskid\\":\\"t-%s\\"' % id[-4:] in out, out
        assert out.count('data:"notify^h2news"') == 1, out


def test_closing_one_h2_stream_ends_only_that_sse_stream(h2tls, curl_h2):
    api = TLSApi(h2tls)
    ids = [api.make_id(fresh_name("h2rst")) for _ in range(3)]
    # curl resets the first stream after 3 s (RST_STREAM), keeps the rest
    curl = curl_h2(h2tls, api, ids, [3, 10, 10])
    wait_connected(api, ids, 3)
    for id in ids:
        api.listen(id, "rst")
    assert api.notify_listeners("rst") == 3
    # no descriptor to poll over h2, and mod_http2 does not abort a reset
    # stream that runs: the reset shows at the next write, a heartbeat
    # (SSEHeartbeat 1) at the latest
    api.wait_disconnected(ids[0], timeout=6)
    regs = api.registrants()
    assert regs[ids[1]]["connected"] and regs[ids[2]]["connected"], (
        "the other streams of the connection stay: %r" % regs)
    assert api.notify_listeners("rst") == 3
    wait_until(lambda: all(curl.output(id).count('data:"notify^rst"') == 2
                           for id in ids[1:]), 5,
               "a stream beside the reset one keeps getting events: %r"
               % {id: curl.output(id) for id in ids[1:]})
    curl.stop()     # the two long streams: enough seen
    first = curl.output(ids[0])
    assert first.count('data:"notify^rst"') == 1, first
    # the listener of the reset stream was kept: it resumes
    with api.register(ids[0]) as s:
        assert s.next_event(5).payload() == "notify^rst"


@pytest.fixture
def h2tls_quiet(make_httpd, mpm):
    """h2 over TLS with heartbeats far apart: nothing is written to an
    idle stream for 30 s."""
    env = make_httpd(directives=dict(SERVE, SSEHeartbeat="30"), start=False,
                     timeout=60)
    return h2_tls_server(make_httpd, mpm, env=env)


def test_h2_streams_end_with_their_connection_without_a_write(h2tls_quiet,
                                                              curl_h2):
    """Nothing is written to the streams after curl leaves, so no write
    can fail: each stream must see mod_http2's abort by itself, and free
    the h2 worker it holds (and the client's connection, which mod_http2
    keeps until its streams are done)."""
    api = TLSApi(h2tls_quiet)
    ids = [api.make_id(fresh_name("h2ab")) for _ in range(2)]
    curl = curl_h2(h2tls_quiet, api, ids, [3, 3])
    wait_connected(api, ids, 2)
    curl.finish()
    for id in ids:
        api.wait_disconnected(id, timeout=8)


def test_a_fresh_h2_connection_serves_six_streams_and_queues_more(h2tls,
                                                                  curl_h2):
    api = TLSApi(h2tls)
    ids = [api.make_id(fresh_name("h2q")) for _ in range(7)]
    curl = curl_h2(h2tls, api, ids, [10] * 7)
    regs = wait_connected(api, ids, 6)
    time.sleep(1)   # time for a 7th stream to be served, were it allowed
    regs = api.registrants()
    served = [i for i in ids if regs.get(i, {}).get("connected")]
    assert len(served) == 6, (
        "mod_http2 starts a connection at 6 streams processed at once; a "
        "stream never completes, so the 7th waits: %r" % regs)
    waiting = [i for i in ids if i not in served]
    api.disconnect(served[0])
    wait_connected(api, waiting, 1)
    curl.stop()


def test_h2_streams_hold_their_childs_h2_workers(make_httpd, mpm, curl_h2):
    # one child, so that every connection meets the same h2 workers
    env = h2_tls_server(make_httpd, mpm, extra_conf="""
StartServers 1
ServerLimit 1
MaxRequestWorkers 25
MinSpareThreads 1
MaxSpareThreads 25
H2MinWorkers 1
H2MaxWorkers 4
""", directives=SERVE)
    api = TLSApi(env)
    ids = [api.make_id(fresh_name("h2w")) for _ in range(5)]
    curl = curl_h2(env, api, ids, [10] * 5)
    wait_connected(api, ids, 4)
    time.sleep(1)   # time for a 5th stream to be served, were it allowed
    regs = api.registrants()
    assert sum(1 for i in ids if regs.get(i, {}).get("connected")) == 4, (
        "a stream over HTTP/2 holds one of H2MaxWorkers for its life")
    url = "https://%s:%d%s" % (HOST, env.tls_port, api.path("make-id", "x"))
    h2 = subprocess.run(["curl", "-s", "--http2", "--cacert", env.cafile,
                         "-m", "2", "-w", "%{http_version}", "-o",
                         os.devnull, url], stdout=subprocess.PIPE, text=True)
    assert h2.returncode == 28, (
        "with every h2 worker held, any HTTP/2 request to the child waits")
    h1 = subprocess.run(["curl", "-s", "--http1.1", "--cacert", env.cafile,
                         "-m", "5", url], stdout=subprocess.PIPE, text=True)
    assert h1.returncode == 0 and h1.stdout.startswith("x_"), (
        "HTTP/1.1 is served by the MPM's own threads: %r" % (h1,))
    curl.stop()


def test_graceful_ends_tls_and_h2_streams_and_keeps_their_listeners(
        h2tls, curl_h2):
    api = TLSApi(h2tls)
    id1, s1 = api.listener(fresh_name("grh1"), keys=["after"])
    id2 = api.make_id(fresh_name("grh2"))
    curl = curl_h2(h2tls, api, [id2], [20])
    wait_connected(api, [id1, id2], 2)
    api.listen(id2, "after")
    started = time.monotonic()
    h2tls.graceful()
    assert s1.wait_closed(5), "the TLS stream ends at a graceful restart"
    results = curl.finish(timeout=10)
    assert time.monotonic() - started < 5, "streams end at once"
    assert results[id2][1:] == ("2", 0), (
        "the h2 stream ended cleanly, before curl's -m: %r" % results)
    regs = api.registrants()
    assert not regs[id1]["connected"] and not regs[id2]["connected"], regs
    assert api.notify_listeners("after") == 2
    for id in (id1, id2):
        with api.register(id) as s:
            assert s.next_event(5).payload() == "notify^after", (
                "the listener and its keys were kept")


# What the stuck stream is sent: more than mod_http2 buffers for a stream
# (H2StreamMaxMemSize, 64 KiB) plus its window, so that the handler's
# write blocks mid-way; each event is about 90 bytes.
BURST = 1500
STUCK_WINDOW = 4096


@pytest.fixture
def h2big(make_httpd, mpm):
    """h2 over TLS with a history that holds a whole burst."""
    pytest.importorskip("h2", reason="python3-h2 drives the h2 frames")
    return h2_tls_server(make_httpd, mpm,
                         directives=dict(SERVE, SSEHistory="4096"))


def notifies(s, key):
    return [seq for seq, d in s.events if d == '"notify^%s"' % key]


def test_resetting_an_h2_stream_stuck_in_a_write_spares_its_connection(
        h2big):
    env, plain = h2big, h2big.api
    api = TLSApi(env)
    key = "b" * 64
    ids = [api.make_id(fresh_name("h2stuck")) for _ in range(3)]
    victim, others = ids[0], ids[1:]
    c = H2Client(env, window=STUCK_WINDOW)
    try:
        side = [c.stream(api, id) for id in others]
        stuck = c.stream(api, victim, ack=False)
        wait_connected(api, ids, 3)
        plain.listen(victim, key)
        for id in others:
            plain.listen(id, "side")
        for _ in range(BURST):
            assert plain.notify_listeners(key) == 1
        wait_until(lambda: stuck.received >= STUCK_WINDOW // 2, 5,
                   "the stuck stream got its window's worth")
        assert stuck.received <= STUCK_WINDOW and not stuck.ended, (
            "the server keeps to the stream's window: %d bytes, %r"
            % (stuck.received, stuck.ended))
        assert len(notifies(stuck, key)) < BURST // 10, (
            "most of the burst waits on the server side")
        # the stuck stream holds up nothing else of the connection
        assert plain.notify_listeners("side") == 2
        wait_until(lambda: all(len(notifies(s, "side")) == 1
                               for s in side), 5,
                   "streams beside a stuck one get their events")
        got = len(notifies(stuck, key))
        c.reset(stuck)
        reset_at = time.monotonic()
        api.wait_disconnected(victim, timeout=5)
        regs = api.registrants()
        assert all(regs[id]["connected"] for id in others), (
            "only the reset stream ended: %r" % regs)
        assert plain.notify_listeners("side") == 2
        wait_until(lambda: all(len(notifies(s, "side")) == 2
                               for s in side), 5,
                   "streams beside the reset one keep getting events")
        wait_until(lambda: all(sum(1 for t in s.comments if t > reset_at)
                               >= 2 for s in side), 5,
                   "and heartbeats")
        assert not any(s.ended for s in side), [s.ended for s in side]
        # the listener resumes where its client's last whole event was,
        # on a new stream of the same connection
        again = c.stream(api, victim, last_event_id=stuck.last_seq())
        wait_until(lambda: len(notifies(again, key)) >= BURST - got, 10,
                   "the rest of the burst after Last-Event-ID")
        first, rest = notifies(stuck, key), notifies(again, key)
        assert len(first) + len(rest) == BURST, (
            "every event once: %d before the reset, %d after"
            % (len(first), len(rest)))
        seqs = first + rest
        assert seqs == sorted(set(seqs)), "in order, none twice"
        # the server side was mid-burst when the reset came: its stream
        # ended (sse_mgr:debug) short of the burst's last event
        ended = re.search(r"SSE00045: stream ended for %s after seq (\d+)"
                          % re.escape(victim), env.read_log())
        assert ended and int(ended.group(1)) < seqs[-1], (
            "the reset met a write in flight: %r, last %d"
            % (ended and ended.group(0), seqs[-1]))
        assert c.error is None and not c.goaway, (c.error, c.goaway)
    finally:
        c.close()


def test_goaway_at_graceful_ends_every_h2_stream_and_each_resumes(h2tls):
    pytest.importorskip("h2", reason="python3-h2 drives the h2 frames")
    env, plain = h2tls, h2tls.api
    api = TLSApi(env)
    ids = [api.make_id(fresh_name("h2gw")) for _ in range(4)]
    keys = ["gw%d" % i for i in range(5)]
    c = H2Client(env)
    c2 = None
    try:
        streams = [c.stream(api, id) for id in ids]
        wait_connected(api, ids, 4)
        for id in ids:
            for k in keys:
                plain.listen(id, k)
        assert plain.notify_listeners("gw0") == 4
        wait_until(lambda: all(notifies(s, "gw0") for s in streams), 5,
                   "each stream has its first event")
        old = set(env.children())
        failed = []

        def restart():
            try:
                env.graceful()
            except BaseException as e:
                failed.append(e)
        t = threading.Thread(target=restart)
        started = time.monotonic()
        t.start()
        wait_until(lambda: all(s.ended for s in streams), 5,
                   "every h2 stream ends at a graceful restart: %r"
                   % [s.ended for s in streams])
        # published while the restart goes on
        assert plain.notify_listeners("gw1") == 4
        assert plain.notify_listeners("gw2") == 4
        wait_until(lambda: c.goaway is not None, 5,
                   "the server sent GOAWAY on the connection")
        assert c.goaway.error_code == 0, (
            "a graceful GOAWAY (NO_ERROR): %r" % c.goaway)
        assert c.goaway.last_stream_id >= max(s.sid for s in streams), (
            "the open streams were let finish, not refused: %r" % c.goaway)
        t.join(30)
        assert not t.is_alive() and not failed, failed
        assert not old & set(env.children()), "no old child remains"
        assert [s.ended for s in streams] == ["end"] * 4, (
            "each stream ended cleanly (END_STREAM, not RST_STREAM)")
        assert time.monotonic() - started < 25
        assert plain.notify_listeners("gw3") == 4
        assert plain.notify_listeners("gw4") == 4
        c2 = H2Client(env)
        again = [c2.stream(api, id, last_event_id=s.last_seq())
                 for id, s in zip(ids, streams)]
        want = ['"notify^%s"' % k for k in keys[1:]]

        def resumed():
            return all([d for d in a.payloads() if d.startswith('"notify^')]
                       == want for a in again)
        wait_until(resumed, 5, "each listener resumed with all it missed: "
                   "%r" % [a.payloads() for a in again])
        for s in streams:
            assert [d for d in s.payloads() if d.startswith('"notify^')] == [
                '"notify^gw0"'], "the first connection saw gw0 only"
    finally:
        c.close()
        if c2:
            c2.close()
