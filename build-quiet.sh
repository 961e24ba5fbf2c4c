#!/bin/sh
# Run a build command (apxs -c) with its output in build.log, shown only
# when it fails: apxs echoes every libtool command, ~400 characters each,
# on stderr. make V=1 runs the command bare.
if "$@" >build.log 2>&1; then
    exit 0
fi
cat build.log >&2
exit 1
