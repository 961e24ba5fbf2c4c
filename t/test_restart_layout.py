"""A graceful restart keeps the shared segment for the next generation.
When that generation cannot use it — the module was rebuilt with other
record sizes, or SSEHistory changed — it must start a fresh one and say
why, never lay its records over the old segment."""

import os
import shutil
import subprocess

import pytest

from sse_harness import REPO

SOURCES = ("Makefile", "build-quiet.sh", "src", "include")


@pytest.fixture(scope="module")
def wider_module(tmp_path_factory):
    """The module built from a copy of this tree with one more listen key
    per listener: every slot is larger, nothing else (no version bump)."""
    root = tmp_path_factory.mktemp("wider")
    for name in os.listdir(REPO):
        path = os.path.join(REPO, name)
        if name in SOURCES or (name.endswith((".c", ".h"))
                               and os.path.isfile(path)):
            if os.path.isdir(path):
                shutil.copytree(path, os.path.join(root, name),
                                ignore=shutil.ignore_patterns(
                                    "*.o", "*.lo", "*.slo", ".libs"))
            else:
                shutil.copy(path, root)
    header = os.path.join(root, "src", "sse_registry.h")
    with open(header) as f:
        text = f.read()
    assert "#define SSE_MAX_KEYS 32" in text, "SSE_MAX_KEYS moved?"
    with open(header, "w") as f:
        f.write(text.replace("#define SSE_MAX_KEYS 32",
                             "#define SSE_MAX_KEYS 40"))
    proc = subprocess.run(["make", "-C", str(root), ".libs/mod_sse_mgr.so"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.returncode == 0, proc.stdout.decode("utf-8", "replace")
    return os.path.join(str(root), ".libs", "mod_sse_mgr.so")


def assert_events_flow(api, name):
    id, s = api.listener(name, keys=["after"])
    assert api.notify_listeners("after") == 1, "the new listener holds key"
    ev = s.next_event(5)
    assert "after" in ev.data, "the event reaches the stream: %r" % ev
    s.close()
    return id


def test_graceful_onto_a_rebuilt_module_starts_a_fresh_segment(
        make_httpd, wider_module):
    env = make_httpd()
    api = env.api
    before, s = api.listener("layout-before", keys=["k"])
    s.close()
    api.wait_disconnected(before)
    env.module = wider_module
    env.write_config()
    env.expect_log(r"SSE00160: ")
    env.graceful()
    log = env.read_log()
    assert "SSE00160" in log and "layout changed" in log, (
        "a segment laid out by another build must be replaced, and the "
        "log must say so:\n" + log[-3000:])
    assert "exit signal" not in log, (
        "a process of the new generation crashed:\n" + log[-3000:])
    assert before not in api.registrants(), (
        "the new generation starts with empty registries")
    assert_events_flow(api, "layout-after")
    # and back: the segment of the wider build is not this build's either
    env.module = os.path.join(REPO, ".libs", "mod_sse_mgr.so")
    env.write_config()
    env.expect_log(r"SSE00160: ")
    env.graceful()
    assert env.read_log().count("SSE00160") == 2, "refused on the way back"
    assert_events_flow(api, "layout-back")


def test_graceful_with_another_history_starts_a_fresh_segment(make_httpd):
    env = make_httpd(directives={"SSEHistory": "64"})
    api = env.api
    before, s = api.listener("history-before")
    s.close()
    env.directives["SSEHistory"] = "128"
    env.write_config()
    env.expect_log(r"SSE00014: .*SSEHistory")
    env.graceful()
    log = env.read_log()
    assert "SSE00014" in log and "SSE00160" not in log, (
        "a changed SSEHistory is a configuration change, not another "
        "build:\n" + log[-3000:])
    assert before not in api.registrants(), "empty registries"
    assert_events_flow(api, "history-after")


def test_graceful_with_the_same_configuration_keeps_the_segment(make_httpd):
    env = make_httpd()
    api = env.api
    kept, s = api.listener("same-before", keys=["k"])
    s.close()
    api.wait_disconnected(kept)
    env.graceful()
    log = env.read_log()
    assert "SSE00160" not in log and "SSE00014" not in log, log[-3000:]
    assert kept in api.registrants(), "the same layout keeps its listeners"
