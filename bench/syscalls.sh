#!/bin/bash
# bench/syscalls.sh - `make syscalls`: the system calls and context
# switches httpd makes per proxied request (issue 15), counted by the
# kernel (perf stat on syscall tracepoints, every thread of httpd's
# children) while wrk drives it: not a timing, and cheap enough not to
# change what it counts.
#
#   bash bench/syscalls.sh [VARIANT...]   default: rproxy proxy_http static
#   SYSCALLS_SIZE=64k SYSCALLS_CONNS=128 bash bench/syscalls.sh rproxy
#
# For each variant of bench/conf/httpd.conf.in: the nginx backend and httpd
# of soak/lib.sh, a 1 s wrk warm-up, then perf stat counting while ab -k
# sends exactly SYSCALLS_REQUESTS requests (default 20000) for the
# SYSCALLS_SIZE file over SYSCALLS_CONNS keep-alive connections.  Prints
# each counted call per request, the context switches, and the total.
# Installs perf (Debian: linux-perf) when missing.
source "$(dirname "$0")/../soak/lib.sh"

size=${SYSCALLS_SIZE:-1k}
conns=${SYSCALLS_CONNS:-16}
n=${SYSCALLS_REQUESTS:-20000}
variants=("$@")
[ $# -gt 0 ] || variants=(rproxy proxy_http static)
need_perf
# The calls a request can make, in httpd, mod_rproxy and mod_proxy_http.
calls="read recvfrom recvmsg write writev sendto sendmsg sendfile64 poll
       epoll_wait epoll_ctl futex setsockopt getsockopt fcntl openat
       newfstatat close shutdown connect socket accept4 mmap munmap madvise"
events=raw_syscalls:sys_enter,context-switches
for s in $calls; do events="$events,syscalls:sys_enter_$s"; done

make_data
start_backend
wait_ready backend
for v in "${variants[@]}"; do
    start_httpd httpd "$v"
    wait_ready httpd
    url="http://127.0.0.1:${port[httpd]}/p/$size.bin"
    wrk -t2 -c"$conns" -d1s "$url" >/dev/null 2>&1 || die "wrk warm-up failed on $v"
    pids=$(pgrep -P "${pid[httpd]}" | paste -sd,)
    # ab counts exactly the requests the window holds (and sends no more).
    perf stat -x, -e "$events" -p "$pids" -o "$work/stat.$v" -- \
        ab -q -k -n "$n" -c "$conns" "$url" >"$work/ab.$v" 2>&1 ||
        die "ab failed on $v: $(tail -n 3 "$work/ab.$v")"
    done_n=$(awk '/^Complete requests:/ { print $3 }' "$work/ab.$v")
    failed=$(awk '/^Failed requests:/ { print $3 }' "$work/ab.$v")
    [ "$done_n" = "$n" ] && [ "$failed" = 0 ] ||
        die "$v: ab completed $done_n of $n requests, $failed failed"
    how="ab -k, HTTP/1.0 keep-alive"
    echo "## $v: $size at $conns connections, $n requests in the window ($how)"
    echo
    awk -F, -v n="$n" '
        $1 ~ /^[0-9]+$/ && $3 != "raw_syscalls:sys_enter" && $1 / n >= 0.005 {
            name = $3; sub(/^syscalls:sys_enter_/, "", name)
            printf "  %-18s %6.2f\n", name, $1 / n
        }' "$work/stat.$v" | sort -k2 -nr
    awk -F, -v n="$n" '$3 == "raw_syscalls:sys_enter" {
        printf "  %-18s %6.2f\n", "all system calls", $1 / n }' "$work/stat.$v"
    echo
    stop_server httpd
done
