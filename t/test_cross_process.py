"""Delivery across child processes: publishes that land on other children
than the ones holding the streams, a graceful restart, and a child killed
with SIGKILL."""

import collections
import concurrent.futures
import os
import signal
import time

from sse_client import (StreamClosed, StreamTimeout, fresh_name,
                        parse_completion as _completion)

STREAMS = 20
PUBLISHES = 200
PARALLEL = 16

# Children small enough that the streams cannot all sit in one: under
# worker each stream holds one of 8 threads (20 streams: 3 children at
# least); under event a child stops accepting past ThreadsPerChild + idle
# threads x AsyncRequestWorkerFactor connections (8 + 8 x 1: 2 children
# at least). Prefork holds one stream per child.
SPREAD = """\
StartServers 4
ServerLimit 8
ThreadsPerChild 8
MaxRequestWorkers 64
MinSpareThreads 8
MaxSpareThreads 64
<IfModule mpm_event_module>
    AsyncRequestWorkerFactor 1
</IfModule>
"""
FEWEST_HOLDERS = {"prefork": STREAMS, "worker": 3, "event": 2}


def open_streams(api, ids, timeout=30.0):
    """Open one stream per id at once (prefork needs time to spawn a child
    per stream) and read each `registered` event."""
    streams = [api.stream(id, wait_headers=False) for id in ids]
    try:
        for id, s in zip(ids, streams):
            s.wait_headers(timeout)
            assert s.status == 200, "register-listener/%s: %s" % (id,
                                                                  s.status)
            ev = s.next_event(timeout)
            assert ev.payload() == "registered^" + id, ev
    except BaseException:
        for s in streams:
            s.close()
        raise
    return streams


def spread_server(make_httpd, mpm):
    if mpm == "prefork":
        return make_httpd()
    return make_httpd(extra_conf=SPREAD)


def assert_spread(env, streams):
    """The streams sit in as many children as the configuration forces;
    the pids holding them, from /proc in one pass."""
    held = env.pids_holding([s.local_port for s in streams])
    assert len(held) == len(streams), (
        "/proc shows the holder of %d of %d streams" % (len(held),
                                                        len(streams)))
    pids = set(held.values())
    fewest = FEWEST_HOLDERS[env.mpm]
    assert len(pids) >= fewest, (
        "%s: %d streams should sit in %d children at least, so that "
        "publishes cross processes; /proc shows %d: %r"
        % (env.mpm, len(streams), fewest, len(pids),
           sorted(collections.Counter(held.values()).items())))
    return pids


def assert_once_in_order(events, expected, what):
    seqs = [e.seq for e in events]
    assert all(a < b for a, b in zip(seqs, seqs[1:])), (
        "%s: ids not strictly increasing: %r" % (what, seqs[:50]))
    dupes = [k for k, n in collections.Counter(expected).items() if n > 1]
    assert not dupes, "%s: delivered twice: %r" % (what, dupes[:10])


def collect(stream, n, deadline):
    """Up to n events before the deadline; fewer if they do not come."""
    got = []
    while len(got) < n:
        try:
            got.append(stream.next_event(max(0.0,
                                             deadline - time.monotonic())))
        except (StreamTimeout, StreamClosed):
            break
    return got


def parallel(fn, args):
    with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(fn, args))


def test_completions_from_many_connections_reach_every_tab_exactly_once(
        make_httpd, mpm):
    httpd = spread_server(make_httpd, mpm)
    api = httpd.api
    name = fresh_name("many")
    ids = [api.make_id(name) for _ in range(STREAMS)]
    streams = open_streams(api, ids)
    try:
        pids = assert_spread(httpd, streams)
        tasks = ["job%d" % i for i in range(PUBLISHES)]
        counts = parallel(lambda t: api.notify_completions(ids[0], t), tasks)
        assert counts == [STREAMS] * PUBLISHES, (
            "every completion reaches all %d tabs; delivered counts seen: "
            "%r" % (STREAMS, sorted(collections.Counter(counts).items())))
        short, missed = {}, {}
        deadline = time.monotonic() + 15
        for id, s in zip(ids, streams):
            events = collect(s, PUBLISHES, deadline)
            got, completions = [], []
            for ev in events:
                if ev.event == "missed":
                    missed.setdefault(id, []).append(ev.data)
                    continue
                _, target, taskid = _completion(ev)
                assert target == id, ("the id inside is the receiver's", ev)
                got.append(taskid)
                completions.append(ev)
            assert_once_in_order(completions, got, id)
            if sorted(got) != sorted(tasks):
                lost = sorted(set(tasks) - set(got),
                              key=lambda t: int(t[3:]))
                short[id] = "%d lost, e.g. %s" % (len(lost),
                                                  " ".join(lost[:8]))
        assert not short and not missed, (
            "%d of %d connected streams lost completions of a burst of %d "
            "(%d ring entries of SSEHistory %s if each tab is one entry).\n"
            "missing tasks: %r\n`event: missed` seen: %r"
            % (len(short), STREAMS, PUBLISHES, PUBLISHES * STREAMS,
               httpd.directives.get("SSEHistory"),
               dict(list(short.items())[:3]),
               {k: v[:3] for k, v in list(missed.items())[:3]}))
        print("%s: %d streams held by %d processes %r"
              % (httpd.mpm, STREAMS, len(pids), sorted(pids)))
    finally:
        for s in streams:
            s.close()


def test_notifies_from_many_connections_reach_every_holder_exactly_once(
        make_httpd, mpm):
    env = spread_server(make_httpd, mpm)
    api = env.api
    key = fresh_name("fan")
    ids = [api.make_id(fresh_name()) for _ in range(STREAMS)]
    streams = open_streams(api, ids)
    try:
        assert_spread(env, streams)
        for id in ids:
            api.listen(id, key)
        counts = parallel(lambda i: api.notify_listeners(
            key, method="POST" if i % 2 else "PUT"), range(PUBLISHES))
        assert counts == [STREAMS] * PUBLISHES, (
            sorted(collections.Counter(counts).items()))
        short = {}
        deadline = time.monotonic() + 15
        for id, s in zip(ids, streams):
            events = collect(s, PUBLISHES, deadline)
            lost = [e.data for e in events if e.event == "missed"]
            events = [e for e in events if e.event != "missed"]
            if len(events) < PUBLISHES or lost:
                short[id] = (len(events), lost[:4])
            assert all(e.payload() == "notify^" + key for e in events), (
                [e for e in events if e.payload() != "notify^" + key][:3])
            seqs = [e.seq for e in events]
            assert_once_in_order(events, seqs, id)
            assert s.pending() == 0
        assert not short, (
            "connected streams that lost notifies of a burst of %d "
            "(stream: (notifies received, `event: missed` data)): %r"
            % (PUBLISHES, dict(list(short.items())[:3])))
        # A stray extra event would show up before this marker.
        for id, s in zip(ids, streams):
            api.notify_completions(id, "end")
            ev = s.next_event(5)
            assert ev.payload().startswith("completed^"), (
                "%s got more than %d notifies: %r" % (id, PUBLISHES, ev))
    finally:
        for s in streams:
            s.close()


def test_takeover_and_disconnect_work_across_processes(httpd, api):
    """Under prefork the second stream and the disconnect are necessarily
    served by other children than the first stream."""
    key = fresh_name("k")
    id, first = api.listener(keys=[key])
    with first:
        first_pid = httpd.pid_holding(first.local_port)
        with api.register(id) as second:
            if httpd.mpm == "prefork":
                assert first_pid != httpd.pid_holding(second.local_port), (
                    "prefork: two streams cannot share a child")
            assert first.wait_closed(5), "takeover from another child"
            api.disconnect(id)
            assert second.wait_closed(5), "disconnect from another child"
    assert id not in api.registrants()


def test_graceful_restart_keeps_listeners_and_queued_events(make_httpd):
    env = make_httpd()
    api = env.api
    key = fresh_name("k")
    away, s = api.listener(keys=[key])
    s.close()
    api.wait_disconnected(away)
    present, sp = api.listener(keys=[key])
    api.notify_listeners(key)
    api.notify_completions(away, "before-restart")
    last = sp.next_event(5)
    assert last.payload() == "notify^" + key, last

    env.graceful()

    regs = api.registrants()
    assert away in regs and present in regs, (
        "graceful restart lost listeners: %r" % sorted(regs))
    assert key in regs[away]["listenKeys"], regs[away]
    with api.register(away) as s2:
        backlog = s2.next_events(2, 5)
        assert backlog[0].payload() == "notify^" + key, backlog
        assert _completion(backlog[1])[2] == "before-restart", backlog
    api.notify_listeners(key)
    try:
        # the old generation's stream shows it, or ends (its child is
        # stopping) and the client resumes below
        assert sp.next_event(5).payload() == "notify^" + key
    except StreamClosed:
        pass
    sp.close()
    with api.register(present, last_event_id=last.id) as sp2:
        # The notify published after the restart comes back whether or
        # not the old-generation stream had shown it.
        ev = sp2.next_event(5)
        assert ev.payload() == "notify^" + key and ev.seq > last.seq, ev
    assert api.make_id("x").startswith("x_")


def test_killed_child_loses_only_its_streams(make_httpd):
    env = make_httpd()
    env.expect_child_signal("Killed")
    api = env.api
    key = fresh_name("k")
    id, s = api.listener(keys=[key])
    bystander_id = api.make_id(fresh_name())
    last = s.registered
    pid = env.pid_holding(s.local_port)
    assert pid, "could not find the child holding the stream in /proc"
    if env.mpm != "prefork":
        # Threaded MPMs: put the bystander on another child if we can.
        for _ in range(10):
            bs = api.register(bystander_id)
            if env.pid_holding(bs.local_port) != pid:
                break
            bs.close()
        else:
            bs = None
    else:
        bs = api.register(bystander_id)
    try:
        os.kill(pid, signal.SIGKILL)
        assert s.wait_closed(5), "the killed child's stream did not end"
        # Its listener is resumable: back to registered, not connected.
        api.wait_disconnected(id, timeout=15)
        api.notify_listeners(key)
        api.notify_completions(id, "after-kill")
        with api.register(id, last_event_id=last.id) as s2:
            evs = s2.next_events(2, 5)
            assert evs[0].payload() == "notify^" + key, evs
            assert _completion(evs[1])[2] == "after-kill", evs
        if bs is not None:
            assert not bs.closed(), "a stream of another child was lost"
            api.notify_completions(bystander_id, "still-here")
            assert _completion(bs.next_event(5))[2] == "still-here"
        with api.register(api.make_id(fresh_name())):
            pass
    finally:
        if bs is not None:
            bs.close()
        s.close()




def test_configured_secret_keeps_ids_valid_across_a_full_restart(make_httpd):
    env = make_httpd(directives={"SSESecret": "a-test-secret-0123456789"})
    api = env.api
    id = api.make_id(fresh_name())
    env.stop()
    env.start()
    with api.register(id):
        pass


def test_ids_from_a_random_secret_die_with_the_server(make_httpd):
    env = make_httpd()
    api = env.api
    id = api.make_id(fresh_name())
    env.stop()
    env.start()
    with api.stream(id) as s:
        assert s.status == 404, (
            "without SSESecret the secret is random per start, so an id "
            "from before a full restart is unknown; got %s" % s.status)
