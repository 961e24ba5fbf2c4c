"""The registries' section of mod_status's /server-status: the figures an
operator reads move as the registry does, in the HTML page and in the
?auto form (SSERegistry[n]<Figure>: <value> lines), per registry."""

import http.client as httpclient
import re
import time

import pytest

from sse_client import SSEApi, fresh_name, http
from sse_harness import STATUS_CONF, status_auto, wait_status

HTML_FIGURE = re.compile(r'<tr><th align="left">(\w+)</th>'
                         r'<td align="right">(\d+)</td>')
HTML_CHILD = re.compile(r'<tr><td>(\d+)</td><td align="right">(\d+)</td>')


def child_streams(fig):
    """{pid: streams} from one registry's ?auto figures."""
    out = {}
    for i in range(fig["Children"]):
        out[fig["Child[%d]Pid" % i]] = fig["Child[%d]Streams" % i]
    return out


def status_html(env):
    """[(figures, {pid: streams}, section text)] per registry, page order."""
    resp = http(env.port, "GET", "/server-status")
    assert resp.status == 200, resp.describe()
    assert resp.content_type == "text/html", resp.describe()
    parts = resp.text.split("<h2>SSE registry ")[1:]
    out = []
    for part in parts:
        figures = {k: int(v) for k, v in HTML_FIGURE.findall(part)}
        children = {int(p): int(n) for p, n in HTML_CHILD.findall(part)}
        out.append((figures, children, part))
    return out


def test_status_shows_listeners_streams_and_events(make_httpd):
    env = make_httpd(extra_conf=STATUS_CONF)
    api = env.api
    fig = status_auto(env)[0]
    assert fig["Prefix"] == "/sse/"
    assert (fig["Listeners"], fig["Connected"], fig["Published"],
            fig["Delivered"], fig["Children"]) == (0, 0, 0, 0, 0), fig
    assert (fig["MaxListeners"], fig["History"]) == (100, 256), fig
    head0 = fig["HeadSeq"]

    ids, streams = [], []
    for i in range(3):
        id, s = api.listener(fresh_name("st"),
                             keys=["news"] if i < 2 else [])
        ids.append(id)
        streams.append(s)
    gone, s = api.listener(fresh_name("gone"))
    s.close()
    api.wait_disconnected(gone)
    fig = wait_status(env, lambda f: f["Connected"] == 3, "3 streams")
    assert fig["Listeners"] == 4, fig
    per_child = child_streams(fig)
    assert sum(per_child.values()) == 3, (
        "the streams held per child add up to Connected: %r" % fig)
    assert set(per_child) <= set(env.children()), (
        "every pid listed is a child of this server: %r vs %r"
        % (per_child, env.children()))

    # a notification nobody holds the key for is not an event
    assert api.notify_listeners("nobody") == 0
    assert api.notify_listeners("news") == 2
    assert api.notify_completions(ids[2], "t1") == 1
    for s in streams:
        s.next_event(5)
    fig = wait_status(env, lambda f: f["Delivered"] == 3, "3 delivered")
    assert fig["Published"] == 2, fig
    assert fig["HeadSeq"] == head0 + 2, fig
    assert fig["RingEvents"] == fig["HeadSeq"] - fig["OldestSeq"] == 2, fig
    assert (fig["Missed"], fig["RejectedFull"], fig["EndedSlow"],
            fig["Repairs"]) == (0, 0, 0, 0), fig

    # the HTML page shows the same figures
    [(html, html_children, _)] = status_html(env)
    for key in ("Listeners", "Connected", "Published", "Delivered",
                "HeadSeq", "OldestSeq", "MaxListeners", "History"):
        assert html[key] == fig[key], (key, html, fig)
    assert html_children == per_child, (html_children, per_child)

    for s in streams:
        s.close()
    fig = wait_status(env, lambda f: f["Connected"] == 0, "no stream")
    assert fig["Listeners"] == 4 and fig["Children"] == 0, fig


def test_status_counts_refusals_of_a_full_table(make_httpd):
    env = make_httpd(directives={"SSEMaxListeners": "2"},
                     extra_conf=STATUS_CONF)
    api = env.api
    held = [api.listener(fresh_name("full"))[1] for _ in range(2)]
    for n in range(1, 4):
        s = api.stream(api.make_id(fresh_name("late")))
        try:
            assert s.status == 503, "a full table answers 503"
        finally:
            s.close()
        fig = status_auto(env)[0]
        assert fig["RejectedFull"] == n, (
            "each 503 is counted in RejectedFull: %r" % fig)
    assert (fig["Listeners"], fig["MaxListeners"]) == (2, 2), fig
    for s in held:
        s.close()


def test_status_counts_events_lost_to_the_ring(make_httpd):
    env = make_httpd(directives={"SSEHistory": "4"}, extra_conf=STATUS_CONF)
    api = env.api
    id, s = api.listener(fresh_name("away"), keys=["burst"])
    s.close()
    api.wait_disconnected(id)
    for _ in range(10):
        assert api.notify_listeners("burst") == 1
    fig = status_auto(env)[0]
    assert fig["Missed"] == 6 and fig["RingEvents"] == 4, (
        "10 events for a listener away, a ring of 4: 6 missed: %r" % fig)
    with api.register(id) as s:
        ev = s.next_event(5)
        assert ev.event == "missed", ev


def stall_a_stream(env, key, pause=0.0):
    """A stream whose client reads nothing (a small SO_RCVBUF, as
    t/test_liveness.py does), fed until the server ends it; returns the
    count of events published."""
    api = env.api
    id = api.make_id(fresh_name("stalled"))
    with api.stream(id, wait_headers=False, rcvbuf=1024, paused=True):
        wait_status(env, lambda f: f["Connected"] == 1, "the stream")
        api.listen(id, key)
        conn = httpclient.HTTPConnection("127.0.0.1", env.port, timeout=10)
        deadline = time.monotonic() + 60
        sent = 0
        while True:
            conn.request("POST", api.path("notify-listeners", key))
            resp = conn.getresponse()
            assert resp.status == 200, resp.read()
            resp.read()
            sent += 1
            time.sleep(pause)   # a trickle of events, on purpose
            if sent % 100 == 0 and status_auto(env)[0]["Connected"] == 0:
                break
            assert time.monotonic() < deadline, (
                "a client that reads nothing still holds its stream after "
                "%d events" % sent)
        conn.close()
    return sent


@pytest.mark.parametrize("conf, pause", [
    # the server's socket buffer fills at once: httpd's Timeout ends the
    # blocked write (APR_TIMEUP)
    ("SendBufferSize 4096\n", 0.0),
    # events trickle into a buffer they never fill: the kernel's
    # TCP_USER_TIMEOUT (SSEHeartbeat + Timeout) ends the zero-window
    # connection first, and the stream sees an error on its socket
    pytest.param("SendBufferSize 262144\n", 0.02),
], ids=["httpd-timeout", "kernel-timeout"])
def test_status_counts_a_stream_ended_for_not_reading(make_httpd, conf,
                                                      pause):
    env = make_httpd(extra_conf="Timeout 3\n" + conf + STATUS_CONF)
    sent = stall_a_stream(env, "k" * 64, pause)
    fig = status_auto(env)[0]
    assert fig["Listeners"] == 1 and fig["Published"] == sent, fig
    assert fig["EndedSlow"] == 1, (
        "the stream ended for not reading is counted: %r" % fig)


def test_status_lists_each_registry_and_escapes_its_prefix(make_httpd):
    env = make_httpd(start=False)
    # the first vhost shares the main server's registry (no SSEPrefix of
    # its own); the second owns one, with text that needs escaping
    env.extra_conf = STATUS_CONF + """
<VirtualHost 127.0.0.1:{port}>
    ServerName 127.0.0.1
    SSEAllowOrigin *
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
    ServerName other.test
    SSEPrefix "/o<b>&amp/"
</VirtualHost>
""".format(port=env.port)
    env.start()
    other = SSEApi(env.port, "/o%3Cb%3E&amp/", headers={"Host": "other.test"})
    other.listener(fresh_name("other"))[1].close()
    env.api.listener(fresh_name("main"))[1].close()
    env.api.listener(fresh_name("main"))[1].close()
    regs = status_auto(env)
    assert sorted(regs) == [0, 1], regs
    assert (regs[0]["Prefix"], regs[1]["Prefix"]) == ("/sse/", "/o<b>&amp/")
    assert regs[1]["Server"] == "other.test:%d" % env.port, regs[1]
    assert (regs[0]["Listeners"], regs[1]["Listeners"]) == (2, 1), (
        "each registry counts its own listeners: %r" % regs)
    sections = status_html(env)
    assert [sec[0]["Listeners"] for sec in sections] == [2, 1], sections
    title = sections[1][2].split("</h2>")[0]
    assert title == "/o&lt;b&gt;&amp;amp/ on other.test:%d" % env.port, (
        "text from the configuration is HTML-escaped: %r" % title)


def test_a_vhost_without_sse_directives_shares_the_main_registry(
        make_httpd):
    env = make_httpd(start=False)
    env.extra_conf = STATUS_CONF + "".join(
        "<VirtualHost 127.0.0.1:%d>\n    ServerName v%d.test\n"
        "</VirtualHost>\n" % (env.port, i) for i in range(2))
    env.start()
    vhost = SSEApi(env.port, "/sse/", headers={"Host": "v1.test"})
    vhost.listener(fresh_name("vh"))[1].close()
    regs = status_auto(env)
    assert sorted(regs) == [0] and regs[0]["Listeners"] == 1, (
        "one registry, the main server's, numbered 0: %r" % regs)
    made = [line for line in env.read_log().splitlines()
            if "SSE00012" in line]
    assert made and " 1 registries " in made[-1], (
        "shared memory for one registry only: %r" % made)


def test_status_counters_survive_graceful(make_httpd):
    env = make_httpd(extra_conf=STATUS_CONF)
    api = env.api
    id, s = api.listener(fresh_name("grace"), keys=["g"])
    api.notify_listeners("g")
    s.next_event(5)
    s.close()
    before = wait_status(env, lambda f: f["Connected"] == 0, "no stream")
    env.graceful()
    after = status_auto(env)[0]
    for key in ("Listeners", "Published", "Delivered", "HeadSeq"):
        assert after[key] == before[key], (key, before, after)
