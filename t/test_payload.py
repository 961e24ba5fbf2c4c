"""Messages that carry data (SPEC 8): notify-listeners and
notify-completions take an optional body. Without one the stream bytes
are exactly the original's; with one the listener gets a named event
(`notify`, `completed`) whose data is one line of compact JSON, numbered,
kept, replayed on resume and reported missed like every other event."""

import json
import re

from sse_client import fresh_name, http

JSON = {"Content-Type": "application/json"}
TEXT = {"Content-Type": "text/plain; charset=utf-8"}


def publish(api, route, *args, body=None, headers=None):
    resp = api.request("POST", route, *args, body=body, headers=headers)
    return resp


def delivered(resp):
    assert resp.status == 200, resp.describe()
    return json.loads(resp.body)["delivered"]


def listener(api, key):
    id, s = api.listener(fresh_name("pay"), keys=[key])
    return id, s


def test_without_a_body_the_bytes_are_the_originals(httpd):
    api = httpd.api
    key = fresh_name("k")
    id, s = listener(api, key)
    with s:
        assert delivered(publish(api, "notify-listeners", key)) == 1
        ev = s.next_event(5)
        assert ev.raw == ('id: %s\ndata:"notify^%s"\n\n'
                          % (ev.id, key)).encode()
        assert delivered(publish(api, "notify-completions", id, "t1",
                                 body=b"")) == 1
        ev = s.next_event(5)
        assert ev.event is None and ev.payload().startswith("completed^{")


def test_a_json_body_reaches_the_listener_compact_in_a_named_event(httpd):
    api = httpd.api
    key = fresh_name("k")
    id, s = listener(api, key)
    with s:
        body = b'{ "progress" : [1, 2,\n 3], "note": "a\\nb" }'
        assert delivered(publish(api, "notify-listeners", key, body=body,
                                 headers=JSON)) == 1
        ev = s.next_event(5)
        assert ev.raw == (
            'id: %s\nevent: notify\ndata: {"key":"%s","data":'
            '{"progress":[1,2,3],"note":"a\\nb"}}\n\n' % (ev.id, key)
        ).encode(), ev.raw


def test_a_text_body_is_carried_as_one_json_string(httpd):
    api = httpd.api
    key = fresh_name("k")
    id, s = listener(api, key)
    with s:
        text = 'line 1\nline "2"\r\n\u00e9t\u00e9'
        assert delivered(publish(api, "notify-listeners", key,
                                 body=text.encode(), headers=TEXT)) == 1
        ev = s.next_event(5)
        assert ev.event == "notify" and "\n" not in ev.data
        assert json.loads(ev.data) == {"key": key, "data": text}


def test_a_completion_payload_goes_to_every_tab_with_its_own_id(httpd):
    api = httpd.api
    name = fresh_name("tabs")
    a, sa = api.listener(name)
    b, sb = api.listener(name)
    with sa, sb:
        assert delivered(publish(api, "notify-completions", a, "job-7",
                                 body=b'{"result":42}', headers=JSON)) == 2
        for id, s in ((a, sa), (b, sb)):
            ev = s.next_event(5)
            m = re.match(rb'id: (\d+)\nevent: completed\ndata: '
                         rb'\{"timestamp":(\d+),"id":"([^"]+)","taskid":'
                         rb'"job-7","data":\{"result":42\}\}\n\n$', ev.raw)
            assert m and m.group(3).decode() == id, ev.raw


def test_invalid_json_gets_400_with_the_parsers_reason_and_sends_nothing(
        httpd):
    api = httpd.api
    key = fresh_name("k")
    id, s = listener(api, key)
    with s:
        resp = publish(api, "notify-listeners", key, body=b'{"a":',
                       headers=JSON)
        assert resp.status == 400, resp.describe()
        assert "not valid JSON" in resp.text and "line 1" in resp.text
        resp = publish(api, "notify-listeners", key, body=b"caf\xe9",
                       headers=TEXT)
        assert resp.status == 400 and "UTF-8" in resp.text, resp.describe()
        assert delivered(publish(api, "notify-listeners", key)) == 1
        assert s.next_event(5).payload() == "notify^" + key, (
            "the refused publishes sent nothing")


def test_the_largest_payload_passes_and_one_byte_more_gets_413(make_httpd):
    env = make_httpd(directives={"SSEMaxMessage": "100"})
    api = env.api
    key = fresh_name("k")
    id, s = listener(api, key)
    with s:
        fits = b"x" * 98                # 100 bytes as a JSON string
        assert delivered(publish(api, "notify-listeners", key, body=fits,
                                 headers=TEXT)) == 1
        assert json.loads(s.next_event(5).data)["data"] == "x" * 98
        resp = publish(api, "notify-listeners", key, body=b"x" * 99,
                       headers=TEXT)
        assert resp.status == 413 and "101 bytes" in resp.text, (
            resp.describe())
        # a body over the bound is refused before it is read
        status, headers, body = http(
            env.port, "POST", api.path("notify-listeners", key),
            headers={"Content-Length": "101", "Content-Type": "text/plain"},
            body=b"")
        assert status == 413 and b"at most 100 bytes" in body, (status, body)


def test_payload_events_are_replayed_on_resume_in_order(httpd):
    api = httpd.api
    key = fresh_name("k")
    id, s = listener(api, key)
    with s:
        assert delivered(publish(api, "notify-listeners", key)) == 1
        first = s.next_event(5)
    for i in range(3):
        assert delivered(publish(api, "notify-listeners", key,
                                 body=json.dumps({"n": i}).encode(),
                                 headers=JSON)) == 1
    with api.register(id, last_event_id=first.seq) as again:
        evs = [again.next_event(5) for _ in range(3)]
    assert [json.loads(e.data)["data"]["n"] for e in evs] == [0, 1, 2]
    assert [e.seq for e in evs] == sorted(e.seq for e in evs)
    assert all(e.event == "notify" for e in evs)


def test_a_payload_overwritten_while_away_is_reported_missed(make_httpd):
    """SSEHistory 16 and SSEMaxMessage 4k: a 16 KB payload ring, so five
    payloads of 4000 bytes overwrite the first while all five events are
    still in the event ring. The loss is counted where an administrator
    looks: the listener's "missed" and server-status's Missed."""
    from sse_harness import STATUS_CONF, status_auto
    env = make_httpd(extra_conf=STATUS_CONF,
                     directives={"SSEHistory": "16", "SSEMaxMessage": "4k"})
    api = env.api
    key = fresh_name("k")
    id, s = listener(api, key)
    with s:
        assert delivered(publish(api, "notify-listeners", key)) == 1
        mark = s.next_event(5).seq
    for i in range(5):
        body = (str(i) * 3998).encode()
        assert delivered(publish(api, "notify-listeners", key, body=body,
                                 headers=TEXT)) == 1
    with api.register(id, last_event_id=mark) as again:
        missed = again.next_event(5)
        assert missed.event == "missed", missed
        lost = json.loads(missed.data)
        assert lost == {"from": mark + 1, "to": mark + 1}, lost
        rest = [again.next_event(5) for _ in range(4)]
    assert [json.loads(e.data)["data"][0] for e in rest] == list("1234")
    assert "SSE00173" in env.read_log()
    listed = api.request("GET", "list-registrants").json()
    assert listed[id]["missed"] == 1, listed[id]
    assert status_auto(env)[0]["Missed"] == 1, status_auto(env)[0]


def test_server_status_shows_the_payload_ring(make_httpd):
    from sse_harness import STATUS_CONF, status_auto
    env = make_httpd(extra_conf=STATUS_CONF,
                     directives={"SSEHistory": "256"})
    api = env.api
    key = fresh_name("k")
    id, s = listener(api, key)
    with s:
        assert delivered(publish(api, "notify-listeners", key,
                                 body=b"[1,2,3]", headers=JSON)) == 1
        s.next_event(5)
    st = status_auto(env)[0]
    assert st["PayloadRing"] == 256 * 1024, st
    assert st["PayloadWritten"] == len("[1,2,3]"), st
