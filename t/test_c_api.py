"""The C API: another module (t/modules/mod_sse_apitest.c) drives the
manager through the optional functions of include/mod_sse_mgr.h alone,
from requests served by any child, and the streams see the results."""

import os
import re

import pytest

from sse_client import http, fresh_name, parse_completion

APITEST = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "modules", ".libs", "mod_sse_apitest.so")


@pytest.fixture
def env(make_httpd):
    assert os.path.exists(APITEST), "make t/modules/.libs/mod_sse_apitest.so"
    return make_httpd(extra_conf="""
LoadModule sse_apitest_module %s
<Location /apitest>
    SetHandler sse-apitest
</Location>
""" % APITEST)


def call(env, *parts):
    """(apr_status_t, delivered, text) of one optional-function call."""
    status, _, body = http(env.port, "GET", "/apitest/" + "/".join(parts))
    assert status == 200, "/apitest/%s: HTTP %d" % ("/".join(parts), status)
    m = re.match(r"rv=(-?\d+) n=(-?\d+) ?(.*)$", body.decode(), re.S)
    assert m, "unexpected answer %r" % body
    return int(m.group(1)), int(m.group(2)), m.group(3)


APR_SUCCESS = 0
APR_ENOENT = 2
APR_EINVAL = 22
APR_ENOSPC = 28


def test_another_module_issues_ids_and_publishes_to_streams(env):
    api = env.api
    name = fresh_name("capi")
    rv, _, id = call(env, "make-id", name)
    assert rv == APR_SUCCESS and id.startswith(name + "_"), (rv, id)
    assert call(env, "is-registered", id)[0] == APR_ENOENT, \
        "an id with no listener yet is not registered"
    stream = api.register(id)
    assert call(env, "is-registered", id)[0] == APR_SUCCESS
    assert call(env, "listen", id, "prices")[0] == APR_SUCCESS
    rv, n, _ = call(env, "notify-listeners", "prices")
    assert (rv, n) == (APR_SUCCESS, 1), "one holder of 'prices'"
    assert stream.next_event(5).payload() == "notify^prices"
    rv, n, _ = call(env, "notify-completions", id, "build_7")
    assert (rv, n) == (APR_SUCCESS, 1)
    _, target, taskid = parse_completion(stream.next_event(5))
    assert (target, taskid) == (id, "build_7")
    rv, _, js = call(env, "json")
    assert rv == APR_SUCCESS and '"prices"' in js and id in js
    assert call(env, "unregister", id)[0] == APR_SUCCESS
    assert stream.wait_closed(5), "unregister ends the stream"
    assert call(env, "is-registered", id)[0] == APR_ENOENT


def test_api_reports_clear_status_codes_for_bad_input(env):
    name = fresh_name("capibad")
    _, _, id = call(env, "make-id", name)
    assert call(env, "make-id", "_bad")[0] == APR_EINVAL
    assert call(env, "listen", id, "k")[0] == APR_ENOENT, \
        "listen on an id with no listener"
    forged = id[:-1] + ("A" if id[-1] != "A" else "B")
    env.api.register(id)
    assert call(env, "listen", forged, "k")[0] == APR_ENOENT, \
        "a forged id is unknown"
    assert call(env, "notify-listeners", "bad:key")[0] == APR_EINVAL
    assert call(env, "notify-completions", id, "bad@task")[0] \
        == APR_EINVAL, "a task id with an @"
    for i in range(32):
        assert call(env, "listen", id, "k%d" % i)[0] == APR_SUCCESS
    assert call(env, "listen", id, "one-too-many")[0] == APR_ENOSPC


def test_unregister_all_and_cleanup_through_the_api(env):
    api = env.api
    ids = [api.make_id(fresh_name("capiall")) for _ in range(3)]
    streams = [api.register(i) for i in ids]
    assert call(env, "unregister-all")[0] == APR_SUCCESS
    for s in streams:
        assert s.wait_closed(5), "unregister-all ends every stream"
    assert call(env, "json")[2] == "{}"
    assert call(env, "cleanup")[0] == APR_SUCCESS


def test_callers_get_null_for_a_function_nobody_registered(env):
    assert call(env, "missing")[2] == "null"
