#!/bin/bash
# bench/profile.sh - `make profile`: where the CPU goes while httpd proxies
# small requests, for mod_rproxy and mod_proxy_http (or any variant of
# bench/conf/httpd.conf.in), with perf sampling every CPU.
#
#   bash bench/profile.sh [VARIANT...]     default: rproxy proxy_http static
#   bash bench/profile.sh rproxy rproxy_g1 rproxy_g4   single target, group
#       of one, group of four (make profile PROFILE_VARIANTS="...")
#   PROFILE_SIZE=64k PROFILE_CONNS=16 PROFILE_SECONDS=8 bash bench/profile.sh
#
# For each variant: the same nginx backend and httpd setup as bench/run.sh
# (servers from soak/lib.sh), wrk at PROFILE_CONNS connections on the
# PROFILE_SIZE file, and `perf record -a` over the middle PROFILE_SECONDS.
# Prints the CPU split by process name, then httpd's (apache2) samples by
# shared object and its top symbols.  For every mod_rproxy variant also
# the share of the code that a backend group adds, or that touches shared
# memory: the group's own functions (rproxy_group_*, rproxy_member_*,
# try_members, and the pick helpers if not inlined), the shared counters
# (rproxy_stats_*) and APR's atomics (apr_atomic_*), each as a % of all
# samples and of httpd's.  Installs perf (Debian: linux-perf) when missing.
source "$(dirname "$0")/../soak/lib.sh"

size=${PROFILE_SIZE:-1k}
conns=${PROFILE_CONNS:-128}
secs=${PROFILE_SECONDS:-8}
variants=("$@")
[ $# -gt 0 ] || variants=(rproxy proxy_http static)
need_perf

make_data
start_backend
wait_ready backend
for v in "${variants[@]}"; do
    start_httpd httpd "$v"
    wait_ready httpd
    wrk -t2 -c"$conns" -d$((secs + 3))s "http://127.0.0.1:${port[httpd]}/p/$size.bin" \
        >"$work/wrk.$v" 2>&1 &
    jobs_started+=($!)
    sleep 1
    perf record -q -F 997 -a -g -o "$work/perf.$v" -- sleep "$secs" 2>/dev/null
    wait "${jobs_started[-1]}" || die "wrk failed on $v"
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$work/wrk.$v")
    perf report -i "$work/perf.$v" --no-children --sort comm --stdio 2>/dev/null |
        grep -E '^ +[0-9]' >"$work/comm.$v" || true
    # httpd's share of all samples x CPUs = CPU-seconds per second.
    us=$(awk -v rps="$rps" -v n="$(nproc)" '$2 == "apache2" { sub(/%/, "", $1);
         printf "%.0f", $1 / 100 * n / rps * 1e6 }' "$work/comm.$v")
    echo "## $v: $size at $conns connections, $rps req/s, httpd ~${us:-?} µs of CPU per request"
    echo
    echo "CPU samples by process (all CPUs):"
    head -6 "$work/comm.$v"
    echo
    echo "httpd (apache2) samples by shared object, % of all samples:"
    perf report -i "$work/perf.$v" --comms apache2 --no-children --sort dso \
        --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -10 || true
    echo
    echo "httpd's top symbols, % of all samples:"
    perf report -i "$work/perf.$v" --comms apache2 --no-children --sort dso,sym \
        --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' >"$work/syms.$v" || true
    head -25 "$work/syms.$v"
    echo
    if [[ $v == rproxy* ]]; then
        # Self samples of the group, shared-memory and atomic code.
        apache=$(awk '$2 == "apache2" { sub(/%/, "", $1); print $1 }' "$work/comm.$v")
        echo "group code, shared counters and atomics (self samples; % of all samples, % of httpd's):"
        awk -v ap="${apache:-0}" '
            { pct = $1; sub(/%/, "", pct); sym = $NF }
            sym ~ /^(rproxy_group_|rproxy_member_|try_members|pick_|candidates|effective_weight|maybe_return|ejected_count|next_random|seconds_to_return)/ { g += pct; gl = gl " " sym }
            sym ~ /^rproxy_stats_/ { st += pct; sl = sl " " sym }
            sym ~ /^apr_atomic_/ { at += pct; al = al " " sym }
            END {
                printf "  group (pick, health, budget): %.2f %% / %.2f %%  [%s ]\n", g, ap ? g * 100 / ap : 0, gl
                printf "  shared counters (rproxy_stats_*): %.2f %% / %.2f %%  [%s ]\n", st, ap ? st * 100 / ap : 0, sl
                printf "  apr_atomic_*: %.2f %% / %.2f %%  [%s ]\n", at, ap ? at * 100 / ap : 0, al
                printf "  together: %.2f %% of all samples, %.2f %% of httpd'"'"'s\n", g + st + at, ap ? (g + st + at) * 100 / ap : 0
            }' "$work/syms.$v"
        echo
    fi
    stop_server httpd
done
