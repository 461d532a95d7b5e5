# bench/servers.sh - sourced by bench/run.sh and soak/lib.sh: the helpers
# that fill config templates and start, wait for and stop the servers they
# run.  The caller provides the arrays pid[] and port[] (by server name)
# and $work (configs and logs, one directory per server), and sets $top (the
# checkout) before sourcing.

# The programs and files the drivers run (APACHE2, NGINX, PYTHON override).
httpd=${APACHE2:-/usr/sbin/apache2}
nginx=${NGINX:-/usr/sbin/nginx}
python=${PYTHON:-/usr/bin/python3}
moddir=/usr/lib/apache2/modules
module=$top/.libs/mod_rproxy.so

die() { echo "$(basename "$0"): $*" >&2; exit 1; }
say() { printf '[%3ds] %s\n' "$SECONDS" "$*" >&2; }

# The state letter of a process (Z: exited, not yet reaped), or nothing.
proc_state() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    echo "${stat%% *}"
}
alive() { local s; s=$(proc_state "$1"); [ -n "$s" ] && [ "$s" != Z ]; }

# Stops one server we started: TERM, up to 10 s for it to exit, then KILL
# (its children too).  A stopped child stays a zombie until wait()ed, so the
# loop looks at the process state, not just at kill -0.
stop_server() {
    local name=$1 p=${pid[$1]:-} kids i
    [ -n "$p" ] || return 0
    unset "pid[$name]"
    kids=$(pgrep -P "$p" || true)
    kill -TERM "$p" 2>/dev/null || true
    for i in $(seq 100); do alive "$p" || break; sleep 0.1; done
    if alive "$p"; then
        say "$name (pid $p) ignored TERM for 10 s: KILL"
        kill -KILL "$p" $kids 2>/dev/null || true
    fi
    wait "$p" 2>/dev/null || true
}

# fill TEMPLATE OUT VAR=value...: the template with every @VAR@ replaced.
fill() {
    local in=$1 out=$2 args=() kv
    shift 2
    for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
    sed "${args[@]}" "$in" >"$out"
    ! grep -n '@[A-Z_]*@' "$out" >&2 || die "unfilled value in $out"
}

# Waits up to 10 s for a server to answer 200 on its 1 KiB file.
wait_ready() {
    local name=$1 i code url="http://127.0.0.1:${port[$1]}/p/1k.bin" tls=()
    [ "$name" != backend ] || url="http://127.0.0.1:${port[$1]}/1k.bin"
    # The https backend of bench/run.sh, checked against its own CA.
    [ "$name" != tls_backend ] ||
        { url="https://127.0.0.1:${port[$1]}/1k.bin"; tls=(--cacert "$work/tls/ca.pem"); }
    for i in $(seq 100); do
        alive "${pid[$name]}" || {
            tail -n 5 "$work/$name"/{stderr,error.log} >&2 2>/dev/null || true
            die "$name exited at startup (config in $work/$name)"; }
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
               "${tls[@]}" "$url" || true)
        [ "$code" != 200 ] || return 0
        sleep 0.1
    done
    die "$name did not answer 200 within 10 s (last: $code)"
}

# The CPU time, in µs, server $1 has used so far: its main process and the
# children alive now (utime + stime of each, all threads), plus the children
# the main process has reaped (cutime + cstime).  The backend's CPU is not
# in it: this is the proxy's own cost (issue 15).
clk_tck=$(getconf CLK_TCK)
cpu_us() {
    local p=${pid[$1]} k
    for k in "$p" $(pgrep -P "$p"); do cat "/proc/$k/stat" 2>/dev/null; done |
        awk -v hz="$clk_tck" '
            { sub(/^.*\) /, "")          # the fields after "pid (comm) "
              t += $12 + $13; if (NR == 1) t += $14 + $15 }
            END { printf "%.0f\n", t * 1e6 / hz }'
}

# The CPU time, in µs, all the machine's CPUs have spent busy so far (every
# state of the first line of /proc/stat but idle and iowait): with
# cpu_us, what the proxy leaves to the backend, wrk and the kernel.
machine_cpu_us() {
    awk -v hz="$clk_tck" '$1 == "cpu" {
        printf "%.0f\n", ($2 + $3 + $4 + $7 + $8 + $9) * 1e6 / hz; exit }' /proc/stat
}
