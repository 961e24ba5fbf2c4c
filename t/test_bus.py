"""Several httpd servers as one SSE service over Redis (SSEBus, SPEC 8).

Three hosts of one MPM share SSESecret and SSEBus (a redis-server of the
test's own). What a user of one host can do, a user of the cluster can do
through any host: an id made anywhere is valid everywhere, a key added
anywhere is the cluster's, a publish on any host reaches every matching
listener on every host and counts them all, a client that comes back on
another host resumes where it stood, the same event carrying the same id
everywhere. The faults (Redis frozen, killed, failed over; the ingest
connection or child killed) are t/test_bus_faults.py's.
"""

import re
import json
import time

import pytest

from bus_harness import BUS_FIGURES, SECRET, Follower, publish
from redis_harness import MISSING, have_redis
from sse_client import forge_id, fresh_name, http
from sse_harness import STATUS_CONF, HttpdEnv, selected_mpms, status_auto, \
    wait_until

pytestmark = pytest.mark.skipif(not have_redis(), reason=MISSING)

JSON = {"Content-Type": "application/json"}


def completion(ev):
    """(id, taskid) of a completed^ event (plain form)."""
    text = ev.payload()
    assert isinstance(text, str) and text.startswith("completed^"), ev
    inner = json.loads(text.split("^", 1)[1])
    return inner["id"], inner["taskid"]


def others(i, n=3):
    return [j for j in range(n) if j != i]


# -- configuration ------------------------------------------------------------

@pytest.fixture
def config_env(tmp_path_factory):
    """An env that is only ever syntax-checked (the MPM does not matter)."""
    def _make(directives):
        return HttpdEnv(selected_mpms()[-1], tmp_path_factory.mktemp("conf"),
                        directives=directives)
    return _make


def known(out):
    """The module knows SSEBus: a refusal is its own, not httpd's."""
    assert "Invalid command 'SSEBus'" not in out, out
    return True


def test_bus_without_a_secret_is_refused_at_config_time(config_env):
    env = config_env({"SSEBus": "redis://127.0.0.1:6379"})
    rc, out = env.check_config()
    known(out)
    assert rc != 0, ("SSEBus without SSESecret: ids made on one host would "
                     "be refused by the others, yet apache2 -t passed:\n"
                     + out)
    assert "SSEBus" in out and "SSESecret" in out, (
        "the error should name both SSEBus and SSESecret:\n" + out)
    assert "Syntax OK" not in out, out


def test_a_tls_bus_is_refused_and_the_error_says_tls(config_env):
    env = config_env({"SSESecret": SECRET,
                      "SSEBus": "rediss://127.0.0.1:6380"})
    rc, out = env.check_config()
    known(out)
    assert rc != 0, "rediss:// is not supported, yet apache2 -t passed:\n" \
        + out
    assert "SSEBus" in out and "TLS" in out, (
        "the error should name SSEBus and say TLS is the problem:\n" + out)


@pytest.mark.parametrize("value", [
    "http://127.0.0.1:6379",
    "redis://",
    "redis://127.0.0.1:notaport",
    "redis-sentinel://127.0.0.1:26379",       # no master name
])
def test_a_malformed_bus_is_refused_naming_the_directive(config_env, value):
    rc, out = config_env({"SSESecret": SECRET, "SSEBus": value}).check_config()
    known(out)
    assert rc != 0, "`SSEBus %s` should fail apache2 -t:\n%s" % (value, out)
    assert "SSEBus" in out, out


@pytest.mark.parametrize("value", [
    "redis://127.0.0.1:6379",
    "redis://127.0.0.1:6379/2",
    "redis-sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster",
])
def test_a_valid_bus_passes_the_syntax_check(config_env, value):
    # nothing listens there: the syntax check does not connect
    rc, out = config_env({"SSESecret": SECRET, "SSEBus": value}).check_config()
    assert rc == 0, "`SSEBus %s` is valid but apache2 -t failed:\n%s" % (
        value, out)


# -- ids, listen, delivery ---------------------------------------------------

def test_an_id_made_on_any_host_opens_a_stream_on_every_host(cluster):
    for i in range(3):
        id = cluster.api(i).make_id(fresh_name("anyhost"))
        for j in range(3):
            with cluster.api(j).register(id) as s:
                assert s.registered.payload() == "registered^" + id
        bad = forge_id(id)
        for j in range(3):
            s = cluster.api(j).stream(bad)
            try:
                assert s.status == 404, (
                    "host %d took an id no host issued: %s" % (j, s.status))
            finally:
                s.close()


def test_an_id_with_no_listener_is_unknown_on_every_host(cluster):
    id = cluster.api(0).make_id(fresh_name("nolistener"))
    for j in range(3):
        resp = cluster.api(j).request("PUT", "listen", id, "k")
        assert resp.status == 404, resp.describe()
    with cluster.api(1).register(id):
        for j in range(3):
            cluster.api(j).listen(id, "k%d" % j)


def test_listen_on_one_host_and_notify_on_another_reach_a_third(cluster):
    for holder in range(3):
        lister, notifier = others(holder)
        key = fresh_name("k")
        id, s = cluster.api(holder).listener(fresh_name("three"))
        with s:
            cluster.api(lister).listen(id, key)
            assert cluster.api(notifier).notify_listeners(key) == 1, (
                "listen on host %d, notify on host %d: the listener (stream "
                "on host %d) holds the key" % (lister, notifier, holder))
            ev = s.next_event(10)
            assert ev.raw == ('id: %s\ndata:"notify^%s"\n\n'
                              % (ev.id, key)).encode(), (
                "the bytes are the original's: %r" % ev.raw)


def test_a_notify_reaches_every_holder_on_every_host_and_counts_them(
        cluster):
    key = fresh_name("k")
    streams = []
    for i in range(3):
        for _ in range(2):
            streams.append(cluster.api(i).listener(fresh_name("many"),
                                                   keys=[key])[1])
    for i in range(3):
        assert cluster.api(i).notify_listeners(key) == 6, (
            "host %d: 6 listeners on 3 hosts hold the key" % i)
    seqs = []
    for s in streams:
        evs = s.next_events(3, 10)
        assert [e.payload() for e in evs] == ["notify^" + key] * 3, evs
        seqs.append([e.seq for e in evs])
        s.close()
    assert all(x == seqs[0] for x in seqs), (
        "the same event carries the same id on every host: %r" % seqs)
    assert seqs[0][0] < seqs[0][1] < seqs[0][2], seqs[0]


def test_a_completion_reaches_every_tab_of_the_name_on_every_host(cluster):
    name = fresh_name("tabs")
    tabs = [cluster.api(i).listener(name) for i in range(3)]
    other, so = cluster.api(0).listener(fresh_name("other"))
    for publisher in range(3):
        taskid = "job-%d" % publisher
        assert cluster.api(publisher).notify_completions(
            tabs[0][0], taskid) == 3, (
            "host %d: the name has one listener on each host" % publisher)
        for id, s in tabs:
            assert completion(s.next_event(10)) == (id, taskid), (
                "each tab gets the completion with its own id")
    with pytest.raises(AssertionError):
        so.next_event(1)        # a listener of another name gets nothing
    for _, s in tabs:
        s.close()
    so.close()


def test_delivered_counts_listeners_whose_stream_is_closed(cluster):
    key = fresh_name("k")
    id, s = cluster.api(0).listener(fresh_name("away"), keys=[key])
    last = s.registered.id
    s.close()
    wait_until(lambda: cluster.api(2).registrants().get(id, {}).get(
        "connected") is False, 10, "host 2 sees the listener without stream")
    assert cluster.api(2).notify_listeners(key) == 1, (
        "a listener holding the key counts whether or not its stream is "
        "open, as on one host")
    with cluster.api(1).register(id, last_event_id=last) as s2:
        assert s2.next_event(10).payload() == "notify^" + key


def test_a_payload_crosses_hosts_as_on_one(cluster):
    key = fresh_name("k")
    id, s = cluster.api(0).listener(fresh_name("pay"), keys=[key])
    with s:
        status, n, resp = publish(cluster.api(2), "notify-listeners", key,
                                  body=b'{ "p" : [1, 2] }', headers=JSON)
        assert (status, n) == (200, 1), resp.describe()
        ev = s.next_event(10)
        assert ev.raw == ('id: %s\nevent: notify\ndata: {"key":"%s","data":'
                          '{"p":[1,2]}}\n\n' % (ev.id, key)).encode(), ev.raw
        status, n, resp = publish(cluster.api(1), "notify-listeners", key,
                                  body=b"{not json", headers=JSON)
        assert status == 400, ("a bad JSON body is refused on the host that "
                               "got it: " + resp.describe())


# -- resume -------------------------------------------------------------------

def test_resume_on_another_host_gets_exactly_the_missed_events_in_order(
        cluster):
    f = Follower(cluster.api(0).make_id(fresh_name("resume")))
    f.connect(cluster.api(0))
    for t in ("t1", "t2", "t3"):
        assert cluster.api(1).notify_completions(f.id, t) == 1
    f.wait_for(lambda f: len(f.taskids()) == 3, 10, "t1..t3 live")
    first = f.events[0]
    f.close()
    for i, t in enumerate(("t4", "t5", "t6")):
        assert cluster.api(i).notify_completions(f.id, t) == 1
    # back on host 2, as after the first event only
    f.events, f.seqs, f.last = [first], [first.seq], first.seq
    f.connect(cluster.api(2))
    f.wait_for(lambda f: len(f.taskids()) >= 6, 10, "t2..t6 replayed")
    assert f.taskids() == ["t1", "t2", "t3", "t4", "t5", "t6"], (
        "Last-Event-ID %s on another host: exactly t2..t6, in order"
        % first.id)
    assert not f.missed
    f.assert_increasing()
    # nothing more: a fresh publish is the next event
    assert cluster.api(0).notify_completions(f.id, "t7") == 1
    f.wait_for(lambda f: len(f.taskids()) == 7, 10, "t7")
    assert f.taskids()[-1] == "t7"
    f.close()


def test_an_event_keeps_its_id_on_every_host(cluster):
    id = cluster.api(0).make_id(fresh_name("sameid"))
    live = Follower(id)
    live.connect(cluster.api(0))
    cluster.api(1).notify_completions(id, "a")
    cluster.api(2).notify_completions(id, "b")
    live.wait_for(lambda f: len(f.taskids()) == 2, 10, "a, b")
    base = live.events[0].seq - 1
    live.close()
    for host in (1, 2, 0):
        f = Follower(id)
        f.last = base
        f.connect(cluster.api(host))
        f.wait_for(lambda f: len(f.taskids()) == 2, 10, "a, b replayed")
        assert [e.seq for e in f.events] == [e.seq for e in live.events], (
            "host %d replays a, b under other ids: %r vs %r"
            % (host, f.events, live.events))
        f.close()


def test_resume_on_another_host_says_missed_past_the_history(make_cluster):
    c = make_cluster(directives={"SSEHistory": "8"})
    f = Follower(c.api(0).make_id(fresh_name("gone")))
    f.connect(c.api(0))
    f.close()
    for i in range(1, 31):
        assert c.api(i % 3).notify_completions(f.id, "t%d" % i) == 1
    f.connect(c.api(1))
    f.wait_for(lambda f: "t30" in f.taskids(), 10, "the newest event")
    assert f.missed, ("30 events against a history of 8: the stream should "
                      "say `event: missed`")
    gap = f.missed[0]
    assert set(gap) == {"from", "to"} and gap["from"] <= gap["to"], gap
    tasks = f.taskids()
    assert tasks == ["t%d" % i for i in range(int(tasks[0][1:]), 31)], (
        "after the gap, the newest events in order: %r" % tasks)
    assert f.events[0].seq > gap["to"], (gap, f.events[0])
    f.close()


# -- takeover, registry ------------------------------------------------------

def test_a_second_stream_on_another_host_takes_over(cluster):
    key = fresh_name("k")
    id, old = cluster.api(0).listener(fresh_name("take"), keys=[key])
    with old:
        new = cluster.api(1).register(id)
        with new:
            assert old.wait_closed(10), (
                "the older stream, on host 0, outlived a takeover on host 1")
            assert cluster.api(2).notify_listeners(key) == 1
            assert new.next_event(10).payload() == "notify^" + key
            entry = cluster.api(2).registrants()[id]
            assert entry["connected"] is True and entry["listenKeys"] == [
                key], entry


def test_list_registrants_on_any_host_lists_the_whole_cluster(
        cluster, make_httpd):
    # the shape of an entry on one host, without a bus
    single = make_httpd()
    sid, ss = single.api.listener(fresh_name("shape"), keys=["k"])
    shape = set(single.api.registrants()[sid])
    ss.close()

    ids, streams = [], []
    for i in range(3):
        id, s = cluster.api(i).listener(fresh_name("list"),
                                        keys=["k%d" % i, "all"])
        ids.append(id)
        streams.append(s)
    gone, s = cluster.api(1).listener(fresh_name("closed"))
    s.close()
    for j in range(3):
        regs = wait_until(
            lambda: (lambda r: r if all(i in r for i in ids + [gone])
                     and r[gone].get("connected") is False else None)(
                cluster.api(j).registrants()),
            10, "host %d lists every listener of the cluster" % j)
        for i, id in enumerate(ids):
            assert set(regs[id]) == shape, (
                "host %d: an entry's fields differ from one host's: %r vs "
                "%r" % (j, sorted(regs[id]), sorted(shape)))
            assert sorted(regs[id]["listenKeys"]) == sorted(["k%d" % i,
                                                            "all"])
            assert regs[id]["connected"] is True, regs[id]
    for s in streams:
        s.close()


def test_clear_registrants_on_one_host_ends_every_stream_everywhere(cluster):
    streams = [cluster.api(i).listener(fresh_name("clear")) for i in
               range(3)]
    cluster.api(1).clear()
    for i, (id, s) in enumerate(streams):
        assert s.wait_closed(10), "the stream on host %d outlived " \
            "clear-registrants on host 1" % i
    for j in range(3):
        wait_until(lambda: cluster.api(j).registrants() == {}, 10,
                   "host %d lists no listener after the clear" % j)
        for id, _ in streams:
            s = cluster.api(j).stream(id)
            try:
                assert s.status == 204, (
                    "host %d: a cleared id is retired (204), got %s"
                    % (j, s.status))
            finally:
                s.close()


def test_disconnect_registrant_on_one_host_acts_everywhere(cluster):
    key = fresh_name("k")
    id, s = cluster.api(0).listener(fresh_name("bye"), keys=[key])
    keep, sk = cluster.api(1).listener(fresh_name("keep"), keys=[key])
    with s, sk:
        cluster.api(2).disconnect(id)
        assert s.wait_closed(10), "the stream on host 0 outlived " \
            "disconnect-registrant on host 2"
        for j in range(3):
            wait_until(lambda: id not in cluster.api(j).registrants(), 10,
                       "host %d forgot the disconnected id" % j)
            r = cluster.api(j).stream(id)
            try:
                assert r.status == 204, "host %d: retired id answered %s" % (
                    j, r.status)
            finally:
                r.close()
        assert cluster.api(0).notify_listeners(key) == 1, (
            "only the listener that stayed holds the key")
        assert sk.next_event(10).payload() == "notify^" + key


def test_trigger_cleanup_on_one_host_removes_dormant_listeners_everywhere(
        make_cluster):
    c = make_cluster(directives={"SSEDormantTimeout": "2",
                                 "SSECleanupInterval": "3600"})
    dormant, sd = c.api(0).listener(fresh_name("dormant"))
    live, sl = c.api(1).listener(fresh_name("live"))
    with sl:
        sd.close()
        wait_until(lambda: c.api(2).registrants().get(dormant, {}).get(
            "connected") is False, 10, "the stream on host 0 closed")
        time.sleep(3)           # past SSEDormantTimeout, on purpose
        assert dormant in c.api(2).registrants(), (
            "nothing but trigger-cleanup removes it here (interval 3600)")
        c.api(2).cleanup()
        for j in range(3):
            regs = wait_until(
                lambda: (lambda r: r if dormant not in r else None)(
                    c.api(j).registrants()),
                10, "host %d no longer lists the dormant listener" % j)
            assert live in regs and regs[live]["connected"] is True, regs


def test_listeners_changed_fires_cluster_wide(make_cluster):
    c = make_cluster(directives={"SSENotifyListenersChanged": "lc"})
    watcher, sw = c.api(0).listener(fresh_name("watch"), keys=["lc"])
    with sw:
        while True:             # its own registration may have fired it
            try:
                sw.next_event(1)
            except AssertionError:
                break
        id, s = c.api(1).listener(fresh_name("newcomer"))
        ev = sw.next_event(10)
        assert ev.payload() == "notify^lc", (
            "a register on host 1 is a change for a watcher on host 0: %r"
            % ev)
        s.close()
        c.api(2).disconnect(id)
        ev = sw.next_event(10)
        assert ev.payload() == "notify^lc", (
            "a disconnect on host 2 is a change for host 0's watcher: %r"
            % ev)


# -- status -------------------------------------------------------------------

def test_status_shows_the_bus_on_every_host(cluster, make_httpd):
    figs = cluster.wait_bus("up")
    for i, fig in figs.items():
        missing = [f for f in BUS_FIGURES if f not in fig]
        assert not missing, "host %d lacks %s: %r" % (i, missing, fig)
        assert fig["BusIngestPid"] in cluster[i].children(), (
            "host %d: the ingesting pid is one of its children: %r vs %r"
            % (i, fig["BusIngestPid"], cluster[i].children()))
        for f in ("BusSeq", "BusLagMs", "BusReconnects", "BusErrors"):
            assert isinstance(fig[f], int), (f, fig)
    key = fresh_name("k")
    id, s = cluster.api(0).listener(fresh_name("seq"), keys=[key])
    with s:
        cluster.api(1).notify_listeners(key)
        seq = s.next_event(10).seq
    cluster.wait_seq(seq)
    # without SSEBus, no Bus line
    plain = make_httpd(extra_conf=STATUS_CONF)
    fig = status_auto(plain)[0]
    assert not [k for k in fig if k.startswith("Bus")], fig
    resp = http(plain.port, "GET", "/server-status?auto")
    assert not re.search(r"^SSE\S*Bus", resp.text, re.M), resp.text
