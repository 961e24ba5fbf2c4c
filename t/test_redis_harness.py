"""The Redis harness the SSEBus tests stand on (t/redis_harness.py): a
server of a test's own starts, answers, keeps its AOF across a SIGKILL
(and nothing without one), freezes and thaws, shows and kills a client
blocked in XREAD, and a Sentinel set fails over. No httpd here: if these
fail, a failing bus test says nothing about the module."""

import os
import socket
import threading

import pytest

from redis_harness import (MISSING, RedisServer, RespClient, RespError,
                           call, have_redis)
from sse_harness import _alive, wait_until

pytestmark = pytest.mark.skipif(not have_redis(), reason=MISSING)


def port_refuses(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True


def test_a_server_starts_on_its_own_port_and_dir_and_stops(make_redis):
    r = make_redis()
    assert r.ping()
    info = r.info("server")
    assert info["tcp_port"] == r.port
    assert r.cmd("CONFIG", "GET", "dir")[1].decode() == r.dir
    assert r.cmd("CONFIG", "GET", "appendonly")[1] == b"no"
    assert r.cmd("CONFIG", "GET", "save")[1] == b""
    pid = r.pid
    r.stop()
    assert not _alive(pid)
    assert port_refuses(r.port)


def test_resp_client_replies(make_redis):
    r = make_redis()
    with r.client() as c:
        assert c.command("SET", "k", "v\r\nw") == "OK"
        assert c.command("GET", "k") == b"v\r\nw"
        assert c.command("GET", "nothing") is None
        assert c.command("INCR", "n") == 1
        assert c.command("RPUSH", "l", "a", "b") == 2
        assert c.command("LRANGE", "l", 0, -1) == [b"a", b"b"]
        with pytest.raises(RespError):
            c.command("INCR", "k")
        assert c.command("PING") == "PONG", "the connection survives -ERR"
    assert r.keys() == ["k", "l", "n"]


def test_aof_keeps_a_stream_across_sigkill(make_redis):
    r = make_redis(aof=True)
    assert r.cmd("CONFIG", "GET", "appendfsync")[1] == b"always"
    for i in range(100):
        r.cmd("XADD", "s", "*", "n", i)
    pid = r.pid
    r.restart(kill=True)
    assert r.pid != pid and not _alive(pid)
    assert r.xlen("s") == 100
    assert r.streams() == ["s"]


def test_without_aof_a_sigkill_loses_everything(make_redis):
    r = make_redis(aof=False)
    r.cmd("XADD", "s", "*", "n", 1)
    r.restart(kill=True)
    assert r.keys() == []
    assert r.xlen("s") == 0


def test_a_graceful_restart_with_aof_keeps_data_on_the_same_port(
        make_redis):
    r = make_redis(aof=True)
    port = r.port
    r.cmd("SET", "k", "v")
    r.restart()
    assert r.port == port and r.cmd("GET", "k") == b"v"


def test_sigstop_freezes_and_sigcont_thaws(make_redis):
    r = make_redis()
    with r.client(timeout=1.0) as c:
        r.sigstop()
        c.sock.sendall(RespClient.encode(["PING"]))
        with pytest.raises(socket.timeout):
            c.read_reply()
        r.sigcont()
        c.sock.settimeout(5)
        assert c.read_reply() == "PONG"


def test_a_client_blocked_in_xread_is_listed_and_killed(make_redis):
    r = make_redis()
    r.cmd("XADD", "s", "*", "n", 0)
    reader = RespClient(r.port, timeout=30)
    outcome = []

    def block():
        try:
            outcome.append(reader.command("XREAD", "BLOCK", 0, "STREAMS",
                                          "s", "$"))
        except (OSError, ConnectionError) as e:
            outcome.append(e)
    t = threading.Thread(target=block, daemon=True)
    t.start()
    try:
        blocked = wait_until(lambda: r.clients_running("xread"), 10,
                             "the reader blocked in XREAD shows in "
                             "CLIENT LIST")
        assert len(blocked) == 1, blocked
        assert "b" in blocked[0]["flags"], blocked
        assert r.client_kill(blocked[0]["id"]) == 1
        t.join(10)
        assert outcome and isinstance(outcome[0], ConnectionError), outcome
        assert r.clients_running("xread") == []
    finally:
        reader.close()


def test_stop_all_ends_every_server_even_a_frozen_one(tmp_path):
    a = RedisServer(tmp_path, name="a").start()
    b = RedisServer(tmp_path, name="b").start()
    b.sigstop()
    pids = [a.pid, b.pid]
    RedisServer.stop_all([a, b])
    for pid in pids:
        assert not _alive(pid)


def test_each_server_has_its_own_dir_and_port(make_redis):
    a, b = make_redis(), make_redis()
    assert a.port != b.port and a.dir != b.dir
    assert os.path.isfile(a.conf_file) and os.path.isfile(b.conf_file)
    a.cmd("SET", "only-a", "1")
    assert b.keys() == []


def test_a_password_is_required_and_every_command_sends_it(make_redis):
    r = make_redis(password="p@ss/w:rd")
    assert r.ping() and r.cmd("SET", "k", "v") == "OK"
    with r.client() as c:
        assert c.command("GET", "k") == b"v"
    with pytest.raises(RespError, match="^NOAUTH"):
        call(r.port, "PING")
    with pytest.raises(RespError, match="^WRONGPASS"):
        call(r.port, "PING", password="wrong")


def test_a_replicaof_server_replicates_with_the_password(make_redis):
    m = make_redis(name="m", password="pw")
    rep = make_redis(name="rep", password="pw", replicaof=m.port)
    assert rep.role() == "slave" and m.role() == "master"
    m.cmd("SET", "k", "v")
    wait_until(lambda: rep.cmd("GET", "k") == b"v", 10,
               "the replica has the write")


def test_a_server_that_cannot_start_says_why_from_its_log(tmp_path):
    taken = socket.socket()     # bound, not listening: redis cannot bind
    taken.bind(("127.0.0.1", 0))
    r = RedisServer(tmp_path, port=taken.getsockname()[1])
    try:
        with pytest.raises(RuntimeError) as e:
            r.start()
    finally:
        taken.close()
        RedisServer.stop_all([r])
    assert "exited" in str(e.value) and "its log:" in str(e.value)
    assert "Address already in use" in str(e.value), str(e.value)
    assert not r.running()


# -- Sentinel -------------------------------------------------------------

def test_sentinels_name_the_master_and_fail_over(make_sentinels):
    ss = make_sentinels()
    old = ss.master()
    assert old is ss.servers[0]
    assert ss.bus_url.startswith("redis-sentinel://127.0.0.1:")
    assert ss.bus_url.endswith("/" + ss.master_name)
    old.cmd("SET", "before", "1")
    wait_until(lambda: ss.servers[1].cmd("GET", "before") == b"1", 10,
               "the replica has the write")
    new = ss.failover()
    assert new is ss.servers[1] and new.role() == "master"
    assert old.role() == "slave", "the old master follows the new one"
    assert new.cmd("GET", "before") == b"1"
    for s in ss.sentinels:
        # each sentinel rewrites its own config file (writable, its own)
        with open(s.conf_file) as f:
            assert "sentinel myid" in f.read(), s.conf_file
    new.cmd("SET", "after", "1")
    wait_until(lambda: old.cmd("GET", "after") == b"1", 10,
               "the old master replicates from the new one")


def test_a_killed_master_is_replaced_and_rejoins_as_replica(make_sentinels):
    ss = make_sentinels()
    old = ss.master()
    old.cmd("SET", "k", "v")
    wait_until(lambda: ss.servers[1].cmd("GET", "k") == b"v", 10,
               "replicated")
    new = ss.kill_master()
    assert new is not old and new.role() == "master"
    assert new.cmd("GET", "k") == b"v"
    wait_until(lambda: old.role() == "slave", 20,
               "the restarted old master was made a replica")
    ss.wait_settled()
