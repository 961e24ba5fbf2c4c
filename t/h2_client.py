"""An HTTP/2 client whose frames the tests control (python3-h2): one
connection over TLS, its streams of register-listener parsed as they
arrive, RST_STREAM on demand, GOAWAY and resets recorded."""

import queue
import socket
import threading
import time

from sse_client import TLS_HOST as HOST
from sse_client import client_context


class H2Stream:
    """One register-listener stream of an H2Client: its SSE events (id,
    data) and heartbeat comments, parsed as they arrive."""

    def __init__(self, sid, id, ack):
        self.sid, self.id, self.ack = sid, id, ack
        self.status = None
        self.received = 0           # body bytes
        self.events = []            # (seq or None, data)
        self.comments = []          # monotonic times of comment lines
        self.ended = None           # "end", "reset" or "closed"
        self.reset_code = None      # the server's RST_STREAM error code
        self.buf = b""

    def feed(self, data):
        self.received += len(data)
        self.buf += data
        while b"\n\n" in self.buf:
            block, self.buf = self.buf.split(b"\n\n", 1)
            seq, lines = None, []
            for line in block.decode("utf-8", "replace").split("\n"):
                if line.startswith(":"):
                    self.comments.append(time.monotonic())
                elif line.startswith("id:"):
                    seq = int(line[3:].strip())
                elif line.startswith("data:"):
                    lines.append(line[5:].lstrip(" "))
            if lines:
                self.events.append((seq, "\n".join(lines)))

    def payloads(self):
        return [d for _, d in self.events]

    def last_seq(self):
        return max(s for s, _ in self.events if s is not None)


class H2Client:
    """One HTTP/2 connection over TLS (h2 by ALPN), driven with the `h2`
    package so that the test controls its frames: a small
    SETTINGS_INITIAL_WINDOW_SIZE, a stream whose data it never
    acknowledges (its window stays shut, so the server's write to it
    blocks), RST_STREAM on one stream. One thread does all the socket
    I/O (an ssl socket is not for two threads); the test's calls run
    there through a queue."""

    def __init__(self, env, window=65535):
        import h2.config
        import h2.connection
        ctx = client_context(env.cafile)
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", env.tls_port), 5)
        self.sock = ctx.wrap_socket(raw, server_hostname=HOST)
        assert self.sock.selected_alpn_protocol() == "h2", (
            "the server chose HTTP/2 by ALPN")
        self.sock.settimeout(0.05)
        self.authority = "%s:%d" % (HOST, env.tls_port)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.conn.update_settings({
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        # the connection's own window wide open: only a stream's window
        # holds its data back
        self.conn.increment_flow_control_window(2 ** 30)
        self.streams = {}
        self.goaway = None          # h2's ConnectionTerminated event
        self.inbuf = b""
        self.closed = False
        self.error = None
        self.calls = queue.Queue()
        self.lock = threading.Lock()
        self._send()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _send(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def _run(self):
        try:
            while not self.closed:
                while not self.calls.empty():
                    fn, box, done = self.calls.get()
                    try:
                        box.append(fn())
                    except BaseException as e:
                        box.append(e)
                    done.set()
                    self._send()
                try:
                    data = self.sock.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                self.inbuf += data
                while len(self.inbuf) >= 9:
                    end = 9 + int.from_bytes(self.inbuf[:3], "big")
                    if len(self.inbuf) < end:
                        break
                    frame, self.inbuf = self.inbuf[:end], self.inbuf[end:]
                    with self.lock:
                        if self.goaway is None:
                            self._receive(frame)
                        else:
                            self._after_goaway(frame)
                self._send()
        except (OSError, ValueError) as e:
            self.error = e
        finally:
            self.closed = True
            with self.lock:
                for s in self.streams.values():
                    s.ended = s.ended or "closed"

    def _receive(self, frame):
        import h2.events as ev
        for e in self.conn.receive_data(frame):
            s = self.streams.get(getattr(e, "stream_id", None))
            if isinstance(e, ev.ResponseReceived):
                s.status = dict(e.headers)[b":status"]
            elif isinstance(e, ev.DataReceived):
                s.feed(e.data)
                self._reopen(s, e.flow_controlled_length)
            elif isinstance(e, ev.StreamEnded):
                s.ended = s.ended or "end"
            elif isinstance(e, ev.StreamReset):
                s.ended = s.ended or "reset"
                s.reset_code = e.error_code
            elif isinstance(e, ev.ConnectionTerminated):
                self.goaway = e

    def _after_goaway(self, frame):
        """h2 takes a GOAWAY for the connection's end and refuses what
        follows; but the streams it let through (up to its last stream id)
        go on to their end (RFC 9113, 6.8): their DATA and RST_STREAM are
        read here."""
        from hyperframe.frame import DataFrame, Frame, RstStreamFrame
        f, _ = Frame.parse_frame_header(memoryview(frame[:9]))
        f.parse_body(memoryview(frame[9:]))
        s = self.streams.get(f.stream_id)
        if s is None:
            return
        if isinstance(f, DataFrame):
            s.feed(f.data)
            if "END_STREAM" in f.flags:
                s.ended = s.ended or "end"
        elif isinstance(f, RstStreamFrame):
            s.ended = s.ended or "reset"

    def _reopen(self, s, n):
        """Give back the window n bytes of s took: the connection's always,
        the stream's unless the test holds it shut. At once and in full,
        so that a small window slows a read stream by a round trip at
        most."""
        import h2.exceptions
        if n <= 0:
            return
        self.conn.increment_flow_control_window(n)
        if s.ack:
            try:
                self.conn.increment_flow_control_window(n, s.sid)
            except h2.exceptions.StreamClosedError:
                pass

    def call(self, fn, timeout=5):
        box, done = [], threading.Event()
        self.calls.put((fn, box, done))
        assert done.wait(timeout), "the h2 client thread did not answer"
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]

    def stream(self, api, id, last_event_id=None, ack=True):
        """Open register-listener/{id} on this connection; ack=False: never
        acknowledge its data, its window stays where the server left it."""
        def open_():
            sid = self.conn.get_next_available_stream_id()
            headers = [(":method", "GET"), (":scheme", "https"),
                       (":authority", self.authority),
                       (":path", api.path("register-listener", id)),
                       ("accept", "text/event-stream")]
            if last_event_id is not None:
                headers.append(("last-event-id", str(last_event_id)))
            with self.lock:
                s = self.streams[sid] = H2Stream(sid, id, ack)
                self.conn.send_headers(sid, headers, end_stream=True)
            return s
        return self.call(open_)

    def reset(self, s):
        """RST_STREAM (CANCEL) on s, as a browser closing an EventSource."""
        import h2.errors

        def rst():
            with self.lock:
                self.conn.reset_stream(s.sid, h2.errors.ErrorCodes.CANCEL)
                s.ended = s.ended or "reset by us"
        self.call(rst)

    def close(self):
        if not self.closed:
            self.closed = True
            self.thread.join(5)
        self.sock.close()
