#!/bin/bash
# bench/run.sh - mod_rproxy against mod_proxy_http, httpd and nginx, side by
# side on 127.0.0.1 (`make bench`, `make bench BENCH_MODE=full`).
#
# Starts, in this process tree, one nginx backend serving generated files and
# five proxies in front of it, each on its own port:
#   rproxy_apr   httpd event + mod_rproxy, RProxyBufferPool apr
#   rproxy_g1    the same as rproxy_apr through a group of one member, the
#                backend (RProxyTarget group://one/)
#   rproxy_g4    the same through a group of four members: the backend
#                nginx listening on four ports (group://four/)
#   rproxy_none  the same as rproxy_apr, RProxyBufferPool none
#   proxy_http   httpd event + mod_proxy_http (ProxyPass ... keepalive=On)
#   static       httpd event serving the same files itself (its ceiling)
#   nginx        nginx proxy_pass with upstream keep-alive
#   rproxy_tls   the same as rproxy_apr to an https backend: a second nginx
#                serving the same files over TLS, with a certificate and CA
#                made with openssl at bench time (issue 14)
#   proxy_http_tls  mod_proxy_http to that https backend (SSLProxyEngine on,
#                verification on, keepalive=On); the ratio of rproxy_tls is
#                to this one
# then measures them in interleaved rounds (A B C D E A B C D E ...):
#   1. wrk req/s and p99 for 1 KiB and 64 KiB at 16 and 128 connections,
#      with mod_rproxy's pool counters read before and after each run;
#   2. one 512 MiB download with curl (not the group variants);
#   3. peak RSS while slow clients each download 1 MiB (slowclients.py),
#      on a freshly restarted server (not the group variants).
# The table goes to stdout and bench/results/latest.md (the raw figures to
# latest.tsv and latest.meta: `bench/report.py latest.tsv latest.meta`
# prints the table again); progress to stderr.
# Everything started is stopped by pid on exit, even on failure.
#
# Settings (environment): BENCH_MODE quick|full, and to override the mode's
# values BENCH_ROUNDS, BENCH_DURATION (s per wrk run), BENCH_DL_ROUNDS
# (512 MiB downloads), BENCH_SLOW_CLIENTS,
# BENCH_SLOW_RATE (bytes/s per client), BENCH_MEM_ROUNDS, BENCH_PORT (first
# of 8 consecutive ports, and BENCH_PORT+10..12 for the group members),
# BENCH_KEEP=1 (keep the temp dir), BENCH_GROUPS=0 (leave out rproxy_g1 and
# rproxy_g4), BENCH_TLS=0 (leave out rproxy_tls and proxy_http_tls),
# BENCH_VARIANTS="v1 v2 ..." (measure only these; the ratio column needs
# proxy_http among them, proxy_http_tls for the https variants).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
. "$here/servers.sh"
mode=${BENCH_MODE:-quick}
port0=${BENCH_PORT:-18480}

case $mode in
    quick) rounds=2 dur=2 dl_rounds=1 clients=128 rate=$((1024 * 1024)) mem_rounds=1 warm=1 ;;
    full)  rounds=3 dur=6 dl_rounds=5 clients=512 rate=$((256 * 1024)) mem_rounds=3 warm=2 ;;
    *) echo "run.sh: BENCH_MODE must be quick or full, not '$mode'" >&2; exit 2 ;;
esac
rounds=${BENCH_ROUNDS:-$rounds}
dur=${BENCH_DURATION:-$dur}
dl_rounds=${BENCH_DL_ROUNDS:-$dl_rounds}
clients=${BENCH_SLOW_CLIENTS:-$clients}
rate=${BENCH_SLOW_RATE:-$rate}
mem_rounds=${BENCH_MEM_ROUNDS:-$mem_rounds}

variants=(rproxy_apr rproxy_g1 rproxy_g4 rproxy_none proxy_http static nginx)
[ "${BENCH_GROUPS:-1}" != 0 ] || variants=(rproxy_apr rproxy_none proxy_http static nginx)
[ "${BENCH_TLS:-1}" = 0 ] || variants+=(rproxy_tls proxy_http_tls)
# BENCH_ALT_MODULE=FILE adds a variant "rproxy_alt": that build of the
# module (pool apr) in the same rounds, to compare two builds of it
# (bench/README.md, "Transient vs custom bucket"); BENCH_ALT_LABEL names it.
alt_module=${BENCH_ALT_MODULE:-}
if [ -n "$alt_module" ]; then
    [ -f "$alt_module" ] || { echo "run.sh: BENCH_ALT_MODULE $alt_module not found" >&2; exit 2; }
    variants=(rproxy_apr rproxy_alt rproxy_none proxy_http static nginx)
fi
if [ -n "${BENCH_VARIANTS:-}" ]; then
    read -r -a variants <<<"$BENCH_VARIANTS"
    for v in "${variants[@]}"; do
        case $v in
            rproxy_apr|rproxy_g1|rproxy_g4|rproxy_none|proxy_http|static|nginx) ;;
            rproxy_tls|proxy_http_tls) ;;
            floor_mem|floor_proxy) ;;
            rproxy_alt) [ -n "$alt_module" ] || { echo "run.sh: rproxy_alt needs BENCH_ALT_MODULE" >&2; exit 2; } ;;
            *) echo "run.sh: unknown variant '$v' in BENCH_VARIANTS" >&2; exit 2 ;;
        esac
    done
fi
# The 512 MiB download and the slow-client memory test are not run for the
# group variants: they measure the relay, which a group does not change.
single_variants=()
for v in "${variants[@]}"; do
    [[ $v == rproxy_g[14] || $v == floor_* ]] || single_variants+=("$v")
done
workloads=(1k:16 1k:128 64k:16 64k:128)


# ---- tools ----------------------------------------------------------------

need=""
for t in "$httpd:apache2" "$nginx:nginx" /usr/bin/wrk:wrk /usr/bin/curl:curl \
         "$python:python3"; do
    [ -x "${t%%:*}" ] || need="$need ${t##*:}"
done
if [ -n "$need" ]; then
    [ "$(id -u)" = 0 ] || die "missing Debian packages:$need (install them as root)"
    say "installing:$need"
    apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need >&2
fi
[ -f "$module" ] || die "$module not found: run 'make' first"
[ "$(id -u)" = 0 ] || say "warning: not root; the servers run as $(id -un)"

# ---- ports, temp dir, process bookkeeping ------------------------------------

declare -A port pid
port[backend]=$port0
i=1
for v in "${variants[@]}"; do port[$v]=$((port0 + i)); i=$((i + 1)); done
# floor_mem and floor_proxy (only when BENCH_VARIANTS names them): the
# cheapest handlers httpd can run, from bench/experiments/mod_floor.c, to
# measure what any proxy inside httpd must cost (bench/RESULTS.md, "The
# floor"); left out of the 512 MiB download and the memory test.
floor=0
for v in "${variants[@]}"; do [[ $v != floor_* ]] || floor=1; done
# The group members 2-4: the backend nginx listens on these ports too.
port[member2]=$((port0 + 10)); port[member3]=$((port0 + 11)); port[member4]=$((port0 + 12))
# The https backend (only when a TLS variant runs).
tls=0
for v in "${variants[@]}"; do [[ $v != *_tls ]] || tls=1; done
[ "$tls" = 0 ] || port[tls_backend]=$((port0 + 13))
for p in "${port[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        die "port $p is already in use (set BENCH_PORT to another base)"
    fi
done

work=$(mktemp -d /tmp/rproxy-bench.XXXXXX)
chmod 755 "$work"              # the servers' children run as www-data
raw=$work/raw.tsv
: >"$raw"



cleanup() {
    local rc=$? name
    trap - EXIT INT TERM
    set +e                      # stop everything, whatever fails
    for name in "${!pid[@]}"; do stop_server "$name"; done
    if [ "${BENCH_KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then
        echo "run.sh: configs and logs kept in $work" >&2
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- servers ------------------------------------------------------------------


start_httpd() {
    local v=$1 dir=$work/$1 variant pool=apr so=mod_rproxy.so group=one
    case $v in
        rproxy_apr)  variant=rproxy ;;
        rproxy_g1)   variant=rproxy_group ;;
        rproxy_g4)   variant=rproxy_group group=four ;;
        rproxy_alt)  variant=rproxy so=mod_rproxy_alt.so ;;
        rproxy_none) variant=rproxy pool=none ;;
        rproxy_tls)  variant=rproxy_tls ;;
        *)           variant=$v ;;
    esac
    mkdir -p "$dir/empty"
    chmod 755 "$dir" "$dir/empty"
    fill "$here/conf/httpd.conf.in" "$dir/httpd.conf" VARIANT="$variant" \
        POOL="$pool" DIR="$dir" DATA="$work/data" PORT="${port[$v]}" \
        BACKEND_PORT="${port[backend]}" MODDIR="$moddir" \
        MODULE="$work/$so" RPROXY_CONF="${BENCH_RPROXY_CONF:-}" GROUP="$group" \
        MEMBER_PORT2="${port[member2]}" MEMBER_PORT3="${port[member3]}" \
        MEMBER_PORT4="${port[member4]}" TLS_PORT="${port[tls_backend]:-0}" \
        TLS_CA="$work/tls/ca.pem"
    "$httpd" -f "$dir/httpd.conf" -DFOREGROUND >>"$dir/stderr" 2>&1 &
    pid[$v]=$!
}

start_nginx() {
    local name=$1 template=$2 dir=$work/$1
    mkdir -p "$dir"
    chmod 755 "$dir"
    local extra=""
    [ "$name" != backend ] || extra="listen 127.0.0.1:${port[member2]}; listen 127.0.0.1:${port[member3]}; listen 127.0.0.1:${port[member4]};"
    fill "$here/conf/$template" "$dir/nginx.conf" DIR="$dir" \
        DATA="$work/data" PORT="${port[$name]}" BACKEND_PORT="${port[backend]}" \
        EXTRA_LISTEN="$extra" TLS_DIR="$work/tls"
    "$nginx" -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" \
        -g 'daemon off;' >>"$dir/stderr" 2>&1 &
    pid[$name]=$!
}

start_server() {
    case $1 in
        nginx)   start_nginx nginx nginx-proxy.conf.in ;;
        backend) start_nginx backend nginx-backend.conf.in ;;
        tls_backend) start_nginx tls_backend nginx-tls-backend.conf.in ;;
        *)       start_httpd "$1" ;;
    esac
}

# Waits (up to 10 s) until the server answers 200 for a (proxied) file.

# ---- measurements -----------------------------------------------------------

# rec METRIC WORKLOAD VARIANT ROUND VALUE
rec() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$raw"; }

# Prints the rproxy-status counters of variant $1, summed over its processes.
status() { "$python" "$here/status.py" "${port[$1]}" "${pid[$1]}"; }
counter() { awk -v k="$1" '$1 == k { print $2 }'; }

# run_wrk VARIANT FILE CONNS SECONDS: prints "rps p99_us requests errors".
run_wrk() {
    local out
    out=$(timeout $(($4 + 30)) wrk -t2 -c"$3" -d"$4"s --timeout 10s --latency \
          "http://127.0.0.1:${port[$1]}/p/$2.bin") || die "wrk failed on $1"
    awk '
        /^ +99%/ {
            v = $2; m = 1
            if (v ~ /us$/) m = 1; else if (v ~ /ms$/) m = 1000
            else if (v ~ /[0-9]s$/) m = 1000000; else if (v ~ /m$/) m = 60000000
            sub(/[a-z]+$/, "", v); p99 = v * m
        }
        / requests in / { n = $1 }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { err += $NF }
        /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
        END { if (rps == "" || p99 == "") exit 1
              printf "%s %d %d %d\n", rps, p99, n, err }
    ' <<<"$out" || die "cannot parse wrk output: $out"
}

# The https backend's count of accepted connections (nginx stub_status).
tls_accepts() {
    curl -s --max-time 2 --cacert "$work/tls/ca.pem" \
        "https://127.0.0.1:${port[tls_backend]}/nginx-status" |
        awk 'NR == 3 { print $1 }'
}

measure_wrk() {
    local r=$1 w=$2 v=$3 size=${2%%:*} conns=${2##*:} before after res
    local rps p99 n err used delta acc0="" cpu0 cpu1
    busy_check "round $r $w $v"
    if [[ $v == rproxy_* ]]; then before=$(status "$v"); fi
    if [[ $v == *_tls ]]; then acc0=$(tls_accepts); fi
    local be=backend be0 be1 all0 all1
    [[ $v != *_tls ]] || be=tls_backend
    [[ $v != static && $v != floor_mem ]] || be=""
    cpu0=$(cpu_us "$v")
    [ -z "$be" ] || be0=$(cpu_us "$be")
    all0=$(machine_cpu_us)
    res=$(run_wrk "$v" "$size" "$conns" "$dur")
    all1=$(machine_cpu_us)
    [ -z "$be" ] || be1=$(cpu_us "$be")
    cpu1=$(cpu_us "$v")
    read -r rps p99 n err <<<"$res"
    per() { awk -v d="$1" -v n="$n" 'BEGIN { print d / n }'; }
    if [ "$n" -gt 0 ]; then
        rec cpu_us "$w" "$v" "$r" "$(per $((cpu1 - cpu0)))"
        rec machine_cpu_us "$w" "$v" "$r" "$(per $((all1 - all0)))"
        [ -z "$be" ] || rec backend_cpu_us "$w" "$v" "$r" "$(per $((be1 - be0)))"
    fi
    rec rps "$w" "$v" "$r" "$rps"
    rec p99_us "$w" "$v" "$r" "$p99"
    rec errors "$w" "$v" "$r" "$err"
    if [ -n "$acc0" ] && [ "$n" -gt 0 ]; then
        delta=$(( $(tls_accepts) - acc0 ))
        rec tls_accepts "$w" "$v" "$r" "$(awk -v d="$delta" -v n="$n" 'BEGIN { print d * 1000 / n }')"
    fi
    if [[ $v == rproxy_* ]] && [ "$n" -gt 0 ]; then
        after=$(status "$v")
        used=buffers_allocated
        [ "$v" != rproxy_none ] || used=fallback_buffers
        delta=$(( $(counter $used <<<"$after") - $(counter $used <<<"$before") ))
        rec churn "$w" "$v" "$r" "$(awk -v d="$delta" -v n="$n" 'BEGIN { print d * 1000 / n }')"
        delta=$(( $(counter backend_connects <<<"$after") - $(counter backend_connects <<<"$before") ))
        rec bconn "$w" "$v" "$r" "$(awk -v d="$delta" -v n="$n" 'BEGIN { print d * 1000 / n }')"
        [ "$(counter processes <<<"$before")" = "$(counter processes <<<"$after")" ] ||
            say "warning: $v changed its number of processes during the run"
    fi
    [ "$err" = 0 ] && err= || err=", $err errors"
    say "round $r/$rounds $w $v: $rps req/s, p99 ${p99}us$err"
}

# The pool's churn outside wrk: a counted loop of 2000 requests for 64 KiB,
# 16 at a time on kept-alive connections (curl --parallel), on a pool warmed
# up by the wrk rounds; the module's own request count must agree.
measure_churn_loop() {
    local r=$1 v=$2 n=2000 before after ok got used delta
    before=$(status "$v")
    # (-Z draws a progress meter on stderr even with -s.)
    ok=$(timeout 60 curl -s -Z --parallel-max 16 -o /dev/null \
         -w '%{http_code} %{size_download}\n' \
         "http://127.0.0.1:${port[$v]}/p/64k.bin?[1-$n]" 2>/dev/null |
         grep -c '^200 65536$' || true)
    after=$(status "$v")
    got=$(( $(counter requests <<<"$after") - $(counter requests <<<"$before") ))
    [ "$ok" = "$n" ] && [ "$got" = "$n" ] ||
        die "counted loop on $v: $ok of $n answered 200, the module counted $got"
    used=buffers_allocated
    [ "$v" != rproxy_none ] || used=fallback_buffers
    delta=$(( $(counter $used <<<"$after") - $(counter $used <<<"$before") ))
    rec churn_loop 64k "$v" "$r" "$(awk -v d="$delta" -v n="$n" 'BEGIN { print d * 1000 / n }')"
    say "round $r/$rounds counted loop $v: $delta new $used for $n requests"
}

measure_download() {
    local r=$1 v=$2 out code size speed
    busy_check "download $r $v"
    out=$(curl -s -o /dev/null --max-time 120 \
          -w '%{http_code} %{size_download} %{speed_download}' \
          "http://127.0.0.1:${port[$v]}/p/512m.bin") || die "curl failed on $v"
    read -r code size speed <<<"$out"
    [ "$code" = 200 ] && [ "$size" = $((512 * 1024 * 1024)) ] ||
        die "512 MiB download from $v: status $code, $size bytes"
    rec dl_mbs 512m "$v" "$r" "$(awk -v s="$speed" 'BEGIN { print s / 1e6 }')"
    say "round $r/$dl_rounds 512m $v: $(awk -v s="$speed" 'BEGIN { printf "%.0f", s / 1e6 }') MB/s"
}

measure_memory() {
    local r=$1 v=$2 out kv
    # A fresh server, so that neither the pool nor the allocators hold
    # memory from earlier rounds: idle is idle.
    stop_server "$v"
    start_server "$v"
    wait_ready "$v"
    busy_check "memory $r $v"
    sleep 0.5
    out=$(timeout 120 "$python" "$here/slowclients.py" --port "${port[$v]}" \
          --path /p/1m.bin --clients "$clients" --rate "$rate" \
          --pid "${pid[$v]}" --deadline 60) || die "slowclients.py failed on $v"
    for kv in $out; do
        case $kv in
            idle_kb=*)     rec mem_idle_kb slow "$v" "$r" "${kv#*=}" ;;
            peak_kb=*)     rec mem_peak_kb slow "$v" "$r" "${kv#*=}" ;;
            per_conn_kb=*) rec mem_per_conn_kb slow "$v" "$r" "${kv#*=}" ;;
            stack_per_conn_kb=*) rec mem_stack_per_conn_kb slow "$v" "$r" "${kv#*=}" ;;
            complete=*)    rec mem_complete slow "$v" "$r" "${kv#*=}" ;;
        esac
    done
    say "memory round $r/$mem_rounds $v: $out"
}

# ---- the run ----------------------------------------------------------------

command="make bench BENCH_MODE=$mode"
[ -z "$alt_module" ] || command="make bench-buckets BENCH_MODE=$mode (the extra column: BENCH_ALT_MODULE)"
# The overrides this run was given, so that the report's command repeats it.
overrides=$(env | grep -E '^BENCH_(VARIANTS|ROUNDS|DURATION|DL_ROUNDS|MEM_ROUNDS|SLOW_CLIENTS|SLOW_RATE|GROUPS|TLS|RPROXY_CONF)=' |
            sort | sed 's/=\(.*\)/="\1"/' | tr '\n' ' ' || true)
[ -z "$overrides" ] || command="$overrides$command"
say "mode $mode: $rounds rounds, wrk ${dur}s per run, $clients slow clients at $rate B/s; in $work"
loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
# This project's CPU-heavy jobs (its fuzzer, its test suite): looked for
# before every measurement, and the report says how often they were seen.
busy_pattern='fuzz_response|t/TEST.PL'
busy_checks=0 busy_seen=0 busy_where=""
busy_check() {          # busy_check LABEL
    busy_checks=$((busy_checks + 1))
    if pgrep -f "$busy_pattern" >/dev/null; then
        busy_seen=$((busy_seen + 1))
        busy_where="$busy_where${busy_where:+, }$1"
        say "warning: a fuzzer or test run is busy on this machine ($1); figures will be noisy"
    fi
}
busy_check start

mkdir -p "$work/data"
head -c 1024 /dev/urandom >"$work/data/1k.bin"
head -c $((64 * 1024)) /dev/urandom >"$work/data/64k.bin"
head -c $((1024 * 1024)) /dev/urandom >"$work/data/1m.bin"
dd if=/dev/zero of="$work/data/512m.bin" bs=1M count=512 status=none
chmod 755 "$work/data"
chmod 644 "$work/data"/*.bin
# A private copy, so a rebuild in the tree cannot change the module under
# a restart in the middle of the run.
cp "$module" "$work/mod_rproxy.so"
chmod 644 "$work/mod_rproxy.so"
if [ "$floor" = 1 ]; then
    mkdir -p "$work/floor"
    cp "$here/experiments/mod_floor.c" "$work/floor/"
    (cd "$work/floor" && apxs -c -Wc,-O2 mod_floor.c >build.log 2>&1) ||
        die "apxs could not build bench/experiments/mod_floor.c ($work/floor/build.log)"
    chmod -R go+rX "$work/floor"
fi
if [ -n "$alt_module" ]; then
    cp "$alt_module" "$work/mod_rproxy_alt.so"
    chmod 644 "$work/mod_rproxy_alt.so"
fi

# The https backend's CA and certificate (issue 14), made now with openssl
# and kept in the run dir only: an EC P-256 CA, and a server certificate
# it signs for IP:127.0.0.1 and DNS:localhost, valid for 2 days.
make_tls() {
    local d=$work/tls
    mkdir -p "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$d/ca.key" -out "$d/ca.pem" -days 2 \
        -subj "/CN=rproxy bench CA" \
        -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign 2>>"$d/openssl.log" &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$d/server.key" -out "$d/server.csr" \
        -subj "/CN=127.0.0.1" 2>>"$d/openssl.log" &&
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        "basicConstraints=CA:FALSE" "extendedKeyUsage=serverAuth" \
        "keyUsage=critical,digitalSignature" >"$d/server.ext" &&
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
        -CAcreateserial -days 2 -extfile "$d/server.ext" \
        -out "$d/server.pem" 2>>"$d/openssl.log" ||
        die "openssl failed making the bench CA and certificate ($d/openssl.log)"
    chmod 755 "$d"
    chmod 644 "$d"/*
}

start_server backend
wait_ready backend
if [ "$tls" = 1 ]; then
    make_tls
    start_server tls_backend
    wait_ready tls_backend
fi
for v in "${variants[@]}"; do start_server "$v"; done
for v in "${variants[@]}"; do wait_ready "$v"; done
say "all servers up: backend ${port[backend]}${port[tls_backend]:+, https backend ${port[tls_backend]}}, $(for v in "${variants[@]}"; do printf '%s %s  ' "$v" "${port[$v]}"; done)"

# Warm-up: threads, backend connections and the apr pool's buffers.
for v in "${variants[@]}"; do run_wrk "$v" 64k 128 "$warm" >/dev/null; done
say "warm-up done"

# Each round starts one variant further along (A B C, B C A, C A B, ...),
# so that no variant always runs first or right after the same neighbour.
for r in $(seq "$rounds"); do
    nv=${#variants[@]}
    for w in "${workloads[@]}"; do
        for k in $(seq 0 $((nv - 1))); do
            measure_wrk "$r" "$w" "${variants[$(( (k + r - 1) % nv ))]}"
        done
    done
done
# How many buffers the apr pool holds after all the wrk runs: bounded by the
# peak number of requests in flight at once in each process, not by traffic.
has() { local x; for x in "${variants[@]}"; do [ "$x" = "$1" ] && return 0; done; return 1; }
if has rproxy_apr; then
    rec apr_total all rproxy_apr 1 "$(status rproxy_apr | counter buffers_allocated)"
fi
for r in $(seq "$rounds"); do
    for v in rproxy_apr rproxy_none; do
        if has "$v"; then measure_churn_loop "$r" "$v"; fi
    done
done
# One download straight from the backend first: the first reader of the
# fresh 512 MiB file is slower, and that must not be variant A.
out=$(curl -s -o /dev/null --max-time 120 -w '%{speed_download}' \
      "http://127.0.0.1:${port[backend]}/512m.bin") ||
    die "512 MiB download from the backend failed"
say "512m straight from the backend (not a figure): $(awk -v s="$out" 'BEGIN { printf "%.0f", s / 1e6 }') MB/s"
for r in $(seq "$dl_rounds"); do
    for v in "${single_variants[@]}"; do measure_download "$r" "$v"; done
done
for r in $(seq "$mem_rounds"); do
    for v in "${single_variants[@]}"; do measure_memory "$r" "$v"; done
done

for name in "${!pid[@]}"; do stop_server "$name"; done
# httpd logs its start and stop at notice level whatever LogLevel says.
for f in "$work"/*/error.log; do
    n=$(grep -cv -e ':notice\]' -e 'buffered to a temporary file' "$f" || true)
    if [ "$n" != 0 ]; then
        say "note: $n line(s) in ${f#"$work"/}, the last: $(grep -v ':notice\]' "$f" | tail -n 1)"
    fi
done

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
commit=$(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)
{
    echo "mode=$mode"
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "nproc=$(nproc)"
    echo "cpu=${cpu:-unknown}"
    echo "kernel=Linux $(uname -r)"
    echo "loadavg=$loadavg"
    echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "busy=$busy_seen of $busy_checks"
    echo "busy_where=$busy_where"
    echo "httpd_version=$("$httpd" -v | awk -F': ' '/version/ { print $2 }')"
    echo "nginx_version=$("$nginx" -v 2>&1 | sed 's/.*: //')"
    echo "wrk_version=wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }')"
    echo "commit=$commit"
    echo "command=$command"
    echo "rounds=$rounds"
    echo "duration=$dur"
    echo "dl_rounds=$dl_rounds"
    echo "clients=$clients"
    echo "rate=$rate"
    echo "mem_rounds=$mem_rounds"
    echo "alt_label=${BENCH_ALT_LABEL:-mod_rproxy, $alt_module}"
} >"$work/meta"

mkdir -p "$here/results"
"$python" "$here/report.py" "$raw" "$work/meta" >"$here/results/latest.md"
cp "$raw" "$here/results/latest.tsv"
cp "$work/meta" "$here/results/latest.meta"
cat "$here/results/latest.md"
say "done in ${SECONDS}s; table in bench/results/latest.md, raw figures in bench/results/latest.tsv"
