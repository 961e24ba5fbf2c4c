# mod_sse_mgr: build with apxs, test against a real httpd, run a demo.
APXS      ?= apxs
PYTHON    ?= /usr/bin/python3
CORE_SRC   = src/sse_id.c src/sse_frame.c src/sse_route.c src/sse_registry.c \
             src/sse_removal.c src/sse_client.c src/sse_layout.c \
             src/sse_lock.c src/sse_repair.c src/sse_retired.c \
             src/sse_ring.c src/sse_report.c src/sse_timer.c \
             src/sse_redis_conn.c src/sse_bus_apply.c src/sse_bus_redis.c \
             src/sse_bus_lua.c src/sse_bus_read.c
# what the core links against (t/sanitize.sh reads it too)
CORE_LIBS  = -ljansson -lhiredis
GLUE_SRC   = mod_sse_mgr.c mod_sse_state.c mod_sse_ops.c mod_sse_handler.c \
	         mod_sse_dispatch.c mod_sse_wake.c mod_sse_stream.c mod_sse_park.c mod_sse_own.c mod_sse_bus.c \
	         mod_sse_bus_ops.c mod_sse_bus_threads.c \
	         mod_sse_admit.c \
	         mod_sse_status.c
WARN      ?= -Wall -Wextra -Werror -Wdeclaration-after-statement
APR_CFLAGS = $(shell pkg-config --cflags apr-1 apr-util-1)
APR_LIBS   = $(shell pkg-config --libs apr-1 apr-util-1)

.PHONY: all install uninstall test unit demo clean deps deps-build fuzz \
        sanitize bench soak deb

# apxs echoes every libtool command (~400 characters each) on stderr:
# they go to build.log, shown when a build fails; V=1 shows them all.
V ?= 0
ifeq ($(V),1)
APXS_C = $(APXS) -c
Q =
SAY = @:
else
APXS_C = sh $(CURDIR)/build-quiet.sh $(APXS) -c
Q = @
SAY = @echo
endif
MODULES_DIR = $(shell $(APXS) -q LIBEXECDIR)
MODS_AVAILABLE = /etc/apache2/mods-available

all: .libs/mod_sse_mgr.so

# a module that uses only the public optional functions, for the tests
t/modules/.libs/mod_sse_apitest.so: t/modules/mod_sse_apitest.c include/mod_sse_mgr.h
	$(SAY) "  APXS  $@"
	$(Q)cd t/modules && $(APXS_C) -Wc,"$(WARN) -std=gnu99" -I../.. mod_sse_apitest.c

.libs/mod_sse_mgr.so: $(GLUE_SRC) $(CORE_SRC) src/*.h include/*.h mod_sse_*.h
	$(SAY) "  APXS  $@"
	$(Q)$(APXS_C) -o mod_sse_mgr.la -Wc,"$(WARN) -std=gnu99" -I. $(GLUE_SRC) $(CORE_SRC) $(CORE_LIBS)

# The module into httpd's modules directory (the .so only: no libtool
# archive), and on Debian the a2enmod files (an edited .conf is kept).
# Enables nothing: a2enmod sse_mgr does.
install: all
	install -d $(DESTDIR)$(MODULES_DIR)
	install -m 644 .libs/mod_sse_mgr.so $(DESTDIR)$(MODULES_DIR)/mod_sse_mgr.so
	@if [ -d $(DESTDIR)$(MODS_AVAILABLE) ]; then \
	    install -m 644 conf/sse_mgr.load $(DESTDIR)$(MODS_AVAILABLE)/; \
	    [ -e $(DESTDIR)$(MODS_AVAILABLE)/sse_mgr.conf ] || \
	    install -m 644 conf/sse_mgr.conf $(DESTDIR)$(MODS_AVAILABLE)/; \
	    echo "installed; enable it with: a2enmod sse_mgr && apachectl -k graceful"; \
	fi

# What install put there; disables the module first where it is enabled
# (then reload httpd). An edited sse_mgr.conf is kept as sse_mgr.conf.old.
uninstall:
	@if [ -e /etc/apache2/mods-enabled/sse_mgr.load ] && command -v a2dismod >/dev/null; then \
	    a2dismod -q sse_mgr; echo "disabled; reload httpd: apachectl -k graceful"; \
	fi
	rm -f $(DESTDIR)$(MODULES_DIR)/mod_sse_mgr.so $(DESTDIR)$(MODS_AVAILABLE)/sse_mgr.load
	@if [ -e $(DESTDIR)$(MODS_AVAILABLE)/sse_mgr.conf ]; then \
	    if cmp -s conf/sse_mgr.conf $(DESTDIR)$(MODS_AVAILABLE)/sse_mgr.conf; then \
	        rm -f $(DESTDIR)$(MODS_AVAILABLE)/sse_mgr.conf; \
	    else \
	        mv $(DESTDIR)$(MODS_AVAILABLE)/sse_mgr.conf $(DESTDIR)$(MODS_AVAILABLE)/sse_mgr.conf.old; \
	    fi; \
	fi

# The Debian package libapache2-mod-sse-mgr in build/deb/, built by
# dpkg-buildpackage (debian/) in a copy of the tree: nothing else lands
# here. It installs disabled: a2enmod sse_mgr (docs/operations.md).
deb:
	@sh t/install-deps.sh deb
	@V=$(V) sh debian/make-deb.sh

# what building, installing and the demo need; deps adds the tests' tools
deps-build:
	@sh t/install-deps.sh build

deps:
	@sh t/install-deps.sh test

t/unit/run_tests: t/unit/*.c $(CORE_SRC) src/*.h
	$(SAY) "  CC    $@"
	$(Q)$(CC) -std=gnu99 $(WARN) -g -I. $(APR_CFLAGS) -o $@ t/unit/*.c $(CORE_SRC) $(APR_LIBS) $(CORE_LIBS) -lpthread

unit: t/unit/run_tests
	t/unit/run_tests

# sse_redis_connect() from the command line, for t/test_redis_conn.py
t/probe/redis_probe: t/probe/redis_probe.c src/sse_redis_conn.c src/sse_redis_conn.h
	$(SAY) "  CC    $@"
	$(Q)$(CC) -std=gnu99 $(WARN) -g -I. $(APR_CFLAGS) -o $@ t/probe/redis_probe.c src/sse_redis_conn.c $(APR_LIBS) -lhiredis

# the demo server's module (docs/demo.md): the optional functions only
examples/.libs/mod_sse_demo.so: examples/mod_sse_demo.c include/mod_sse_mgr.h
	$(SAY) "  APXS  $@"
	$(Q)cd examples && $(APXS_C) -Wc,"$(WARN) -std=gnu99" -I.. mod_sse_demo.c

test: deps all examples/.libs/mod_sse_demo.so t/modules/.libs/mod_sse_apitest.so t/unit/run_tests \
      t/probe/redis_probe
	@sh t/run-tests.sh

demo: deps-build all examples/.libs/mod_sse_demo.so
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
	rm -rf .libs *.la *.lo *.slo *.o src/*.lo src/*.slo src/*.o src/.libs t/unit/run_tests t/probe/redis_probe \
	       t/modules/.libs t/modules/*.la t/modules/*.lo t/modules/*.slo t/modules/*.o \
	       examples/.libs examples/*.la examples/*.lo examples/*.slo examples/*.o \
	       build.log t/modules/build.log examples/build.log
