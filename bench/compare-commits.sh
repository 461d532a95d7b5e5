#!/bin/bash
# bench/compare-commits.sh - `make bench-compare BASE=<commit>`: req/s of the
# module as built in this tree ("new") against the module built from another
# commit ("old", BASE), both behind the same nginx backend, in interleaved
# rounds, and the per-round ratio new/old for each workload.
#
#   BASE=73cbf45 bash bench/compare-commits.sh
#   BENCH_ROUNDS=5 BENCH_DURATION=8 BENCH_WORKLOADS="1k:16 1k:128 64k:16 64k:128"
#
# Both variants are the rproxy block of bench/conf/httpd.conf.in (event MPM,
# 2 x 256 threads, pool apr), one httpd each, started from this tree's
# template; only the LoadModule of mod_rproxy differs.  Within a round every
# workload runs against both variants back to back, the order alternating
# from round to round (new old, old new, ...), so a slow minute and the
# order effect hit both alike.  BASE's sources come from `git archive`, are
# built with its own Makefile in a temp dir; nothing in the tree changes.
# Prints markdown tables (median req/s each, median ratio, min-max of the
# per-round ratios; the same for httpd's CPU per request) to stdout and bench/results/compare.md; raw figures in
# bench/results/compare.tsv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
. "$here/servers.sh"

base=${BASE:?BASE=<commit> to compare this tree against}
rounds=${BENCH_ROUNDS:-5}
dur=${BENCH_DURATION:-8}
warm=${BENCH_WARM:-3}
port0=${BENCH_PORT:-18480}
read -r -a workloads <<<"${BENCH_WORKLOADS:-1k:16 1k:128 64k:16 64k:128}"
variants=(new old)

for t in "$httpd" "$nginx" /usr/bin/wrk /usr/bin/curl; do
    [ -x "$t" ] || die "$t missing: make bench-deps (as root)"
done
[ -f "$module" ] || die "$module not found: run 'make' first"
base_id=$(git -C "$top" rev-parse --short "$base^{commit}") || die "no commit $base"
new_id=$(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)

declare -A port pid
port[backend]=$port0 port[new]=$((port0 + 1)) port[old]=$((port0 + 2))
for p in "${port[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        die "port $p is already in use (set BENCH_PORT to another base)"
    fi
done
work=$(mktemp -d /tmp/rproxy-compare.XXXXXX)
chmod 755 "$work"
raw=$work/raw.tsv
: >"$raw"
cleanup() {
    local rc=$? name
    trap - EXIT INT TERM
    set +e
    for name in "${!pid[@]}"; do stop_server "$name"; done
    if [ "${BENCH_KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then
        echo "compare-commits.sh: kept $work" >&2
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The old build: BASE's sources and Makefile, built apart from the tree.
mkdir -p "$work/base-src"
git -C "$top" archive "$base_id" | tar -x -C "$work/base-src"
make -s -C "$work/base-src" all >"$work/base-build.log" 2>&1 ||
    { cat "$work/base-build.log" >&2; die "building $base_id failed"; }
cp "$module" "$work/mod_rproxy_new.so"
cp "$work/base-src/.libs/mod_rproxy.so" "$work/mod_rproxy_old.so"
chmod 644 "$work"/*.so

mkdir -p "$work/data"
head -c 1024 /dev/urandom >"$work/data/1k.bin"
head -c $((64 * 1024)) /dev/urandom >"$work/data/64k.bin"
chmod 755 "$work/data"; chmod 644 "$work/data"/*.bin

start_server() {
    local v=$1 dir=$work/$1
    mkdir -p "$dir/empty"; chmod 755 "$dir" "$dir/empty"
    if [ "$v" = backend ]; then
        fill "$here/conf/nginx-backend.conf.in" "$dir/nginx.conf" DIR="$dir" \
            DATA="$work/data" PORT="${port[backend]}" BACKEND_PORT="${port[backend]}" \
            EXTRA_LISTEN=""
        "$nginx" -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" \
            -g 'daemon off;' >>"$dir/stderr" 2>&1 &
    else
        fill "$here/conf/httpd.conf.in" "$dir/httpd.conf" VARIANT=rproxy \
            POOL=apr DIR="$dir" DATA="$work/data" PORT="${port[$v]}" \
            BACKEND_PORT="${port[backend]}" MODDIR="$moddir" \
            MODULE="$work/mod_rproxy_$v.so" RPROXY_CONF="${BENCH_RPROXY_CONF:-}" \
            GROUP=one MEMBER_PORT2="${port[backend]}" \
            MEMBER_PORT3="${port[backend]}" MEMBER_PORT4="${port[backend]}" \
            TLS_PORT="${port[backend]}" TLS_CA=/dev/null
        "$httpd" -f "$dir/httpd.conf" -DFOREGROUND >>"$dir/stderr" 2>&1 &
    fi
    pid[$v]=$!
}

run_wrk() {     # VARIANT FILE CONNS SECONDS: prints req/s, errors, requests
    local out
    out=$(timeout $(($4 + 30)) wrk -t2 -c"$3" -d"$4"s --timeout 10s \
          "http://127.0.0.1:${port[$1]}/p/$2.bin") || die "wrk failed on $1"
    awk '/^Requests\/sec:/ { rps = $2 }
         / requests in / { n = $1 }
         /Non-2xx or 3xx responses:/ { err += $NF }
         /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
         END { if (rps == "") exit 1; printf "%s %d %d\n", rps, err, n }' <<<"$out" ||
        die "cannot parse wrk output: $out"
}

# ratio_rows COLUMN RAW: a table row per workload for the figure in COLUMN
# of RAW (4 req/s, 6 CPU µs per request): the medians of new and old, the
# median of the per-round ratios new/old, their min - max, each round's
# ratio, and wrk's errors.
ratio_rows() {
    awk -F'\t' -v col="$1" '
        { v[$1, $2, $3] = $col; errs[$1] += $5
          if (!($1 in seen)) { seen[$1] = 1; order[++nw] = $1 }
          if ($3 > nr) nr = $3 }
        function median(a, n,   i, j, t) {    # sorts a
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
                if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
        END {
            for (k = 1; k <= nw; k++) {
                w = order[k]; list = ""
                for (r = 1; r <= nr; r++) {
                    a[r] = v[w, "new", r]; b[r] = v[w, "old", r]
                    q[r] = b[r] ? a[r] / b[r] : 0
                    list = list sprintf("%s%.3f", r > 1 ? " " : "", q[r])
                }
                mn = median(a, nr); mo = median(b, nr); mq = median(q, nr)
                printf "| %s | %.*f | %.*f | %.3f | %.3f - %.3f | %s | %d |\n",
                    w, col == 4 ? 0 : 1, mn, col == 4 ? 0 : 1, mo, mq,
                    q[1], q[nr], list, errs[w]
            }
        }' "$2"
}

say "new: $new_id (this tree), old: $base_id; $rounds rounds of ${dur}s; in $work"
loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
start_server backend; wait_ready backend
for v in "${variants[@]}"; do start_server "$v"; done
for v in "${variants[@]}"; do wait_ready "$v"; done
for v in "${variants[@]}"; do run_wrk "$v" 64k 128 "$warm" >/dev/null; run_wrk "$v" 1k 128 "$warm" >/dev/null; done
say "warm-up done"

for r in $(seq "$rounds"); do
    order=(new old); [ $((r % 2)) = 1 ] || order=(old new)
    say "round $r: load average $(cut -d' ' -f1-3 /proc/loadavg)"
    for w in "${workloads[@]}"; do
        for v in "${order[@]}"; do
            cpu0=$(cpu_us "$v")
            read -r rps err n <<<"$(run_wrk "$v" "${w%%:*}" "${w##*:}" "$dur")"
            cpu=$(awk -v d=$(( $(cpu_us "$v") - cpu0 )) -v n="$n" 'BEGIN { printf "%.2f", n ? d / n : 0 }')
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$v" "$r" "$rps" "$err" "$cpu" >>"$raw"
            [ "$err" = 0 ] && err= || err=", $err errors"
            say "round $r/$rounds $w $v: $rps req/s, $cpu µs CPU/request$err"
        done
    done
done
for name in "${!pid[@]}"; do stop_server "$name"; done

mkdir -p "$here/results"
cp "$raw" "$here/results/compare.tsv"
{
    echo "new = $new_id (this tree), old = $base_id; $rounds interleaved rounds of ${dur}s wrk -t2 per point (order alternating); $(nproc) CPUs; load average $loadavg at start, $(cut -d' ' -f1-3 /proc/loadavg) at end"
    echo
    echo "| workload | new req/s (median) | old req/s (median) | new/old (median of per-round ratios) | min - max of ratios | per-round ratios | errors |"
    echo "|---|---:|---:|---:|---:|---|---:|"
    ratio_rows 4 "$raw"
    echo
    echo "httpd's CPU per request (user + system of all its processes during the wrk run, over the requests wrk counted; lower is better):"
    echo
    echo "| workload | new µs (median) | old µs (median) | new/old (median of per-round ratios) | min - max of ratios | per-round ratios | errors |"
    echo "|---|---:|---:|---:|---:|---|---:|"
    ratio_rows 6 "$raw"
} | tee "$here/results/compare.md"
say "done in ${SECONDS}s"
