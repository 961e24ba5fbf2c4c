"""Streams over HTTP/2 cleartext (h2c, prior knowledge): several streams
on one connection, each receiving its own events, and no crash (an HTTP/2
GET gives the module no client descriptor to poll)."""

import shutil
import subprocess
import time

import pytest

from sse_client import fresh_name


@pytest.fixture
def h2env(make_httpd, mpm):
    if mpm == "prefork":
        pytest.skip("mod_http2 does not run under prefork")
    if not shutil.which("curl"):
        pytest.skip("curl is needed for HTTP/2")
    return make_httpd(extra_conf="""
LoadModule http2_module /usr/lib/apache2/modules/mod_http2.so
Protocols h2c http/1.1
""")


def test_streams_over_h2c_receive_their_events(h2env):
    api = h2env.api
    ids = [api.make_id(fresh_name("h2")) for _ in range(3)]
    base = "http://127.0.0.1:%d" % h2env.port
    # one curl, one connection, three concurrent streams on it
    args = ["curl", "-sN", "--no-progress-meter", "--http2-prior-knowledge", "-m", "6", "-Z",
            "--parallel-immediate"]
    for id in ids:
        args += [base + api.path("register-listener", id)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            regs = api.registrants()
            if all(regs.get(i, {}).get("connected") for i in ids):
                break
            time.sleep(0.1)
        for id in ids:
            api.listen(id, "h2key")
            api.notify_completions(id, "t-" + id[-4:])
        assert api.notify_listeners("h2key") == 3
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    for id in ids:
        assert 'data:"registered^%s"' % id in out, out[:2000]
        assert '\\"taskid\\":\\"t-%s\\"' % id[-4:] in out, out[:2000]
    assert out.count('data:"notify^h2key"') == 3, out[:2000]
    assert "Segmentation fault" not in h2env.read_log()
