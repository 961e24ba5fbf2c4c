"""Streams under the MPM settings users really run.

httpd's idle-server maintenance stops a child once the idle threads exceed
MaxSpareThreads (Debian's mpm_event.conf and mpm_worker.conf: 75), and the
child that goes is whichever reads the stop message first. On the event
MPM a parked stream holds no thread, so children full of streams look
idle. A stream must not end because of that: the child keeps its streams
until their clients leave, and ends them only when the server restarts or
stops.

These tests use Debian's MPM settings, or an ordinary tuning with the
spare-thread bounds at httpd's defaults, and conf/sse_mgr.conf verbatim.
"""

import socket
import time

import pytest

from sse_harness import wait_until
from sse_client import HOST, fresh_name

# Shipped defaults for the module (heartbeat 15 s, 10,000 listeners,
# history 1024) and a Timeout above the heartbeat, as Debian's 300.
SHIPPED = {"SSEHeartbeat": None, "SSEMaxListeners": None,
           "SSEHistory": None}
TRIM_LINE = "SSE00140"  # a child told to stop keeps its streams


def hold_workers(port, n):
    """n clients that send half a request: each holds a worker thread
    while httpd waits for the rest of its headers (a burst of slow
    clients)."""
    socks = []
    for _ in range(n):
        s = socket.create_connection((HOST, port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    return socks


def open_streams(api, key, n):
    streams = []
    for _ in range(n):
        id, s = api.listener(fresh_name("tune"))
        api.listen(id, key)
        streams.append(s)
    return streams


# (slow clients in the burst, streams opened during it): under worker each
# stream holds a thread too, and all must fit in MaxRequestWorkers (150 in
# Debian's settings, 512 in the ordinary tuning), or requests would queue
BURST = {("event", "debian"): (110, 60), ("worker", "debian"): (70, 20),
         ("event", "ordinary"): (300, 60), ("worker", "ordinary"): (300, 60)}


def ended(streams):
    return [s for s in streams if s.closed()]


@pytest.mark.parametrize("profile", ["debian", "ordinary"])
def test_idle_child_maintenance_ends_no_stream(mpm, make_httpd, profile):
    if mpm == "prefork":
        pytest.skip("prefork stops only idle processes, and a process "
                    "holding a stream is busy")
    env = make_httpd(directives=SHIPPED, shipped_conf=True,
                     profile=profile, timeout=60)
    api = env.api
    key = fresh_name("k")
    streams = open_streams(api, key, 40)
    first_children = set(env.children())
    # a burst: enough slow clients that httpd starts more children
    slow, more = BURST[(mpm, profile)]
    held = hold_workers(env.port, slow)
    try:
        wait_until(lambda: len(set(env.children()) - first_children) >= 2,
                   30, "httpd started more children for the burst")
        # streams that open during the burst land on the new children too
        streams += open_streams(api, key, more)
    finally:
        for s in held:
            s.close()
    holders = {env.pid_holding(s.local_port) for s in streams}
    # the burst is over: idle threads exceed MaxSpareThreads and httpd
    # stops children, whichever read its message, streams or not
    wait_until(lambda: TRIM_LINE in env.read_log() or ended(streams),
               60, "httpd stopped a child that holds streams")
    time.sleep(5)
    gone = ended(streams)
    assert not gone, (
        "%d of %d streams ended although nothing restarted (children "
        "holding them: %d); first: %r" % (len(gone), len(streams),
                                          len(holders), gone[0]))
    # and every stream still receives what is published
    assert api.notify_listeners(key) == len(streams)
    for s in streams:
        while True:
            ev = s.next_event(10)
            if ev.payload() == "notify^" + key:
                break
    # a graceful restart then ends them, so that clients resume on the
    # new generation, and the old children exit
    old = set(env.children())
    env.graceful()
    for s in streams:
        assert s.wait_closed(15), "stream kept by an old child after a " \
                                  "graceful restart"
    wait_until(lambda: not (old & set(env.children())), 30,
               "old children exited after the graceful restart")
