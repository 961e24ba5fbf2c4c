"""The main flow over TLS: mod_ssl on a second port of the test server,
with a certificate made at test time, and a verifying TLS client (Python's
ssl module, the certificate as its only CA). Ids, streams, publishes from
other connections, resume and a client's hang-up all work through
mod_ssl's filters as they do in the clear.
"""

import base64
import os
import re
import shutil
import ssl
import subprocess
import time

import pytest

from sse_client import TLS_HOST as HOST
from sse_client import TLSApi, fresh_name, parse_completion
from sse_harness import MODULES_DIR, tls_server, wait_until


EVENT = re.compile(rb'id: (\d+)\ndata:"([^"\\]*(?:\\.[^"\\]*)*)"\n\n')


@pytest.fixture
def tls(make_httpd):
    if not os.path.exists(os.path.join(MODULES_DIR, "mod_ssl.so")):
        pytest.skip("mod_ssl is not installed")
    return tls_server(make_httpd)


def test_the_main_flow_over_tls(tls):
    api = TLSApi(tls)
    name = fresh_name("tls")
    id = api.make_id(name)
    assert id.startswith(name + "_"), id
    s = api.register(id)
    assert isinstance(s.sock, ssl.SSLSocket) and s.sock.version(), s.sock
    assert s.headers.get("Content-Type") == "text/event-stream", s.headers
    assert s.headers.get("Cache-Control") == "no-cache", s.headers
    other = api.register(api.make_id(name))     # a second tab of the user
    api.listen(id, "tls-news")
    assert api.notify_listeners("tls-news") == 1
    assert api.notify_completions(id, "job1") == 2
    ev = s.next_event(5)
    assert ev.payload() == "notify^tls-news", ev
    assert EVENT.fullmatch(ev.raw), "one event, as framed in clear: %r" % (
        ev.raw,)
    ev2 = s.next_event(5)
    _, target, taskid = parse_completion(ev2)
    assert (target, taskid) == (id, "job1"), ev2
    assert ev.seq < ev2.seq, (ev, ev2)
    _, target, taskid = parse_completion(other.next_event(5))
    assert taskid == "job1" and target != id
    time.sleep(0.5)     # time for a stray extra event to show
    assert s.pending() == 0 and other.pending() == 0, (
        "exactly the events published, nothing more")
    assert set(api.tls_versions) <= {"TLSv1.2", "TLSv1.3"}, api.tls_versions
    # the plain port serves the same registry
    assert tls.api.registrants()[id]["listenKeys"] == ["tls-news"]
    s.close()
    other.close()


def test_resume_with_last_event_id_over_tls(tls):
    api = TLSApi(tls)
    id, s = api.listener(fresh_name("tlsresume"), keys=["r"])
    api.notify_listeners("r")
    first = s.next_event(5)
    s.close()
    api.wait_disconnected(id)
    api.notify_completions(id, "while-away")
    api.notify_listeners("r")
    with api.register(id, last_event_id=first.seq) as s2:
        back = s2.next_events(2, 5)
        assert parse_completion(back[0])[2] == "while-away", back
        assert back[1].payload() == "notify^r", back
        assert first.seq < back[0].seq < back[1].seq, back
        api.notify_listeners("r")
        assert s2.next_event(5).seq > back[1].seq
        time.sleep(0.3)     # time for a replayed duplicate to show
        assert s2.pending() == 0, "nothing replayed twice"


def test_a_client_hanging_up_over_tls_is_noticed(tls):
    api = TLSApi(tls)
    id, s = api.listener(fresh_name("tlshangup"))
    assert api.registrants()[id]["connected"] is True
    started = time.monotonic()
    s.close()           # FIN without a TLS close_notify, as a killed tab
    api.wait_disconnected(id, timeout=5)
    assert time.monotonic() - started < 3, (
        "the hang-up is seen on the socket, not at the next heartbeat "
        "timeout")


def test_a_curl_stream_over_tls_gets_its_events_and_its_exit_is_noticed(tls):
    api = TLSApi(tls)
    id = api.make_id(fresh_name("tlscurl"))
    proc = subprocess.Popen(
        ["curl", "-sN", "--cacert", tls.cafile, "-m", "4",
         "https://%s:%d%s" % (HOST, tls.tls_port,
                              api.path("register-listener", id))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: api.registrants().get(id, {}).get("connected"),
                   3, "curl's stream opening")
        api.listen(id, "curl-key")
        assert api.notify_listeners("curl-key") == 1
        out, err = proc.communicate(timeout=10)
        ended = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 28, "curl ends at -m 4: %r" % err
    assert 'data:"registered^%s"' % id in out, out
    assert out.count('data:"notify^curl-key"') == 1, out
    api.wait_disconnected(id, timeout=5)
    assert time.monotonic() - ended < 3, "curl's exit is seen at once"


PUBLISH_ROUTES = ("^/sse/(list-registrants|clear-registrants|trigger-cleanup"
                  "|notify-completions/|notify-listeners/)")


def test_publish_and_admin_routes_behind_basic_auth_over_tls(make_httpd):
    """The set-up docs/operations.md gives: the shipped `Require local` for
    the publish and admin routes everywhere, and on the TLS vhost a
    password instead, for application servers elsewhere."""
    if not os.path.exists(os.path.join(MODULES_DIR, "mod_ssl.so")):
        pytest.skip("mod_ssl is not installed")
    htpasswd = shutil.which("htpasswd")
    if not htpasswd:
        pytest.skip("htpasswd (apache2-utils) is needed")
    env = make_httpd(start=False)
    users = os.path.join(env.root, "conf", "sse.htpasswd")
    proc = subprocess.run([htpasswd, "-cbB", users, "app", "s3cret"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.returncode == 0, proc.stdout
    auth_modules = "".join(
        "LoadModule %s_module %s/mod_%s.so\n" % (m, MODULES_DIR, m)
        for m in ("authn_core", "authn_file", "auth_basic", "authz_user"))
    env = tls_server(
        make_httpd, env=env, extra_conf=auth_modules + """
<LocationMatch "%s">
    Require local
</LocationMatch>
""" % PUBLISH_ROUTES, vhost_conf="""
    <LocationMatch "%s">
        AuthType Basic
        AuthName "sse publishers"
        AuthBasicProvider file
        AuthUserFile "%s"
        Require valid-user
    </LocationMatch>
""" % (PUBLISH_ROUTES, users))
    api = TLSApi(env)
    # browsers make ids and hold streams without credentials
    id, s = api.listener(fresh_name("authed"), keys=["paid"])
    anon = api.request("POST", "notify-listeners", "paid")
    assert anon.status == 401, anon.describe()
    assert anon.headers.get("WWW-Authenticate", "").startswith("Basic "), (
        anon.describe())
    assert api.request("GET", "list-registrants").status == 401
    wrong = api.request("POST", "notify-listeners", "paid", headers={
        "Authorization": "Basic " + base64.b64encode(b"app:nope").decode()})
    assert wrong.status == 401, wrong.describe()
    env.expect_log(r"AH01617: user app: authentication failure")
    api.headers["Authorization"] = "Basic " + base64.b64encode(
        b"app:s3cret").decode()
    assert api.notify_listeners("paid") == 1
    assert s.next_event(5).payload() == "notify^paid"
    assert id in api.registrants()
    # the plain port keeps the shipped rule: local callers only
    assert env.api.notify_listeners("paid") == 1
    s.close()
