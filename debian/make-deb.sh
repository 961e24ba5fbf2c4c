#!/bin/sh
# make deb: build the Debian package libapache2-mod-sse-mgr with
# dpkg-buildpackage in a temporary copy of the tree (the tracked files and
# the untracked ones git does not ignore, so uncommitted edits are in it),
# and put the .deb in build/deb/. The tree itself gets nothing else: no
# debian/ build products, no objects. Quiet unless V=1: the build's output
# goes to build/deb/build.log, shown when it fails.
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
out="$top/build/deb"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mod-sse-mgr-deb.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
src="$tmp/mod-sse-mgr"
mkdir -p "$src" "$out"

# the sources, without build products
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # less tracked files deleted in the work tree
    (cd "$top" && git ls-files -z --cached --others --exclude-standard \
        | xargs -0 sh -c \
            'for f; do if [ -e "$f" ]; then printf "%s\0" "$f"; fi; done' sh \
        | tar --null -T - -cf -) | tar -xf - -C "$src"
else
    (cd "$top" && tar --exclude-vcs --exclude-vcs-ignores --exclude=./build \
        -cf - .) | tar -xf - -C "$src"
fi

log="$out/build.log"
if [ "${V:-0}" = 1 ]; then
    (cd "$src" && DH_VERBOSE=1 dpkg-buildpackage -b -us -uc) 2>&1 | tee "$log"
    # tee hid dpkg-buildpackage's status: a built package is the proof
else
    if ! (cd "$src" && dpkg-buildpackage -b -us -uc) >"$log" 2>&1; then
        cat "$log" >&2
        echo "make deb: dpkg-buildpackage failed (log: $log)" >&2
        exit 1
    fi
fi
set -- "$tmp"/libapache2-mod-sse-mgr_*.deb
if [ ! -f "$1" ]; then
    echo "make deb: no package was built (log: $log)" >&2
    exit 1
fi
rm -f "$out"/libapache2-mod-sse-mgr_*.deb
cp "$@" "$out/"
for f in "$@"; do
    echo "  DEB   build/deb/$(basename "$f")"
done
