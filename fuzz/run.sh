#!/bin/sh
# make fuzz: build the libFuzzer harnesses of src/ (route parser, ids,
# SSE framer) with ASan + UBSan into fuzz/out/, run each for FUZZ_SECONDS
# (default 60), print executions and coverage, and exit non-zero if any
# harness crashed; crash inputs stay in fuzz/out/crashes/.
#
#   FUZZ_SECONDS=300 sh fuzz/run.sh          # longer
#   FUZZERS="route frame" sh fuzz/run.sh     # some harnesses only
#   sh fuzz/run.sh -only_ascii=1             # extra libFuzzer flags
cd "$(dirname "$0")/.." || exit 2
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZERS=${FUZZERS:-"route id frame"}
OUT=fuzz/out

# -- what building needs, installed only when missing
need=""
for p in clang-14 libclang-rt-14-dev libapr1-dev libaprutil1-dev \
         libjansson-dev pkg-config python3; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || need="$need $p"
done
if [ -n "$need" ]; then
    echo "fuzz: installing:$need"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq || exit 2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need \
        >/dev/null || exit 2
fi
CC=${FUZZ_CC:-clang-14}

# -- build: the harness plus the src/ files it exercises
sources() {
    case $1 in
        route) echo src/sse_route.c src/sse_id.c ;;
        id)    echo src/sse_id.c ;;
        frame) echo src/sse_frame.c ;;
    esac
}
max_len() {
    case $1 in
        route) echo 512 ;;      # longest valid path is 176 bytes
        id)    echo 256 ;;      # longest id is 92
        frame) echo 1200 ;;     # past SSE_DATA_MAX, escaped or not
    esac
}
mkdir -p $OUT/crashes || exit 2
CFLAGS="-std=gnu99 -g -O1 -Wall -Wextra -Werror -fno-omit-frame-pointer
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
DEPS_CFLAGS=$(pkg-config --cflags apr-1 apr-util-1 jansson) || exit 2
DEPS_LIBS=$(pkg-config --libs apr-1 apr-util-1 jansson) || exit 2
for f in $FUZZERS; do
    # shellcheck disable=SC2046,SC2086
    $CC $CFLAGS -I. $DEPS_CFLAGS -o $OUT/fuzz_$f fuzz/fuzz_$f.c \
        $(sources $f) $DEPS_LIBS || { echo "fuzz: $f: build failed"; exit 2; }
done

# -- seeds: the committed corpus, and fresh ones from t/unit/cases
/usr/bin/python3 fuzz/seeds.py corpus $OUT/seeds || exit 2

# -- run, one harness at a time (the machine is shared)
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1"
failed=""
for f in $FUZZERS; do
    mkdir -p $OUT/corpus/$f fuzz/corpus/$f
    dict=""
    [ -f fuzz/$f.dict ] && dict="-dict=fuzz/$f.dict"
    echo "fuzz: $f: running for ${FUZZ_SECONDS}s ..."
    # shellcheck disable=SC2086
    $OUT/fuzz_$f -max_total_time="$FUZZ_SECONDS" -max_len="$(max_len $f)" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 $dict \
        -artifact_prefix="$OUT/crashes/$f-" "$@" \
        $OUT/corpus/$f fuzz/corpus/$f $OUT/seeds/$f >$OUT/$f.log 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' $OUT/$f.log)
    secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' \
        $OUT/$f.log)
    last=$(grep -E '^#[0-9]+' $OUT/$f.log | tail -n 1)
    cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\/[^ ]*\).*/\1/p')
    echo "fuzz: $f: ${runs:-?} runs in ${secs:-?}s, cov: ${cov:-?}" \
         "ft: ${ft:-?}, corpus: ${corp:-?}, exit $rc"
    if [ $rc -ne 0 ]; then
        failed="$failed $f"
        grep -E 'ERROR|SUMMARY|property failed|runtime error' $OUT/$f.log \
            | head -n 5 | sed 's/^/fuzz:   /'
        for c in $OUT/crashes/$f-*; do
            [ -f "$c" ] || continue
            echo "fuzz:   input $c"
            /usr/bin/python3 fuzz/seeds.py case $f "$c" \
                | sed 's/^/fuzz:   regression case for /'
        done
        echo "fuzz:   log: $OUT/$f.log"
    fi
done
if [ -n "$failed" ]; then
    echo "fuzz: FAILED:$failed (reproduce: fuzz/out/fuzz_<name> <crash file>)"
    exit 1
fi
echo "fuzz: ok: $FUZZERS, ${FUZZ_SECONDS}s each, no crash"
