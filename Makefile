# mod_rproxy - build, install, test and demo with apxs.
#
#   make            build .libs/mod_rproxy.so
#   make install    install the module, mod_rproxy.h and the a2enmod files
#   make test       run the Apache::Test suite against the fresh build
#                   (after make fuzz-replay: the fuzz corpus as a regression check)
#   make fuzz       fuzz the response parser with libFuzzer (fuzz/README.md)
#   make run        start the demo on http://127.0.0.1:8080/app/ (make stop)
#   make bench      mod_rproxy vs mod_proxy_http, httpd and nginx (bench/README.md)

APXS    ?= $(shell command -v apxs 2>/dev/null || echo /usr/bin/apxs)
SRCS     = mod_rproxy.c rproxy_status.c rproxy_tunnel.c rproxy_response.c \
           rproxy_request.c rproxy_trailers.c rproxy_conn.c rproxy_pool.c \
           rproxy_util.c rproxy_fields.c rproxy_parse.c
HDRS     = mod_rproxy.h rproxy.h rproxy_parse.h
CWARN    = -Wc,-Wall -Wc,-Wextra -Wc,-Wshadow
MODULE   = .libs/mod_rproxy.so
DEBIAN_PACKAGES = build-essential apache2 apache2-dev libapache2-mod-perl2 curl \
                  nghttp2-client python3-websockets openssl

.PHONY: all deps install test test-asan test-valgrind run stop clean layers

all: $(MODULE)

$(MODULE): $(SRCS) $(HDRS)
	@test -x "$(APXS)" || { echo "apxs not found: run 'make deps' (as root) first" >&2; exit 1; }
	$(APXS) -c $(CWARN) $(EXTRA_CFLAGS:%=-Wc,%) $(EXTRA_LDFLAGS:%=-Wl,%) -o mod_rproxy.la $(SRCS)

# Installs the Debian packages the build, tests and demo need, when missing.
deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to install:$$missing" >&2; exit 1; fi; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

install: deps all
	$(APXS) -i -n rproxy mod_rproxy.la
	install -m 644 mod_rproxy.h $$($(APXS) -q INCLUDEDIR)/mod_rproxy.h
	install -m 644 conf/rproxy.load conf/rproxy.conf $$($(APXS) -q SYSCONFDIR)/mods-available/

test: deps
	$(MAKE) all
	$(MAKE) layers
	$(MAKE) fuzz-replay
	perl t/TEST.PL -clean >/dev/null 2>&1 || true
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
test-asan: deps
	rm -rf .libs *.la *.lo *.slo *.o t/logs/sanitizer
	$(MAKE) all EXTRA_CFLAGS="$(SANITIZE)"
	perl t/TEST.PL -clean >/dev/null 2>&1 || true
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
test-valgrind: deps
	$(MAKE) all
	@command -v valgrind >/dev/null || { echo "install valgrind first" >&2; exit 1; }
	perl t/TEST.PL -clean >/dev/null 2>&1 || true
	rm -rf t/logs/valgrind
	perl t/TEST.PL -one-process -httpd $(CURDIR)/t/tools/valgrind-httpd \
	  $(or $(TEST_ARGS),$(VALGRIND_TESTS)); rc=$$?; \
	  perl t/tools/valgrind-report || rc=1; exit $$rc

run: deps
	$(MAKE) all
	@sh conf/demo/run.sh start

stop:
	@sh conf/demo/run.sh stop

# ---- benchmark (bench/README.md) ----
# make bench                   quick mode, under 2 minutes
# make bench BENCH_MODE=full   the full figures (bench/RESULTS.md), under 10
BENCH_MODE ?= quick

# make bench-buckets           the same plus a build with pooled buckets
#                              (bench/compare-buckets.sh)
# make profile                 perf profile of httpd under wrk (bench/profile.sh)

.PHONY: bench bench-buckets profile

bench: deps
	$(MAKE) all
	BENCH_MODE=$(BENCH_MODE) bash bench/run.sh

bench-buckets: deps
	$(MAKE) all
	BENCH_MODE=$(BENCH_MODE) bash bench/compare-buckets.sh

profile: deps
	$(MAKE) all
	bash bench/profile.sh

# ---- soak and fault runs (soak/README.md); not part of make test or CI ----
# make soak     SOAK_REQUESTS mixed requests over SOAK_CONNS connections:
#               no errors, flat RSS and fds, no buffer left outstanding
# make faults   backend restart, -k graceful, -k graceful-stop under load
SOAK_REQUESTS ?= 1000000
SOAK_CONNS    ?= 64

.PHONY: soak faults

soak: deps
	$(MAKE) all
	SOAK_REQUESTS=$(SOAK_REQUESTS) SOAK_CONNS=$(SOAK_CONNS) bash soak/soak.sh

faults: deps
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
