"""Directive validation: `apache2 -t` on a config with one bad value must
fail and name the directive. No server is started."""

import pytest

from sse_harness import HttpdEnv, selected_mpms


@pytest.fixture
def config_env(tmp_path_factory):
    """An env that is only ever syntax-checked (the MPM does not matter)."""
    def _make(directives=None, extra_conf=""):
        return HttpdEnv(selected_mpms()[-1], tmp_path_factory.mktemp("conf"),
                        directives=directives, extra_conf=extra_conf)
    return _make


def test_default_test_config_passes_the_syntax_check(config_env):
    rc, out = config_env().check_config()
    assert rc == 0, "apache2 -t on the harness's config failed:\n" + out
    assert "Syntax OK" in out, out


@pytest.mark.parametrize("directive,value", [
    ("SSEHeartbeat", "0"),
    ("SSEHeartbeat", "abc"),
    ("SSEHeartbeat", "-5"),
    ("SSEMaxListeners", "-1"),
    ("SSEMaxListeners", "0"),
    ("SSEMaxListeners", "many"),
    ("SSEHistory", "0"),
    ("SSEHistory", "-3"),
    ("SSEPrefix", "nosla"),
    ("SSEPrefix", "sse/"),
    ("SSEDormantTimeout", "0"),
    ("SSEDormantTimeout", "soon"),
    ("SSECleanupInterval", "0"),
    ("SSEAllowOrigin", "app.example.test"),
    ("SSEAllowOrigin", "* https://a.example.test"),
    ("SSEAllowOrigin", "https://a.example.test *"),
])
def test_invalid_directive_value_fails_the_syntax_check(config_env,
                                                         directive, value):
    env = config_env(directives={directive: value})
    rc, out = env.check_config()
    assert rc != 0, ("`%s %s` should make apache2 -t fail, but it passed:\n%s"
                     % (directive, value, out))
    assert directive in out, (
        "the error should name %s so the admin knows what to fix:\n%s"
        % (directive, out))
    assert "Syntax OK" not in out, out


@pytest.mark.parametrize("directive,value", [
    ("SSEHeartbeat", "5"),
    ("SSEMaxListeners", "2"),
    ("SSEHistory", "8"),
    ("SSEPrefix", "/events/"),
    ("SSEDormantTimeout", "60"),
    ("SSECleanupInterval", "30"),
    ("SSEAllowOrigin", "https://app.example.test"),
    ("SSENotifyListenersChanged", "listeners-changed"),
])
def test_valid_directive_value_passes_the_syntax_check(config_env,
                                                        directive, value):
    rc, out = config_env(directives={directive: value}).check_config()
    assert rc == 0, "`%s %s` is valid but apache2 -t failed:\n%s" % (
        directive, value, out)


def test_server_wide_directive_is_refused_in_a_virtual_host(config_env):
    env = config_env(extra_conf="""
<VirtualHost 127.0.0.1:*>
    ServerName other.test
    SSEMaxListeners 50
</VirtualHost>
""")
    rc, out = env.check_config()
    assert rc != 0, ("SSEMaxListeners sizes the shared table: it is server "
                     "context only, yet apache2 -t accepted it in a "
                     "<VirtualHost>:\n" + out)
    assert "SSEMaxListeners" in out, out


# -- the registry mutex ---------------------------------------------------

@pytest.mark.parametrize("mutex", [
    "Mutex posixsem sse-mgr",
    "Mutex posixsem default",
])
def test_mutex_kept_by_a_dead_holder_is_refused_at_start(config_env, mutex):
    env = config_env(extra_conf=mutex + "\n")
    rc, out = env.check_config()
    assert rc != 0, (
        "`%s`: a process dying while it holds such a lock would stop every "
        "other one, yet apache2 -t accepted it:\n%s" % (mutex, out))
    assert "Mutex sse-mgr" in out and "pthread" in out, (
        "the error should name `Mutex sse-mgr` and the allowed mechanism:\n"
        + out)
    assert "Syntax OK" not in out, out


# Released when their holder dies: pthread (robust), file locks, System V
# semaphores (SEM_UNDO); Debian's apache2.conf sets `Mutex file:... default`.
@pytest.mark.parametrize("mutex", [
    "",
    "Mutex pthread sse-mgr",
    "Mutex default sse-mgr",
    "Mutex posixsem default\nMutex pthread sse-mgr",
    "Mutex sysvsem sse-mgr",
    "Mutex flock sse-mgr",
    "Mutex fcntl sse-mgr",
    "Mutex file:/tmp default",
])
def test_mutex_released_at_death_passes_the_syntax_check(config_env, mutex):
    rc, out = config_env(extra_conf=mutex + "\n").check_config()
    assert rc == 0, "`%s` is allowed but apache2 -t failed:\n%s" % (mutex,
                                                                    out)


def test_server_with_pthread_mutex_serves_events(make_httpd):
    env = make_httpd(extra_conf="Mutex pthread sse-mgr\n")
    api = env.api
    id, s = api.listener("mutex-pthread", keys=["k"])
    assert api.notify_listeners("k") == 1, "the listener holds key k"
    ev = s.next_event(5)
    assert ev is not None and "k" in ev.data, (
        "the event reaches the stream: %r" % ev)
