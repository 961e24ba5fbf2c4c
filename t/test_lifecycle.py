"""How streams end when the server restarts or stops.

A graceful restart ends every stream (clients resume on the new
generation) and every old child exits; a graceful stop (Debian's
`systemctl stop apache2` runs `apachectl graceful-stop`) ends them too, so
httpd does not wait forever for clients that never leave. Streams that
open while a restart is under way are served by the new generation or
closed: never left open with no one writing to them.
"""

import threading
import time

from sse_client import fresh_name
from sse_harness import wait_until, _alive


def test_graceful_stop_ends_streams_and_httpd_exits(make_httpd):
    env = make_httpd(directives={"SSEHeartbeat": None}, timeout=60)
    api = env.api
    streams = [api.listener(fresh_name("gstop"))[1] for _ in range(10)]
    pid = env.main_pid()
    rc, out = env.apachectl("-k", "graceful-stop")
    assert rc == 0, out
    for s in streams:
        assert s.wait_closed(10), "a stream outlived graceful-stop by 10 s"
    wait_until(lambda: not _alive(pid), 15, "httpd exited after "
               "graceful-stop")
    env.running = False


class Storm:
    """Clients that keep opening streams until told to stop."""

    def __init__(self, api, threads=4, most=400, pause=0.05):
        self.api = api
        self.streams = []
        self.lock = threading.Lock()
        self.stopping = False
        self.most = most
        self.pause = pause
        self.threads = [threading.Thread(target=self._run, daemon=True)
                        for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self):
        while not self.stopping and len(self.streams) < self.most:
            try:
                id = self.api.make_id(fresh_name("storm"))
                s = self.api.stream(id, timeout=10)
            except (OSError, AssertionError):
                continue    # the listener went away mid-restart: retry
            with self.lock:
                self.streams.append((id, s))
            time.sleep(self.pause)

    def stop(self):
        self.stopping = True
        for t in self.threads:
            t.join(30)


def test_streams_opening_during_a_graceful_restart_are_never_orphaned(
        make_httpd, mpm):
    env = make_httpd(directives={"SSEHeartbeat": "1",
                                 "SSEMaxListeners": "5000"})
    api = env.api
    old = set(env.children())
    storm = Storm(api)
    try:
        time.sleep(1.0)
        env.graceful()
        time.sleep(1.5)
    finally:
        storm.stop()
    assert storm.streams, "the storm opened no stream"
    # every old child goes: none keeps a stream no one serves
    wait_until(lambda: not (old & set(env.children())), 20,
               "old children exited after the graceful restart")
    # what stays open gets heartbeats (1 s) from a child of the new
    # generation; the rest was closed
    seen = {id: len(s.comments) for id, s in storm.streams}
    time.sleep(3)
    live = []
    for id, s in storm.streams:
        # a child that is going sends the client elsewhere with an empty
        # stream (EventSource reconnects), never a 503 (it would give up)
        assert s.status == 200, "register-listener answered %s" % (
            s.status,)
        if s.closed():
            continue
        assert len(s.comments) > seen[id], (
            "a stream opened during the restart is open but silent: %r" % s)
        live.append((id, s))
    new = set(env.children())
    holders = env.pids_holding([s.local_port for id, s in live])
    for id, s in live:
        assert holders.get(s.local_port) in new, (
            "stream %s held by a process outside the new generation" % id)
