# mod_rproxy - build, install, test and demo with apxs.
#
#   make            build .libs/mod_rproxy.so
#   make install    install the module, mod_rproxy.h and the a2enmod files
#                   (docs/install.md); make uninstall removes them
#   make install-check  install, reinstall, uninstall into the live system
#                   and check that exactly our files came and went (root)
#   make test       run the Apache::Test suite against the fresh build
#                   (after make fuzz-replay: the fuzz corpus as a regression check)
#   make fuzz       fuzz the response parser with libFuzzer (fuzz/README.md)
#   make run        start the demo on http://127.0.0.1:8080/app/ (make stop)
#   make bench      mod_rproxy vs mod_proxy_http, httpd and nginx (bench/README.md)

APXS    ?= $(shell command -v apxs 2>/dev/null || echo /usr/bin/apxs)
SRCS     = mod_rproxy.c rproxy_status.c rproxy_status_html.c \
           rproxy_tunnel.c rproxy_response.c rproxy_request.c \
           rproxy_trailers.c rproxy_check.c rproxy_conn.c rproxy_tls.c \
           rproxy_pool.c rproxy_group.c rproxy_util.c rproxy_stats.c \
           rproxy_fields.c rproxy_parse.c
HDRS     = mod_rproxy.h rproxy.h rproxy_parse.h
CWARN    = -Wc,-Wall -Wc,-Wextra -Wc,-Wshadow
MODULE   = .libs/mod_rproxy.so

# Debian packages, installed by the *deps targets when missing (root only):
# what building and running the module needs (make, make install; apache2-dev
# gives apxs but reaches a compiler only through Recommends) ...
BUILD_PACKAGES = build-essential apache2 apache2-dev libssl-dev
# ... the demo (make run): curl waits for, and python3-websockets is, the
# live page's backend (conf/demo/run.sh) ...
RUN_PACKAGES   = $(BUILD_PACKAGES) curl python3-websockets
# ... the whole suite (make test, test-asan): Apache::Test and LWP, curl,
# h2load, the WebSocket library, openssl for the TLS certificate, and
# chromium for t/browser.t (nothing is skipped for want of a package) ...
TEST_PACKAGES  = $(BUILD_PACKAGES) libapache2-mod-perl2 curl nghttp2-client \
                 python3-websockets openssl chromium
VALGRIND_PACKAGES = $(TEST_PACKAGES) valgrind
# ... and the benchmark, soak and fault runs (bench/run.sh, soak/lib.sh).
BENCH_PACKAGES = $(BUILD_PACKAGES) curl python3 nginx wrk

.PHONY: all deps install test test-asan test-valgrind run stop clean layers

all: $(MODULE)

$(MODULE): $(SRCS) $(HDRS)
	@test -x "$(APXS)" || { echo "apxs not found: run 'make deps' (as root) first" >&2; exit 1; }
	$(APXS) -c $(CWARN) $(EXTRA_CFLAGS:%=-Wc,%) $(EXTRA_LDFLAGS:%=-Wl,%) -o mod_rproxy.la $(SRCS) -lssl -lcrypto

# $(call apt_need,PACKAGES): installs those of PACKAGES that are not
# installed; as another user than root, names them and fails.
define apt_need
	@missing=""; for p in $(1); do \
	  [ "$$(dpkg-query -W -f='$${db:Status-Status}' $$p 2>/dev/null)" = installed ] || \
	    missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to install:$$missing" >&2; exit 1; fi; \
	  echo "installing:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi
endef

.PHONY: run-deps test-deps valgrind-deps bench-deps uninstall install-check

deps:
	$(call apt_need,$(BUILD_PACKAGES))
run-deps:
	$(call apt_need,$(RUN_PACKAGES))
test-deps:
	$(call apt_need,$(TEST_PACKAGES))
valgrind-deps:
	$(call apt_need,$(VALGRIND_PACKAGES))
bench-deps:
	$(call apt_need,$(BENCH_PACKAGES))

# make install: the module into LIBEXECDIR, mod_rproxy.h into INCLUDEDIR,
# rproxy.load and rproxy.conf into SYSCONFDIR/mods-available (Debian:
# /usr/lib/apache2/modules, /usr/include/apache2, /etc/apache2).  It
# enables nothing (a2enmod rproxy does).  rproxy.load and rproxy.conf are
# treated like dpkg conffiles: one that differs from what conf/ ships (an
# admin's edit, or an older version) is never overwritten; the shipped one
# goes beside it as NAME.dist (a2enmod and apache2.conf only read *.load and
# *.conf).  The .so is what `apxs -i` would install, without libtool's noise.
# make uninstall removes those files again, keeps an edited rproxy.load or
# rproxy.conf (and says so), and refuses while httpd's configuration loads
# the module (a2dismod rproxy first).  docs/install.md; checked by
# t/install-check.sh (make install-check).
CONFFILES = rproxy.load rproxy.conf
# Prints LIBEXECDIR INCLUDEDIR SYSCONFDIR/mods-available, or fails.
apxs_dirs = { test -x "$(APXS)" || { echo "apxs not found: run 'make deps' (as root) first" >&2; exit 1; }; \
  set -- $$($(APXS) -q LIBEXECDIR) $$($(APXS) -q INCLUDEDIR) $$($(APXS) -q SYSCONFDIR); \
  [ $$\# = 3 ] || { echo "apxs -q gave no LIBEXECDIR, INCLUDEDIR or SYSCONFDIR" >&2; exit 1; }; \
  libexec=$$1 include=$$2 sysconf=$$3 avail=$$3/mods-available; }

install: deps all
	@$(apxs_dirs); \
	for d in "$$libexec" "$$include" "$$avail"; do \
	  [ -d "$$d" ] && [ -w "$$d" ] || { echo "make install: cannot write to $$d (run as root)" >&2; exit 1; }; done; \
	set -x; \
	install -m 644 $(MODULE) "$$libexec/mod_rproxy.so"; \
	install -m 644 mod_rproxy.h "$$include/mod_rproxy.h"; \
	{ set +x; } 2>/dev/null; \
	for f in $(CONFFILES); do \
	  if [ ! -e "$$avail/$$f" ]; then \
	    ( set -x; install -m 644 conf/$$f "$$avail/$$f" ); \
	  elif cmp -s conf/$$f "$$avail/$$f"; then \
	    echo "$$avail/$$f: unchanged"; rm -f "$$avail/$$f.dist"; \
	  else \
	    install -m 644 conf/$$f "$$avail/$$f.dist"; \
	    echo "$$avail/$$f differs from conf/$$f: kept; the shipped version is $$avail/$$f.dist"; \
	  fi; \
	done; \
	if [ -e "$$sysconf/mods-enabled/rproxy.load" ]; then \
	  echo "mod_rproxy installed; reload httpd to use it: apache2ctl configtest && apache2ctl graceful"; \
	else \
	  echo "mod_rproxy installed; enable it with: a2enmod rproxy && apache2ctl configtest && apache2ctl graceful"; \
	fi

uninstall:
	@$(apxs_dirs); \
	enabled=""; \
	for f in $(CONFFILES); do \
	  [ ! -e "$$sysconf/mods-enabled/$$f" ] && [ ! -L "$$sysconf/mods-enabled/$$f" ] || \
	    enabled="$$enabled $$sysconf/mods-enabled/$$f"; done; \
	if command -v apache2ctl >/dev/null && apache2ctl -M 2>/dev/null | grep -q '^ *rproxy_module '; then \
	  enabled="$$enabled (apache2ctl -M lists rproxy_module)"; fi; \
	if [ -n "$$enabled" ]; then \
	  echo "make uninstall: httpd's configuration still loads mod_rproxy:$$enabled" >&2; \
	  echo "  first: a2dismod rproxy, remove your rproxy settings, apache2ctl configtest && apache2ctl graceful" >&2; \
	  exit 1; \
	fi; \
	set -x; \
	rm -f "$$libexec/mod_rproxy.so" "$$include/mod_rproxy.h"; \
	{ set +x; } 2>/dev/null; \
	for f in $(CONFFILES); do \
	  rm -f "$$avail/$$f.dist"; \
	  if [ ! -e "$$avail/$$f" ]; then :; \
	  elif cmp -s conf/$$f "$$avail/$$f"; then ( set -x; rm -f "$$avail/$$f" ); \
	  else echo "$$avail/$$f differs from conf/$$f: kept (remove it by hand)"; fi; \
	done

# Installs into and uninstalls from the live system, as root, and fails
# unless exactly the expected files came and went; restores what it found.
install-check:
	bash t/install-check.sh

test: test-deps
	$(MAKE) all
	$(MAKE) layers
	$(MAKE) fuzz-replay
	perl t/TEST.PL -clean >/dev/null 2>&1 || true
	rm -f t/logs/slotmem-shm-*
	perl t/TEST.PL $(TEST_ARGS)

# The layering rule of rproxy.h (calls between the files only go down),
# checked on the built objects; part of make test.
layers: $(MODULE)
	python3 t/tools/layers.py

# The suite with the module and test modules built with AddressSanitizer and
# UBSan, httpd run through t/tools/sanitized-httpd; fails on any sanitizer error
# or any leak through our code (t/tools/sanitizer-report).  Cleans up after
# itself so the next plain build is not sanitized.
SANITIZE = -fsanitize=address -fsanitize=undefined -fno-omit-frame-pointer
test-asan: test-deps
	rm -rf .libs *.la *.lo *.slo *.o t/logs/sanitizer
	$(MAKE) all EXTRA_CFLAGS="$(SANITIZE)"
	perl t/TEST.PL -clean >/dev/null 2>&1 || true
	rm -f t/logs/slotmem-shm-*
	EXTRA_CFLAGS="$(SANITIZE:%=-Wc,%)" perl t/TEST.PL \
	  -httpd $(CURDIR)/t/tools/sanitized-httpd $(TEST_ARGS); rc=$$?; \
	  perl t/tools/sanitizer-report || rc=1; \
	  rm -rf .libs *.la *.lo *.slo *.o; perl t/TEST.PL -clean >/dev/null 2>&1; \
	  exit $$rc

# The suite's functional tests with httpd in one process (-X) under
# valgrind's memcheck (t/tools/valgrind-httpd); fails on any memcheck error or
# definite leak (t/tools/valgrind-report).  The timing tests (flush, SSE,
# browser, HTTP/2 load) are left out: valgrind slows the server too much.
VALGRIND_TESTS ?= t/pool.t t/paths.t t/errors.t t/bodies.t t/strict.t \
                  t/headers.t t/trailers.t t/reuse.t t/client.t \
                  t/status.t t/interim.t t/upgrade.t t/tls.t t/websocket.t
test-valgrind: valgrind-deps
	$(MAKE) all
	@command -v valgrind >/dev/null || { echo "install valgrind first" >&2; exit 1; }
	perl t/TEST.PL -clean >/dev/null 2>&1 || true
	rm -f t/logs/slotmem-shm-*
	rm -rf t/logs/valgrind
	perl t/TEST.PL -one-process -httpd $(CURDIR)/t/tools/valgrind-httpd \
	  $(or $(TEST_ARGS),$(VALGRIND_TESTS)); rc=$$?; \
	  perl t/tools/valgrind-report || rc=1; exit $$rc

run: run-deps
	$(MAKE) all
	@sh conf/demo/run.sh start

stop:
	@sh conf/demo/run.sh stop

# ---- benchmark (bench/README.md) ----
# make bench                   quick mode, about 3 minutes
# make bench BENCH_MODE=full   the full figures (bench/RESULTS.md), under 10
#                              (both include the https backend variants
#                              rproxy_tls, proxy_http_tls; BENCH_TLS=0 skips them)
BENCH_MODE ?= quick

# make bench-buckets           the same plus a build with pooled buckets
#                              (bench/compare-buckets.sh)
# make profile                 perf profile of httpd under wrk (bench/profile.sh)
# make bench-compare BASE=C    req/s of this tree's module against commit C's
#                              build, interleaved rounds (bench/compare-commits.sh)
# make profile PROFILE_VARIANTS="rproxy rproxy_g4"   the group of four too,
#                              with the share of the group code and atomics
# make syscalls                system calls and context switches per request
#                              (bench/syscalls.sh; SYSCALLS_VARIANTS, _SIZE,
#                              _CONNS as for profile)
PROFILE_VARIANTS ?=
SYSCALLS_VARIANTS ?=

.PHONY: bench bench-buckets bench-compare profile syscalls

bench: bench-deps
	$(MAKE) all
	BENCH_MODE=$(BENCH_MODE) bash bench/run.sh

bench-buckets: bench-deps
	$(MAKE) all
	BENCH_MODE=$(BENCH_MODE) bash bench/compare-buckets.sh

bench-compare: bench-deps
	@test -n "$(BASE)" || { echo "make bench-compare BASE=<commit>" >&2; exit 1; }
	$(MAKE) all
	BASE=$(BASE) bash bench/compare-commits.sh

profile: bench-deps
	$(MAKE) all
	bash bench/profile.sh $(PROFILE_VARIANTS)

syscalls: bench-deps
	$(MAKE) all
	bash bench/syscalls.sh $(SYSCALLS_VARIANTS)

# ---- soak and fault runs (soak/README.md); not part of make test or CI ----
# make soak     SOAK_REQUESTS mixed requests over SOAK_CONNS connections:
#               no errors, flat RSS and fds, no buffer left outstanding
# make faults   backend restart, -k graceful, -k graceful-stop under load
# make chaos    (= make soak SOAK_MODE=chaos) SOAK_REQUESTS GETs and POSTs by
#               id through a group of four members that are killed, drained
#               and re-enabled, with a graceful restart every 60 s
#               (soak/chaos.sh); make chaos SOAK_REQUESTS=200000 for a
#               shorter run
SOAK_REQUESTS ?= 1000000
SOAK_CONNS    ?= 64
SOAK_MODE     ?= plain

.PHONY: soak faults chaos

soak: bench-deps
	$(MAKE) all
ifeq ($(SOAK_MODE),chaos)
	SOAK_REQUESTS=$(SOAK_REQUESTS) SOAK_CONNS=$(SOAK_CONNS) bash soak/chaos.sh
else
	SOAK_REQUESTS=$(SOAK_REQUESTS) SOAK_CONNS=$(SOAK_CONNS) bash soak/soak.sh
endif

chaos: bench-deps
	$(MAKE) all
	SOAK_REQUESTS=$(SOAK_REQUESTS) SOAK_CONNS=$(SOAK_CONNS) bash soak/chaos.sh

faults: bench-deps
	$(MAKE) all
	bash soak/faults.sh

clean:
	rm -rf .libs *.la *.lo *.slo *.o
	-perl t/TEST.PL -clean >/dev/null 2>&1 || true

# ---- mutation testing (mutate/README.md); not part of make test or CI ----
# make mutate   each mutate/NN-name.patch (a one-line bug) applied in turn to
#               a scratch copy, built, and its test files run: prints killed /
#               survived and the kill rate; fails if any mutant survives
.PHONY: mutate
mutate: deps
	bash mutate/run.sh

# ---- fuzzing rproxy_parse.c (fuzz/README.md) ----
# make fuzz          builds the libFuzzer target with clang and fuzzes for
#                    FUZZ_SECONDS; new inputs go to fuzz/build/corpus
# make fuzz-merge    adds to fuzz/corpus the ones that reach new edges
#                    (-use_counters=0 keeps the corpus small)
# make fuzz-replay   runs fuzz/corpus through the target with plain cc (gcc),
#                    ASan+UBSan when the compiler has them; part of make test
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_MAX_LEN ?= 20000
FUZZ_ARGS    ?=
FUZZ_APR      = -I. $(shell apr-1-config --includes --cppflags)
FUZZ_APR_LD   = $(shell apr-1-config --link-ld)
FUZZ_SRCS     = fuzz/fuzz_response.c rproxy_parse.c
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_RUN      = fuzz/build/fuzz_response -max_len=$(FUZZ_MAX_LEN) \
                -dict=fuzz/http.dict -artifact_prefix=fuzz/build/

.PHONY: fuzz fuzz-merge fuzz-replay fuzz-clean

fuzz/build/fuzz_response: $(FUZZ_SRCS) rproxy_parse.h
	@mkdir -p fuzz/build
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer $(FUZZ_SAN) $(FUZZ_APR) \
	    -o $@ $(FUZZ_SRCS) $(FUZZ_APR_LD)

# fuzz/corpus is only read: new inputs are written to the first directory.
fuzz: fuzz/build/fuzz_response
	@mkdir -p fuzz/build/corpus
	$(FUZZ_RUN) -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    $(FUZZ_ARGS) fuzz/build/corpus fuzz/corpus

fuzz-merge: fuzz/build/fuzz_response
	@mkdir -p fuzz/build/corpus
	$(FUZZ_RUN) -merge=1 -use_counters=0 fuzz/corpus fuzz/build/corpus

fuzz/build/replay: fuzz/replay.c $(FUZZ_SRCS) rproxy_parse.h
	@mkdir -p fuzz/build
	@san=; probe=fuzz/build/sanitizer-probe; \
	if printf 'int main(void) { return 0; }\n' \
	    | $(CC) $(FUZZ_SAN) -x c - -o $$probe 2>/dev/null && ./$$probe; then \
	    san='$(FUZZ_SAN)'; \
	else \
	    echo "fuzz-replay: $(CC) has no working ASan/UBSan; building without"; \
	fi; \
	rm -f $$probe; \
	echo "$(CC) -Wall -Wextra -Wshadow -g $$san $(FUZZ_APR) -o $@ fuzz/replay.c $(FUZZ_SRCS) $(FUZZ_APR_LD)"; \
	$(CC) -Wall -Wextra -Wshadow -g $$san $(FUZZ_APR) -o $@ fuzz/replay.c \
	    $(FUZZ_SRCS) $(FUZZ_APR_LD)

fuzz-replay: fuzz/build/replay
	fuzz/build/replay fuzz/corpus

fuzz-clean:
	rm -rf fuzz/build
