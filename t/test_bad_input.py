"""Bodies and access: no route reads a body, so a small one is dropped and
a large one refused with 413 before it is read; httpd's own Require keeps
publish and admin routes from clients it does not allow."""

import pytest

from sse_client import forge_id, fresh_name, http, raw_request, raw_status
from sse_harness import APR_EINVAL, APR_ENOENT
from sse_harness import apitest_call as call


def test_a_small_body_is_ignored(api, httpd):
    key = fresh_name("body")
    r = http(httpd.port, "POST", api.path("notify-listeners", key),
             body=b"x" * 100)
    assert r.status == 200, r


def test_a_large_body_is_refused_with_413(api, httpd):
    """A publish takes a body of up to SSEMaxMessage (16k), any other
    route up to 4096 bytes (it reads none)."""
    key = fresh_name("big")
    r = http(httpd.port, "POST", api.path("notify-listeners", key),
             body=b"x" * 16385)
    assert r.status == 413, r
    assert b"at most 16384 bytes" in r.body
    id = api.make_id(fresh_name("big"))
    r = http(httpd.port, "PUT", api.path("listen", id, key),
             body=b"x" * 5000)
    assert r.status == 413 and b"at most 4096 bytes" in r.body, r


def test_a_large_chunked_body_is_refused_with_413(api, httpd):
    key = fresh_name("bigchunks")
    chunk = b"x" * 1000
    req = (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
           % api.path("notify-listeners", key).encode())
    req += (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * 17 + b"0\r\n\r\n"
    got = raw_request(httpd.port, req, timeout=10, until=None)
    assert raw_status(got) == 413, got and got[:200]


@pytest.fixture
def guarded(make_httpd):
    # the shipped rule, with an address the test never comes from
    return make_httpd(extra_conf="""
<LocationMatch "^/sse/(list-registrants|clear-registrants|trigger-cleanup|notify-completions/|notify-listeners/)">
    Require ip 192.0.2.1
</LocationMatch>
""")


def test_require_keeps_publish_and_admin_routes_from_other_clients(guarded):
    api = guarded.api
    guarded.expect_log(r"AH01630: client denied")  # httpd says so, rightly
    id = api.make_id(fresh_name("guard"))          # public: still allowed
    with api.register(id):
        for method, path in [("POST", api.path("notify-listeners", "k")),
                             ("POST", api.path("notify-completions", id,
                                               "t")),
                             ("GET", api.path("list-registrants")),
                             ("GET", api.path("clear-registrants")),
                             ("GET", api.path("trigger-cleanup"))]:
            r = http(guarded.port, method, path)
            assert r.status == 403, "%s %s: %r" % (method, path, r)
    # nothing changed: the listener is still there for the allowed route
    r = http(guarded.port, "PUT", api.path("listen", id, "k"))
    assert r.status == 200, r


def test_listen_keys_per_listener_are_bounded_with_a_clear_answer(api):
    id, s = api.listener()
    for i in range(32):
        api.listen(id, "key%d" % i)
    resp = api.request("PUT", "listen", id, "one-too-many")
    assert resp.status == 400 and b"too many listen keys" in resp.body, (
        resp.describe())
    api.listen(id, "key0")      # a key it has is still fine
    entry = api.registrants()[id]
    assert len(entry["listenKeys"]) == 32 and \
        "one-too-many" not in entry["listenKeys"], entry
    s.close()


def test_c_api_tells_a_never_issued_id_from_a_malformed_one(apitest):
    """APR_ENOENT for an id the server did not issue, whatever its suffix's
    length; APR_EINVAL only for what is not <name>_<suffix> at all."""
    issued = apitest.api.make_id(fresh_name("capishape"))
    apitest.api.register(issued)
    name = fresh_name("capishape")
    never = [name + "_" + "0123456789abcdefghijKLMN", name + "_x",
             name + "_" + "A" * 28, name + "_" + "z" * 27,
             forge_id(issued)]
    malformed = [name + "_", name, "_abc", name + "_" + "A" * 200,
                 "x" * 65 + "_" + "A" * 27]
    for ids, want in ((never, APR_ENOENT), (malformed, APR_EINVAL)):
        for id in ids:
            for op, args in (("is-registered", ()), ("listen", ("k1",)),
                             ("notify-completions", ("t1",)),
                             ("unregister", ())):
                rv = call(apitest, op, id, *args)[0]
                assert rv == want, "%s %s: expected %d, got %d" % (
                    op, id, want, rv)
    assert call(apitest, "is-registered", issued)[0] == 0, (
        "the issued id's listener is untouched")
