"""The demo page in a real browser: Debian's headless chromium, driven by
playwright-core from npm (t/node/browser_demo_test.mjs), against a test
httpd serving examples/htdocs with mod_sse_mgr and the demo module."""

import json
import os
import shutil
import signal
import subprocess
import tempfile

from sse_client import TLS_HOST as HOST
from sse_harness import (H2_MODULE, need_h2, processes_mentioning,
                         tls_server, wait_until)

T = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(T)
NODE_DIR = os.path.join(T, "node")
OUTPUT = os.path.join(T, "output")
HTDOCS = os.path.join(TOP, "examples", "htdocs")
DEMO = os.path.join(TOP, "examples", ".libs", "mod_sse_demo.so")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def kill_browser(marker):
    for pid in processes_mentioning(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


DEMO_CONF = ("LoadModule sse_demo_module %s\n"
             "AddType text/css .css\n"
             "AddType text/javascript .js\n" % DEMO)


def with_demo_pages(env):
    for name in os.listdir(HTDOCS):
        shutil.copy(os.path.join(HTDOCS, name),
                    os.path.join(env.root, "htdocs", name))
    return env


def demo_env(make_httpd):
    assert os.path.exists(DEMO), "make examples/.libs/mod_sse_demo.so"
    return with_demo_pages(make_httpd(
        start=False,
        directives={"SSENotifyListenersChanged": "listeners-changed"}))


def run_browser(url, shot):
    """The demo flow of browser_demo_test.mjs at @url: its JSON result."""
    assert os.path.exists(CHROMIUM), (
        "chromium is not installed (no %s): `sh t/install-deps.sh` "
        "installs it (Debian package chromium)" % CHROMIUM)
    node = shutil.which("node")
    assert node, "node is not installed: `sh t/install-deps.sh` installs it"
    assert os.path.isdir(os.path.join(NODE_DIR, "node_modules",
                                      "playwright-core")), \
        "playwright-core is missing: `sh t/install-deps.sh` runs npm ci"
    os.makedirs(OUTPUT, exist_ok=True)
    if os.path.exists(shot):
        os.unlink(shot)
    profile = tempfile.mkdtemp(prefix="sse-demo-chromium-")
    try:
        proc = subprocess.run(
            [node, "browser_demo_test.mjs", url, shot, profile],
            cwd=NODE_DIR, capture_output=True, text=True, timeout=100)
    finally:
        kill_browser(profile)
        shutil.rmtree(profile, ignore_errors=True)
    assert proc.returncode == 0, (
        "the demo page failed in chromium:\nstdout:\n%s\nstderr:\n%s"
        % (proc.stdout, proc.stderr[-4000:]))
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ok"] is True
    assert result["id"].startswith("browser_")
    assert 4000 <= result["timeoutMs"] <= 7000, (
        "timeout_task should complete about 5 s after the click, took "
        "%d ms" % result["timeoutMs"])
    assert result["adhocMs"] < 1000, (
        "ad-hoc should complete at once, took %d ms" % result["adhocMs"])
    assert_progress_shown(result["progress"])
    assert len(result["live"]) == 5, (
        "every live check of the registrants list should have run and "
        "passed: %r" % result["live"])
    assert result["ticks"] >= 6, (
        "the clock should have ticked through the 5 s task: %r" % result)
    assert os.path.getsize(shot) > 10000, "screenshot %s" % shot
    return result


def assert_progress_shown(progress):
    """The progress task's row went 25, 50, 75, 100 % on its `notify`
    events and shows the result its `completed` event carried; Events
    lists each of them."""
    assert progress["percents"] == [25, 50, 75, 100], (
        "the row should show each step of the progress task: %r" % progress)
    result = json.loads(progress["result"])
    assert result["result"] == "done" and result["steps"] == 4, progress
    assert 1500 <= result["ms"] <= 4000, progress
    assert progress["shown"].startswith("result: done, steps: 4, ms: "), \
        progress
    assert 1500 <= progress["ms"] <= 5000, (
        "progress should complete about 2 s after the click: %r" % progress)
    steps = [ln for ln in progress["log"] if "notify  progress" in ln]
    assert len(steps) == 4 and all(
        '"percent":%d}' % p in ln for p, ln in zip((25, 50, 75, 100), steps)), (
        "Events should list every step: %r" % progress["log"])
    done = [ln for ln in progress["log"] if "completed  progress" in ln]
    assert len(done) == 1 and '"result":"done"' in done[0], progress["log"]


def assert_second_tab_gone(env, result):
    wait_until(lambda: result["otherId"] not in env.api.registrants(), 5,
               "closing the second tab disconnecting it (%s)"
               % result["otherId"])


def test_demo_page_in_a_real_browser(make_httpd, mpm):
    env = demo_env(make_httpd)
    env.extra_conf = DEMO_CONF
    env.start()
    result = run_browser("http://127.0.0.1:%d/index.html" % env.port,
                         os.path.join(OUTPUT, "demo-%s.png" % mpm))
    assert result["protocol"] == "http/1.1", result
    assert_second_tab_gone(env, result)


def test_demo_page_in_a_real_browser_over_h2(make_httpd, mpm):
    """The same flow over HTTP/2 with TLS (ALPN h2): the page, the
    EventSource streams of two tabs and every request share one
    connection per tab."""
    need_h2(mpm)
    env = tls_server(make_httpd, env=demo_env(make_httpd),
                     extra_conf=DEMO_CONF + H2_MODULE,
                     vhost_conf="    Protocols h2 http/1.1\n")
    result = run_browser("https://%s:%d/index.html" % (HOST, env.tls_port),
                         os.path.join(OUTPUT, "demo-h2-%s.png" % mpm))
    assert result["protocol"] == "h2", (
        "the page should have come over HTTP/2: %r" % result)
    assert_second_tab_gone(env, result)
