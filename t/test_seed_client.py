"""The original browser client, @aphorica/server-event-client 0.1.5 from
npm, unchanged, in Node with the `eventsource` package: it registers,
listens, gets a notification and a task completion, and disconnects;
the payload events sent before each (named events) it ignores without
an error."""

import json
import os
import shutil
import subprocess

import pytest

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")


def test_original_client_registers_and_receives_notify_and_completion(
        httpd):
    node = shutil.which("node")
    assert node, "node is not installed (make test installs it)"
    assert os.path.isdir(os.path.join(
        NODE_DIR, "node_modules", "@aphorica", "server-event-client")), \
        "run `npm ci` in t/node (make test does it)"
    proc = subprocess.run(
        [node, "seed_client_test.mjs", "http://127.0.0.1:%d" % httpd.port],
        cwd=NODE_DIR, capture_output=True, text=True, timeout=60)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() \
        else ""
    assert proc.returncode == 0, (
        "the original client failed against mod_sse_mgr:\nstdout:\n%s\n"
        "stderr:\n%s" % (proc.stdout, proc.stderr))
    summary = json.loads(last)
    assert summary["ok"] is True
    assert summary["notify"] == "news"
    assert summary["completed"] == "task42"
