"""Children killed with SIGKILL in the middle of registry work, again and
again, while others keep using it: the registry lock (a robust
process-shared mutex) is never wedged, and nothing but the dead child's
own requests is lost. The kills land at random points; many land while
the victim copies a large registry under the lock."""

import http.client
import os
import random
import signal
import threading
import time

from sse_client import fresh_name

LISTENERS = 400
KILLS = 12


def hammer(env, api, stop):
    """list-registrants (a long copy under the lock) and notifies, on one
    keep-alive connection, until told to stop or the child dies."""
    conn = http.client.HTTPConnection("127.0.0.1", env.port, timeout=10)
    try:
        while not stop.is_set():
            conn.request("GET", api.path("list-registrants"))
            conn.getresponse().read()
            conn.request("POST", api.path("notify-listeners", "chaos"))
            conn.getresponse().read()
    except (OSError, http.client.HTTPException):
        pass        # our child was killed: expected
    finally:
        conn.close()


def test_sigkill_during_registry_work_never_wedges_the_lock(make_httpd):
    env = make_httpd(directives={"SSEMaxListeners": "1000"})
    env.expect_log(r"AH00052")      # "child pid ... exit signal Killed"
    env.expect_log(r"AH1039[23]")   # "children are killed successively!"
    env.expect_log(r"SSE00004")     # a kill inside the lock: rebuilt
    api = env.api
    ids = [api.make_id(fresh_name("chaos")) for _ in range(LISTENERS)]
    for id in ids:
        api.register(id).close()
        api.listen(id, "chaos")
    rnd = random.Random(4242)
    for _ in range(KILLS):
        stop = threading.Event()
        conn_threads = [threading.Thread(target=hammer,
                                         args=(env, api, stop))
                        for _ in range(3)]
        for t in conn_threads:
            t.start()
        time.sleep(0.3 + rnd.random() * 0.3)
        victims = env.children()
        if victims:
            os.kill(rnd.choice(victims), signal.SIGKILL)
        stop.set()
        for t in conn_threads:
            t.join(15)
            assert not t.is_alive(), (
                "a request hung after a child was killed: the registry "
                "lock is wedged")
    # the survivors and the new children still get the lock
    regs = api.registrants()
    assert sum(1 for id in ids if id in regs) == LISTENERS, (
        "no listener was lost to the kills")
    assert api.notify_listeners("chaos") == LISTENERS
    with api.register(ids[0]) as s:
        assert s.next_event(5) is not None
