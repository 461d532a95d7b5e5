# soak/lib.sh - sourced by soak/soak.sh and soak/faults.sh.  Servers are
# started the way bench/run.sh starts them, from bench/conf's templates:
# httpd.conf.in (variant "rproxy", pool apr: event MPM, 2 x 256 threads,
# workers as www-data) and nginx-backend.conf.in plus one location
# /chunked/ (ssi on: no Content-Length, so nginx answers chunked).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
. "$top/bench/servers.sh"
port0=${SOAK_PORT:-18580}


for t in "$httpd" "$nginx" /usr/bin/wrk /usr/bin/curl "$python"; do
    [ -x "$t" ] || die "$t missing (Debian packages apache2 nginx wrk curl python3)"
done
[ -f "$module" ] || die "$module not found: run 'make' first"
[ "$(id -u)" = 0 ] || say "warning: not root; the servers run as $(id -un)"

declare -A port pid
port[backend]=$port0
port[httpd]=$((port0 + 1))
port[httpd2]=$((port0 + 2))
port[static]=$((port0 + 3))
# Members 2-4 of the "four" group (variant rproxy_g4 of bench/conf/httpd.conf.in):
# the nginx backend listens on these too.
port[member2]=$((port0 + 4)); port[member3]=$((port0 + 5)); port[member4]=$((port0 + 6))
for p in "${port[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        die "port $p is already in use (set SOAK_PORT to another base)"
    fi
done

work=$(mktemp -d /tmp/rproxy-soak.XXXXXX)
chmod 755 "$work"



# Background jobs (wrk, curl) other than servers, stopped on exit by pid.
jobs_started=()
cleanup() {
    local rc=$? name j
    trap - EXIT INT TERM
    set +e
    for j in "${jobs_started[@]}"; do kill -TERM "$j" 2>/dev/null; done
    for name in "${!pid[@]}"; do stop_server "$name"; done
    if [ "${SOAK_KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then
        echo "$(basename "$0"): configs and logs kept in $work" >&2
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


start_httpd() {       # start_httpd NAME [VARIANT of bench/conf/httpd.conf.in]
    local name=$1 variant=${2:-rproxy} dir=$work/$1 group=one
    # rproxy_g1, rproxy_g4: mod_rproxy through the group of one or four.
    case $variant in
        rproxy_g1) variant=rproxy_group ;;
        rproxy_g4) variant=rproxy_group group=four ;;
    esac
    mkdir -p "$dir/empty"
    chmod 755 "$dir" "$dir/empty"
    fill "$top/bench/conf/httpd.conf.in" "$dir/httpd.conf" VARIANT="$variant" \
        POOL=apr DIR="$dir" DATA="$work/data" PORT="${port[$name]}" \
        BACKEND_PORT="${port[backend]}" MODDIR="$moddir" \
        MODULE="$work/mod_rproxy.so" RPROXY_CONF="${SOAK_RPROXY_CONF:-}" \
        GROUP="$group" MEMBER_PORT2="${port[member2]}" \
        MEMBER_PORT3="${port[member3]}" MEMBER_PORT4="${port[member4]}" \
        TLS_PORT="${port[backend]}" TLS_CA=/dev/null
    "$httpd" -f "$dir/httpd.conf" -DFOREGROUND >>"$dir/stderr" 2>&1 &
    pid[$name]=$!
}

start_backend() {
    local dir=$work/backend
    mkdir -p "$dir"
    chmod 755 "$dir"
    fill "$top/bench/conf/nginx-backend.conf.in" "$dir/nginx.conf.tmp" \
        DIR="$dir" DATA="$work/data" PORT="${port[backend]}" \
        EXTRA_LISTEN="listen 127.0.0.1:${port[member2]}; listen 127.0.0.1:${port[member3]}; listen 127.0.0.1:${port[member4]};"
    sed '/^ *root  *[^ ]*;$/a\
        # soak: a chunked endpoint (ssi drops the length), no gzip.\
        location /chunked/ { ssi on; ssi_types *; gzip off; chunked_transfer_encoding on; }' \
        "$dir/nginx.conf.tmp" >"$dir/nginx.conf"
    grep -q 'location /chunked/' "$dir/nginx.conf" || die "cannot add /chunked/ to the backend config"
    "$nginx" -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" \
        -g 'daemon off;' >>"$dir/stderr" 2>&1 &
    pid[backend]=$!
}


make_data() {
    mkdir -p "$work/data/chunked"
    head -c 1024 /dev/urandom >"$work/data/1k.bin"
    head -c $((64 * 1024)) /dev/urandom >"$work/data/64k.bin"
    head -c $((16 * 1024 * 1024)) /dev/urandom >"$work/data/16m.bin"
    # Text without "<!--", so ssi passes it through unchanged.
    "$python" -c 'import sys; sys.stdout.write(("soak chunked line " + "x" * 46 + "\n") * 256)' \
        >"$work/data/chunked/16k.txt"
    chmod 755 "$work/data" "$work/data/chunked"
    chmod 644 "$work/data"/*.bin "$work/data/chunked/16k.txt"
    cp "$module" "$work/mod_rproxy.so"
    # The tree is shared: `make test-asan` leaves a sanitized build in .libs
    # while it runs, which a plain httpd cannot load.
    if grep -q __asan_ "$work/mod_rproxy.so"; then
        die "$module is a sanitized build (make test-asan running?): wait for it, or make clean all"
    fi
    chmod 644 "$work/mod_rproxy.so"
}

# perf, for bench/profile.sh and bench/syscalls.sh (Debian: linux-perf).
need_perf() {
    command -v perf >/dev/null && return 0
    [ "$(id -u)" = 0 ] || die "perf missing: install the Debian package linux-perf as root"
    say "installing linux-perf"
    apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q linux-perf >&2
}

# The pids of an httpd: the parent and its children.
procs() { echo "$1" $(pgrep -P "$1" || true); }
rss_kb() {      # summed VmRSS of an httpd's processes
    local p s=0 v
    for p in $(procs "$1"); do
        v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
        s=$((s + ${v:-0}))
    done
    echo "$s"
}
# rss_split PID: "STACKS OTHER", the RSS (KiB) of an httpd's processes in
# thread stacks (anonymous mappings of exactly the default 8 MiB pthread
# stack) and in everything else (heap, malloc arenas, code).  A worker
# thread's stack pages count only once the thread has first run a request,
# so RSS can step up with no leak when traffic reaches threads it had not
# reached before; this split tells that apart from heap growth.
rss_split() {
    local p
    for p in $(procs "$1"); do cat "/proc/$p/smaps" 2>/dev/null || true; done |
    awk '/^[0-9a-f]+-[0-9a-f]+ / { anon = (NF == 5) }
         /^Size:/ { size = $2 }
         /^Rss:/ { if (anon && size == 8192) st += $2; else other += $2 }
         END { printf "%d %d\n", st, other }'
}
fd_count() {
    local p s=0 n
    for p in $(procs "$1"); do
        n=$(ls "/proc/$p/fd" 2>/dev/null | wc -l)
        s=$((s + n))
    done
    echo "$s"
}
# rproxy-status counters of an httpd summed over its children ("key value").
status() { "$python" "$top/bench/status.py" "${port[$1]}" "${pid[$1]}"; }
counter() { awk -v k="$1" '$1 == k { print $2 }'; }

# wrk_run NAME CONNS SECONDS [PATH]: prints "requests non2xx sockerr rps",
# the BAD lines of mix.lua to $work/bad.$NAME.
wrk_run() {
    local name=$1 conns=$2 secs=$3 path=${4:-} out
    out=$(SOAK_PATH=$path timeout $((secs + 30)) wrk -t2 -c"$conns" -d"$secs"s \
          --timeout 10s -s "$here/mix.lua" "http://127.0.0.1:${port[$name]}/") ||
        die "wrk failed on $name: $out"
    grep '^BAD ' <<<"$out" >>"$work/bad.$name" || true
    printf '%s\n' "$out" >"$work/wrkout.$name"
    awk '
        / requests in / { n = $1 }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { bad += $NF }
        /Socket errors:/ { gsub(/,/, ""); se += $4 + $6 + $8 + $10 }
        END { if (n == "") exit 1; printf "%d %d %d %s\n", n, bad, se, rps }
    ' <<<"$out" || die "cannot parse wrk output: $out"
}
