"""What "delivered" means: written to the client's socket.

A parked stream whose client stops reading holds at most one batch in
httpd's core output filter and waits up to Timeout for the socket to
drain. If it is ended there, the batch it held never reached the client:
the listener must resume before it, so a client that reconnects without
Last-Event-ID still gets every event (or an `event: missed` for what the
history lost), never a silent hole.
"""

import time

import pytest

from sse_harness import wait_until
from sse_client import fresh_name

EVENTS = 400


@pytest.fixture
def stall_httpd(mpm, make_httpd):
    if mpm != "event":
        pytest.skip("a stream on its own thread waits in a blocking write: "
                    "nothing is held back when it ends")
    return make_httpd(directives={"SSEHistory": "4096"},
                      extra_conf="Timeout 3\nSendBufferSize 8192\n")


def collect(stream, timeout):
    """Every event until the stream ends (or timeout)."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got.append(stream.next_event(max(0.0, deadline -
                                             time.monotonic())))
        except AssertionError:
            break
    return got


def test_events_held_back_from_a_stalled_client_are_resumed(stall_httpd):
    api = stall_httpd.api
    key = "k" * 64
    id = api.make_id(fresh_name("held"))
    s = api.stream(id, wait_headers=False, rcvbuf=2048, paused=True)
    wait_until(lambda: api.registrants().get(id, {}).get("connected"),
               10, "the stream opened")
    api.listen(id, key)
    for _ in range(EVENTS):
        assert api.notify_listeners(key) == 1
    wait_until(lambda: api.registrants()[id]["connected"] is False, 15,
               "the stalled stream was ended after Timeout")
    # what reached the first connection: all the socket took
    s.resume_reading()
    first = [e for e in collect(s, 10) if e.payload() == "notify^" + key]
    s.close()
    # the client comes back without Last-Event-ID (a new EventSource)
    again = api.stream(id)
    assert again.status == 200
    second = collect(again, 3)
    again.close()
    notes = [e for e in second if e.payload() == "notify^" + key]
    missed = [e for e in second if e.event == "missed"]
    assert not missed, "the history (4096) holds every event: %r" % missed
    seqs = sorted({e.seq for e in first} | {e.seq for e in notes})
    assert len(seqs) == EVENTS, (
        "%d of %d events reached the client over both connections (%d on "
        "the first, %d on the second): events held back when the first "
        "stream ended were counted as delivered" % (
            len(seqs), EVENTS, len(first), len(notes)))
