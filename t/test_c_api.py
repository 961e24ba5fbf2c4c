"""The C API: another module (t/modules/mod_sse_apitest.c) drives the
manager through the optional functions of include/mod_sse_mgr.h alone,
from requests served by any child, and the streams see the results."""

from sse_client import forge_id, fresh_name, parse_completion
from sse_harness import APR_EINVAL, APR_ENOENT, APR_ENOSPC, APR_SUCCESS
from sse_harness import apitest_call as call


def test_another_module_issues_ids_and_publishes_to_streams(apitest):
    api = apitest.api
    name = fresh_name("capi")
    rv, _, id = call(apitest, "make-id", name)
    assert rv == APR_SUCCESS and id.startswith(name + "_"), (rv, id)
    assert call(apitest, "is-registered", id)[0] == APR_ENOENT, \
        "an id with no listener yet is not registered"
    stream = api.register(id)
    assert call(apitest, "is-registered", id)[0] == APR_SUCCESS
    assert call(apitest, "listen", id, "prices")[0] == APR_SUCCESS
    rv, n, _ = call(apitest, "notify-listeners", "prices")
    assert (rv, n) == (APR_SUCCESS, 1), "one holder of 'prices'"
    assert stream.next_event(5).payload() == "notify^prices"
    rv, n, _ = call(apitest, "notify-completions", id, "build_7")
    assert (rv, n) == (APR_SUCCESS, 1)
    _, target, taskid = parse_completion(stream.next_event(5))
    assert (target, taskid) == (id, "build_7")
    rv, _, js = call(apitest, "json")
    assert rv == APR_SUCCESS and '"prices"' in js and id in js
    assert call(apitest, "unregister", id)[0] == APR_SUCCESS
    assert stream.wait_closed(5), "unregister ends the stream"
    assert call(apitest, "is-registered", id)[0] == APR_ENOENT


def test_api_reports_clear_status_codes_for_bad_input(apitest):
    name = fresh_name("capibad")
    _, _, id = call(apitest, "make-id", name)
    assert call(apitest, "make-id", "_bad")[0] == APR_EINVAL
    assert call(apitest, "listen", id, "k")[0] == APR_ENOENT, \
        "listen on an id with no listener"
    forged = forge_id(id)
    apitest.api.register(id)
    assert call(apitest, "listen", forged, "k")[0] == APR_ENOENT, \
        "a forged id is unknown"
    assert call(apitest, "notify-listeners", "bad:key")[0] == APR_EINVAL
    assert call(apitest, "notify-completions", id, "bad@task")[0] \
        == APR_EINVAL, "a task id with an @"
    for i in range(32):
        assert call(apitest, "listen", id, "k%d" % i)[0] == APR_SUCCESS
    assert call(apitest, "listen", id, "one-too-many")[0] == APR_ENOSPC


def test_unregister_all_and_cleanup_through_the_api(apitest):
    api = apitest.api
    ids = [api.make_id(fresh_name("capiall")) for _ in range(3)]
    streams = [api.register(i) for i in ids]
    assert call(apitest, "unregister-all")[0] == APR_SUCCESS
    for s in streams:
        assert s.wait_closed(5), "unregister-all ends every stream"
    assert call(apitest, "json")[2] == "{}"
    assert call(apitest, "cleanup")[0] == APR_SUCCESS


def test_callers_get_null_for_a_function_nobody_registered(apitest):
    assert call(apitest, "missing")[2] == "null"


def test_another_module_publishes_payloads(apitest):
    """sse_mgr_notify_*_payload: the same named events as a body sent
    over HTTP; bad JSON, bad UTF-8 and a payload over SSEMaxMessage get
    their codes and publish nothing."""
    import json
    api = apitest.api
    name = fresh_name("capipl")
    id, stream = api.listener(name, keys=["prices"])
    with stream:
        rv, n, _ = call(apitest, "payload-json-listeners",
                        "prices?%7B%22eur%22%3A%201.5%7D")
        assert (rv, n) == (APR_SUCCESS, 1)
        ev = stream.next_event(5)
        assert ev.event == "notify" and json.loads(ev.data) == {
            "key": "prices", "data": {"eur": 1.5}}, ev.raw
        assert ev.data == '{"key":"prices","data":{"eur":1.5}}'
        rv, n, _ = call(apitest, "payload-text-completions", id,
                        "build_8?all%20green")
        assert (rv, n) == (APR_SUCCESS, 1)
        ev = stream.next_event(5)
        got = json.loads(ev.data)
        assert ev.event == "completed" and got["id"] == id \
            and got["taskid"] == "build_8" and got["data"] == "all green"
        assert call(apitest, "payload-json-listeners",
                    "prices?%7B%22eur%22")[:2] == (APR_EINVAL, 0)
        assert call(apitest, "payload-text-listeners",
                    "prices?caf%E9")[:2] == (APR_EINVAL, 0)
        # SSEMaxMessage 16k: 16384 bytes as a JSON string pass, 16385 not
        assert call(apitest, "payload-text-listeners",
                    "prices?*16382")[:2] == (APR_SUCCESS, 1)
        assert len(stream.next_event(5).data) == len(
            '{"key":"prices","data":}') + 16384
        assert call(apitest, "payload-text-listeners",
                    "prices?*16383")[:2] == (APR_ENOSPC, 0)
        assert call(apitest, "notify-listeners", "prices")[:2] == (
            APR_SUCCESS, 1)
        assert stream.next_event(5).payload() == "notify^prices", (
            "the refused payloads sent nothing")
