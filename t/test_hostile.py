"""Hundreds of hostile requests against a running httpd: fuzzed path
segments, methods, headers and bodies, percent-encoding tricks, control
bytes, unicode, huge values and a registration flood. Every answer is a
clean status (never a 5xx from the module, never a dropped connection
without an answer), nothing changes, and the normal flow still works
afterwards with no crash in the error log."""

import random

from sse_client import fresh_name, raw_request, raw_status

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


def wake_names(pids):
    """Abstract unix socket names of mod_sse_mgr's wake-ups, per pid."""
    names = {}
    with open("/proc/net/unix") as f:
        for row in f.readlines()[1:]:
            cols = row.split()
            if len(cols) >= 8 and cols[7].startswith("@mod_sse_mgr."):
                parts = cols[7][1:].split(".")
                if len(parts) == 3 and int(parts[1]) in pids:
                    names[int(parts[1])] = parts[2]
    return names


def test_wake_up_socket_names_cannot_be_guessed_and_survive_restarts(
        make_httpd):
    """A local user could bind a child's wake-up name before the child
    does (the abstract namespace has no permissions): the name carries a
    random word per httpd run, shared by every generation of children so
    that old and new ones still wake each other after a graceful."""
    env = make_httpd()
    before = wake_names(set(env.children()))
    assert before, "no wake-up socket found in /proc/net/unix"
    tokens = set(before.values())
    assert len(tokens) == 1 and all(
        len(t) == 16 and int(t, 16) != 0 for t in tokens), before
    env.graceful()
    after = wake_names(set(env.children()))
    assert after and set(after.values()) == tokens, (before, after)
    other = make_httpd()
    assert set(wake_names(set(other.children())).values()) != tokens, (
        "two httpd runs drew the same wake-up word")
