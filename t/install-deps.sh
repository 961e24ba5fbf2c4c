#!/bin/sh
# Install what building and testing mod_sse_mgr needs on Debian 12, when it
# is missing. Safe to run again: it does nothing when all is there.
set -e
# chromium: the demo page's real-browser test (t/test_browser.py), driven
# by playwright-core from npm, which cannot download a browser of its own.
# python3-h2: t/test_http2.py's own HTTP/2 client, for the frames curl
# does not let a test choose (a shut stream window, RST_STREAM, GOAWAY).
PKGS="apache2 apache2-dev libjansson-dev pkg-config make gcc python3 python3-pytest python3-h2 curl chromium"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || missing="$missing $p"
done
# Node may come from elsewhere than Debian (NodeSource's nodejs bundles
# npm and conflicts with Debian's npm): ask for the commands, not packages.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
    echo "installing:$missing"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
# The original browser client, for the compatibility test, and
# playwright-core for the browser test (t/node/package.json).
top=$(dirname "$0")/..
if [ ! -d "$top/t/node/node_modules/@aphorica/server-event-client" ] \
    || [ ! -d "$top/t/node/node_modules/playwright-core" ]; then
    (cd "$top/t/node" && npm ci --no-audit --no-fund --loglevel=error)
fi
