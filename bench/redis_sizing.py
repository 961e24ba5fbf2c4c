#!/usr/bin/python3
"""Redis memory per listener and per log entry under SSEBus (docs/cluster.md,
"Sizing Redis"): one host, one redis-server, 2,000 listeners with a key of
their own, then 1,000 notifies. Run: /usr/bin/python3 bench/redis_sizing.py"""
import os, sys, time, subprocess, tempfile, socket
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "t"))
from sse_harness import HttpdEnv, free_port
from sse_client import http
from redis_harness import RedisServer
d = tempfile.mkdtemp(prefix="size-")
r = RedisServer(d + "/redis"); r.start()
h = HttpdEnv("event", d + "/h", directives={"SSESecret": "0123456789abcdef0123", "SSEBus": "redis://127.0.0.1:%d" % r.port, "SSEMaxListeners": "3000", "SSEHistory": "1024"})
h.start()
def mem():
    info = r.info("memory") if hasattr(r, "info") else None
    for line in r.cmd("INFO", "memory").decode().splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":")[1])
try:
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", h.port)
    def req(m, p):
        c.request(m, p); resp = c.getresponse(); return resp.status, resp.read().decode()
    # a notify so the log exists
    m0 = mem()
    ids = []
    N = 2000
    for i in range(N):
        _, id = req("GET", "/sse/make-id/user%d" % i)
        ids.append(id)
    # register without a stream: open stream briefly
    import socket as so
    for id in ids:
        s = so.create_connection(("127.0.0.1", h.port)); s.sendall(("GET /sse/register-listener/%s HTTP/1.1\r\nHost: x\r\n\r\n" % id).encode()); s.recv(4096); s.close()
    for id in ids:
        req("POST", "/sse/listen/%s/key%s" % (id, id[-6:]))
    time.sleep(1)
    m1 = mem()
    st, _ = req("POST", "/sse/notify-listeners/key" + ids[0][-6:])
    m1b = mem()
    r.cmd("XTRIM", "sse:/sse/:log", "MAXLEN", "0")
    m1b = mem()
    r.cmd("CONFIG", "SET", "stream-node-max-entries", "100")
    for i in range(1000):
        req("POST", "/sse/notify-listeners/key" + ids[i % N][-6:])
    m2 = mem()
    x1 = r.cmd("XLEN", "sse:/sse/:log")
    print("xlen after listeners", x1)
    per_entry = (m2 - m1b) / 1000
    print("per listener record (one key), log entries excluded: %.0f bytes" % ((m1 - m0 - x1 * per_entry) / N))
    print("per log entry (notify, no payload): %.0f bytes" % ((m2 - m1b) / 1000))
    print("m0 %d m1 %d m2 %d" % (m0, m1, m2))
finally:
    h.stop(); r.stop()
