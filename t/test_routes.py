"""Every route of mod_sse_mgr: status codes, content types, bodies,
validation (400/404/405), CORS, and the admin routes."""

import re
import time

import pytest

from sse_client import forge_id, fresh_name, http

ID_RE = r"[A-Za-z0-9]{22,}"


def assert_plain_headers(resp, what):
    """What every non-stream response carries."""
    assert resp.headers.get("Cache-Control") == "no-store", (
        "%s: Cache-Control should be no-store\n%s" % (what, resp.describe()))
    assert resp.headers.get("Access-Control-Allow-Origin") == "*", (
        "%s: Access-Control-Allow-Origin should be *\n%s"
        % (what, resp.describe()))
    assert resp.content_type in ("text/plain", "application/json"), (
        "%s: a non-stream answer is text/plain or application/json\n%s"
        % (what, resp.describe()))


def assert_one_line_reason(resp, status, what):
    assert resp.status == status, "%s: expected %d\n%s" % (
        what, status, resp.describe())
    assert_plain_headers(resp, what)
    assert resp.content_type == "text/plain", resp.describe()
    reason = resp.text.rstrip("\n")
    assert reason and "\n" not in reason, (
        "%s: the reason should be one non-empty line, got %r"
        % (what, resp.text))


@pytest.fixture
def listener(api):
    """A registered id with its stream open: (id, stream)."""
    id, s = api.listener()
    yield id, s
    s.close()


# -- make-id ------------------------------------------------------------------

def test_make_id_returns_a_plain_id_for_the_name(api):
    name = fresh_name("alice")
    resp = api.request("GET", "make-id", name)
    assert resp.status == 200, resp.describe()
    assert resp.content_type == "text/plain", resp.describe()
    assert_plain_headers(resp, "make-id")
    assert re.fullmatch(re.escape(name) + "_" + ID_RE, resp.text), (
        "body should be exactly <name>_<suffix of >=22 alnum>, no newline;"
        " got %r" % resp.body)


def test_make_id_gives_a_new_id_every_time(api):
    name = fresh_name()
    ids = {api.make_id(name) for _ in range(5)}
    assert len(ids) == 5, "five make-id calls gave duplicates: %r" % ids


@pytest.mark.parametrize("name", [
    "a", "A.b~c-d", "9z", "x" * 64, "z.", "a_b", "a__b_",
])
def test_make_id_accepts_every_valid_name(api, name):
    resp = api.request("GET", "make-id", name)
    assert resp.status == 200, resp.describe()
    assert resp.text.rpartition("_")[0] == name, resp.describe()


def test_make_id_decodes_the_name_segment(api):
    resp = api.request("GET", "make-id", "%41bc%2Ed%5Fe")
    assert resp.status == 200, resp.describe()
    assert resp.text.rpartition("_")[0] == "Abc.d_e", (
        "path segments are URL-decoded: %%41bc%%2Ed%%5Fe is Abc.d_e; got %r"
        % resp.text)


@pytest.mark.parametrize("name", [
    ".x", "-x", "~x", "_x", "x" * 65, "a%20b", "", "%C3%A9t%C3%A9",
    "a+b", "a*b", "a%22b",
], ids=["leading-dot", "leading-dash", "leading-tilde", "leading-underscore",
        "65-chars", "space", "empty", "non-ascii", "plus", "star", "quote"])
def test_make_id_rejects_an_invalid_name_with_400(api, name):
    resp = api.request("GET", "make-id", name)
    assert_one_line_reason(resp, 400, "make-id/%s" % name)


def test_make_id_rejects_extra_path_segments_with_400(api):
    resp = api.request("GET", "make-id", "a", "b")
    assert_one_line_reason(resp, 400, "make-id/a/b")


# -- unknown and malformed routes ---------------------------------------------

@pytest.mark.parametrize("path", [
    "no-such-route", "make-idx/a", "Make-Id/a", "registers",
])
def test_unknown_route_under_the_prefix_is_404(api, path):
    resp = http(api.port, "GET", api.prefix + path)
    assert resp.status == 404, "GET %s%s\n%s" % (api.prefix, path,
                                                 resp.describe())


def test_too_many_segments_are_400_on_every_route(api, listener):
    id, _ = listener
    cases = [
        ("GET", "list-registrants", ("x",)),
        ("GET", "clear-registrants", ("x",)),
        ("GET", "trigger-cleanup", ("x",)),
        ("GET", "register-listener", (id, "x")),
        ("GET", "disconnect-registrant", (id, "x")),
        ("PUT", "listen", (id, "k", "x")),
        ("POST", "notify-listeners", ("k", "x")),
        ("POST", "notify-completions", (id, "t", "x")),
    ]
    for method, route, segs in cases:
        resp = api.request(method, route, *segs)
        assert_one_line_reason(resp, 400, "%s %s/%s" % (method, route,
                                                        "/".join(segs)))
    assert id in api.registrants(), (
        "malformed requests must change nothing, but %s is gone" % id)


def test_missing_segments_are_400(api, listener):
    id, _ = listener
    for method, route, segs in [("PUT", "listen", (id,)),
                                ("POST", "notify-completions", (id,)),
                                ("GET", "make-id", ()),
                                ("GET", "register-listener", ())]:
        resp = api.request(method, route, *segs)
        assert_one_line_reason(resp, 400, "%s %s/%s" % (method, route,
                                                        "/".join(segs)))


# -- wrong methods ------------------------------------------------------------

@pytest.mark.parametrize("method,route,segs,allowed", [
    ("POST", "make-id", ("n",), {"GET"}),
    ("PUT", "register-listener", ("ID",), {"GET"}),
    ("GET", "listen", ("ID", "k"), {"PUT", "POST", "OPTIONS"}),
    ("DELETE", "listen", ("ID", "k"), {"PUT", "POST", "OPTIONS"}),
    ("GET", "notify-listeners", ("k",), {"PUT", "POST"}),
    ("GET", "notify-completions", ("ID", "t"), {"PUT", "POST"}),
    ("POST", "list-registrants", (), {"GET"}),
    ("PUT", "disconnect-registrant", ("ID",), {"GET"}),
    ("DELETE", "trigger-cleanup", (), {"GET"}),
])
def test_wrong_method_is_405_with_allow(api, listener, method, route, segs,
                                        allowed):
    id, _ = listener
    segs = tuple(id if s == "ID" else s for s in segs)
    resp = api.request(method, route, *segs)
    what = "%s %s" % (method, api.path(route, *segs))
    assert resp.status == 405, "%s\n%s" % (what, resp.describe())
    assert_plain_headers(resp, what)
    allow = resp.headers.tokens("Allow")
    assert allowed <= allow, "%s: Allow should list %s, got %r" % (
        what, sorted(allowed), resp.headers.get("Allow"))
    assert id in api.registrants(), "a 405 must change nothing"


# -- forged and unknown ids ---------------------------------------------------

@pytest.mark.parametrize("where", ["suffix", "name"])
def test_forged_id_is_404_on_every_route(api, listener, where):
    id, _ = listener
    bad = forge_id(id, where)
    cases = [
        ("GET", "register-listener", (bad,)),
        ("PUT", "listen", (bad, "k")),
        ("POST", "listen", (bad, "k")),
        ("POST", "notify-completions", (bad, "t")),
        ("GET", "disconnect-registrant", (bad,)),
    ]
    for method, route, segs in cases:
        if route == "register-listener":
            with api.stream(bad) as s:
                assert s.status == 404, (
                    "register-listener with a forged id (%s changed) must "
                    "be 404, got %s %s" % (where, s.status, s.reason))
            continue
        resp = api.request(method, route, *segs)
        what = "%s %s" % (method, api.path(route, *segs))
        assert resp.status == 404, "%s (forged %s)\n%s" % (
            what, where, resp.describe())
        assert_plain_headers(resp, what)
    assert bad not in api.registrants(), "a forged id got registered"
    assert id in api.registrants(), "the genuine listener disappeared"


def test_never_issued_id_is_404_for_register_listener(api):
    name = fresh_name()
    with api.stream(name + "_" + "A" * 27) as s:
        assert s.status == 404, (
            "an id the server never issued must be 404, got %s" % s.status)


# Every route that takes an id, with the id as its first segment.
ID_ROUTES = [
    ("GET", "register-listener", ()),
    ("GET", "disconnect-registrant", ()),
    ("PUT", "listen", ("k1",)),
    ("POST", "listen", ("k1",)),
    ("POST", "notify-completions", ("t1",)),
    ("PUT", "notify-completions", ("t1",)),
]


def id_route_answers(api, bad):
    """(what, status, response or None) of every id route given @bad."""
    for method, route, rest in ID_ROUTES:
        what = "%s %s" % (method, api.path(route, bad, *rest))
        if route == "register-listener":
            with api.stream(bad) as s:
                yield what, s.status, None
            continue
        resp = api.request(method, route, bad, *rest)
        yield what, resp.status, resp


@pytest.mark.parametrize("suffix", [
    "0123456789abcdefghijKLMN",            # 24 base62: a length never issued
    "A" * 26, "A" * 28, "x", "a-b.c~d",
    "z" * 27,                              # 27 digits beyond 160 bits
    "0123456789ABCDEFGHIJKLMNOPQ",         # 27 digits, a MAC that is wrong
])
def test_an_id_the_server_never_issued_is_404_on_every_route(api, listener,
                                                             suffix):
    bad = fresh_name("alice") + "_" + suffix
    for what, status, resp in id_route_answers(api, bad):
        assert status == 404, (
            "%s: an id (name, _, suffix) the server did not issue is 404, "
            "whatever the suffix's length, got %s%s"
            % (what, status, "\n" + resp.describe() if resp else ""))
        if resp is not None:
            assert_one_line_reason(resp, 404, what)
    assert bad not in api.registrants(), "a never-issued id got registered"
    assert listener[0] in api.registrants(), "the genuine listener is gone"


@pytest.mark.parametrize("bad", [
    "alice_",                              # empty suffix
    "alice",                               # no underscore at all
    "_abc",                                # empty name
    "alice_" + "A" * 87,                   # 93 bytes: longer than any id
    "x" * 64 + "_" + "A" * 28,             # 64-byte name, 93 bytes in all
    "x" * 65 + "_" + "A" * 27,             # a name of 65 bytes
    "alice_" + "A" * 2000,
    "alice_AB:CD",                         # a byte no segment may hold
])
def test_a_string_that_is_not_an_id_is_400_on_every_route(api, listener,
                                                          bad):
    for what, status, resp in id_route_answers(api, bad):
        assert status == 400, (
            "%s: not <name>_<suffix> (or longer than any id) is malformed, "
            "got %s%s" % (what, status, "\n" + resp.describe() if resp
                          else ""))
        if resp is not None:
            assert_one_line_reason(resp, 400, what)
    assert listener[0] in api.registrants(), (
        "malformed requests must change nothing")


def test_issued_but_unregistered_id_is_404_except_for_register(api):
    id = api.make_id(fresh_name())
    for method, route, segs in [
            ("PUT", "listen", (id, "k")),
            ("POST", "listen", (id, "k")),
            ("POST", "notify-completions", (id, "t")),
            ("GET", "disconnect-registrant", (id,))]:
        resp = api.request(method, route, *segs)
        what = "%s %s" % (method, api.path(route, *segs))
        assert resp.status == 404, "%s\n%s" % (what, resp.describe())
        assert_plain_headers(resp, what)
    assert id not in api.registrants(), (
        "404 answers must not create a listener")
    with api.register(id):
        assert id in api.registrants(), (
            "register-listener creates the listener of an issued id")


# -- listen -------------------------------------------------------------------

@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_listen_adds_a_key_and_answers_ok(api, listener, method):
    id, _ = listener
    key = fresh_name("key")
    resp = api.request(method, "listen", id, key)
    assert resp.status == 200, resp.describe()
    assert resp.content_type == "text/plain", resp.describe()
    assert resp.body == b"ok", resp.describe()
    assert_plain_headers(resp, "listen")
    keys = api.registrants()[id]["listenKeys"]
    assert key in keys, "listenKeys of %s should hold %s: %r" % (id, key,
                                                                keys)


@pytest.mark.parametrize("key", ["a*b", ".k", "k" * 65, "a%20b", "_k"])
def test_listen_rejects_an_invalid_key_with_400(api, listener, key):
    id, _ = listener
    resp = api.request("PUT", "listen", id, key)
    assert_one_line_reason(resp, 400, "listen/%s/%s" % (id, key))
    assert api.registrants()[id]["listenKeys"] == [], (
        "a rejected key must not be added")


# -- notify-listeners and notify-completions answers --------------------------

@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_notify_listeners_answers_json_count(api, method):
    resp = api.request(method, "notify-listeners", fresh_name("nobody"))
    assert resp.status == 200, resp.describe()
    assert resp.content_type == "application/json", resp.describe()
    assert_plain_headers(resp, "notify-listeners")
    assert resp.json() == {"delivered": 0}, (
        "no listener holds a fresh key: %r" % resp.body)


def test_notify_listeners_rejects_an_invalid_key_with_400(api):
    resp = api.request("POST", "notify-listeners", "a*b")
    assert_one_line_reason(resp, 400, "notify-listeners/a*b")


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_notify_completions_answers_json_count(api, listener, method):
    id, _ = listener
    resp = api.request(method, "notify-completions", id, "task-1")
    assert resp.status == 200, resp.describe()
    assert resp.content_type == "application/json", resp.describe()
    assert_plain_headers(resp, "notify-completions")
    assert resp.json() == {"delivered": 1}, (
        "the only listener of that name should receive it: %r" % resp.body)


@pytest.mark.parametrize("taskid", ["t*1", ".t", "t" * 65, "_t"])
def test_notify_completions_rejects_an_invalid_taskid_with_400(
        api, listener, taskid):
    id, _ = listener
    resp = api.request("POST", "notify-completions", id, taskid)
    assert_one_line_reason(resp, 400, "notify-completions/%s/%s"
                           % (id, taskid))


# -- admin routes -------------------------------------------------------------

def test_list_registrants_describes_each_listener(api):
    before = int(time.time() * 1000)
    id, s = api.listener(keys=["k-one", "k-two"])
    after = int(time.time() * 1000)
    with s:
        resp = api.request("GET", "list-registrants")
        assert resp.status == 200, resp.describe()
        assert resp.content_type == "application/json", resp.describe()
        assert_plain_headers(resp, "list-registrants")
        doc = resp.json()
        assert isinstance(doc, dict), "an object keyed by id: %r" % doc
        assert id in doc, "%s missing from %r" % (id, sorted(doc))
        entry = doc[id]
        assert sorted(entry["listenKeys"]) == ["k-one", "k-two"], entry
        ts = entry["registered-ts"]
        assert isinstance(ts, int) and before - 5000 <= ts <= after + 5000, (
            "registered-ts is ms since the epoch at registration "
            "(between %d and %d): %r" % (before, after, entry))
        assert entry["connected"] is True, (
            "a listener with an open stream is connected: %r" % entry)
        assert isinstance(entry["last-activity"], int), entry
        assert entry["last-activity"] >= ts - 5000, entry
        assert isinstance(entry["missed"], int) and entry["missed"] >= 0, (
            entry)


def test_list_registrants_shows_a_closed_stream_as_not_connected(api):
    id, s = api.listener()
    s.close()
    entry = api.wait_disconnected(id)
    assert entry["listenKeys"] == [], entry


def test_disconnect_registrant_answers_ok(api, listener):
    id, _ = listener
    resp = api.request("GET", "disconnect-registrant", id)
    assert resp.status == 200, resp.describe()
    assert resp.body == b"ok", resp.describe()
    assert_plain_headers(resp, "disconnect-registrant")


def test_trigger_cleanup_answers_ok_and_keeps_live_listeners(api, listener):
    id, _ = listener
    resp = api.request("GET", "trigger-cleanup")
    assert resp.status == 200, resp.describe()
    assert resp.body == b"ok", resp.describe()
    assert_plain_headers(resp, "trigger-cleanup")
    assert id in api.registrants(), "cleanup dropped a connected listener"


def test_clear_registrants_removes_everyone_and_retires_their_ids(
        make_httpd):
    env = make_httpd()
    api = env.api
    streams = {}
    for _ in range(3):
        id, s = api.listener(keys=["k"])
        streams[id] = s
    unregistered = api.make_id(fresh_name())
    resp = api.request("POST", "clear-registrants")
    assert resp.status == 405, "clear-registrants is GET only\n%s" % (
        resp.describe())
    assert len(api.registrants()) == 3, "a 405 must change nothing"

    resp = api.request("GET", "clear-registrants")
    assert resp.status == 200 and resp.body == b"ok", resp.describe()
    assert_plain_headers(resp, "clear-registrants")
    for id, s in streams.items():
        assert s.wait_closed(5), "stream of %s still open after clear" % id
    assert api.registrants() == {}, "list-registrants after clear"
    assert api.notify_listeners("k") == 0
    for id in streams:
        with api.stream(id) as s:
            assert s.status == 204, (
                "a cleared id is retired: register-listener answers 204, "
                "got %s" % s.status)
    with api.register(unregistered):
        pass
    with api.register(api.make_id(fresh_name())):
        pass


# -- CORS ---------------------------------------------------------------------

@pytest.mark.parametrize("route,segs,methods", [
    ("make-id", ("n",), {"GET"}),
    ("register-listener", ("ID",), {"GET"}),
    ("listen", ("ID", "k"), {"PUT", "POST"}),
    ("notify-listeners", ("k",), {"PUT", "POST"}),
    ("notify-completions", ("ID", "t"), {"PUT", "POST"}),
    ("list-registrants", (), {"GET"}),
    ("disconnect-registrant", ("ID",), {"GET"}),
    ("clear-registrants", (), {"GET"}),
    ("trigger-cleanup", (), {"GET"}),
])
def test_options_preflight_is_answered_on_every_route(api, listener, route,
                                                      segs, methods):
    id, _ = listener
    segs = tuple(id if s == "ID" else s for s in segs)
    want = sorted(methods)[0]
    resp = api.request("OPTIONS", route, *segs, headers={
        "Origin": "http://example.test",
        "Access-Control-Request-Method": want,
        "Access-Control-Request-Headers": "content-type, last-event-id"})
    what = "OPTIONS %s" % api.path(route, *segs)
    assert resp.status == 204, "%s\n%s" % (what, resp.describe())
    assert resp.body == b"", what
    assert resp.headers.get("Access-Control-Allow-Origin") == "*", (
        "%s\n%s" % (what, resp.describe()))
    allow_methods = resp.headers.tokens("Access-Control-Allow-Methods")
    assert methods <= allow_methods, (
        "%s: Access-Control-Allow-Methods should list %s\n%s"
        % (what, sorted(methods), resp.describe()))
    assert resp.headers.get("Access-Control-Allow-Headers"), (
        "%s: Access-Control-Allow-Headers missing\n%s"
        % (what, resp.describe()))
    assert id in api.registrants(), "a preflight must change nothing"


def test_allow_origin_directive_sets_the_origin_on_every_answer(make_httpd):
    origin = "https://app.example.test"
    env = make_httpd(directives={"SSEAllowOrigin": origin})
    api = env.api
    id = api.make_id(fresh_name())
    answers = {
        "make-id": api.request("GET", "make-id", "n"),
        "make-id 400": api.request("GET", "make-id", "a_b"),
        "listen 404": api.request("PUT", "listen", id, "k"),
        "list-registrants": api.request("GET", "list-registrants"),
        "OPTIONS": api.request("OPTIONS", "notify-listeners", "k", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST"}),
    }
    for what, resp in answers.items():
        assert resp.headers.get("Access-Control-Allow-Origin") == origin, (
            "%s: SSEAllowOrigin %s\n%s" % (what, origin, resp.describe()))
    with api.register(id) as s:
        assert s.headers.get("Access-Control-Allow-Origin") == origin, (
            s.headers)


def test_allow_origin_list_answers_only_the_origins_it_names(make_httpd):
    good = ["https://a.example.test", "https://b.example.test"]
    env = make_httpd(directives={"SSEAllowOrigin": " ".join(good)})
    api = env.api
    for origin in good:
        resp = api.request("GET", "make-id", "n", headers={"Origin": origin})
        assert resp.headers.get("Access-Control-Allow-Origin") == origin, (
            "an origin in the list is echoed\n%s" % resp.describe())
        assert "Origin" in resp.headers.get("Vary", ""), resp.describe()
    resp = api.request("GET", "make-id", "n",
                       headers={"Origin": "https://evil.example.test"})
    assert resp.status == 200
    assert resp.headers.get("Access-Control-Allow-Origin") is None, (
        "an origin not in the list gets no CORS grant\n%s" % resp.describe())
    id = api.make_id(fresh_name())
    with api.stream(id, headers={"Origin": good[1]}) as s:
        assert s.headers.get("Access-Control-Allow-Origin") == good[1]
