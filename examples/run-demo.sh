#!/bin/sh
# make demo: a local httpd with mod_sse_mgr and the demo page on
# http://localhost:${PORT:-8080}/, its own ServerRoot under build/demo,
# nothing in /etc touched. Runs in the foreground; Ctrl-C stops it.
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
LogLevel warn sse_mgr:info
$user
LoadModule mpm_event_module $mods/mod_mpm_event.so
LoadModule authz_core_module $mods/mod_authz_core.so
LoadModule authz_host_module $mods/mod_authz_host.so
LoadModule mime_module $mods/mod_mime.so
LoadModule dir_module $mods/mod_dir.so
LoadModule sse_mgr_module "$top/.libs/mod_sse_mgr.so"
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
# the demo publishes from the page: open to local clients only
<LocationMatch "^/sse/(list-registrants|clear-registrants|trigger-cleanup|notify-completions/|notify-listeners/)">
    Require local
</LocationMatch>
CONF
# the page must be readable by the server's user
chmod o+rx "$top" "$top/examples" "$top/examples/htdocs" 2>/dev/null || true
echo "mod_sse_mgr demo on http://localhost:$port/ (Ctrl-C stops it)"
exec /usr/sbin/apache2 -f "$root/conf/httpd.conf" -DFOREGROUND
