#!/bin/sh
# The mod_rproxy demo: `sh conf/demo/run.sh start|stop` (`make run` / `make stop`).
# One Debian apache2 runs a config generated from httpd.conf.in; nothing of
# /etc/apache2 (or apache2ctl's envvars) is used, so the system's own httpd,
# if any, is left alone.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
httpd=${APACHE2:-/usr/sbin/apache2}
moddir=/usr/lib/apache2/modules
module=$top/.libs/mod_rproxy.so
# The repo may live where www-data cannot read (e.g. under /root), so the page
# it serves, the config, pid file and logs go to a world-readable dir in /tmp;
# one per user, so a user's demo and root's do not collide.
rundir=${RPROXY_DEMO_DIR:-/tmp/mod_rproxy-demo-$(id -un)}
pidfile=$rundir/httpd.pid
conf=$rundir/httpd.conf
# The live page's backend (live_backend.py) runs under Debian's python3,
# which has python3-websockets; not whatever python3 comes first in PATH.
python=${RPROXY_DEMO_PYTHON:-/usr/bin/python3}
backend=$rundir/live_backend.py
backend_pidfile=$rundir/live_backend.pid

die() { echo "run.sh: $*" >&2; exit 1; }

# alive_from PIDFILE WORD: prints the pid in PIDFILE if that process is
# alive and its command line names WORD.  The pid file alone is not
# trusted: after a crash or reboot its pid may belong to some other process.
alive_from() {
    [ -r "$1" ] || return 1
    _pid=$(cat "$1")
    case $_pid in ''|*[!0-9]*) return 1 ;; esac
    kill -0 "$_pid" 2>/dev/null || return 1
    [ ! -r "/proc/$_pid/cmdline" ] ||
        tr '\0' ' ' <"/proc/$_pid/cmdline" | grep -qF -- "$2" || return 1
    echo "$_pid"
}

# Set $pid / $bpid when our demo httpd / live page backend is alive.
demo_running() { pid=$(alive_from "$pidfile" "$conf"); }
backend_running() { bpid=$(alive_from "$backend_pidfile" "$backend"); }

stop_backend() {
    if backend_running; then
        kill -TERM "$bpid"
        i=0
        while kill -0 "$bpid" 2>/dev/null; do
            i=$((i + 1))
            [ "$i" -le 50 ] || die "live_backend.py (pid $bpid) did not stop within 5s"
            sleep 0.1
        done
        echo "live page backend stopped (pid $bpid)"
    fi
    rm -f "$backend_pidfile"
}

# The WebSocket echo and event stream of the live page, on 127.0.0.1:8082
# and :8083; as www-data when root.  Without python3-websockets the demo
# runs without them.
start_backend() {
    stop_backend
    if ! "$python" -c 'import websockets.legacy.server' 2>/dev/null; then
        echo "run.sh: $python has no websockets module (Debian's python3-websockets):" \
             "the live page will not work" >&2
        return 0
    fi
    cp "$here/live_backend.py" "$backend"
    chmod 644 "$backend"
    set --
    [ "$(id -u)" != 0 ] ||
        set -- setpriv --reuid=www-data --regid=www-data --init-groups
    "$@" "$python" "$backend" --ws-port 8082 --sse-port 8083 \
        </dev/null >>"$rundir/live_backend.log" 2>&1 &
    echo $! >"$backend_pidfile"
    i=0
    until curl -sf -o /dev/null --max-time 1 http://127.0.0.1:8083/health; do
        i=$((i + 1))
        if [ "$i" -gt 50 ] || ! backend_running; then
            echo "run.sh: the live page backend did not come up; end of" \
                 "$rundir/live_backend.log:" >&2
            tail -n 5 "$rundir/live_backend.log" >&2 2>/dev/null || true
            stop_backend
            return 0
        fi
        sleep 0.1
    done
    echo "live page backend running (pid $bpid): http://127.0.0.1:8080/app/live.html"
}

stop() {
    stop_backend
    if ! demo_running; then
        rm -f "$pidfile"
        echo "mod_rproxy demo is not running"
        return 0
    fi
    kill -TERM "$pid"
    # Wait for the exit, so that a start right after can bind the ports.
    i=0
    while kill -0 "$pid" 2>/dev/null; do
        i=$((i + 1))
        [ "$i" -le 100 ] || die "httpd (pid $pid) did not stop within 10s"
        sleep 0.1
    done
    echo "mod_rproxy demo stopped (pid $pid)"
}

start() {
    [ -x "$httpd" ] || die "$httpd not found: run 'make deps' (as root)"
    [ -f "$module" ] || die "$module not found: run 'make' first"
    if demo_running; then
        echo "mod_rproxy demo already running (pid $pid): restarting it"
        stop
    fi
    # When root, refuse a path in /tmp that someone else created (or a
    # symlink planted there): we would write root-owned files through it.
    if [ -L "$rundir" ] ||
        { [ -e "$rundir" ] && ! { [ -d "$rundir" ] && [ -O "$rundir" ]; }; }; then
        die "$rundir exists but is not our directory; remove it"
    fi
    mkdir -p "$rundir/htdocs" "$rundir/empty"
    # Explicit modes: a umask of 077 would lock the children (www-data) out.
    chmod 755 "$rundir" "$rundir/htdocs" "$rundir/empty"
    cp "$here/index.html" "$here/live.html" "$rundir/htdocs/"
    chmod 644 "$rundir/htdocs/index.html" "$rundir/htdocs/live.html"
    sed -e "s|@RUNDIR@|$rundir|g" -e "s|@MODDIR@|$moddir|g" \
        -e "s|@MODULE@|$module|g" "$here/httpd.conf.in" >"$conf"
    rm -f "$pidfile"

    # Only a root parent switches its children to www-data (User/Group).
    set --
    [ "$(id -u)" != 0 ] || set -- -D DEMO_AS_ROOT
    "$httpd" -f "$conf" "$@" -k start || die "httpd failed to start (config: $conf)"

    # `-k start` returns when the daemon has detached; the daemon writes the
    # pid file a moment later, and could still die (e.g. in a module's init).
    i=0
    until demo_running; do
        i=$((i + 1))
        if [ "$i" -gt 50 ]; then
            echo "run.sh: httpd did not come up; end of $rundir/error.log:" >&2
            tail -n 5 "$rundir/error.log" >&2 2>/dev/null || true
            exit 1
        fi
        sleep 0.1
    done
    echo "mod_rproxy demo running (pid $pid): http://127.0.0.1:8080/app/"
    start_backend
    echo "counters: http://127.0.0.1:8080/rproxy-status  logs: $rundir/"
    echo "stop with: make stop"
}

case ${1:-} in
    start) start ;;
    stop)  stop ;;
    *)     echo "usage: sh $0 start|stop" >&2; exit 2 ;;
esac
