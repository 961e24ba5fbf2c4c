"""Liveness: a client that vanishes is noticed and its listener stays,
resumable; the parent's monitor removes only listeners that are dormant;
a changed table size on graceful restart says what happens."""

import os
import signal
import subprocess
import sys
import http.client
import textwrap
import time

from sse_client import fresh_name
from sse_harness import READY_LINE, wait_until

# a client in its own process, so it can be killed like a crashed browser
CLIENT = textwrap.dedent("""
    import socket, sys
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    s.sendall(("GET %s HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n"
               % sys.argv[2]).encode())
    got = b""
    while b"registered^" not in got:
        got += s.recv(4096)
    print("ready", flush=True)
    while True:
        s.recv(4096)
""")


def test_a_killed_client_is_noticed_and_its_listener_resumes(httpd, api):
    id = api.make_id(fresh_name("killed"))
    proc = subprocess.Popen(
        [sys.executable, "-c", CLIENT, str(httpd.port),
         api.path("register-listener", id)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert api.registrants()[id]["connected"] is True
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        # the kernel closes the socket: the stream sees EOF at once
        entry = api.wait_disconnected(id, timeout=5)
        assert entry["connected"] is False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    # what was published while it was gone is delivered on return
    api.listen(id, "after-death")
    api.notify_listeners("after-death")
    with api.register(id) as s:
        assert s.next_event(5).payload() == "notify^after-death"


def test_monitor_removes_abandoned_listeners_but_never_connected_ones(
        make_httpd):
    env = make_httpd(directives={"SSEDormantTimeout": "1",
                                 "SSECleanupInterval": "1"})
    api = env.api
    abandoned, sa = api.listener(fresh_name("abandoned"))
    held, sh = api.listener(fresh_name("held"))
    with sh:
        sa.close()
        api.wait_disconnected(abandoned)
        # httpd runs the monitor hook about every 10 s; no trigger-cleanup
        wait_until(lambda: abandoned not in api.registrants(), 25,
                   "the parent's monitor removing a listener with no stream "
                   "idle for SSEDormantTimeout", interval=0.5)
        regs = api.registrants()
        assert held in regs and regs[held]["connected"] is True, (
            "a listener connected for longer than SSEDormantTimeout stays")
        sh.wait_comment(3)


def test_changed_table_size_on_graceful_is_logged(make_httpd):
    env = make_httpd(directives={"SSEMaxListeners": "50"})
    id = env.api.make_id(fresh_name("resize"))
    env.api.register(id).close()
    env.directives["SSEMaxListeners"] = "60"
    env.write_config()
    env.expect_log(r"SSE00014: .*SSEMaxListeners")
    env.graceful()
    log = env.read_log()
    assert "SSE00014" in log, "a resize on graceful must say what happens"
    assert id not in env.api.registrants(), (
        "the log says the registries start empty; they must")


def test_restart_keeps_listeners_keys_and_queued_events(make_httpd):
    env = make_httpd()
    api = env.api
    id, s = api.listener(fresh_name("restart"), keys=["kept"])
    s.close()
    api.wait_disconnected(id)
    assert api.notify_listeners("kept") == 1
    before = env.read_log().count(READY_LINE)
    rc, out = env.apachectl("-k", "restart")
    assert rc == 0, out
    wait_until(lambda: env.read_log().count(READY_LINE) > before, 15,
               "a new generation after restart")
    wait_until(env.answers, 10, "the restarted server answering")
    regs = api.registrants()
    assert regs[id]["listenKeys"] == ["kept"], (
        "apachectl restart keeps the listener and its keys: %r" % regs)
    with api.register(id) as s2:
        assert s2.next_event(5).payload() == "notify^kept", (
            "the event queued before the restart is delivered after it")


def test_a_client_that_stops_reading_is_ended_after_timeout(make_httpd):
    env = make_httpd(extra_conf="Timeout 3\n")
    api = env.api
    id = api.make_id(fresh_name("stalled"))
    key = "k" * 64
    with api.stream(id, wait_headers=False, rcvbuf=1024, paused=True):
        wait_until(lambda: api.registrants().get(id, {}).get("connected"), 5,
                   "the stream opening")
        api.listen(id, key)
        # publish until the server's buffers to this reader are full; the
        # blocked write then gives up after Timeout and ends the stream
        conn = http.client.HTTPConnection("127.0.0.1", env.port, timeout=10)
        deadline = time.monotonic() + 60
        sent = 0
        while True:
            conn.request("POST", api.path("notify-listeners", key))
            resp = conn.getresponse()
            assert resp.status == 200, resp.read()
            resp.read()
            sent += 1
            if sent % 500 == 0 and not api.registrants()[id]["connected"]:
                break
            assert time.monotonic() < deadline, (
                "a client that reads nothing still holds its stream after "
                "%d events" % sent)
        conn.close()
    entry = api.registrants()[id]
    assert entry["connected"] is False and entry["listenKeys"] == [key], (
        "the listener stays, resumable: %r" % entry)
