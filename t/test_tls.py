"""The main flow over TLS: mod_ssl on a second port of the test server,
with a certificate made at test time, and a verifying TLS client (Python's
ssl module, the certificate as its only CA). Ids, streams, publishes from
other connections, resume and a client's hang-up all work through
mod_ssl's filters as they do in the clear.

The helpers here (tls_server, TLSApi) are used by t/test_http2.py too.
"""

import base64
import http.client as httpclient
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
from unittest import mock

import pytest

import sse_client
from sse_client import (Headers, Response, SSEApi, SSEStream, fresh_name,
                        parse_completion)
from sse_harness import MODULES_DIR, free_port

HOST = "localhost"      # the certificate's name; /etc/hosts: 127.0.0.1
_plain_connect = socket.create_connection

OPENSSL_CNF = """\
[req]
distinguished_name = dn
x509_extensions = ext
prompt = no
[dn]
CN = localhost
[ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
"""


def make_cert(conf_dir):
    """A self-signed server certificate for localhost: (cert, key) paths.
    Not a CA certificate, so mod_ssl has nothing to warn about."""
    cnf = os.path.join(conf_dir, "openssl-test.cnf")
    cert = os.path.join(conf_dir, "test-cert.pem")
    key = os.path.join(conf_dir, "test-key.pem")
    with open(cnf, "w") as f:
        f.write(OPENSSL_CNF)
    proc = subprocess.run(
        ["openssl", "req", "-x509", "-config", cnf, "-newkey", "ec",
         "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
         "-keyout", key, "-out", cert],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert proc.returncode == 0, proc.stdout.decode("utf-8", "replace")
    return cert, key


def tls_server(make_httpd, vhost_conf="", extra_conf="", directives=None,
               env=None):
    """A test server with a TLS virtual host on a port of its own, started;
    sets env.tls_port and env.cafile. The vhost has no SSE directive, so it
    serves the main server's registry. @a env: one made but not started
    (else a new one)."""
    env = env or make_httpd(directives=directives, start=False)
    env.cafile, key = make_cert(os.path.join(env.root, "conf"))
    env.tls_port = free_port()
    env.extra_conf = f"""
LoadModule socache_shmcb_module {MODULES_DIR}/mod_socache_shmcb.so
LoadModule ssl_module {MODULES_DIR}/mod_ssl.so
SSLSessionCache "shmcb:{env.root}/run/ssl_scache(512000)"
{extra_conf}
Listen 127.0.0.1:{env.tls_port} https
<VirtualHost 127.0.0.1:{env.tls_port}>
    ServerName {HOST}
    SSLEngine on
    SSLCertificateFile "{env.cafile}"
    SSLCertificateKeyFile "{key}"
{vhost_conf}
</VirtualHost>
"""
    # Debian's mod_ssl says so when libssl3 is older than the one it was
    # built with (an upgrade of libssl3 away); nothing of ours
    env.expect_log(r"\[ssl:warn\] .* AH01882: ")
    env.start()
    return env


def client_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = True
    return ctx


class TLSApi(SSEApi):
    """The module's routes over https, each request on a connection of its
    own; streams are SSEStreams on a verified TLS socket."""

    def __init__(self, env, prefix="/sse/"):
        super().__init__(env.tls_port, prefix)
        self.ctx = client_context(env.cafile)
        self.tls_versions = []

    def request(self, method, route, *segments, headers=None, body=None,
                query=None):
        path = self.path(route, *segments) + ("?" + query if query else "")
        conn = httpclient.HTTPSConnection(HOST, self.port, timeout=10,
                                          context=self.ctx)
        try:
            hdrs = {"Connection": "close"}
            hdrs.update(self.headers)
            hdrs.update(headers or {})
            conn.connect()
            self.tls_versions.append(conn.sock.version())
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return Response(resp.status, Headers(resp.getheaders()), data)
        finally:
            conn.close()

    def _connect(self, address, timeout=None, *args, **kw):
        raw = _plain_connect(address, timeout, *args, **kw)
        return self.ctx.wrap_socket(raw, server_hostname=address[0])

    def stream(self, id, last_event_id=None, query=None, headers=None,
               timeout=10.0, wait_headers=True):
        hdrs = dict(self.headers)
        hdrs.update(headers or {})
        if last_event_id is not None:
            hdrs["Last-Event-ID"] = str(last_event_id)
        path = self.path("register-listener", id)
        if query:
            path += "?" + query
        # SSEStream connects with sse_client's socket.create_connection:
        # only its constructor's connect goes through TLS here (its
        # reader thread only reads)
        with mock.patch.object(sse_client.socket, "create_connection",
                               self._connect):
            return SSEStream(self.port, path, headers=hdrs, host=HOST,
                             timeout=timeout, wait_headers=wait_headers)


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
    time.sleep(0.5)
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
        time.sleep(0.3)
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
        deadline = time.monotonic() + 3
        while not api.registrants().get(id, {}).get("connected"):
            assert time.monotonic() < deadline, "curl's stream never opened"
            time.sleep(0.05)
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
