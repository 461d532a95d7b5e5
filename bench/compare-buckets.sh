#!/bin/bash
# bench/compare-buckets.sh - `make bench-buckets`: the benchmark with one more
# variant, mod_rproxy built with bench/experiments/pooled-buckets.patch
# (body bytes as buckets that own their pooled buffer, instead of transient
# buckets), so the two ways of handing body bytes to httpd are measured in
# the same rounds.  bench/README.md, "Transient vs custom bucket", has the
# figures and the decision.  BENCH_MODE as for `make bench`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
alt=$(mktemp -d /tmp/rproxy-buckets.XXXXXX)
trap 'rm -rf "$alt"' EXIT

# The module's sources as they are now, patched, built apart from .libs.
cp "$top"/*.c "$top"/*.h "$top/Makefile" "$alt/"
patch -s -d "$alt" -p1 <"$here/experiments/pooled-buckets.patch" ||
    { echo "compare-buckets.sh: the patch no longer applies to this tree" >&2; exit 1; }
make -s -C "$alt" EXTRA_CFLAGS=-DRPROXY_POOLED_BUCKETS all >"$alt/build.log" 2>&1 ||
    { cat "$alt/build.log" >&2; exit 1; }
nm -D "$alt/.libs/mod_rproxy.so" | grep -q rproxy_pooled_bucket ||
    { echo "compare-buckets.sh: the patched build has no pooled bucket" >&2; exit 1; }

BENCH_ALT_MODULE="$alt/.libs/mod_rproxy.so" \
BENCH_ALT_LABEL="mod_rproxy, pooled buckets" \
    bash "$here/run.sh"
