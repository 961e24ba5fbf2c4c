"""SSEHTTP2 downgrade, the default: a stream asked over HTTP/2 is reset
with HTTP_1_1_REQUIRED (RFC 9113, 7), its client retries it over
HTTP/1.1, where the event MPM parks it, and the page's other requests stay
on HTTP/2 and never wait behind streams. What `serve` does instead is
test_http2.py's subject; what a browser does, test_browser_h2.py's."""

import os
import subprocess
import time

import pytest

from h2_client import H2Client
from sse_client import TLS_HOST as HOST
from sse_client import TLSApi, fresh_name, http
from sse_harness import (H2_MODULE, STATUS_CONF, h2_tls_server, need_h2,
                         wait_until)

HTTP_1_1_REQUIRED = 0xd


@pytest.fixture
def h2tls(make_httpd, mpm):
    return h2_tls_server(make_httpd, mpm, extra_conf=STATUS_CONF)


def url(env, api, *parts):
    return "https://%s:%d%s" % (HOST, env.tls_port, api.path(*parts))


def connected(api, ids):
    regs = api.registrants()
    return [i for i in ids if regs.get(i, {}).get("connected")]


def test_a_stream_over_h2_is_reset_with_http_1_1_required(h2tls):
    pytest.importorskip("h2", reason="python3-h2 drives the h2 frames")
    api = TLSApi(h2tls)
    ids = [api.make_id(fresh_name("dg")) for _ in range(2)]
    c = H2Client(h2tls)
    try:
        streams = [c.stream(api, id) for id in ids]
        wait_until(lambda: all(s.ended for s in streams), 5,
                   "both streams answered")
        for s in streams:
            assert (s.ended, s.reset_code) == ("reset", HTTP_1_1_REQUIRED), (
                "RST_STREAM HTTP_1_1_REQUIRED, nothing sent: %r %r %r"
                % (s.ended, s.reset_code, s.events))
        assert c.goaway is None and c.error is None, (
            "the connection itself goes on: %r %r" % (c.goaway, c.error))
        regs = api.registrants()
        assert not any(id in regs for id in ids), (
            "a refused stream registers nothing: %r" % regs)
        # the id is untouched: over HTTP/1.1 it streams at once
        with api.register(ids[0]) as s:
            api.listen(ids[0], "dg")
            assert api.notify_listeners("dg") == 1
            assert s.next_event(5).payload() == "notify^dg"
    finally:
        c.close()


def test_curl_retries_over_http_1_1_and_the_stream_gets_its_events(
        h2tls, tmp_path):
    api = TLSApi(h2tls)
    id = api.make_id(fresh_name("dgcurl"))
    out = tmp_path / "stream.txt"
    curl = subprocess.Popen(
        ["curl", "-sN", "--http2", "--cacert", h2tls.cafile, "-m", "6",
         "-o", str(out), "-w", "%{http_version}",
         url(h2tls, api, "register-listener", id)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: connected(api, [id]), 5, "the stream connected")
        api.listen(id, "dgk")
        assert api.notify_listeners("dgk") == 1
        version, err = curl.communicate(timeout=15)
    finally:
        if curl.poll() is None:
            curl.kill()
            curl.wait(5)
    assert curl.returncode == 28, (curl.returncode, err)    # its -m
    assert version == "1.1", (
        "curl retried the stream over HTTP/1.1: %r" % version)
    body = out.read_text()
    assert 'data:"notify^dgk"' in body, body
    with open(os.path.join(h2tls.root, "logs", "access_log")) as f:
        log = f.read()
    path = api.path("register-listener", id)
    assert "%s HTTP/2.0\" 403" % path in log, (
        "the refusal is logged as a 403 over HTTP/2: %s" % log[-2000:])
    assert "%s HTTP/1.1\" 200" % path in log, log[-2000:]


def test_streams_beside_page_requests_on_one_h2_connection(h2tls, mpm,
                                                          tmp_path):
    """Ten streams and page requests from one client: over HTTP/2 alone
    mod_http2 would run 6 of the streams and hold the rest and every
    later request of the connection (test_http2.py). Downgraded, the
    streams each take an HTTP/1.1 connection and the h2 connection is
    left to the page, which never waits."""
    api = TLSApi(h2tls)
    ids = [api.make_id(fresh_name("dgten")) for _ in range(10)]
    args = ["curl", "-Z", "--parallel-max", "20"]
    for i, id in enumerate(ids):
        args += (["--next"] if i else []) + [
            "-sN", "--http2", "--cacert", h2tls.cafile, "-m", "8",
            "-o", str(tmp_path / id), url(h2tls, api, "register-listener",
                                          id)]
    streams = subprocess.Popen(args, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        wait_until(lambda: len(connected(api, ids)) == 10, 6,
                   "all ten streams connected at once")
        page = subprocess.run(
            ["curl", "-s", "--http2", "--cacert", h2tls.cafile, "-m", "5",
             "-w", "%{http_version} %{http_code}\\n", "-o", os.devnull,
             "-o", os.devnull, url(h2tls, api, "make-id", "page1"),
             url(h2tls, api, "make-id", "page2")],
            stdout=subprocess.PIPE, text=True, timeout=10)
        assert page.stdout.split("\n")[:2] == ["2 200", "2 200"], (
            "page requests stay on HTTP/2 and are answered: %r"
            % (page,))
        for id in ids:
            api.listen(id, "ten")
        assert api.notify_listeners("ten") == 10
        wait_until(lambda: all('data:"notify^ten"' in
                               (tmp_path / id).read_text() for id in ids),
                   5, "every stream got the event")
        if mpm == "event":
            busy = int(http(h2tls.port, "GET", "/server-status?auto")
                       .text.split("BusyWorkers: ")[1].split()[0])
            assert busy <= 2, (
                "the ten streams are parked, holding no worker: %d busy"
                % busy)
    finally:
        streams.kill()
        streams.wait(5)


def test_serve_logs_what_it_costs_at_start_up(make_httpd, mpm):
    env = h2_tls_server(make_httpd, mpm, directives={"SSEHTTP2": "serve"})
    assert "SSE00166" in env.read_log(), env.read_log()[-2000:]


def test_default_logs_no_h2_cost(h2tls):
    assert "SSE00166" not in h2tls.read_log()


def test_a_bad_value_is_refused(make_httpd):
    env = make_httpd(start=False, directives={"SSEHTTP2": "maybe"})
    code, out = env.check_config()
    assert code != 0 and "SSEHTTP2" in out \
        and "'downgrade' or 'serve'" in out, out


def test_a_stream_request_over_h2c_is_downgraded_too(make_httpd, mpm,
                                                     tmp_path):
    """h2c by prior knowledge (no browser does it; curl and proxies can):
    the same reset, and curl's retry over HTTP/1.1."""
    need_h2(mpm)
    env = make_httpd(extra_conf=H2_MODULE + "Protocols h2c http/1.1\n")
    api = env.api
    id = api.make_id(fresh_name("dgc"))
    out = tmp_path / "s.txt"
    started = time.monotonic()
    curl = subprocess.run(
        ["curl", "-sN", "--http2-prior-knowledge", "-m", "3", "-o", str(out),
         "-w", "%{http_version}", "http://127.0.0.1:%d%s"
         % (env.port, api.path("register-listener", id))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        timeout=10)
    assert time.monotonic() - started < 10
    assert curl.stdout == "1.1" and "registered" in out.read_text(), (
        curl, out.read_text())
