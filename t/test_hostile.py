"""Hundreds of hostile requests against a running httpd: fuzzed path
segments, methods, headers and bodies, percent-encoding tricks, control
bytes, unicode, huge values and a registration flood. Every answer is a
clean status (never a 5xx from the module, never a dropped connection
without an answer), nothing changes, and the normal flow still works
afterwards with no crash in the error log."""

import errno
import os
import pwd
import random
import stat
import subprocess
import sys

import pytest

from sse_client import fresh_name, raw_request, raw_status
from sse_harness import wait_until

# clear-registrants is left out: with no segment it would (rightly) clear
ROUTES = ["make-id", "register-listener", "disconnect-registrant",
          "list-registrants", "trigger-cleanup", "listen",
          "notify-completions", "notify-listeners", "no-such-route"]
NASTY = ["", ".", "..", "%2e%2e", "%2F", "a%2Fb", "%00", "a%00b", "%ff",
         "%c0%af", "%e2%80%ae", "%C3%A9", "a%20b", "%0d%0aX-Injected:1",
         "a" * 65, "a" * 5000, "_", "-a", "~", "a_" + "Z" * 27,
         "x_" + "0" * 26 + "!", "%25", "%", "%zz", "\u00e9", "a;b", "a?b",
         "a#b", "a\tb", "a*b", "a'b", 'a"b', "<script>"]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "TRACE", "FOO",
           "OPTIONS", "HEAD"]


def test_hostile_requests_get_clean_answers_and_change_nothing(make_httpd):
    env = make_httpd(directives={"SSEMaxListeners": "50"})
    # httpd itself logs some refusals (bad URIs) at info/error level
    env.expect_log(r"AH0\d+|AH1\d+")
    api = env.api
    keep, stream = api.listener(fresh_name("keep"), keys=["kept"])
    before = api.registrants()
    rnd = random.Random(20261125)
    statuses = []
    with stream:
        for _ in range(400):
            route = rnd.choice(ROUTES)
            segs = [rnd.choice(NASTY) for _ in range(rnd.randint(0, 3))]
            path = "/sse/" + route + "".join("/" + s for s in segs)
            method = rnd.choice(METHODS)
            headers = {}
            if rnd.random() < 0.3:
                headers["Last-Event-ID"] = rnd.choice(
                    ["-1", "abc", "9" * 40, "1e9", "", "0x10"])
            if rnd.random() < 0.2:
                headers["Origin"] = rnd.choice(["null", "x" * 3000])
            body = rnd.choice([None, b"", b"{}", b"\x00" * 100,
                               b"x" * 6000])
            req = ("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Connection: close\r\n" % (method, path)).encode(
                       "utf-8", "surrogateescape")
            for k, v in headers.items():
                req += ("%s: %s\r\n" % (k, v)).encode()
            if body is not None:
                req += b"Content-Length: %d\r\n" % len(body)
            req += b"\r\n" + (body or b"")
            status = raw_status(raw_request(env.port, req))
            statuses.append((status, method, path[:80]))
        # a registration flood: more distinct ids than the table holds
        flood = [api.stream(api.make_id(fresh_name("flood")))
                 for _ in range(60)]
        codes = [f.status for f in flood]
        for f in flood:
            f.close()
        assert not stream.closed(), "the kept stream must survive it all"
    no_answer = [s for s in statuses if s[0] is None]
    assert not no_answer, "requests left unanswered: %r" % no_answer[:10]
    # 501 is httpd's own answer to a method it does not know (FOO)
    fivexx = [s for s in statuses
              if s[0] >= 500 and not (s[0] == 501 and s[1] == "FOO")]
    assert not fivexx, "server errors: %r" % fivexx[:10]
    assert 503 in codes and 200 in codes, (
        "a flood beyond SSEMaxListeners gets 503 for the rest: %r"
        % sorted(set(codes)))
    after = api.registrants()
    assert after[keep]["listenKeys"] == before[keep]["listenKeys"] == \
        ["kept"], "hostile requests changed nothing of an existing listener"
    # the normal flow still works
    assert api.notify_listeners("kept") == 1
    log = env.read_log()
    assert "Segmentation fault" not in log and "exit signal" not in log


NOBODY_TRIES = r"""
import socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
for what, call in (("send", lambda: s.sendto(b"w", path)),
                   ("bind", lambda: s.bind(path + "-squat"))):
    try:
        call()
        print(what, "ok")
    except OSError as e:
        print(what, e.errno)
"""


def abstract_wake_names(pids):
    """Wake-up names of these processes in the abstract namespace."""
    names = []
    with open("/proc/net/unix") as f:
        for row in f.readlines()[1:]:
            cols = row.split()
            if len(cols) >= 8 and cols[7].startswith("@mod_sse_mgr."):
                if int(cols[7].split(".")[1]) in pids:
                    names.append(cols[7])
    return names


def test_no_other_local_user_can_reach_or_take_a_childs_wake_up_socket(
        make_httpd, mpm):
    """Each child's wake-up socket is in a directory only the httpd user
    may enter: another local user can neither send to it (a flood of
    wake-ups) nor bind a future child's name first (that child could not
    start its dispatcher). Old and new children still wake each other
    across a graceful restart."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a probe as another user")
    env = make_httpd()
    wake_dir = os.path.join(env.root, "run", "mod_sse_mgr")
    st = os.stat(wake_dir)
    assert stat.S_IMODE(st.st_mode) == 0o700, oct(st.st_mode)
    assert pwd.getpwuid(st.st_uid).pw_name == "www-data", st.st_uid
    def sockets_of_children():
        return all(os.path.exists(os.path.join(wake_dir, str(pid)))
                   for pid in env.children())
    # children bind theirs as they start, after httpd first answers
    wait_until(sockets_of_children, 10, "every child's wake-up socket")
    for pid in env.children():
        assert stat.S_ISSOCK(os.stat(os.path.join(wake_dir, str(pid)))
                             .st_mode), "child %d: not a socket" % pid
    names = abstract_wake_names(set(env.children()))
    assert not names, ("wake-up names in the abstract namespace are "
                       "reachable by any local user: %r" % names)
    child = env.children()[0]
    probe = subprocess.run(
        ["runuser", "-u", "nobody", "--", sys.executable, "-c",
         NOBODY_TRIES, os.path.join(wake_dir, str(child))],
        capture_output=True, text=True, timeout=30)
    assert probe.stdout.split() == ["send", str(errno.EACCES), "bind",
                                    str(errno.EACCES)], (
        "user nobody reached a child's wake-up socket: %r %r"
        % (probe.stdout, probe.stderr))
    # publish across children, before and after a graceful restart
    api = env.api
    id, s = api.listener(fresh_name("wake"), keys=["wk"])
    env.graceful()
    assert api.notify_listeners("wk") in (0, 1)
    id2, s2 = api.listener(fresh_name("wake"), keys=["wk2"])
    for _ in range(5):
        assert api.notify_listeners("wk2") == 1
    got = [s2.next_event(5).payload() for _ in range(5)]
    assert got == ["notify^wk2"] * 5, got
    wait_until(sockets_of_children, 10,
               "every new child's wake-up socket after the restart")
