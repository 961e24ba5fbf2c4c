"""make demo's last step, examples/run-demo.sh, as a new user meets it: a
checkout under a directory closed to others (what `mktemp -d` makes), the
page and a stream on its port, Ctrl-C stops httpd and leaves nothing."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile

from sse_client import SSEApi, http
from sse_harness import free_port, processes_mentioning, wait_until

T = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(T)


def checkout_copy(dest):
    """What run-demo.sh uses of a built checkout, copied to @dest."""
    os.makedirs(os.path.join(dest, ".libs"))
    os.makedirs(os.path.join(dest, "examples", ".libs"))
    shutil.copy(os.path.join(TOP, ".libs", "mod_sse_mgr.so"),
                os.path.join(dest, ".libs"))
    shutil.copy(os.path.join(TOP, "examples", ".libs", "mod_sse_demo.so"),
                os.path.join(dest, "examples", ".libs"))
    shutil.copy(os.path.join(TOP, "examples", "run-demo.sh"),
                os.path.join(dest, "examples"))
    shutil.copytree(os.path.join(TOP, "examples", "htdocs"),
                    os.path.join(dest, "examples", "htdocs"))


def wait_listening(port, proc, timeout=15.0):
    def listening():
        assert proc.poll() is None, "run-demo.sh ended at once"
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            return False
    wait_until(listening, timeout, "the demo listening on %d" % port,
               interval=0.1)


def test_the_demo_serves_its_page_from_a_closed_directory_and_stops_on_ctrl_c(
        tmp_path):
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    top = str(closed / "repo")
    checkout_copy(top)
    # where a copy of the page may go: open to others, as /tmp is (pytest's
    # own tmp_path is not)
    scratch = tempfile.mkdtemp(prefix="sse-run-demo-")
    os.chmod(scratch, 0o755)
    try:
        run_demo(top, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run_demo(top, scratch):
    port = free_port()
    env = dict(os.environ, PORT=str(port), TMPDIR=scratch)
    # its own process group, as a terminal's foreground job: Ctrl-C is a
    # SIGINT to the whole group
    proc = subprocess.Popen(["sh", os.path.join(top, "examples",
                                                 "run-demo.sh")],
                            env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_listening(port, proc)
        page = http(port, "GET", "/")
        assert page.status == 200 and b"mod_sse_mgr demo" in page.body, (
            "the demo page from a checkout others cannot read: %s"
            % page.describe())
        assert http(port, "GET", "/demo.js").status == 200
        api = SSEApi(port)
        id = api.make_id("newuser")
        with api.register(id) as s:
            assert s.registered.payload() == "registered^" + id
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    conf = os.path.join(top, "build", "demo", "conf", "httpd.conf")
    wait_until(lambda: processes_mentioning(conf) == [], 5,
               "no httpd process left after Ctrl-C:\n%s"
               % out.decode(errors="replace"), interval=0.1)
    assert os.listdir(scratch) == [], (
        "the page's copy is removed when the demo stops: %r"
        % os.listdir(scratch))
