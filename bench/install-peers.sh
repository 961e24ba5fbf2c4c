#!/bin/sh
# The peers bench/run.sh compares mod_sse_mgr with, installed only when
# missing (CI does not run the bench): nginx + nchan from Debian, and the
# original Node package with Express from npm into bench/node/; for the
# cluster scenario redis-server from Debian.
# Nothing is started or configured in /etc: run.sh runs each peer with its
# own prefix under bench/out/.
set -e
here=$(cd "$(dirname "$0")" && pwd)
missing=""
for p in nginx libnginx-mod-nchan; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || missing="$missing $p"
done
# the cluster scenario (BENCH_SCENARIOS=cluster): one Redis between hosts
case " $BENCH_SCENARIOS " in
*" cluster "*)
    command -v redis-server >/dev/null 2>&1 \
        || missing="$missing redis-server redis-tools" ;;
esac
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
    echo "bench: installing$missing"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    # other apt runs on this machine: wait for their lock, do not fail
    apt="apt-get -o DPkg::Lock::Timeout=600"
    $SUDO $apt update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO $apt install -y -qq \
        --no-install-recommends $missing >/dev/null
fi
if [ ! -d "$here/node/node_modules/@aphorica/server-event-mgr" ] \
   || [ ! -d "$here/node/node_modules/express" ]; then
    (cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error)
fi
