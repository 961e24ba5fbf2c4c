"""Children killed with SIGKILL in the middle of registry work, again and
again, while others keep using it: the registry lock (a robust
process-shared mutex) is never wedged, and nothing but the dead child's
own requests is lost. The kills land at random points; many land while
the victim copies a large registry under the lock."""

import concurrent.futures
import http.client
import json
import os
import random
import signal
import socket
import threading
import time

from sse_client import StreamClosed, StreamTimeout, fresh_name

LISTENERS = 400
HELD = 12           # of them with a stream open through the chaos
KILLS = 12
HAMMERS = 3
# A request that takes longer than this is stuck behind the registry lock:
# the longest legitimate one (list-registrants of 400) takes milliseconds.
DEADLINE = 5.0
ALLOWED = {200}     # every route the hammer uses answers 200 or fails
# What a client sees when the child serving its connection is killed.
RESETS = (ConnectionResetError, BrokenPipeError,
          http.client.RemoteDisconnected, http.client.IncompleteRead)


class Hammer(threading.Thread):
    """list-registrants (a long copy under the lock) and notifies, on one
    keep-alive connection (a new one when the old one ends), until told to
    stop. Records every request's outcome."""

    def __init__(self, env, api, stop, killed):
        super().__init__(daemon=True)
        self.env, self.api, self.stop, self.killed = env, api, stop, killed
        self.done = 0
        self.resets = []        # tolerated: the serving child was killed
        self.failures = []      # anything else
        self.hung = None

    def _check(self, resp, what):
        body = resp.read()
        if resp.status not in ALLOWED:
            self.failures.append("%s: HTTP %d %r" % (what, resp.status,
                                                     body[:200]))
        elif what == "notify" and json.loads(body) != {
                "delivered": LISTENERS}:
            self.failures.append("notify delivered to fewer than %d: %r"
                                 % (LISTENERS, body[:200]))

    def run(self):
        conn, pid, sock = None, None, None
        reused_reset = False    # one retry of a GET on a closed keep-alive
        while not self.stop.is_set():
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.env.port,
                                                  timeout=DEADLINE)
            started = time.monotonic()
            what = "list-registrants"
            try:
                conn.request("GET", self.api.path("list-registrants"))
                self._check(conn.getresponse(), what)
                if conn.sock is not sock:   # a new connection: whose?
                    sock = conn.sock
                    pid = (self.env.pid_holding(sock.getsockname()[1])
                           if sock else None)
                what = "notify"
                conn.request("POST", self.api.path("notify-listeners",
                                                   "chaos"))
                self._check(conn.getresponse(), what)
                self.done += 2
                reused_reset = False
            except socket.timeout:
                self.hung = "%s took over %.0fs (child %s)" % (
                    what, time.monotonic() - started, pid)
                break
            except RESETS as e:
                # the child holding the connection, or one that took it
                # while the kill landed, was killed
                if pid in self.killed or (pid is None and self.killed):
                    self.resets.append((pid, repr(e)))
                elif what == "list-registrants" and sock is not None \
                        and not reused_reset:
                    # a GET on a kept-alive connection the server closed
                    # meanwhile (RFC 9112 9.3.1: a client retries an
                    # idempotent request once, on a new connection)
                    reused_reset = True
                    self.resets.append((pid, "keep-alive: " + repr(e)))
                else:
                    self.failures.append("%s: %r on a connection of child "
                                         "%s, not killed" % (what, e, pid))
                conn.close()
                conn, pid, sock = None, None, None
            except (OSError, http.client.HTTPException) as e:
                self.failures.append("%s: %r (child %s)" % (what, e, pid))
                conn.close()
                conn, pid, sock = None, None, None
        if conn is not None:
            conn.close()


def read_until(stream, payload, timeout):
    """Skip events until one with @payload; it must come in time."""
    deadline = time.monotonic() + timeout
    while True:
        ev = stream.next_event(max(0.0, deadline - time.monotonic()))
        if ev.event != "missed" and ev.payload() == payload:
            return ev


def test_sigkill_during_registry_work_never_wedges_the_lock(make_httpd):
    env = make_httpd(directives={"SSEMaxListeners": "1000"})
    env.expect_child_signal("Killed")   # the test's own SIGKILLs
    env.expect_log(r"AH1039[23]")   # "children are killed successively!"
    env.expect_log(r"SSE00004")     # a kill inside the lock: rebuilt
    api = env.api
    ids = [api.make_id(fresh_name("chaos")) for _ in range(LISTENERS)]
    for id in ids[HELD:]:
        api.register(id).close()
    held = {id: api.register(id, timeout=30) for id in ids[:HELD]}
    for id in ids:
        api.listen(id, "chaos")
        api.listen(id, "after")
    rnd = random.Random(4242)
    killed = set()
    requests = resets = 0
    for round in range(KILLS):
        stop = threading.Event()
        hammers = [Hammer(env, api, stop, killed) for _ in range(HAMMERS)]
        for h in hammers:
            h.start()
        # let the hammers get into registry work: the kill lands wherever
        # the victim is at a random moment, that is the point
        time.sleep(0.3 + rnd.random() * 0.3)
        victims = env.children()
        assert victims, "round %d: no child to kill" % round
        victim = rnd.choice(victims)
        killed.add(victim)
        os.kill(victim, signal.SIGKILL)
        time.sleep(0.2)     # keep hammering the survivors after the kill
        stop.set()
        for h in hammers:
            h.join(DEADLINE + 5)
            assert not h.is_alive() and h.hung is None, (
                "round %d: a request hung after child %d was killed: the "
                "registry lock is wedged (%s)" % (round, victim, h.hung))
            assert not h.failures, (
                "round %d: requests failed other than by the kill of their "
                "child %d: %r" % (round, victim, h.failures[:5]))
            requests += h.done
            resets += len(h.resets)
    assert requests > KILLS * HAMMERS, (
        "the hammers hardly ran (%d requests)" % requests)
    print("%d requests, %d reset by the %d kills"
          % (requests, resets, KILLS))

    # the survivors and the new children still get the lock
    regs = api.registrants()
    lost = [id for id in ids if id not in regs]
    assert not lost, "listeners lost to the kills: %r" % lost[:5]
    assert api.notify_listeners("after") == LISTENERS
    # every listener gets it: on its stream if its child survived, else
    # when it comes back (the rest resume from their dormant state)
    resumed = 0
    for id, s in held.items():
        try:
            read_until(s, "notify^after", 10)
            continue
        except StreamClosed:
            s.close()
        resumed += 1
        with api.register(id) as again:
            read_until(again, "notify^after", 10)

    def comes_back(id):
        with api.register(id, timeout=15) as s:
            try:
                read_until(s, "notify^after", 10)
            except (StreamTimeout, StreamClosed) as e:
                raise AssertionError("%s resumed without the event "
                                     "published after the chaos: %s"
                                     % (id, e))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(comes_back, ids[HELD:]))
    print("%d of %d held streams ended by the kills, resumed"
          % (resumed, HELD))
