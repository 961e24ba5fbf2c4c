#!/bin/sh
# make demo: a local httpd with mod_sse_mgr, the demo module
# (examples/mod_sse_demo.c) and the demo page on
# http://localhost:${PORT:-8080}/, its own ServerRoot under build/demo,
# nothing in /etc touched. Runs in the foreground; Ctrl-C stops it.
# docs/demo.md says what the page and the module do.
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
root="$top/build/demo"
port="${PORT:-8080}"
mods=/usr/lib/apache2/modules
mkdir -p "$root/conf" "$root/logs" "$root/run"
user=""
[ "$(id -u)" = 0 ] && user="User www-data
Group www-data"
# The page must be readable by the server's user. A checkout under a
# directory closed to others (mktemp -d, a home directory) cannot be:
# then serve a copy from a fresh directory of its own, removed on exit.
docroot="$top/examples/htdocs"
chmod o+rx "$top" "$top/examples" "$docroot" 2>/dev/null || true
public=""
if [ -n "$user" ] && command -v runuser >/dev/null 2>&1 \
    && ! runuser -u www-data -- test -r "$docroot/index.html"; then
    public=$(mktemp -d "${TMPDIR:-/tmp}/mod_sse_mgr-demo.XXXXXX")
    trap 'rm -rf "$public"' EXIT
    cp -R "$docroot/." "$public/"
    chmod -R a+rX "$public"
    docroot=$public
fi
cat > "$root/conf/httpd.conf" <<CONF
ServerRoot "$root"
ServerName localhost
Listen $port
PidFile "$root/run/httpd.pid"
DefaultRuntimeDir "$root/run"
ErrorLog /dev/stderr
$user
LoadModule mpm_event_module $mods/mod_mpm_event.so
LoadModule authz_core_module $mods/mod_authz_core.so
LoadModule authz_host_module $mods/mod_authz_host.so
LoadModule mime_module $mods/mod_mime.so
LoadModule dir_module $mods/mod_dir.so
LoadModule sse_mgr_module "$top/.libs/mod_sse_mgr.so"
LoadModule sse_demo_module "$top/examples/.libs/mod_sse_demo.so"
# after the LoadModules: a per-module level needs the module known
LogLevel warn sse_mgr:info sse_demo:info
TypesConfig /etc/mime.types
DocumentRoot "$docroot"
DirectoryIndex index.html
<Directory />
    AllowOverride None
</Directory>
<Directory "$docroot">
    Require all granted
</Directory>
Timeout 60
AsyncRequestWorkerFactor 8
# a demo: 3,600 parked streams fit (16 x 25 x (1 + 8)); SSE00050 says so
# at start when SSEMaxListeners asks for more
SSEMaxListeners 2000
SSEPrefix /sse/
SSEHeartbeat 15
SSENotifyListenersChanged listeners-changed
# the demo module: PUT /sse/submit-task/{id}/{timeout_task|ad-hoc|progress},
# and notify^clock-tick every second while someone listens to clock-tick
SSEDemoPrefix /sse/
# the demo publishes from the page: open to local clients only
<LocationMatch "^/sse/(list-registrants|clear-registrants|trigger-cleanup|notify-completions/|notify-listeners/)">
    Require local
</LocationMatch>
CONF
echo "mod_sse_mgr demo on http://localhost:$port/ (Ctrl-C stops it)"
if [ -z "$public" ]; then
    exec /usr/sbin/apache2 -f "$root/conf/httpd.conf" -DFOREGROUND
fi
# Ctrl-C reaches httpd too: the shell waits for it to stop, then removes
# the copy (a trap runs once the foreground command has ended)
trap ':' INT TERM
/usr/sbin/apache2 -f "$root/conf/httpd.conf" -DFOREGROUND || true
