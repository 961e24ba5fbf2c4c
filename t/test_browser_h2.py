"""Streams from Debian's headless chromium to a site on HTTP/2 over TLS
(t/node/browser_h2_test.mjs drives the browser):

- SSEHTTP2 downgrade (the default) on the page's own origin: the page's
  EventSource is reset with HTTP_1_1_REQUIRED, retried over HTTP/1.1 and
  parked, and receives its events without an error event; what that costs
  the rest of the page is measured (t/output/browser-h2-*.json) and
  written down in docs/operations.md.
- The recommended layout: pages on www.test over h2, streams on a
  dedicated host name sse.test (a certificate of its own, Protocols
  http/1.1), one stream per browser shared by every tab through
  examples/htdocs/shared-stream-worker.js: ten tabs get every event, page
  requests never wait, closing and reopening tabs changes nothing.
"""

import json
import os
import shutil
import subprocess
import tempfile

from sse_harness import (H2_MODULE, MODULES_DIR, STATUS_CONF, free_port,
                         make_cert, need_h2, processes_mentioning)
from test_browser import CHROMIUM, NODE_DIR, OUTPUT, kill_browser

T = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(T)
PAGES = [os.path.join(TOP, "examples", "htdocs", "shared-stream.html"),
         os.path.join(TOP, "examples", "htdocs", "shared-stream-worker.js"),
         os.path.join(T, "pages", "own-source.html")]


def vhost(name, port, cert, key, protocols):
    return f"""
<VirtualHost 127.0.0.1:{port}>
    ServerName {name}
    SSLEngine on
    SSLCertificateFile "{cert}"
    SSLCertificateKeyFile "{key}"
    Protocols {protocols}
</VirtualHost>
"""


def two_hosts(make_httpd, mpm):
    """www.test (h2, http/1.1) and sse.test (http/1.1 only), each with a
    certificate of its own, on one TLS port; plain HTTP on env.port for
    the test's own requests."""
    need_h2(mpm)
    env = make_httpd(start=False)
    conf = os.path.join(env.root, "conf")
    tls = free_port()
    www = make_cert(conf, "www.test")
    sse = make_cert(conf, "sse.test")
    env.extra_conf = f"""
LoadModule socache_shmcb_module {MODULES_DIR}/mod_socache_shmcb.so
LoadModule ssl_module {MODULES_DIR}/mod_ssl.so
SSLSessionCache "shmcb:{env.root}/run/ssl_scache(512000)"
{H2_MODULE}{STATUS_CONF}
AddType text/javascript .js
Listen 127.0.0.1:{tls} https
{vhost("www.test", tls, www[0], www[1], "h2 http/1.1")}
{vhost("sse.test", tls, sse[0], sse[1], "http/1.1")}
"""
    env.expect_log(r"\[ssl:warn\] .* AH01882: ")
    for page in PAGES:
        shutil.copy(page, os.path.join(env.root, "htdocs"))
    with open(os.path.join(env.root, "htdocs", "page.txt"), "w") as f:
        f.write("a page's own request\n")
    with open(os.path.join(env.root, "htdocs", "page.html"), "w") as f:
        f.write('<!doctype html><link rel="icon" href="data:,">a page\n')
    env.start()
    env.tls_port = tls
    return env


def run_scenario(env, scenario, mpm):
    assert os.path.exists(CHROMIUM), (
        "chromium is not installed: `sh t/install-deps.sh` installs it")
    node = shutil.which("node")
    assert node, "node is not installed: `sh t/install-deps.sh` installs it"
    profile = tempfile.mkdtemp(prefix="sse-h2-chromium-")
    cfg = os.path.join(profile + "-cfg.json")
    with open(cfg, "w") as f:
        json.dump({"www": "https://www.test:%d" % env.tls_port,
                   "sse": "https://sse.test:%d/sse/" % env.tls_port,
                   "publish": "http://127.0.0.1:%d/sse/" % env.port,
                   "status": "http://127.0.0.1:%d/server-status?auto"
                             % env.port,
                   "profile": profile}, f)
    try:
        proc = subprocess.run([node, "browser_h2_test.mjs", scenario, cfg],
                              cwd=NODE_DIR, capture_output=True, text=True,
                              timeout=180)
    finally:
        kill_browser(profile)
        shutil.rmtree(profile, ignore_errors=True)
        os.unlink(cfg)
    assert proc.returncode == 0, (
        "%s failed in chromium:\nstdout:\n%s\nstderr:\n%s"
        % (scenario, proc.stdout, proc.stderr[-4000:]))
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    os.makedirs(OUTPUT, exist_ok=True)
    with open(os.path.join(OUTPUT, "browser-h2-%s-%s.json"
                           % (scenario, mpm)), "w") as f:
        json.dump(result, f, indent=1)
    assert not processes_mentioning(profile)
    return result


def access_log(env):
    with open(os.path.join(env.root, "logs", "access_log")) as f:
        return f.read()


def test_a_page_on_h2_gets_its_stream_over_http_1_1(make_httpd, mpm):
    env = two_hosts(make_httpd, mpm)
    r = run_scenario(env, "same-origin", mpm)
    assert r["navProtocol"] == "h2", r
    assert r["delivered"] == 1 and r["errors"] == 0, (
        "the EventSource retried over HTTP/1.1 without an error event and "
        "got its event: %r" % r)
    log = access_log(env)
    assert '/sse/register-listener/solo_' in log
    lines = [ln for ln in log.splitlines()
             if "/sse/register-listener/solo_" in ln]
    assert any('HTTP/2.0" 403' in ln for ln in lines), lines
    assert any('HTTP/1.1" 200' in ln for ln in lines), lines
    if mpm == "event":
        assert r["busy"] <= 2, (
            "the stream is parked: no worker busy with it: %r" % r)
    # Chromium remembers the origin as HTTP/1.1-only for the session: the
    # measurement docs/operations.md reports
    assert r["afterProtocol"] in ("h2", "http/1.1"), r
    assert r["tenTabs"]["streamsOpen"] <= 6, (
        "a browser opens at most 6 HTTP/1.1 connections to one host: %r"
        % r["tenTabs"])


def test_ten_tabs_share_one_stream_on_a_dedicated_host(make_httpd, mpm):
    env = two_hosts(make_httpd, mpm)
    r = run_scenario(env, "tabs", mpm)
    assert len(r["ids"]) == 1, "one id for every tab: %r" % r["ids"]
    assert r["streams"] == 1, "one stream for ten tabs: %r" % r
    for rnd in r["rounds"]:
        assert rnd == {"delivered": 1, "streams": 1}, r["rounds"]
    assert len(r["rounds"]) == 6 and r["tabsOpened"] == 40, r
    reqs = r["requests"]
    assert len(reqs) == 60 and all(q["protocol"] == "h2" for q in reqs), (
        "page requests stay on HTTP/2: %r" % reqs)
    assert all(q["ms"] is not None for q in reqs), (
        "no page request waited out its 5 s: %r" % reqs)
    assert r["afterAllClosed"] == "closed", (
        "the stream ends with the browser's last tab: %r" % r)
    if mpm == "event":
        assert r["busy"] <= 2, "the stream is parked: %r" % r
    lines = [ln for ln in access_log(env).splitlines()
             if "/sse/register-listener/tabs_" in ln]
    assert lines and all('HTTP/1.1" 200' in ln for ln in lines), lines
