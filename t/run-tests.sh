#!/bin/sh
# Everything: C unit tests (run as a pytest test) and the httpd suite under
# prefork, worker and event (MPM=event restricts it). Ends with pytest's
# summary; exits non-zero on any failure. Test files or node ids given as
# arguments run alone: `MPM=event sh t/run-tests.sh t/test_park.py`.
cd "$(dirname "$0")/.." || exit 2
for a in "$@"; do
    case $a in
        -*) ;;
        *) exec /usr/bin/python3 -m pytest -p no:cacheprovider -q -rfE "$@" ;;
    esac
done
exec /usr/bin/python3 -m pytest -p no:cacheprovider -q -rfE --durations=15 t "$@"
