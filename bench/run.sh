#!/bin/sh
# make bench: build the load generator and the bench module, install the
# peers when missing (nginx + nchan from Debian, the Node original from
# npm), then run every scenario against every server and write
# bench/RESULTS.md. Minutes, not hours; BENCH_QUICK=1 for a short run.
# See bench/README.md for the knobs (BENCH_N, BENCH_SERVERS, ...).
set -e
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
out="${BENCH_OUT:-$here/out}"
module="${SSE_MGR_MODULE:-$top/.libs/mod_sse_mgr.so}"
mkdir -p "$out/mod"

if [ ! -f "$module" ]; then
    echo "bench: $module is not built (make, or set SSE_MGR_MODULE)" >&2
    exit 2
fi
sh "$here/install-peers.sh"

CFLAGS="-O2 -Wall -Wextra -Werror -std=gnu99"
gcc $CFLAGS -o "$out/ssebench" "$here/sb_main.c" "$here/sb_worker.c" \
    "$here/sb_pub.c" "$here/sb_conn.c" "$here/sb_proc.c" "$here/sb_punct.c"

# apxs builds next to its source: build a copy, so bench/ stays clean
cp "$here/mod_sse_bench.c" "$out/mod/"
if ! (cd "$out/mod" && ${APXS:-apxs} -c \
        -Wc,"-Wall -Wextra -Werror -std=gnu99" -I"$top" mod_sse_bench.c \
        >apxs.log 2>&1); then
    cat "$out/mod/apxs.log" >&2
    exit 1
fi

# httpd maps the module file: a rebuild in place during the run would
# crash its children, so the run loads a copy
cp -p "$module" "$out/mod/mod_sse_mgr.so.new"
mv -f "$out/mod/mod_sse_mgr.so.new" "$out/mod/mod_sse_mgr.so"

# the hard limit of this machine (20,000) for every server and client
ulimit -n "$(ulimit -Hn)"
exec /usr/bin/python3 "$here/bench.py" --out "$out" --module "$module" \
    --module-copy "$out/mod/mod_sse_mgr.so" \
    --bench-module "$out/mod/.libs/mod_sse_bench.so" --ssebench "$out/ssebench"
