"""Client side of the mod_sse_mgr integration tests.

Standard library only: plain requests through http.client, and an
incremental Server-Sent Events reader on a raw socket (a background thread
reads, dechunks and parses; every wait the tests do on it is bounded).
"""

import collections
import http.client as httplib
import itertools
import json
import os
import re
import selectors
import socket
import ssl
import threading
import time

DEFAULT_TIMEOUT = 10.0
HOST = "127.0.0.1"
TLS_HOST = "localhost"  # the test certificate's name; /etc/hosts: 127.0.0.1


class Headers:
    """Response headers, looked up case-insensitively; repeated fields are
    joined with ", " by get() and kept apart by get_all()."""

    def __init__(self, items):
        self._items = [(k, v) for k, v in items]

    def get_all(self, name):
        name = name.lower()
        return [v for k, v in self._items if k.lower() == name]

    def get(self, name, default=None):
        values = self.get_all(name)
        return ", ".join(values) if values else default

    def __getitem__(self, name):
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name):
        return bool(self.get_all(name))

    def items(self):
        return list(self._items)

    def tokens(self, name):
        """The comma-separated tokens of a header, e.g. Allow, upper-cased."""
        value = self.get(name) or ""
        return {t.strip().upper() for t in value.split(",") if t.strip()}

    def __repr__(self):
        return "Headers(%r)" % (self._items,)


class Response(collections.namedtuple("Response", "status headers body")):
    """(status, headers, body) with small conveniences for assertions."""

    __slots__ = ()

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    @property
    def content_type(self):
        return (self.headers.get("Content-Type") or "").split(";")[0].strip()

    def json(self):
        return json.loads(self.body)

    def describe(self):
        """One paragraph for assertion messages."""
        hdrs = "\n".join("  %s: %s" % kv for kv in self.headers.items())
        return "HTTP %d\n%s\n  body: %r" % (self.status, hdrs,
                                            self.body[:500])


def raw_request(port, data, timeout=5.0, until=b"\r\n", reset=False,
                host=HOST):
    """Send @data, bytes as they are, on a connection of its own; the bytes
    answered, read until @until is among them (None: until the server
    closes). None when neither came within @timeout. reset: leave at once
    with an RST (SO_LINGER 0) after sending, reading nothing."""
    with socket.create_connection((host, port), timeout) as s:
        s.sendall(data)
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return b""
        got = b""
        try:
            while until is None or until not in got:
                part = s.recv(65536)
                if not part:
                    break
                got += part
        except socket.timeout:
            return None
    return got


def raw_status(answer):
    """The status code of a raw_request() answer, None if it has none."""
    parts = (answer or b"").split(b" ", 2)
    if len(parts) > 1 and parts[0].startswith(b"HTTP/") and \
            parts[1].isdigit():
        return int(parts[1])
    return None


def forge_id(id, where="suffix"):
    """The same id with one character changed, in its suffix (the part
    the server's secret signs) or in its name: an id the server did not
    issue."""
    name, _, suffix = id.rpartition("_")
    if where == "suffix":
        i = len(suffix) // 2
        c = "B" if suffix[i] != "B" else "C"
        return "%s_%s%s%s" % (name, suffix[:i], c, suffix[i + 1:])
    c = "q" if name[0] != "q" else "r"
    return "%s%s_%s" % (c, name[1:], suffix)


def http(port, method, path, headers=None, body=None,
         timeout=DEFAULT_TIMEOUT, host=HOST, source=None):
    """One request on its own connection (Connection: close, so successive
    requests may well land on different child processes); source: the
    local address to send from (any of 127/8 reaches the server)."""
    return exchange(httplib.HTTPConnection(
        host, port, timeout=timeout,
        source_address=(source, 0) if source else None),
        method, path, headers, body)


def exchange(conn, method, path, headers=None, body=None, connected=None):
    """One request with Connection: close on @conn (closed after);
    connected(conn), if given, is called once it is connected."""
    try:
        hdrs = {"Connection": "close"}
        hdrs.update(headers or {})
        if isinstance(body, str):
            body = body.encode("utf-8")
        if connected:
            conn.connect()
            connected(conn)
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, Headers(resp.getheaders()), data)
    finally:
        conn.close()


class StreamTimeout(AssertionError):
    """A bounded wait on a stream ran out."""


class StreamClosed(AssertionError):
    """The stream ended while the test still waited for something."""


class Event:
    """One dispatched SSE event. id and event are None when the block had
    no such field; data is the data lines joined by newlines; raw is the
    block's bytes, blank line included, exactly as received."""

    __slots__ = ("id", "event", "data", "raw", "at")

    def __init__(self, id, event, data, raw, at):
        self.id, self.event, self.data = id, event, data
        self.raw, self.at = raw, at

    @property
    def seq(self):
        return int(self.id)

    def payload(self):
        """The data decoded as JSON (the module's data is a JSON string)."""
        return json.loads(self.data)

    def __repr__(self):
        return "Event(id=%r, event=%r, data=%r)" % (self.id, self.event,
                                                    self.data)


class Comment:
    __slots__ = ("text", "at")

    def __init__(self, text, at):
        self.text, self.at = text, at

    def __repr__(self):
        return "Comment(%r)" % (self.text,)


class SSEStream:
    """A GET held open on a raw socket, parsed as HTTP/1.1 then SSE.

    The response head is available as status/headers once wait_headers()
    returned (the constructor waits by default). The body, dechunked, is
    in raw_bytes; events queue up for next_event(); comment lines go to
    comments. closed() is true once the body ended (last chunk, end of a
    Content-Length body) or the connection hit EOF.
    """

    _live = set()
    _live_lock = threading.Lock()

    def __init__(self, port, path, headers=None, timeout=DEFAULT_TIMEOUT,
                 host=HOST, wait_headers=True, rcvbuf=None, paused=False,
                 wrap=None, group=None, source=None):
        self.port, self.path = port, path
        self.status = None
        self.reason = None
        self.headers = None
        self.raw_bytes = bytearray()
        self.comments = []
        self.retry = None
        self.error = None
        self._events = []
        self._next = 0
        self._cond = threading.Condition()
        self._stop = False
        self._eof = False
        self._body_done = False
        self._head = bytearray()
        self._mode = None
        self._remaining = 0
        self._chunk_state = "size"
        self._chunk_buf = bytearray()
        self._line_buf = bytearray()
        self._block = self._new_block()

        headers = dict(headers or {})
        vhost = headers.pop("Host", None) or "%s:%d" % (host, port)
        lines = ["GET %s HTTP/1.1" % path, "Host: %s" % vhost,
                 "Accept: text/event-stream", "Cache-Control: no-cache"]
        for k, v in headers.items():
            lines.append("%s: %s" % (k, v))
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

        # paused: a client that reads nothing until resume_reading();
        # rcvbuf (set before connecting) keeps its window small
        self._reading = threading.Event()
        if not paused:
            self._reading.set()
        if rcvbuf:
            self.sock = socket.socket()
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
        else:
            # source: the local address (another client, to the server)
            self.sock = socket.create_connection(
                (host, port), timeout=timeout,
                source_address=(source, 0) if source else None)
        if wrap:        # e.g. TLS: wrap(socket) -> the socket to use
            self.sock = wrap(self.sock)
        self.local_port = self.sock.getsockname()[1]
        self.sock.sendall(request)
        self.sock.settimeout(0.2)
        with SSEStream._live_lock:
            SSEStream._live.add(self)
        # group: a StreamGroup's one thread reads this stream among many
        self._group = group
        if group is not None:
            self._thread = None
            group.add(self)
        else:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name="sse %s" % path)
            self._thread.start()
        if wait_headers:
            self.wait_headers(timeout)

    # -- reader thread -------------------------------------------------

    def _run(self):
        while not self._stop:
            if not self._reading.wait(0.2):
                continue
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError as e:
                self._failed(e)
                return
            if not self._received(data):
                return

    def _failed(self, e):
        with self._cond:
            if not self._stop:
                self.error = e
            self._eof = True
            self._cond.notify_all()

    def _received(self, data):
        """Take bytes read (b"": EOF); False once nothing more will come."""
        with self._cond:
            if not data:
                self._eof = True
                if self._mode == "close":
                    self._flush_partial()
                    self._body_done = True
            else:
                try:
                    self._feed(data)
                except Exception as e:  # a framing error is a finding
                    self.error = e
                    self._eof = True
            self._cond.notify_all()
            return not self._eof

    def _feed(self, data):
        if self.status is None:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._head[:end]).decode("latin-1")
            rest = bytes(self._head[end + 4:])
            self._parse_head(head)
            data = rest
        if data:
            self._feed_body(data)

    def _parse_head(self, head):
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ValueError("bad status line %r" % lines[0])
        items = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            items.append((name.strip(), value.strip()))
        self.headers = Headers(items)
        self.reason = parts[2] if len(parts) > 2 else ""
        te = self.headers.get("Transfer-Encoding", "").lower()
        clen = self.headers.get("Content-Length")
        status = int(parts[1])
        if status in (204, 304) or 100 <= status < 200:
            self._mode = "none"
            self._body_done = True
        elif "chunked" in te:
            self._mode = "chunked"
        elif clen is not None:
            self._mode = "length"
            self._remaining = int(clen)
            if self._remaining == 0:
                self._body_done = True
        else:
            self._mode = "close"
        self.status = status

    def _feed_body(self, data):
        if self._body_done:
            return
        if self._mode == "length":
            data = data[:self._remaining]
            self._remaining -= len(data)
            self._body(data)
            if self._remaining == 0:
                self._body_done = True
        elif self._mode == "close":
            self._body(data)
        elif self._mode == "chunked":
            self._dechunk(data)

    def _dechunk(self, data):
        buf = self._chunk_buf
        buf += data
        while buf and not self._body_done:
            if self._chunk_state == "size":
                nl = buf.find(b"\r\n")
                if nl < 0:
                    return
                size = int(bytes(buf[:nl]).split(b";")[0].strip(), 16)
                del buf[:nl + 2]
                if size == 0:
                    self._chunk_state = "trailer"
                else:
                    self._remaining = size
                    self._chunk_state = "data"
            elif self._chunk_state == "data":
                take = bytes(buf[:self._remaining])
                del buf[:len(take)]
                self._remaining -= len(take)
                self._body(take)
                if self._remaining == 0:
                    self._chunk_state = "crlf"
            elif self._chunk_state == "crlf":
                if len(buf) < 2:
                    return
                if bytes(buf[:2]) != b"\r\n":
                    raise ValueError("chunk not followed by CRLF: %r"
                                     % bytes(buf[:20]))
                del buf[:2]
                self._chunk_state = "size"
            elif self._chunk_state == "trailer":
                nl = buf.find(b"\r\n")
                if nl < 0:
                    return
                line = bytes(buf[:nl])
                del buf[:nl + 2]
                if line == b"":
                    self._flush_partial()
                    self._body_done = True

    # -- SSE parsing (WHATWG event-stream rules, lines end in LF) ---------

    @staticmethod
    def _new_block():
        return {"id": None, "event": None, "data": None, "raw": bytearray()}

    def _body(self, data):
        self.raw_bytes += data
        self._line_buf += data
        while True:
            nl = self._line_buf.find(b"\n")
            if nl < 0:
                break
            line = bytes(self._line_buf[:nl])
            del self._line_buf[:nl + 1]
            self._block["raw"] += line + b"\n"
            if line.endswith(b"\r"):
                line = line[:-1]
            self._line(line.decode("utf-8", "replace"))

    def _flush_partial(self):
        """The body ended: a last line without LF is dropped, as
        EventSource does; nothing to dispatch."""
        self._line_buf.clear()

    def _line(self, line):
        now = time.monotonic()
        if line == "":
            blk = self._block
            if blk["data"] is not None:
                self._events.append(Event(blk["id"], blk["event"],
                                          "\n".join(blk["data"]),
                                          bytes(blk["raw"]), now))
            self._block = self._new_block()
            return
        if line.startswith(":"):
            text = line[1:]
            self.comments.append(Comment(text[1:] if text.startswith(" ")
                                         else text, now))
            return
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            if self._block["data"] is None:
                self._block["data"] = []
            self._block["data"].append(value)
        elif field == "id":
            self._block["id"] = value
        elif field == "event":
            self._block["event"] = value
        elif field == "retry" and value.isdigit():
            self.retry = int(value)

    # -- what the tests call ------------------------------------------------

    def _tail(self):
        return bytes(self.raw_bytes[-300:])

    def resume_reading(self):
        self._reading.set()

    def wait_headers(self, timeout=DEFAULT_TIMEOUT):
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.status is None:
                if self._eof:
                    raise StreamClosed(
                        "connection to %s closed before a response head "
                        "(error %r, got %r)" % (self.path, self.error,
                                                bytes(self._head[:300])))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StreamTimeout(
                        "no response head for GET %s within %.1fs (got %r)"
                        % (self.path, timeout, bytes(self._head[:300])))
                self._cond.wait(left)
        return self.status

    def closed(self):
        with self._cond:
            return self._eof or self._body_done

    def wait_closed(self, timeout):
        """True when the body ended within timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (self._eof or self._body_done):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def body(self, timeout=DEFAULT_TIMEOUT):
        """The whole body of a response that is not a stream (404, 204…)."""
        if not self.wait_closed(timeout):
            raise StreamTimeout("body of GET %s did not end within %.1fs "
                                "(got %r)" % (self.path, timeout,
                                              self._tail()))
        return bytes(self.raw_bytes)

    def pending(self):
        with self._cond:
            return len(self._events) - self._next

    def next_event(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._next >= len(self._events):
                if self._eof or self._body_done:
                    raise StreamClosed(
                        "stream %s ended while waiting for an event "
                        "(error %r); last bytes: %r"
                        % (self.path, self.error, self._tail()))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StreamTimeout(
                        "no event on %s within %.1fs; last bytes: %r"
                        % (self.path, timeout, self._tail()))
                self._cond.wait(left)
            ev = self._events[self._next]
            self._next += 1
            return ev

    def next_events(self, n, timeout=10.0):
        """n events, all within one deadline."""
        deadline = time.monotonic() + timeout
        got = []
        try:
            while len(got) < n:
                got.append(self.next_event(
                    max(0.0, deadline - time.monotonic())))
        except (StreamTimeout, StreamClosed) as e:
            raise type(e)("got %d of %d events: %s" % (len(got), n, e))
        return got

    def wait_comment(self, timeout, after=None):
        """The first comment numbered past `after` (default: the comments
        already seen), within timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = len(self.comments) if after is None else after
            while len(self.comments) <= seen:
                if self._eof or self._body_done:
                    raise StreamClosed("stream %s ended while waiting for a "
                                       "comment; last bytes: %r"
                                       % (self.path, self._tail()))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StreamTimeout("no comment on %s within %.1fs; "
                                        "last bytes: %r"
                                        % (self.path, timeout, self._tail()))
                self._cond.wait(left)
            return self.comments[seen]

    def close(self):
        self._stop = True
        if self._group is not None:
            self._group.remove(self)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(2.0)
        with SSEStream._live_lock:
            SSEStream._live.discard(self)

    @classmethod
    def close_all(cls, port=None):
        with cls._live_lock:
            streams = [s for s in cls._live if port is None or s.port == port]
        for s in streams:
            s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "SSEStream(%s, status=%r)" % (self.path, self.status)


class StreamGroup:
    """One reader thread for many SSEStreams (pass group= when opening
    them), where a thread per stream would be thousands of threads."""

    def __init__(self):
        self._sel = selectors.EpollSelector()
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="sse stream group")
        self._thread.start()

    def add(self, stream):
        with self._lock:
            self._sel.register(stream.sock, selectors.EVENT_READ, stream)

    def remove(self, stream):
        with self._lock:
            try:
                self._sel.unregister(stream.sock)
            except (KeyError, ValueError):
                pass

    def _run(self):
        # epoll may be waited on while other threads add and remove
        while not self._stop:
            for key, _ in self._sel.select(0.05):
                stream = key.data
                try:
                    data = stream.sock.recv(65536)
                except (socket.timeout, BlockingIOError):
                    continue
                except OSError as e:
                    self.remove(stream)
                    stream._failed(e)
                    continue
                if not stream._received(data):
                    self.remove(stream)

    def close(self):
        self._stop = True
        self._thread.join(2.0)
        self._sel.close()


COMPLETED = re.compile(r'completed\^\{"timestamp":(\d+),"id":"([^"\\]*)",'
                       r'"taskid":"([^"\\]*)"\}')


def parse_completion(ev):
    """(timestamp, id, taskid) of a completed^ event, asserting its form:
    data is a JSON string completed^{"timestamp":..,"id":..,"taskid":..}."""
    payload = ev.payload()
    assert isinstance(payload, str), "data must be a JSON string: %r" % ev
    m = COMPLETED.fullmatch(payload)
    assert m, ('completion payload should be completed^{"timestamp":<ms>,'
               '"id":"<id>","taskid":"<taskid>"}, got %r' % payload)
    inner = json.loads(payload.split("^", 1)[1])
    assert set(inner) == {"timestamp", "id", "taskid"}, inner
    return int(m.group(1)), m.group(2), m.group(3)


_names = itertools.count(1)


def fresh_name(prefix="u"):
    """A name no other test uses: the session server is shared."""
    return "%s%d-%s" % (prefix, next(_names), os.urandom(4).hex())


class SSEApi:
    """The module's routes, with the success path asserted.

    The raw request is always reachable through request() for tests of the
    failure paths.
    """

    def __init__(self, port, prefix="/sse/", headers=None, source=None):
        self.port, self.prefix = port, prefix
        self.headers = dict(headers or {})  # sent with every request
        self.source = source    # local address requests are sent from

    def path(self, route, *segments):
        return self.prefix + "/".join((route,) + segments)

    def request(self, method, route, *segments, headers=None, body=None,
                query=None):
        path = self.path(route, *segments)
        if query:
            path += "?" + query
        hdrs = dict(self.headers)
        hdrs.update(headers or {})
        return http(self.port, method, path, headers=hdrs, body=body,
                    source=self.source)

    def _ok(self, resp, what):
        assert resp.status == 200, "%s failed:\n%s" % (what, resp.describe())
        return resp

    def make_id(self, name):
        resp = self._ok(self.request("GET", "make-id", name),
                        "make-id/%s" % name)
        return resp.text

    def stream(self, id, last_event_id=None, query=None, headers=None,
               timeout=DEFAULT_TIMEOUT, wait_headers=True, **kw):
        """Open register-listener/{id}; no assertion on the outcome."""
        hdrs = dict(self.headers)
        hdrs.update(headers or {})
        if last_event_id is not None:
            hdrs["Last-Event-ID"] = str(last_event_id)
        path = self.path("register-listener", id)
        if query:
            path += "?" + query
        kw.setdefault("source", self.source)
        return SSEStream(self.port, path, headers=hdrs, timeout=timeout,
                         wait_headers=wait_headers, **kw)

    def register(self, id, timeout=DEFAULT_TIMEOUT, **kw):
        """Open a stream and read its `registered` event."""
        s = self.stream(id, timeout=timeout, **kw)
        try:
            assert s.status == 200, (
                "register-listener/%s answered %s %s, body %r"
                % (id, s.status, s.reason, s.body(2) if s.status else b""))
            ev = s.next_event(timeout)
            assert ev.payload() == "registered^" + id, (
                "first event of a new stream should be registered^%s, got "
                "%r" % (id, ev))
            s.registered = ev
        except BaseException:
            s.close()
            raise
        return s

    def listener(self, name=None, keys=()):
        """make-id + register + listen: (id, open stream)."""
        id = self.make_id(name or fresh_name())
        s = self.register(id)
        for k in keys:
            self.listen(id, k)
        return id, s

    def listen(self, id, key, method="PUT"):
        resp = self._ok(self.request(method, "listen", id, key),
                        "%s listen/%s/%s" % (method, id, key))
        assert resp.body == b"ok", resp.describe()

    def _delivered(self, resp, what):
        self._ok(resp, what)
        assert resp.content_type == "application/json", resp.describe()
        doc = resp.json()
        assert isinstance(doc, dict) and isinstance(doc.get("delivered"),
                                                    int), resp.describe()
        return doc["delivered"]

    def notify_listeners(self, key, method="POST"):
        return self._delivered(self.request(method, "notify-listeners", key),
                               "notify-listeners/%s" % key)

    def notify_completions(self, id, taskid, method="POST"):
        return self._delivered(
            self.request(method, "notify-completions", id, taskid),
            "notify-completions/%s/%s" % (id, taskid))

    def registrants(self):
        resp = self._ok(self.request("GET", "list-registrants"),
                        "list-registrants")
        assert resp.content_type == "application/json", resp.describe()
        return resp.json()

    def disconnect(self, id):
        resp = self._ok(self.request("GET", "disconnect-registrant", id),
                        "disconnect-registrant/%s" % id)
        assert resp.body == b"ok", resp.describe()

    def clear(self):
        resp = self._ok(self.request("GET", "clear-registrants"),
                        "clear-registrants")
        assert resp.body == b"ok", resp.describe()

    def cleanup(self):
        resp = self._ok(self.request("GET", "trigger-cleanup"),
                        "trigger-cleanup")
        assert resp.body == b"ok", resp.describe()

    def wait_disconnected(self, id, timeout=8.0):
        """Wait until list-registrants says the id has no stream."""
        deadline = time.monotonic() + timeout
        entry = None
        while time.monotonic() < deadline:
            entry = self.registrants().get(id)
            assert entry is not None, "%s vanished from list-registrants" % id
            if entry.get("connected") is False:
                return entry
            time.sleep(0.1)
        raise AssertionError("%s still connected %.0fs after its client "
                             "closed the stream: %r" % (id, timeout, entry))


def client_context(cafile):
    """A verifying TLS client context with @cafile as its only CA."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = True
    return ctx


class TLSApi(SSEApi):
    """The module's routes over https (a server from sse_harness's
    tls_server()), each request on a connection of its own; streams are
    SSEStreams on a verified TLS socket."""

    def __init__(self, env, prefix="/sse/"):
        super().__init__(env.tls_port, prefix)
        self.ctx = client_context(env.cafile)
        self.tls_versions = []

    def request(self, method, route, *segments, headers=None, body=None,
                query=None):
        path = self.path(route, *segments) + ("?" + query if query else "")
        conn = httplib.HTTPSConnection(TLS_HOST, self.port,
                                       timeout=DEFAULT_TIMEOUT,
                                       context=self.ctx)
        hdrs = dict(self.headers)
        hdrs.update(headers or {})
        return exchange(conn, method, path, hdrs, body, connected=lambda c:
                        self.tls_versions.append(c.sock.version()))

    def _wrap(self, sock):
        return self.ctx.wrap_socket(sock, server_hostname=TLS_HOST)

    def stream(self, id, last_event_id=None, query=None, headers=None,
               timeout=DEFAULT_TIMEOUT, wait_headers=True, **kw):
        return super().stream(id, last_event_id=last_event_id, query=query,
                              headers=headers, timeout=timeout,
                              wait_headers=wait_headers, host=TLS_HOST,
                              wrap=self._wrap, **kw)
