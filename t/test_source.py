"""Rules the source keeps: log tags unique and below next-number (the
httpd APLOGNO way), and the core in src/ free of httpd headers so its unit
tests link without httpd."""

import glob
import os
import re

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sources(pattern):
    return sorted(glob.glob(os.path.join(TOP, pattern)))


def test_every_log_tag_is_unique_and_below_next_number():
    seen = {}
    for path in sources("*.c") + sources("examples/*.c"):
        with open(path) as f:
            for n in re.findall(r"SSE_LOGNO\((\d{5})\)", f.read()):
                assert n not in seen, ("SSE%s used in %s and %s"
                                       % (n, seen[n], path))
                seen[n] = path
    with open(os.path.join(TOP, "next-number")) as f:
        nxt = int(f.read())
    assert seen, "no SSE_LOGNO tag found at all"
    too_high = sorted(n for n in seen if int(n) >= nxt)
    assert not too_high, ("tags at or above next-number %d: %r; raise "
                          "next-number" % (nxt, too_high))


def test_core_includes_no_httpd_header():
    httpd_headers = re.compile(
        r'#\s*include\s*[<"](httpd|http_\w+|ap_\w+|util_\w+|mpm_\w+|'
        r'scoreboard)\.h[>"]')
    offenders = []
    for path in sources("src/*.[ch]"):
        with open(path) as f:
            if httpd_headers.search(f.read()):
                offenders.append(os.path.relpath(path, TOP))
    assert not offenders, "httpd headers in the core: %r" % offenders


# The core's network clients: they talk to a server (through hiredis),
# so they may block on I/O, and therefore never touch the registry or its
# lock; the rest of src/ performs no I/O at all.
NETWORK_CLIENTS = ["src/sse_redis_conn.c", "src/sse_bus_redis.c",
                   "src/sse_bus_read.c"]


def test_no_io_while_the_registry_lock_is_held():
    """The registry mutex is taken only inside src/ (LOCKED blocks behind
    the sse_registry_* calls), and src/ performs no I/O but in its network
    clients, which take no lock: no socket, file, poll or sleep call. So no
    lock any process waits for is ever held across a write to a client, a
    wake-up or a Redis round trip."""
    io = re.compile(r"\b(send|sendto|sendmsg|write|writev|recv|recvfrom|"
                    r"read|poll|epoll_wait|select|usleep|nanosleep|sleep|"
                    r"apr_socket_\w+|apr_file_\w+|apr_poll\w*|apr_sleep|"
                    r"ap_pass_brigade|ap_get_brigade)\s*\(")
    offenders = []
    for path in sources("src/*.c"):
        if os.path.relpath(path, TOP) in NETWORK_CLIENTS:
            continue
        with open(path) as f:
            for m in io.finditer(f.read()):
                offenders.append("%s: %s" % (os.path.relpath(path, TOP),
                                             m.group(1)))
    assert not offenders, "I/O in the core, maybe under the lock: %r" % (
        offenders,)
    locking = re.compile(r"sse_registry\w*\.h|\bsse_reg_lock\b|"
                         r"apr_global_mutex_\w+|apr_thread_mutex_\w+")
    for rel in NETWORK_CLIENTS:
        with open(os.path.join(TOP, rel)) as f:
            found = locking.findall(f.read())
        assert not found, ("%s talks to a server and must hold no lock, "
                           "but uses %r" % (rel, found))
    lockers = []
    for path in sources("mod_sse_*.c"):      # the module's glue
        with open(path) as f:
            if re.search(r"\b(sse_reg_lock|apr_global_mutex_lock)\s*\(",
                         f.read()):
                lockers.append(os.path.relpath(path, TOP))
    assert not lockers, ("the registry lock is taken outside src/: %r"
                         % lockers)
