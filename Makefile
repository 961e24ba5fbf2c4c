# mod_sse_mgr: build with apxs, test against a real httpd, run a demo.
APXS      ?= apxs
PYTHON    ?= /usr/bin/python3
CORE_SRC   = src/sse_id.c src/sse_frame.c src/sse_route.c src/sse_registry.c \
             src/sse_layout.c src/sse_lock.c src/sse_repair.c src/sse_retired.c \
             src/sse_ring.c src/sse_report.c src/sse_timer.c
GLUE_SRC   = mod_sse_mgr.c mod_sse_state.c mod_sse_ops.c mod_sse_handler.c \
	         mod_sse_dispatch.c mod_sse_stream.c mod_sse_park.c \
	         mod_sse_status.c
WARN      ?= -Wall -Wextra -Werror -Wdeclaration-after-statement
APR_CFLAGS = $(shell pkg-config --cflags apr-1 apr-util-1)
APR_LIBS   = $(shell pkg-config --libs apr-1 apr-util-1)

.PHONY: all install test unit demo clean deps fuzz sanitize bench soak

all: .libs/mod_sse_mgr.so

# a module that uses only the public optional functions, for the tests
t/modules/.libs/mod_sse_apitest.so: t/modules/mod_sse_apitest.c include/mod_sse_mgr.h
	cd t/modules && $(APXS) -c -Wc,"$(WARN) -std=gnu99" -I../.. mod_sse_apitest.c >/dev/null

.libs/mod_sse_mgr.so: $(GLUE_SRC) $(CORE_SRC) src/*.h include/*.h mod_sse_*.h
	$(APXS) -c -o mod_sse_mgr.la -Wc,"$(WARN) -std=gnu99" -I. $(GLUE_SRC) $(CORE_SRC) -ljansson >/dev/null

# the module, and on Debian the a2enmod files (an edited .conf is kept)
install: all
	$(APXS) -i -n sse_mgr mod_sse_mgr.la
	if [ -d /etc/apache2/mods-available ]; then \
	    install -m 644 conf/sse_mgr.load /etc/apache2/mods-available/; \
	    [ -e /etc/apache2/mods-available/sse_mgr.conf ] || \
	    install -m 644 conf/sse_mgr.conf /etc/apache2/mods-available/; \
	fi

deps:
	@sh t/install-deps.sh

t/unit/run_tests: t/unit/*.c $(CORE_SRC) src/*.h
	$(CC) -std=gnu99 $(WARN) -g -I. $(APR_CFLAGS) -o $@ t/unit/*.c $(CORE_SRC) $(APR_LIBS) -ljansson -lpthread

unit: t/unit/run_tests
	t/unit/run_tests

# the demo server's module (docs/demo.md): the optional functions only
examples/.libs/mod_sse_demo.so: examples/mod_sse_demo.c include/mod_sse_mgr.h
	cd examples && $(APXS) -c -Wc,"$(WARN) -std=gnu99" -I.. mod_sse_demo.c >/dev/null

test: deps all examples/.libs/mod_sse_demo.so t/modules/.libs/mod_sse_apitest.so t/unit/run_tests
	@sh t/run-tests.sh

demo: deps all examples/.libs/mod_sse_demo.so
	@sh examples/run-demo.sh

# libFuzzer harnesses for src/, each for a bounded time (FUZZ_SECONDS)
fuzz:
	@sh fuzz/run.sh

# unit tests and the httpd suite under ASan + UBSan
sanitize:
	@sh t/sanitize.sh

# side-by-side load figures into bench/RESULTS.md (minutes)
bench: deps all
	@sh bench/run.sh

# minutes of churn, graceful restarts and child kills per MPM (not in
# test): SOAK_MINUTES (default 10) per MPM, MPM=event to narrow
soak: deps all
	$(PYTHON) t/soak.py

clean:
	rm -rf .libs *.la *.lo *.slo *.o src/*.lo src/*.slo src/*.o src/.libs t/unit/run_tests \
	       t/modules/.libs t/modules/*.la t/modules/*.lo t/modules/*.slo t/modules/*.o \
	       examples/.libs examples/*.la examples/*.lo examples/*.slo examples/*.o
