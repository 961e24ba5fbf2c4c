"""The event stream: headers and exact bytes, heartbeats, who receives
what, takeover, disconnect, resume, history overflow, a full table and
cleanup of dormant listeners."""

import json
import os
import re
import time

import pytest

from sse_client import fresh_name, parse_completion

def completion(ev):
    return parse_completion(ev)


def taskid_of(ev):
    return completion(ev)[2]


def assert_next_is_sentinel(api, stream, id, what):
    """Publish a completion marker to `id` and check it is the very next
    event on `stream`: nothing else was queued before it."""
    marker = fresh_name("sentinel")
    api.notify_completions(id, marker)
    ev = stream.next_event(5)
    assert ev.payload().startswith("completed^") and \
        taskid_of(ev) == marker, (
            "%s: expected nothing before the marker %s, got %r"
            % (what, marker, ev))


def assert_increasing(events, what):
    seqs = [ev.seq for ev in events]
    assert all(a < b for a, b in zip(seqs, seqs[1:])), (
        "%s: event ids must strictly increase, got %r" % (what, seqs))


# -- headers and bytes --------------------------------------------------------

def test_stream_answers_with_event_stream_headers(api):
    id = api.make_id(fresh_name())
    with api.stream(id) as s:
        assert s.status == 200, "register-listener: %s %s" % (s.status,
                                                               s.reason)
        h = s.headers
        assert h.get("Content-Type", "").split(";")[0] == \
            "text/event-stream", h
        assert h.get("Cache-Control") == "no-cache", h
        assert h.get("Access-Control-Allow-Origin") == "*", h
        assert h.get("X-Accel-Buffering") == "no", h
        assert "Content-Length" not in h, (
            "a stream has no Content-Length: %r" % h)
        assert "Content-Encoding" not in h, (
            "a stream must not be compressed: %r" % h)
        s.next_event(5)


def test_stream_opens_with_retry_then_the_registered_event(api):
    id = api.make_id(fresh_name())
    with api.register(id) as s:
        raw = bytes(s.raw_bytes)
        m = re.match(rb'retry: 3000\n\nid: (\d+)\ndata:"registered\^'
                     + re.escape(id.encode()) + rb'"\n\n', raw)
        assert m, ('stream should start with exactly b\'retry: 3000\\n\\n'
                   'id: <n>\\ndata:"registered^%s"\\n\\n\', got %r'
                   % (id, raw[:300]))
        assert s.retry == 3000
        assert s.registered.id == m.group(1).decode()


def test_heartbeat_comment_arrives_on_an_idle_stream(api):
    id, s = api.listener()
    with s:
        first = s.wait_comment(2.5, after=0)
        assert first.text == "heartbeat", first
        assert b"\n\n: heartbeat\n\n" in bytes(s.raw_bytes), (
            "heartbeat should be the line ': heartbeat' and a blank line: "
            "%r" % bytes(s.raw_bytes[-200:]))
        second = s.wait_comment(2.5, after=1)
        assert second.at > first.at, (first, second)
        assert s.pending() == 0, "heartbeats are comments, not events"


FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


@pytest.mark.skipif(not os.path.exists(FAKETIME),
                    reason="libfaketime not installed (t/install-deps.sh)")
@pytest.mark.skipif(bool(os.environ.get("SSE_TEST_PRELOAD")),
                    reason="t/sanitize.sh: apache2 with the sanitizer "
                    "runtime and libfaketime both preloaded hangs at start")
def test_heartbeats_go_on_when_the_wall_clock_steps_back(make_httpd):
    """NTP setting the clock at boot, or a virtual machine restored,
    steps the wall clock; httpd's alone here, an hour back, through
    libfaketime (the monotonic clock untouched). Heartbeats are due by
    the monotonic clock, so they keep coming every SSEHeartbeat (1 s)
    instead of stopping for the hour."""
    env = make_httpd(start=False)
    # in the server's root: the children, another user, read it too
    offset = os.path.join(env.root, "faketime")
    with open(offset, "w") as f:
        f.write("+0\n")
    os.chmod(offset, 0o644)
    env.environ.update({
        "LD_PRELOAD": FAKETIME,
        "FAKETIME_TIMESTAMP_FILE": offset,
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    })
    env.start()
    id, s = env.api.listener()
    with s:
        s.wait_comment(2.5, after=0)
        with open(offset, "w") as f:
            f.write("-3600\n")
        seen = len(s.comments)
        # the step lands between two beats: the next two come as before
        s.wait_comment(2.5, after=seen)
        last = s.wait_comment(2.5, after=seen + 1)
        assert last.text == "heartbeat", last
        # and the server's wall clock did step: a listener made now is
        # registered an hour ago
        other, s2 = env.api.listener()
        with s2:
            listed = env.api.request("GET", "list-registrants").json()
        lag = time.time() * 1000 - listed[other]["registered-ts"]
        assert 3500 * 1000 < lag < 3700 * 1000, listed[other]


# -- who receives what --------------------------------------------------------

def test_notify_reaches_holders_only_and_counts_them(api):
    key = fresh_name("news")
    a, sa = api.listener(keys=[key])
    b, sb = api.listener(keys=[key, fresh_name("other")])
    c, sc = api.listener(keys=[fresh_name("other")])
    with sa, sb, sc:
        assert api.notify_listeners(key) == 2, (
            "two listeners hold %s" % key)
        for who, s in (("a", sa), ("b", sb)):
            ev = s.next_event(5)
            assert ev.payload() == "notify^" + key, (who, ev)
            assert ev.event is None, ("notify is an unnamed event", ev)
        assert_next_is_sentinel(api, sc, c, "listener without the key")
        assert_next_is_sentinel(api, sa, a, "holder after one notify")


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_notify_event_framing_is_byte_exact(api, method):
    key = fresh_name("k")
    id, s = api.listener(keys=[key])
    with s:
        assert api.notify_listeners(key, method=method) == 1
        ev = s.next_event(5)
        expected = b'id: %d\ndata:"notify^%s"\n\n' % (ev.seq, key.encode())
        assert ev.raw == expected, (
            "notify event bytes: expected %r, got %r" % (expected, ev.raw))
        assert ev.seq > s.registered.seq, (
            "seq must increase: registered %s, notify %s"
            % (s.registered.id, ev.id))


def test_listening_twice_to_a_key_delivers_once(api):
    key = fresh_name("dup")
    id, s = api.listener(keys=[key, key])
    with s:
        assert api.notify_listeners(key) == 1, (
            "one listener holds %s (twice)" % key)
        assert s.next_event(5).payload() == "notify^" + key
        assert_next_is_sentinel(api, s, id, "after one notify")


def test_completion_reaches_every_tab_of_a_user_but_not_a_longer_name(api):
    name = fresh_name("alice")
    tab1, s1 = api.listener(name)
    tab2, s2 = api.listener(name)
    longer, sl = api.listener(name + "2")
    other, so = api.listener()
    with s1, s2, sl, so:
        before = int(time.time() * 1000)
        assert api.notify_completions(tab1, "task-7") == 2, (
            "two ids have the name %s" % name)
        after = int(time.time() * 1000)
        for tab, s in ((tab1, s1), (tab2, s2)):
            ev = s.next_event(5)
            ts, target, taskid = completion(ev)
            assert target == tab, (
                "the id inside is the receiving listener's: %r" % ev)
            assert taskid == "task-7", ev
            assert before - 5000 <= ts <= after + 5000, (
                "timestamp is ms since the epoch, now-ish: %d not in "
                "[%d, %d]" % (ts, before, after))
            assert ev.seq > s.registered.seq, ev
        assert_next_is_sentinel(api, sl, longer,
                                "name %s2 is not name %s" % (name, name))
        assert_next_is_sentinel(api, so, other, "another user")


def test_completion_matches_the_whole_name_up_to_the_last_underscore(api):
    base = fresh_name("carol")
    plain, sp = api.listener(base)
    under, su = api.listener(base + "_x")
    with sp, su:
        assert api.notify_completions(under, "t-under") == 1, (
            "the name of %s is %s_x, and only one id has it" % (under, base))
        assert completion(su.next_event(5))[1:] == (under, "t-under")
        assert_next_is_sentinel(api, sp, plain,
                                "name %s is not name %s_x" % (base, base))
        assert api.notify_completions(plain, "t-plain") == 1, (
            "name %s must not match %s_x" % (base, base))
        assert completion(sp.next_event(5))[1:] == (plain, "t-plain")
        assert_next_is_sentinel(api, su, under,
                                "name %s_x is not name %s" % (base, base))


def test_completion_event_framing_is_byte_exact(api):
    id, s = api.listener()
    with s:
        assert api.notify_completions(id, "t.1~x-y", method="PUT") == 1
        ev = s.next_event(5)
        ts = completion(ev)[0]
        expected = (b'id: %d\ndata:"completed^{\\"timestamp\\":%d,'
                    b'\\"id\\":\\"%s\\",\\"taskid\\":\\"t.1~x-y\\"}"\n\n'
                    % (ev.seq, ts, id.encode()))
        assert ev.raw == expected, (
            "completion bytes: expected %r, got %r" % (expected, ev.raw))


def test_completion_from_another_tab_reaches_the_sender_too(api):
    name = fresh_name("bob")
    tab1, s1 = api.listener(name)
    tab2, s2 = api.listener(name)
    with s1, s2:
        assert api.notify_completions(tab2, "t2") == 2
        assert completion(s1.next_event(5))[1:] == (tab1, "t2")
        assert completion(s2.next_event(5))[1:] == (tab2, "t2")


def test_event_ids_increase_across_kinds_of_event(api):
    key = fresh_name("mix")
    id, s = api.listener(keys=[key])
    with s:
        for i in range(5):
            api.notify_listeners(key)
            api.notify_completions(id, "t%d" % i)
        events = [s.registered] + s.next_events(10, 10)
        assert_increasing(events, id)


# -- disconnect and takeover --------------------------------------------------

def test_disconnect_ends_the_stream_and_retires_the_id(api):
    key = fresh_name("k")
    id, s = api.listener(keys=[key])
    with s:
        api.disconnect(id)
        assert s.wait_closed(5), (
            "the server must end the stream of a disconnected registrant; "
            "last bytes %r" % bytes(s.raw_bytes[-200:]))
        assert s.error is None, "stream ended with an error: %r" % s.error
    assert id not in api.registrants(), "%s still listed" % id
    assert api.notify_listeners(key) == 0
    resp = api.request("PUT", "listen", id, "k2")
    assert resp.status == 404, "listen on a removed id\n" + resp.describe()
    resp = api.request("GET", "disconnect-registrant", id)
    assert resp.status == 404, ("a second disconnect finds nothing\n"
                                + resp.describe())
    with api.stream(id) as again:
        assert again.status == 204, (
            "a retired id gets 204 so EventSource stops reconnecting, "
            "got %s" % again.status)
        assert again.body(5) == b"", "204 has no body"
    assert id not in api.registrants(), "a 204 must not re-create it"


def test_second_register_takes_over_and_ends_the_older_stream(api):
    key = fresh_name("k")
    id, old = api.listener(keys=[key])
    with old:
        with api.register(id) as new:
            assert old.wait_closed(5), (
                "the older stream must be ended by the takeover")
            assert api.notify_listeners(key) == 1, (
                "one listener, one stream, after takeover")
            assert new.next_event(5).payload() == "notify^" + key
            entry = api.registrants()[id]
            assert entry["connected"] is True, entry
            assert entry["listenKeys"] == [key], (
                "takeover keeps the listen keys: %r" % entry)


# -- resume -------------------------------------------------------------------

def test_events_queued_while_away_are_replayed_on_reconnect(api):
    key = fresh_name("k")
    id, s = api.listener(keys=[key])
    s.close()
    api.wait_disconnected(id)
    api.notify_completions(id, "away-1")
    api.notify_listeners(key)
    api.notify_completions(id, "away-2")
    with api.register(id) as s2:
        backlog = s2.next_events(3, 5)
        assert taskid_of(backlog[0]) == "away-1", backlog
        assert backlog[1].payload() == "notify^" + key, backlog
        assert taskid_of(backlog[2]) == "away-2", backlog
        assert_increasing(backlog, "replayed backlog")
        assert_next_is_sentinel(api, s2, id, "after the backlog")
        entry = api.registrants()[id]
        assert entry["connected"] is True, entry


@pytest.mark.parametrize("how", ["header", "query"])
def test_last_event_id_replays_exactly_the_later_events(api, how):
    id, s = api.listener()
    with s:
        for t in ("t1", "t2", "t3"):
            api.notify_completions(id, t)
        live = s.next_events(3, 5)
        assert [taskid_of(e) for e in live] == ["t1", "t2", "t3"]
    api.wait_disconnected(id)
    api.notify_completions(id, "t4")
    api.notify_completions(id, "t5")
    kw = ({"last_event_id": live[0].id} if how == "header"
          else {"query": "last_event_id=%s" % live[0].id})
    with api.register(id, **kw) as s2:
        replay = s2.next_events(4, 5)
        assert [taskid_of(e) for e in replay] == ["t2", "t3", "t4", "t5"], (
            "with Last-Event-ID %s (%s) expected t2..t5, got %r"
            % (live[0].id, how, replay))
        assert [e.seq for e in replay[:2]] == [live[1].seq, live[2].seq], (
            "replayed events keep their ids: %r vs %r" % (replay, live))
        assert all(e.seq > live[0].seq for e in replay)
        assert_increasing(replay, "replay")
        assert_next_is_sentinel(api, s2, id, "after the replay")


def test_last_event_id_of_the_newest_event_replays_nothing(api):
    id, s = api.listener()
    with s:
        api.notify_completions(id, "only")
        last = s.next_event(5)
    api.wait_disconnected(id)
    with api.register(id, last_event_id=last.id) as s2:
        assert_next_is_sentinel(api, s2, id, "nothing newer than %s"
                                % last.id)


def test_resume_says_which_events_fell_out_of_the_history(make_httpd):
    env = make_httpd(directives={"SSEHistory": "8"})
    api = env.api
    id, s = api.listener()
    last = s.registered
    s.close()
    api.wait_disconnected(id)
    for i in range(1, 21):
        api.notify_completions(id, "t%d" % i)
    with api.register(id, last_event_id=last.id) as s2:
        missed = s2.next_event(5)
        assert missed.event == "missed", (
            "20 events against a history of 8: the stream should say "
            "`event: missed` before the backlog, got %r" % missed)
        gap = json.loads(missed.data)
        assert set(gap) == {"from", "to"}, gap
        assert last.seq < gap["from"] <= gap["to"], (
            "lost range should lie after Last-Event-ID %s: %r"
            % (last.id, gap))
        backlog = []
        while True:
            ev = s2.next_event(5)
            if ev.event is None and ev.payload().startswith("completed^"):
                backlog.append(ev)
                if taskid_of(ev) == "t20":
                    break
            else:
                raise AssertionError("unexpected event in the backlog: %r"
                                     % ev)
        tasks = [taskid_of(e) for e in backlog]
        first = int(tasks[0][1:])
        assert tasks == ["t%d" % i for i in range(first, 21)], (
            "the backlog should be the newest events, in order: %r" % tasks)
        assert backlog[0].seq > gap["to"], (gap, backlog[0])
        assert len(backlog) <= 8, "more than SSEHistory events kept"
        assert_increasing(backlog, "backlog")


# -- limits and cleanup -------------------------------------------------------

def test_full_table_answers_503_and_existing_streams_keep_working(make_httpd):
    env = make_httpd(directives={"SSEMaxListeners": "2"})
    api = env.api
    key = fresh_name("k")
    a, sa = api.listener(keys=[key])
    b, sb = api.listener(keys=[key])
    with sa, sb:
        c = api.make_id(fresh_name())
        with api.stream(c) as sc:
            assert sc.status == 503, (
                "a third listener with SSEMaxListeners 2 gets 503, got %s"
                % sc.status)
            retry_after = sc.headers.get("Retry-After")
            assert retry_after and retry_after.strip().isdigit(), (
                "503 needs Retry-After (seconds): %r" % sc.headers)
        assert c not in api.registrants()
        assert api.notify_listeners(key) == 2
        for s in (sa, sb):
            assert s.next_event(5).payload() == "notify^" + key
        with api.register(a) as sa2:
            assert sa.wait_closed(5), "takeover when full still works"
            assert api.notify_listeners(key) == 2
            assert sa2.next_event(5).payload() == "notify^" + key
            assert sb.next_event(5).payload() == "notify^" + key


def test_cleanup_removes_dormant_listeners_and_keeps_connected_ones(
        make_httpd):
    env = make_httpd(directives={"SSEDormantTimeout": "2"})
    api = env.api
    dormant, sd = api.listener()
    live, sl = api.listener()
    retired, sr = api.listener()
    with sl:
        sd.close()
        api.wait_disconnected(dormant)
        api.disconnect(retired)
        assert sr.wait_closed(5)
        sr.close()
        time.sleep(3.5)     # past SSEDormantTimeout: time must pass
        api.cleanup()
        regs = api.registrants()
        assert dormant not in regs, (
            "a listener with no stream for longer than SSEDormantTimeout "
            "is removed by trigger-cleanup: %r" % regs.get(dormant))
        assert live in regs, (
            "a connected listener is never dropped for age (heartbeats keep "
            "it alive)")
        assert regs[live]["connected"] is True
        sl.wait_comment(2.5)
    with api.register(dormant):
        pass
    with api.register(retired):
        pass


def test_listeners_changed_key_is_notified_when_the_set_changes(make_httpd):
    env = make_httpd(directives={"SSENotifyListenersChanged": "who"})
    api = env.api
    watcher, sw = api.listener(keys=["who"])
    with sw:
        # The watcher's own register came before it held the key; taking
        # the key is itself a change (a key new to a listener), the first
        # it is told of. From now on every change of the set reaches it.
        ev = sw.next_event(5)
        assert ev.payload() == "notify^who", (
            "listening to a new key should send notify^who: %r" % ev)
        other, so = api.listener()
        ev = sw.next_event(5)
        assert ev.payload() == "notify^who", (
            "a new registrant should send notify^who: %r" % ev)
        with so:
            api.disconnect(other)
            ev = sw.next_event(5)
            assert ev.payload() == "notify^who", (
                "an unregister should send notify^who: %r" % ev)
        assert_next_is_sentinel(api, sw, watcher, "after three changes")


def test_listeners_changed_key_is_notified_when_a_listener_gains_a_key(
        make_httpd):
    """list-registrants shows each listener's keys, so a page that shows
    them must hear of a key added; a key held already changes nothing."""
    env = make_httpd(directives={"SSENotifyListenersChanged": "who"})
    api = env.api
    watcher, sw = api.listener(keys=["who"])
    other, so = api.listener()
    with sw, so:
        assert [ev.payload() for ev in sw.next_events(2, 5)] == [
            "notify^who"] * 2, "its own key, then the new registrant"
        api.listen(other, "news")
        ev = sw.next_event(5)
        assert ev.payload() == "notify^who", (
            "another listener taking a new key should send notify^who: %r"
            % ev)
        assert api.registrants()[other]["listenKeys"] == ["news"]
        api.listen(other, "news", method="POST")
        api.listen(watcher, "who")
        resp = api.request("PUT", "listen", other, "bad:key")
        assert resp.status == 400, resp.describe()
        assert_next_is_sentinel(api, sw, watcher,
                                "a key held already, or refused, is no "
                                "change")
        api.listen(watcher, "sport")
        ev = sw.next_event(5)
        assert ev.payload() == "notify^who", (
            "the watcher taking a new key itself should send notify^who: "
            "%r" % ev)
        assert_next_is_sentinel(api, so, other,
                                "a listener without the key is not told")


def test_each_virtual_host_prefix_has_its_own_registry(make_httpd):
    env = make_httpd(extra_conf="""
<VirtualHost 127.0.0.1:*>
    ServerName main.test
</VirtualHost>
<VirtualHost 127.0.0.1:*>
    ServerName other.test
    SSEPrefix /events/
</VirtualHost>
""")
    from sse_client import SSEApi
    main = SSEApi(env.port, "/sse/", headers={"Host": "main.test"})
    other = SSEApi(env.port, "/events/", headers={"Host": "other.test"})
    resp = other.request("GET", "list-registrants")
    assert resp.status == 200, (
        "SSEPrefix /events/ in a vhost serves the routes there\n"
        + resp.describe())
    key = fresh_name("k")
    a, sa = main.listener(keys=[key])
    b, sb = other.listener(keys=[key])
    with sa, sb:
        assert a in main.registrants() and a not in other.registrants()
        assert b in other.registrants() and b not in main.registrants()
        assert other.notify_listeners(key) == 1, "one listener per registry"
        assert sb.next_event(5).payload() == "notify^" + key
        assert_next_is_sentinel(main, sa, a, "a notify in the other registry")


def test_a_stream_opened_right_after_clear_stays_open(make_httpd):
    env = make_httpd()
    api = env.api
    old, so = api.listener()
    api.clear()
    assert so.wait_closed(5), "clear ends the streams it removes"
    new, sn = api.listener(keys=["after-clear"])
    time.sleep(1.5)     # past the dispatcher's safety tick
    assert not sn.closed(), "a stream registered after the clear is not ended"
    assert api.notify_listeners("after-clear") == 1
    assert sn.next_event(5).payload() == "notify^after-clear"
