#!/bin/sh
# Install what mod_sse_mgr needs on Debian 12, when it is missing. Safe to
# run again: it does nothing when all is there.
#   sh t/install-deps.sh build   building it, make install, make demo
#   sh t/install-deps.sh deb     that, and Debian's packaging tools (make deb)
#   sh t/install-deps.sh test    all that, and the tests' tools (make test)
set -e
what=${1:-test}
# building: apxs and its headers, jansson, hiredis (the Redis bus), a C
# compiler
PKGS="apache2 apache2-dev libjansson-dev libhiredis-dev pkg-config make gcc"
if [ "$what" = deb ] || [ "$what" = test ]; then
    # dpkg-buildpackage and dh; dh_apache2 (the virtual dh-apache2) comes
    # with apache2-dev. debian/control says Rules-Requires-Root: no, so no
    # fakeroot. t/test_deb.py builds the package too.
    PKGS="$PKGS dpkg-dev debhelper"
fi
if [ "$what" = test ]; then
    # the suite (pytest), curl for HTTP/2, python3-h2 for the HTTP/2
    # frames t/test_http2.py must choose itself (a stuck window, a reset,
    # GOAWAY), chromium for the demo page's real-browser test
    # (t/test_browser.py), driven by playwright-core from npm, which
    # cannot download a browser of its own; redis-server and
    # redis-sentinel for the bus's connection tests (t/test_redis_conn.py)
    PKGS="$PKGS python3 python3-pytest python3-h2 curl chromium"
    # Redis for the SSEBus tests (t/test_bus*.py, t/redis_harness.py):
    # servers, sentinels, and redis-cli for a person looking on
    PKGS="$PKGS redis-server redis-sentinel redis-tools"
    # gdb: a child that crashes in a test leaves a core, and the failure
    # shows its backtrace (sse_harness.HttpdEnv.core_backtraces)
    PKGS="$PKGS gdb"
    # libfaketime: a test steps httpd's wall clock back, and only httpd's
    # (t/test_stream.py, heartbeats across a clock step)
    PKGS="$PKGS libfaketime"
fi
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || missing="$missing $p"
done
# Node may come from elsewhere than Debian (NodeSource's nodejs bundles
# npm and conflicts with Debian's npm): ask for the commands, not packages.
if [ "$what" = test ]; then
    command -v node >/dev/null 2>&1 || missing="$missing nodejs"
    command -v npm >/dev/null 2>&1 || missing="$missing npm"
fi
if [ -n "$missing" ]; then
    echo "installing:$missing"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
[ "$what" = test ] || exit 0
# The original browser client, for the compatibility test, and
# playwright-core for the browser test (t/node/package.json).
top=$(dirname "$0")/..
if [ ! -d "$top/t/node/node_modules/@aphorica/server-event-client" ] \
    || [ ! -d "$top/t/node/node_modules/playwright-core" ]; then
    (cd "$top/t/node" && npm ci --no-audit --no-fund --loglevel=error)
fi
