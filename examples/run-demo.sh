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
DocumentRoot "$top/examples/htdocs"
DirectoryIndex index.html
<Directory "$top/examples/htdocs">
    Require all granted
</Directory>
Timeout 60
AsyncRequestWorkerFactor 8
SSEPrefix /sse/
SSEHeartbeat 15
SSENotifyListenersChanged listeners-changed
# the demo module: PUT /sse/submit-task/{id}/{timeout_task|ad-hoc}, and a
# notify^clock-tick every second while someone listens to clock-tick
SSEDemoPrefix /sse/
# the demo publishes from the page: open to local clients only
<LocationMatch "^/sse/(list-registrants|clear-registrants|trigger-cleanup|notify-completions/|notify-listeners/)">
    Require local
</LocationMatch>
CONF
# the page must be readable by the server's user
chmod o+rx "$top" "$top/examples" "$top/examples/htdocs" 2>/dev/null || true
if [ -n "$user" ] && command -v runuser >/dev/null 2>&1 \
    && ! runuser -u www-data -- test -r "$top/examples/htdocs/index.html"; then
    echo "warning: www-data cannot read $top/examples/htdocs (a parent" \
         "directory is closed to others); the page will answer 403." >&2
    echo "         Clone the repository somewhere like /tmp or /srv." >&2
fi
echo "mod_sse_mgr demo on http://localhost:$port/ (Ctrl-C stops it)"
exec /usr/sbin/apache2 -f "$root/conf/httpd.conf" -DFOREGROUND
