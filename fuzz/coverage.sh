#!/bin/sh
# Line coverage of src/ by the fuzzers' corpora (the committed one and
# fuzz/out/corpus from earlier runs of fuzz/run.sh): builds each harness
# with clang's source-based coverage into fuzz/out/cov/, replays the
# corpora once, and prints llvm-cov's report for the src/ files.
cd "$(dirname "$0")/.." || exit 2
OUT=fuzz/out/cov
CC=${FUZZ_CC:-clang-14}
PROFDATA=${LLVM_PROFDATA:-llvm-profdata-14}
COV=${LLVM_COV:-llvm-cov-14}
mkdir -p $OUT || exit 2
rm -f $OUT/*.profraw
DEPS_CFLAGS=$(pkg-config --cflags apr-1 apr-util-1 jansson) || exit 2
DEPS_LIBS=$(pkg-config --libs apr-1 apr-util-1 jansson) || exit 2
objs=""
for f in route id frame; do
    case $f in
        route) src="src/sse_route.c src/sse_id.c" ;;
        id)    src="src/sse_id.c" ;;
        frame) src="src/sse_frame.c" ;;
    esac
    # shellcheck disable=SC2086
    $CC -std=gnu99 -g -O0 -fsanitize=fuzzer -fprofile-instr-generate \
        -fcoverage-mapping -I. $DEPS_CFLAGS -o $OUT/fuzz_$f fuzz/fuzz_$f.c \
        $src $DEPS_LIBS || exit 2
    mkdir -p fuzz/out/corpus/$f
    LLVM_PROFILE_FILE=$OUT/$f.profraw $OUT/fuzz_$f -runs=0 \
        fuzz/corpus/$f fuzz/out/corpus/$f >/dev/null 2>&1 || exit 1
    objs="${objs:+$objs -object }$OUT/fuzz_$f"
done
$PROFDATA merge -sparse $OUT/*.profraw -o $OUT/all.profdata || exit 2
# shellcheck disable=SC2086
$COV report $objs -instr-profile=$OUT/all.profdata \
    src/sse_route.c src/sse_id.c src/sse_frame.c
