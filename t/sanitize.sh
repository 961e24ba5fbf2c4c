#!/bin/sh
# make sanitize: the C unit tests, then the httpd suite, against code built
# with AddressSanitizer + UndefinedBehaviorSanitizer, all of it under
# build/sanitize/ (the normal t/unit/run_tests and .libs/mod_sse_mgr.so are
# never touched: others build and test with them at the same time).
# The demo and test-only modules (examples/, t/modules/) stay unsanitized.
#
#   sh t/sanitize.sh                        # unit tests + all three MPMs
#   MPM=event sh t/sanitize.sh              # one MPM
#   MPM=event sh t/sanitize.sh -k routes    # pytest arguments
#   SANITIZE_UNIT_ONLY=1 sh t/sanitize.sh   # unit tests only
#   SANITIZE_CFLAGS="-include stddef.h" sh t/sanitize.sh   # extra flags
#
# Fails when a unit test or an httpd test fails, or when any sanitizer
# report appeared (reports: build/sanitize/logs/).
cd "$(dirname "$0")/.." || exit 2
TOP=$(pwd)
OUT=$TOP/build/sanitize
LOGS=$OUT/logs
CLANG=${CLANG:-clang-14}
APXS=${APXS:-apxs}
SAN="-fsanitize=address -fsanitize=undefined -fno-omit-frame-pointer"
SAN="$SAN $SANITIZE_CFLAGS"

# -- what building needs, installed only when missing
need=""
for p in gcc libasan8 libubsan1 clang-14 libclang-rt-14-dev llvm-14 \
         apache2-dev libapr1-dev libaprutil1-dev libjansson-dev libhiredis-dev \
         pkg-config; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || need="$need $p"
done
if [ -n "$need" ]; then
    echo "sanitize: installing:$need"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq || exit 2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need \
        >/dev/null || exit 2
fi

# The source lists and warnings are the Makefile's, whatever they become.
mkvar() {
    printf 'print-%%:\n\t@echo $($*)\n' \
        | make -s --no-print-directory -f Makefile -f - "print-$1"
}
CORE_SRC=$(mkvar CORE_SRC) && GLUE_SRC=$(mkvar GLUE_SRC) \
    && CORE_LIBS=$(mkvar CORE_LIBS) && WARN=$(mkvar WARN) || exit 2
APR_CFLAGS=$(pkg-config --cflags apr-1 apr-util-1) || exit 2
APR_LIBS=$(pkg-config --libs apr-1 apr-util-1) || exit 2
rm -rf "$LOGS"
mkdir -p "$OUT" "$LOGS" || exit 2

# -- 1. unit tests, by gcc and by clang (each folds and checks different
#       things): every error halts, leaks included (the core must free
#       what it takes from malloc: jansson values, dumped strings)
unit_rc=0
unit_line=""
for cc in gcc "$CLANG"; do
    bin=$OUT/run_tests
    [ "$cc" = gcc ] || bin=$OUT/run_tests-clang
    echo "sanitize: unit tests by $cc -> ${bin#$TOP/}"
    # -Werror is the normal (gcc) build's; clang also warns of APR macros
    w=$WARN
    [ "$cc" = gcc ] || w=$(echo "$WARN" | sed 's/-Werror//')
    # shellcheck disable=SC2086
    $cc -std=gnu99 $w -g -O1 $SAN -fno-sanitize-recover=all -I. \
        $APR_CFLAGS -o "$bin" t/unit/*.c $CORE_SRC $APR_LIBS $CORE_LIBS \
        -lpthread >"$bin.build.log" 2>&1 \
        || { cat "$bin.build.log"
             echo "sanitize: FAILED: unit tests do not build"; exit 1; }
    ASAN_OPTIONS="halt_on_error=1:detect_leaks=1" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
        "$bin" t/unit/cases >"$bin.log" 2>&1 || unit_rc=1
    # a report on stderr becomes a file like those of httpd below
    if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error' "$bin.log"
    then
        cp "$bin.log" "$LOGS/unit-$cc.log"
    fi
    last=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$bin.log" | tail -n 1)
    echo "sanitize: unit ($cc): ${last:-stopped by a sanitizer}"
    unit_line="$unit_line $cc: ${last:-stopped by a sanitizer},"
done

# -- 2. the module, by clang straight from the tree, into build/sanitize/,
#       with its run-time invariants checked (-DSSE_CHECKS: SSE_ASSERT)
#       (not by apxs: its libtool links with gcc whatever CC it is given,
#       and with gcc's separate libasan and libubsan the UBSan runtime,
#       set up late in a child that runs as www-data, cannot read its
#       options and turns both runtimes' reports to stderr. clang has one
#       runtime that reads its options at start, as root.)
httpd_rc=skipped
if [ -z "$SANITIZE_UNIT_ONLY" ]; then
    MOD=$OUT/mod_sse_mgr.so
    RT=$($CLANG -print-file-name=libclang_rt.asan-x86_64.so)
    [ -e "$RT" ] || { echo "sanitize: no $RT"; exit 2; }
    echo "sanitize: the module by $CLANG -> ${MOD#$TOP/}"
    # shellcheck disable=SC2086
    $CLANG -shared -fPIC -shared-libasan -std=gnu99 \
        $(echo "$WARN" | sed 's/-Werror//') -g -O1 $SAN -DSSE_CHECKS \
        $($APXS -q EXTRA_CPPFLAGS) -I"$($APXS -q INCLUDEDIR)" $APR_CFLAGS \
        -I. -o "$MOD" $GLUE_SRC $CORE_SRC $CORE_LIBS >"$OUT/build.log" 2>&1 \
        || { cat "$OUT/build.log"
             echo "sanitize: FAILED: the module does not build"; exit 1; }
    grep -c 'warning:' "$OUT/build.log" \
        | sed 's/^/sanitize: clang warnings (build\/sanitize\/build.log): /'

    # -- 3. the httpd suite with that module, the runtime preloaded into
    #       apache2 (which is not instrumented: ASan must be the first
    #       library loaded). Children run as www-data: the log directory
    #       must be theirs to write. No leak check: httpd never frees its
    #       process and configuration pools before a process exits (the
    #       OS reclaims them), so LeakSanitizer would report httpd's own
    #       memory at every exit of every child, not ours. Keep ASan's SEGV
    #       handler (httpd installs its own for core dumps) so a crash in a
    #       child is reported too. UBSan reports and goes on, to see all.
    #       Extra ASAN_OPTIONS / UBSAN_OPTIONS (a suppressions file) are
    #       appended.
    chmod 1777 "$LOGS"
    echo "sanitize: httpd suite (MPM=${MPM:-prefork,worker,event}) with" \
         "${MOD#$TOP/}"
    asan="log_path=$LOGS/httpd:detect_leaks=0:halt_on_error=1"
    asan="$asan:allow_user_segv_handler=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
    ubsan="print_stacktrace=1:halt_on_error=0"
    ubsan="$ubsan${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
    SSE_MGR_MODULE=$MOD SSE_TEST_PRELOAD="$RT" ASAN_OPTIONS=$asan \
    UBSAN_OPTIONS=$ubsan sh t/run-tests.sh "$@"
    httpd_rc=$?
fi

# -- summary: each distinct finding once, with how many reports had it
reports=$(find "$LOGS" -type f | wc -l)
if [ "$reports" -gt 0 ]; then
    echo "sanitize: findings (reports with it; one report to read):"
    for f in $(find "$LOGS" -type f | sort); do
        grep -h 'SUMMARY:' "$f" | sort -u | sed "s|\$| @${f#$TOP/}|"
    done | awk -F' @' '{ n[$1]++; if (!($1 in at)) at[$1] = $2 }
        END { for (s in n) printf "sanitize: %6d %s\n        e.g. %s\n",
                                  n[s], s, at[s] }'
fi
verdict=PASS
[ "$unit_rc" -eq 0 ] || verdict=FAIL
[ "$httpd_rc" = 0 ] || [ "$httpd_rc" = skipped ] || verdict=FAIL
[ "$reports" -eq 0 ] || verdict=FAIL
echo "sanitize: $verdict: unit tests:${unit_line%,}; httpd suite" \
     "(MPM=${MPM:-all}): exit $httpd_rc; sanitizer reports: $reports in" \
     "build/sanitize/logs"
[ "$verdict" = PASS ]
