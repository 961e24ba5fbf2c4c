"""The demo module (examples/mod_sse_demo.c) over HTTP, under every MPM:
submit-task as the seed's demo server answers it, the progress task's
payload events, the clock-tick key, and a pending task that outlives the
child which accepted it."""

import json
import os
import re
import time

import pytest

from sse_client import StreamClosed, StreamTimeout, forge_id, fresh_name, \
    http, parse_completion
from sse_harness import wait_until

DEMO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), "examples", ".libs", "mod_sse_demo.so")


def demo_conf(extra=""):
    return """
LoadModule sse_demo_module %s
LogLevel sse_demo:debug
%s
""" % (DEMO, extra)


@pytest.fixture
def env(make_httpd):
    assert os.path.exists(DEMO), "make examples/.libs/mod_sse_demo.so"
    return make_httpd(extra_conf=demo_conf())


def submit(env, id, taskid, method="PUT", prefix="/sse/"):
    return http(env.port, method, "%ssubmit-task/%s/%s" % (prefix, id, taskid))


def assert_answer(resp, status, body, what):
    assert resp.status == status, "%s: expected %d\n%s" % (
        what, status, resp.describe())
    assert resp.content_type == "text/plain", resp.describe()
    assert resp.headers.get("Cache-Control") == "no-store", resp.describe()
    assert resp.text.rstrip("\n") == body, "%s: body\n%s" % (
        what, resp.describe())


def log_lines(env, tag):
    return [ln for ln in env.read_log().splitlines() if tag in ln]


def assert_plain_completion(ev, id, taskid):
    """The seed's bytes: no event field, data a JSON string completed^."""
    assert ev.event is None, "the original client ignores named events: %r" \
        % ev
    assert ev.raw == ('id: %s\ndata:%s\n\n' % (ev.id, json.dumps(
        ev.payload(), separators=(",", ":")))).encode(), ev.raw
    _, target, tid = parse_completion(ev)
    assert (target, tid) == (id, taskid), ev


# -- submit-task ---------------------------------------------------------

def test_ad_hoc_task_completes_at_once_on_the_stream(env):
    api = env.api
    id, s = api.listener(fresh_name("adhoc"))
    t0 = time.time()
    assert_answer(submit(env, id, "ad-hoc"), 200, "ok", "ad-hoc")
    ev = s.next_event(2)
    assert_plain_completion(ev, id, "ad-hoc")
    ts = parse_completion(ev)[0]
    assert abs(ts / 1000.0 - t0) < 2, "timestamp is ms since the epoch"


def test_timeout_task_completes_after_five_seconds(env):
    api = env.api
    id, s = api.listener(fresh_name("slow"))
    t0 = time.monotonic()
    assert_answer(submit(env, id, "timeout_task"), 200, "ok", "timeout_task")
    with pytest.raises(StreamTimeout):
        ev = s.next_event(4.0)
        pytest.fail("timeout_task completed after %.1f s, before 4 s: %r"
                    % (time.monotonic() - t0, ev))
    ev = s.next_event(max(0.1, 7.0 - (time.monotonic() - t0)))
    took = time.monotonic() - t0
    assert_plain_completion(ev, id, "timeout_task")
    assert 4.0 <= took <= 7.0, "completed after %.2f s" % took


# -- progress: payload events (docs/demo.md) ---------------------------------

def progress_raw(ev, name, percent):
    return ('id: %s\nevent: notify\ndata: {"key":"progress","data":'
            '{"name":"%s","taskid":"progress","percent":%d}}\n\n'
            % (ev.id, name, percent)).encode()


def assert_progress_result(ev, id):
    """`completed` with the result; returns the ms the task took."""
    assert ev.event == "completed", ev
    doc = json.loads(ev.data)
    assert ev.raw == ('id: %s\nevent: completed\ndata: {"timestamp":%d,'
                      '"id":"%s","taskid":"progress","data":{"result":'
                      '"done","steps":4,"ms":%d}}\n\n'
                      % (ev.id, doc["timestamp"], id,
                         doc["data"]["ms"])).encode(), ev.raw
    assert abs(doc["timestamp"] / 1000.0 - time.time()) < 2, doc
    return doc["data"]["ms"]


def test_progress_task_notifies_four_steps_then_completes_with_a_result(env):
    api = env.api
    name = fresh_name("prog")
    id, s = api.listener(name, keys=["progress"])
    t0 = time.monotonic()
    assert_answer(submit(env, id, "progress"), 200, "ok", "progress")
    evs = s.next_events(5, 4.0)
    took = time.monotonic() - t0
    for ev, pct in zip(evs, (25, 50, 75, 100)):
        assert ev.raw == progress_raw(ev, name, pct), (
            "step %d %%: %r" % (pct, ev.raw))
    ms = assert_progress_result(evs[4], id)
    assert [e.seq for e in evs] == sorted(e.seq for e in evs), evs
    at = [e.at - evs[0].at for e in evs]
    assert 1.0 <= at[3] <= 2.5 and at[4] - at[3] < 0.5, (
        "steps half a second apart, the result right after 100 %%: %r" % at)
    assert 1900 <= ms <= 3000 and took <= 3.5, (ms, took)
    with pytest.raises(StreamTimeout):
        pytest.fail("nothing more, no plain notify^ or completed^: %r"
                    % s.next_event(1.0))


def test_progress_reaches_key_holders_and_its_result_every_tab(env):
    """The steps go to whoever holds the key `progress` (with the name of
    the submitter, never its id); the result, as every completion, to each
    id of the name, with its own id."""
    api = env.api
    name = fresh_name("prog")
    id1, s1 = api.listener(name, keys=["progress"])
    id2, s2 = api.listener(name)
    other, so = api.listener(fresh_name("watch"), keys=["progress"])
    assert_answer(submit(env, id1, "progress"), 200, "ok", "progress")
    assert len(s1.next_events(5, 4.0)) == 5
    steps = so.next_events(4, 4.0)
    assert [json.loads(e.data)["data"] for e in steps] == [
        {"name": name, "taskid": "progress", "percent": p}
        for p in (25, 50, 75, 100)], steps
    assert all(id1 not in e.data for e in steps), "the id stays private"
    assert_progress_result(s2.next_event(4.0), id2)
    for who, st in (("the other tab", s2), ("another user", so)):
        with pytest.raises(StreamTimeout):
            pytest.fail("%s got more: %r" % (who, st.next_event(0.5)))


def test_completion_reaches_every_tab_of_the_user(env):
    api = env.api
    name = fresh_name("tabs")
    id1, s1 = api.listener(name)
    id2, s2 = api.listener(name)
    assert_answer(submit(env, id1, "ad-hoc"), 200, "ok", "ad-hoc")
    assert parse_completion(s1.next_event(2))[1:] == (id1, "ad-hoc")
    assert parse_completion(s2.next_event(2))[1:] == (id2, "ad-hoc"), \
        "the other tab of the same name gets it, framed with its own id"


def test_unknown_task_is_500_and_unknown_id_404(env):
    api = env.api
    id, s = api.listener(fresh_name("unk"))
    assert_answer(submit(env, id, "no-such-task"), 500,
                  "no task for: no-such-task", "unknown task")
    never_registered = api.make_id(fresh_name("ghost"))
    assert_answer(submit(env, never_registered, "ad-hoc"), 404,
                  "not found", "an issued id with no listener")
    forged = forge_id(id)
    assert_answer(submit(env, forged, "ad-hoc"), 404, "not found",
                  "an id the server did not issue")
    assert_answer(submit(env, forged, "no-such-task"), 404, "not found",
                  "the id is checked before the task, as in the seed")
    with pytest.raises(StreamTimeout):
        pytest.fail("nothing should arrive: %r" % s.next_event(1.0))


@pytest.mark.parametrize("tail", [
    "",                                 # submit-task alone
    "/",
    "/onlyone",
    "/{id}",
    "/{id}/",
    "/{id}/ad-hoc/extra",
    "//ad-hoc",
    "/no-underscore/ad-hoc",
    "/_suffixonly/ad-hoc",
    "/name_/ad-hoc",
    "/.name_abc/ad-hoc",
    "/na%20me_abc/ad-hoc",
    "/{id}/-dash-first",
    "/{id}/bad%40task",
    "/{id}/%2e%2e",
    "/{id}/" + "t" * 65,
    "/" + "n" * 65 + "_abc/ad-hoc",
    "/name_ab-c/ad-hoc",
])
def test_malformed_segments_get_400_and_change_nothing(env, tail):
    api = env.api
    id, s = api.listener(fresh_name("bad"))
    path = "/sse/submit-task" + tail.replace("{id}", id)
    resp = http(env.port, "PUT", path)
    assert resp.status == 400, "%s\n%s" % (path, resp.describe())
    assert resp.content_type == "text/plain", resp.describe()
    reason = resp.text.rstrip("\n")
    assert reason and "\n" not in reason, "one-line reason: %r" % resp.text
    with pytest.raises(StreamTimeout):
        pytest.fail("%s queued something: %r" % (path, s.next_event(0.5)))


def test_wrong_method_is_405_and_preflight_answers(env):
    id = env.api.make_id(fresh_name("meth"))
    for method in ("GET", "POST", "DELETE"):
        resp = submit(env, id, "ad-hoc", method=method)
        assert resp.status == 405, "%s\n%s" % (method, resp.describe())
        assert resp.headers.tokens("Allow") == {"PUT", "OPTIONS"}, \
            resp.describe()
    resp = submit(env, id, "ad-hoc", method="OPTIONS")
    assert resp.status == 204, resp.describe()
    assert "PUT" in resp.headers.tokens("Access-Control-Allow-Methods")
    assert resp.headers.get("Access-Control-Allow-Origin") == "*"


def test_a_large_body_is_refused_unread(env):
    id = env.api.make_id(fresh_name("body"))
    resp = http(env.port, "PUT", "/sse/submit-task/%s/ad-hoc" % id,
                body=b"x" * 5000)
    assert resp.status == 413, resp.describe()


def test_a_full_task_table_answers_503_and_recovers(env):
    env.expect_log(r"SSE00106")
    api = env.api
    id, s = api.listener(fresh_name("full"))
    statuses = [submit(env, id, "timeout_task").status for _ in range(256)]
    assert statuses == [200] * 256, "256 pending tasks fit"
    resp = submit(env, id, "timeout_task")
    assert resp.status == 503 and resp.headers.get("Retry-After"), \
        resp.describe()
    assert submit(env, id, "ad-hoc").status == 200, \
        "ad-hoc needs no table slot"
    got = {}
    deadline = time.monotonic() + 10
    while sum(got.values()) < 257 and time.monotonic() < deadline:
        tid = parse_completion(s.next_event(10))[2]
        got[tid] = got.get(tid, 0) + 1
    assert got == {"ad-hoc": 1, "timeout_task": 256}, got
    assert submit(env, id, "timeout_task").status == 200, \
        "slots are free again once their tasks completed"


# -- the route's prefix ------------------------------------------------------

def test_ssedemoprefix_moves_the_route_with_ssepfrefix(make_httpd):
    env = make_httpd(directives={"SSEPrefix": "/events/"},
                     extra_conf=demo_conf("SSEDemoPrefix /events/"))
    api = env.api
    assert api.prefix == "/events/"
    id, s = api.listener(fresh_name("pfx"))
    assert_answer(submit(env, id, "ad-hoc", prefix="/events/"), 200, "ok",
                  "under SSEDemoPrefix")
    assert parse_completion(s.next_event(2))[2] == "ad-hoc"
    resp = submit(env, id, "ad-hoc", prefix="/sse/")
    assert resp.status in (404, 405), \
        "nothing claims the default prefix any more:\n" + resp.describe()


def test_a_bad_ssedemoprefix_is_refused_at_config_time(make_httpd):
    env = make_httpd(start=False,
                     extra_conf=demo_conf("SSEDemoPrefix no-slash"))
    rc, out = env.check_config()
    assert rc != 0 and "SSEDemoPrefix" in out, out


# -- clock-tick ----------------------------------------------------------

def probe_gap(api, probe, key, seconds):
    """How many events the registry published in @seconds, measured by
    the sequence numbers of two notifies to a key only @probe holds."""
    api.notify_listeners(key)
    first = probe.next_event(2)
    assert first.payload() == "notify^" + key, first
    time.sleep(seconds)     # the span measured: time must pass
    api.notify_listeners(key)
    last = probe.next_event(2)
    assert last.payload() == "notify^" + key, last
    return last.seq - first.seq - 1


def test_clock_ticks_every_second_while_listened_and_stops_after(env):
    api = env.api
    key = fresh_name("probe")
    _, probe = api.listener(fresh_name("probe"), keys=[key])
    id, s = api.listener(fresh_name("clock"), keys=["clock-tick"])
    ticks = s.next_events(5, 7)
    assert all(t.payload() == "notify^clock-tick" for t in ticks), ticks
    gaps = [b.at - a.at for a, b in zip(ticks, ticks[1:])]
    # on a schedule: a late tick makes the next gap short, not the average
    assert 3.2 <= sum(gaps) <= 5.0 and max(gaps) <= 2.0, \
        "ticks should come about once a second, from one ticker: %r" % gaps

    published = probe_gap(api, probe, key, 3.0)
    assert 2 <= published <= 4, \
        "%d events in 3 s while clock-tick is held" % published

    api.disconnect(id)
    assert s.wait_closed(5), "disconnect ends the stream"
    wait_until(lambda: log_lines(env, "nobody listens"), 3,
               "the demo logging (SSE00109) that ticking stops")
    published = probe_gap(api, probe, key, 3.0)
    assert published == 0, \
        "%d events published in 3 s with nobody on clock-tick" % published


# -- graceful restart -------------------------------------------------------

def wait_completion(api, id, stream, last, timeout):
    """The completion for @id within @timeout, reconnecting with
    Last-Event-ID when the old generation ends the stream."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            ev = stream.next_event(max(0.0, left))
        except StreamClosed:
            stream.close()
            stream = api.stream(id, last_event_id=last)
            assert stream.status == 200, stream.status
            continue
        last = ev.id
        if ev.payload().startswith("completed^"):
            return ev, stream


def test_pending_task_survives_graceful_restart(env):
    api = env.api
    id, s = api.listener(fresh_name("grace"))
    before = set(env.children())
    t0 = time.monotonic()
    assert_answer(submit(env, id, "timeout_task"), 200, "ok", "submit")
    env.graceful()
    assert time.monotonic() - t0 < 4, "graceful took too long to test"
    ev, s = wait_completion(api, id, s, s.registered.id,
                            7.0 - (time.monotonic() - t0))
    took = time.monotonic() - t0
    assert parse_completion(ev)[1:] == (id, "timeout_task"), ev
    assert 4.0 <= took <= 7.0, "completed after %.2f s" % took
    done = log_lines(env, "SSE00107")
    assert done, "the demo logs each completion"
    pid = int(re.search(r"\[pid (\d+)", done[-1]).group(1))
    assert pid not in before, (
        "the completion should come from the new generation (pid %d, old "
        "children %r)" % (pid, sorted(before)))
    s.close()
