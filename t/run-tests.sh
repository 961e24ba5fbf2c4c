#!/bin/sh
# Everything: C unit tests (run as a pytest test) and the httpd suite under
# prefork, worker and event (MPM=event restricts it). Ends with pytest's
# summary; exits non-zero on any failure.
cd "$(dirname "$0")/.." || exit 2
exec /usr/bin/python3 -m pytest -p no:cacheprovider -q -rfE t "$@"
