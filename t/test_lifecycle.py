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

import pytest

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
    # up to 400 streams: more than SSEMaxStreamsPerChild lets hold threads
    # under prefork and worker (its 503 is test_thread_bound.py's); here
    # the question is what a restart does to streams opening meanwhile
    env = make_httpd(directives={"SSEHeartbeat": "1",
                                 "SSEMaxListeners": "5000",
                                 "SSEMaxStreamsPerChild": "1000"})
    # that bound lets the storm's streams take the threads: httpd may say
    # it is near MaxRequestWorkers (worker: AH00287; prefork: AH00161)
    env.expect_log(r"AH00287|AH00161")
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


def test_hard_restarts_under_load_keep_the_registry_lock_working(
        make_httpd, mpm):
    """`apachectl restart` (SIGHUP) while streams read a publish storm.
    Prefork ends each child from its signal handler, on the thread that
    runs the stream: inside a hold of the registry mutex that made APR
    drop the child's reference to the (pthread) mutex twice, and after a
    few restarts APR destroyed it: every lock of the new generation failed
    (13,745 SSE00162 lines in one run) and no stream could register."""
    from sse_client import StreamGroup, http
    from sse_harness import READY_LINE
    if mpm != "prefork":
        # the bug is prefork's (its children end from a signal handler);
        # under event, hard restarts under load crash httpd itself now
        # and then (1 run in 12): close_worker_sockets() in the child's
        # main thread reads a connection's socket while a worker destroys
        # that connection's pool (close_connection -> push_pool after
        # ap_queue_info_term), no module frame on either stack
        pytest.skip("prefork's signal path; event's own restart race")
    env = make_httpd(profile="debian", shipped_conf=True,
                     directives={"SSEMaxListeners": "1000",
                                 "SSEHistory": "4096"})
    api = env.api
    group = StreamGroup()
    ids = [api.make_id(fresh_name("hup")) for _ in range(40)]
    stop = threading.Event()

    def storm():
        while not stop.is_set():
            try:
                http(env.port, "POST", api.path("notify-listeners", "storm"),
                     timeout=5)
            except OSError:
                pass                # the restart closed the connection

    def reconnect():
        streams = [api.stream(i, wait_headers=False, group=group)
                   for i in ids]
        for s in streams:
            s.wait_headers(30)
        return streams

    reconnect()
    for i in ids:
        api.listen(i, "storm")
    storms = [threading.Thread(target=storm) for _ in range(4)]
    for t in storms:
        t.start()
    try:
        for _ in range(4):
            time.sleep(1.5)
            before = env.read_log().count(READY_LINE)
            rc, out = env.apachectl("-k", "restart")
            assert rc == 0, out
            wait_until(lambda: env.read_log().count(READY_LINE) > before, 20,
                       "the new generation after restart")
            streams = reconnect()
    finally:
        stop.set()
        for t in storms:
            t.join(10)
    assert all(s.status == 200 for s in streams), [s.status for s in streams]
    id, s = api.listener(fresh_name("after"), keys=["after"])
    assert api.notify_listeners("after") == 1
    assert s.next_event(5).payload() == "notify^after"
    s.close()
    group.close()
    failures = [ln for ln in env.read_log().splitlines() if "SSE00162" in ln]
    assert not failures, "%d lock failures: %s" % (len(failures),
                                                  failures[:3])
