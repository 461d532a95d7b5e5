#!/bin/bash
# soak/chaos.sh - `make chaos` (= `make soak SOAK_MODE=chaos`): SOAK_REQUESTS
# mixed GETs and POSTs, each with a unique id, through httpd (event) +
# mod_rproxy to a group of four members (soak/chaos_backend.py, which log
# every id they get), while this script
#   - kills a member with SIGKILL every CHAOS_KILL_EVERY s (20) and restarts
#     it CHAOS_DOWN s (4) later, the members in turn;
#   - drains a member every CHAOS_DRAIN_EVERY s (45) for CHAOS_DRAIN_FOR s
#     (12), then enables it again: by POST to /rproxy-status when its JSON
#     form has a "nonce" (RProxyStatusControl), otherwise by the member's
#     `drain` flag in the config and a graceful restart;
#   - gracefully restarts httpd (SIGUSR1 to its parent) every
#     CHAOS_GRACEFUL_EVERY s (60).
# Never more than one member killed and one drained at once, never the same
# one: at least two members are always usable.
# Verdict (soak/chaos_check.py, plus RSS and fds here): PASS only if no GET
# failed, no POST reached a member twice, every failed POST was answered 502
# or 503, RSS (same procedure before and after: graceful restart, then
# SOAK_WARMUP requests at 512 connections, then at rest) grown by 1% at
# most (a drop is no leak: reported, not failed), and fds
# flat (the parent's equal; the children's change only by idle backend
# connections).  Table on stdout and soak/results/chaos.md; exit 1 on FAIL.
source "$(dirname "$0")/lib.sh"

total=${SOAK_REQUESTS:-1000000}
conns=${SOAK_CONNS:-64}
# 100,000: with 20,000 two identical procedures differed by 2-4 % in RSS
# (the heap each worker thread keeps depends on the mix of requests it
# happened to serve); with 100,000 by about 1 % the first time and 0.02 %
# after that.
warm=${SOAK_WARMUP:-100000}
warm_conns=${SOAK_WARM_CONNS:-512}
procs=${CHAOS_PROCS:-2}                 # client processes
kill_every=${CHAOS_KILL_EVERY:-20}
down_for=${CHAOS_DOWN:-4}
drain_every=${CHAOS_DRAIN_EVERY:-45}
drain_for=${CHAOS_DRAIN_FOR:-12}
graceful_every=${CHAOS_GRACEFUL_EVERY:-60}
limit=${SOAK_MAX_SECONDS:-3600}

members=(m1 m2 m3 m4)
i=10
for m in "${members[@]}"; do
    port[$m]=$((port0 + i)); i=$((i + 1))
    if (exec 3<>"/dev/tcp/127.0.0.1/${port[$m]}") 2>/dev/null; then
        die "port ${port[$m]} is already in use (set SOAK_PORT to another base)"
    fi
done
declare -A drained=()

make_data
ev() { echo "$(date +%s) $*" >>"$work/events"; say "$*"; }

start_member() {
    "$python" "$here/chaos_backend.py" --port "${port[$1]}" --name "$1" \
        --log "$work/member.$1.log" >>"$work/member.$1.stderr" 2>&1 &
    pid[$1]=$!
}
member_ready() {
    local k
    for k in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/${port[$1]}") 2>/dev/null && return 0
        alive "${pid[$1]}" || die "member $1 exited at start: $(tail -n 3 "$work/member.$1.stderr")"
        sleep 0.1
    done
    die "member $1 did not listen within 10 s"
}
kill_member() {
    local p=${pid[$1]}
    unset "pid[$1]"
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}

write_conf() {
    local d=$work/httpd args=() k=1 m
    for m in "${members[@]}"; do
        args+=("M$k=${port[$m]}" "DRAIN$k=${drained[$m]:+drain}")
        k=$((k + 1))
    done
    fill "$here/conf/chaos-httpd.conf.in" "$d/httpd.conf.new" DIR="$d" \
        PORT="${port[httpd]}" MODDIR="$moddir" MODULE="$work/mod_rproxy.so" \
        "${args[@]}"
    mv "$d/httpd.conf.new" "$d/httpd.conf"
}
generation() { pgrep -P "${pid[httpd]}" | sort | tr '\n' ' '; }
# graceful: SIGUSR1 to httpd's parent, then up to 15 s for a new
# generation of children to answer.
graceful() {
    local before k
    before=$(generation)
    kill -USR1 "${pid[httpd]}"
    for k in $(seq 150); do
        [ "$(generation)" != "$before" ] && break
        sleep 0.1
    done
    alive "${pid[httpd]}" || die "httpd exited on graceful restart: $(tail -n 5 "$work/httpd/error.log")"
    wait_ready_status
}
wait_ready_status() {
    local k code
    for k in $(seq 150); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
               "http://127.0.0.1:${port[httpd]}/rproxy-status" || true)
        [ "$code" = 200 ] && return 0
        sleep 0.1
    done
    die "httpd did not answer /rproxy-status within 15 s"
}

# The run-time control (RProxyStatusControl On): the nonce the JSON form
# shows as "control": {"enabled": true, "nonce": "..."}.
status_nonce() {
    curl -s --max-time 5 "http://127.0.0.1:${port[httpd]}/rproxy-status?format=json" |
        "$python" -c 'import json, sys
try: print((json.load(sys.stdin).get("control") or {}).get("nonce", ""))
except Exception: print("")' 2>/dev/null || true
}
# set_drain MEMBER drain|enable
set_drain() {
    local m=$1 action=$2 nonce code
    nonce=$(status_nonce)
    if [ -n "$nonce" ]; then
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
               --data "action=$action&group=four&member=127.0.0.1:${port[$m]}&nonce=$nonce" \
               "http://127.0.0.1:${port[httpd]}/rproxy-status" || echo 000)
        if [[ $code == 2* || $code == 3* ]]; then
            ev "$action $m by POST (answered $code)"
            drain_by_post=$((drain_by_post + 1))
            return 0
        fi
        ev "POST $action $m answered $code: falling back to the config"
    fi
    if [ "$action" = drain ]; then drained[$m]=1; else unset "drained[$m]"; fi
    write_conf
    graceful
    ev "$action $m by config + graceful restart"
    drain_by_conf=$((drain_by_conf + 1))
}

# sample LABEL: RSS and fds of httpd (all processes, and the parent alone)
# and the idle backend connections, one line to $work/samples.
sample() {
    local st
    st=$(status httpd 2>/dev/null || true)
    echo "$1 $(rss_kb "${pid[httpd]}") $(fd_count "${pid[httpd]}") \
$(awk '/^VmRSS:/ { print $2 }' "/proc/${pid[httpd]}/status") \
$(ls "/proc/${pid[httpd]}/fd" | wc -l) $(counter idle_connections <<<"$st") \
$(pgrep -P "${pid[httpd]}" | wc -l) $(rss_split "${pid[httpd]}")" >>"$work/samples"
}

client() {    # client TAG REQUESTS CONNS: runs chaos_client.py in the background
    "$python" "$here/chaos_client.py" --port "${port[httpd]}" --requests "$2" \
        --conns "$3" --procs "$procs" --tag "$1" --out "$work" \
        --max-seconds "$limit" >"$work/client.$1" 2>&1 &
    client_pid=$!
    jobs_started+=("$client_pid")
}
client_wait() {
    wait "$client_pid" || die "chaos_client.py failed: $(tail -n 5 "$work/client.$1")"
    cat "$work/client.$1" >&2
}
# steady TAG: the same procedure before and after the chaos, so that the
# two samples compare like with like: a graceful restart, then the warm-up
# load at one connection per worker thread, then 2 s at rest.
steady() {
    graceful
    client "$1" "$warm" "$warm_conns"
    client_wait "$1"
    sleep 2
    sample "$1"
}

# ---- the run ----------------------------------------------------------------
for m in "${members[@]}"; do start_member "$m"; done
for m in "${members[@]}"; do member_ready "$m"; done
mkdir -p "$work/httpd/empty"
chmod 755 "$work/httpd" "$work/httpd/empty"
write_conf
"$httpd" -f "$work/httpd/httpd.conf" -t >>"$work/httpd/stderr" 2>&1 ||
    die "configtest failed: $(tail -n 3 "$work/httpd/stderr")"
"$httpd" -f "$work/httpd/httpd.conf" -DFOREGROUND >>"$work/httpd/stderr" 2>&1 &
pid[httpd]=$!
wait_ready_status
say "httpd ${port[httpd]} (pid ${pid[httpd]}), members $(for m in "${members[@]}"; do printf '%s ' "${port[$m]}"; done); in $work"
drain_by_post=0 drain_by_conf=0
[ -n "$(status_nonce)" ] && say "rproxy-status has a nonce: drains by POST" ||
    say "no nonce on rproxy-status: drains by config (drain flag + graceful restart)"

say "warm-up: $warm requests at $warm_conns connections, twice"
client w0 "$warm" "$warm_conns"; client_wait w0
steady w1
# The same procedure once more before any chaos; RSS and fds after it are
# the reference (the end of the warm-up), and w1 -> w1b shows how far the
# procedure moves RSS by itself.
steady w1b
say "chaos: $total requests at $conns connections"
: >"$work/events"
client c "$total" "$conns"
t0=$SECONDS
kills=0 gracefuls=0 drains=0 killed="" killed_at=0 drainee="" drained_at=0
next_kill=$kill_every next_drain=$((kill_every / 2 + drain_every / 2))
next_graceful=$graceful_every ki=0 di=3
while alive "$client_pid"; do
    t=$((SECONDS - t0))
    [ "$t" -lt "$((limit + 60))" ] || { ev "time limit"; break; }
    if [ -n "$killed" ] && [ "$t" -ge $((killed_at + down_for)) ]; then
        start_member "$killed"; member_ready "$killed"
        ev "restarted $killed"; killed=""
    fi
    if [ -z "$killed" ] && [ "$t" -ge "$next_kill" ]; then
        m=${members[$((ki % 4))]}; ki=$((ki + 1))
        [ "$m" != "$drainee" ] || { m=${members[$((ki % 4))]}; ki=$((ki + 1)); }
        kill_member "$m"; killed=$m killed_at=$t kills=$((kills + 1))
        ev "killed $m (SIGKILL)"
        next_kill=$((t + kill_every))
    fi
    if [ -n "$drainee" ] && [ "$t" -ge $((drained_at + drain_for)) ]; then
        set_drain "$drainee" enable; drainee=""
    fi
    if [ -z "$drainee" ] && [ "$t" -ge "$next_drain" ]; then
        m=${members[$((di % 4))]}; di=$((di + 3))
        [ "$m" != "$killed" ] || { m=${members[$((di % 4))]}; di=$((di + 3)); }
        set_drain "$m" drain; drainee=$m drained_at=$t drains=$((drains + 1))
        next_drain=$((t + drain_every))
    fi
    if [ "$t" -ge "$next_graceful" ]; then
        sample "g$gracefuls"
        graceful; gracefuls=$((gracefuls + 1))
        ev "graceful restart $gracefuls"
        next_graceful=$((t + graceful_every))
    fi
    sleep 1
done
client_wait c
chaos_secs=$((SECONDS - t0))
# Everything back: the killed member up, the drained one enabled.
if [ -n "$killed" ]; then start_member "$killed"; member_ready "$killed"; ev "restarted $killed"; fi
if [ -n "$drainee" ]; then set_drain "$drainee" enable; fi
steady w2

# ---- verdict ----------------------------------------------------------------
"$python" "$here/chaos_check.py" "$work" c >"$work/check"
v() { awk -v k="$1" '$1 == k { print $2 }' "$work/check"; }
read -r _ rssa _ _ _ idlea _ stka otha < <(grep '^w1 ' "$work/samples")
read -r _ rss0 fd0 prss0 pfd0 idle0 kids0 stk0 oth0 < <(grep '^w1b ' "$work/samples")
read -r _ rss1 fd1 prss1 pfd1 idle1 kids1 stk1 oth1 < <(grep '^w2 ' "$work/samples")
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.2f", (b - a) * 100 / a }'; }
rss_pct=$(pct "$rss0" "$rss1"); prss_pct=$(pct "$prss0" "$prss1")
crashes=$(grep -c 'exit signal' "$work/httpd/error.log" || true)
fail=()
[ "$(v verdict)" = PASS ] || fail+=("requests: $(grep -E '^(get_failed|post_silent|post_duplicated|post_200_not_seen_once|post_bodies_wrong_at_member) ' "$work/check" | tr '\n' ' ')")
[ "$(v requests)" -ge "$total" ] || fail+=("only $(v requests) of $total requests")
# RSS may not grow by more than 1 %: a leak grows it.  Less after the run
# than before is no leak; the procedure itself moves RSS by 1-2 % (w1 ->
# w1b) and fresh children after a graceful restart often hold less, so a
# drop is reported, not failed.
awk -v p="$rss_pct" 'BEGIN { exit !(p <= 1.0) }' || fail+=("RSS grew $rss_pct%")
awk -v p="$prss_pct" 'BEGIN { exit !(p <= 1.0) }' || fail+=("parent RSS grew $prss_pct%")
[ "$pfd0" = "$pfd1" ] || fail+=("parent fds $pfd0 -> $pfd1")
[ $((fd1 - fd0)) = $((${idle1:-0} - ${idle0:-0})) ] || fail+=("fds $fd0 -> $fd1 while idle backend connections ${idle0:-?} -> ${idle1:-?}")
[ "$crashes" = 0 ] || fail+=("$crashes child crash(es) in the error log")
[ "${#fail[@]}" = 0 ] && verdict=PASS || verdict="FAIL: $(IFS=';'; echo "${fail[*]}")"
log=$work/httpd/error.log
mkdir -p "$here/results"
{
    echo "# mod_rproxy chaos soak, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "\`make chaos SOAK_REQUESTS=$total SOAK_CONNS=$conns\` at $(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown);"
    echo "httpd event, 2 x 256 threads, mod_rproxy pool apr, group of 4 (soak/chaos_backend.py),"
    echo "RProxyEject failures=3 time=2s max=20s max-share=50%, RProxySlowStart 5s."
    echo "Per 10 requests: 5 GET 1 KiB, 2 GET 64 KiB, 3 POST of 1-40,000 bytes; $procs client processes."
    echo "$(nproc) cores; load average at the end $(cut -d' ' -f1-3 /proc/loadavg) (other jobs share the machine)."
    echo
    echo "| figure | value | target |"
    echo "|---|---:|---|"
    echo "| requests (client) | $(v requests) in ${chaos_secs}s ($(sed -n 's/.*rps=//p' "$work/client.c") req/s): $(v gets) GET, $(v posts) POST | >= $total |"
    echo "| chaos | $kills member kills (SIGKILL, ${down_for}s down), $drains drains (${drain_for}s; $drain_by_post by POST, $drain_by_conf by config + graceful), $gracefuls timed graceful restarts | |"
    echo "| GETs not a whole 200 | $(v get_failed) | 0 |"
    echo "| GETs retried after a keep-alive close race (RFC 9112 9.3.1) | $(v get_retried_after_keepalive_race) | |"
    echo "| POSTs answered 200 | $(v post_ok) | |"
    echo "| POSTs answered 502 / 503 | $(v post_502) / $(v post_503) (of which a member got the body: $(v post_502_reached_member) / $(v post_503_reached_member)) | |"
    echo "| POSTs unsent: reused connection closed before any answer, no member got it | $(v post_keepalive_race_unsent) | |"
    echo "| POSTs failed silently (no answer, cut, other status) | $(v post_silent) | 0 |"
    echo "| POSTs a member got twice | $(v post_duplicated) | 0 |"
    echo "| POSTs answered 200 not seen exactly once by the members | $(v post_200_not_seen_once) | 0 |"
    echo "| POST bodies wrong at the member | $(v post_bodies_wrong_at_member) | 0 |"
    echo "| RSS, after warm-up (w1b) -> after the run (each: graceful + $warm requests at $warm_conns conns + 2 s rest) | $rss0 -> $rss1 KiB ($rss_pct%) | grows 1% at most |"
    echo "| the same procedure twice before the chaos, w1 -> w1b (its own noise) | $rssa -> $rss0 KiB ($(pct "$rssa" "$rss0")%), idle backend connections ${idlea:-?} -> ${idle0:-?} | |"
    echo "| of which thread stacks / all the rest, w1 -> w1b -> after | $stka / $otha -> $stk0 / $oth0 -> $stk1 / $oth1 KiB | |"
    echo "| parent's RSS | $prss0 -> $prss1 KiB ($prss_pct%) | grows 1% at most |"
    echo "| fds, all processes | $fd0 -> $fd1 (idle backend connections ${idle0:-?} -> ${idle1:-?}) | change = idle change |"
    echo "| parent's fds | $pfd0 -> $pfd1 | equal |"
    echo "| RSS / fds before each timed graceful restart (under load) | $(awk '$1 ~ /^g/ { printf "%s/%s ", $2, $3 }' "$work/samples") | |"
    echo "| error log: state changes, failovers, no-member 503s, crashes | $(grep -c ' -> ' "$log" || true), $(grep -c 'trying ' "$log" || true), $(grep -c 'no usable member' "$log" || true), $crashes | crashes 0 |"
    echo
    grep -E '^(get_failed_|post_silent_)' "$work/check" | sed 's/^/    /' || true
    # Failures by the last chaos event before them (the client stamps
    # every outcome with its second).
    grep '^after_event ' "$work/check" | sed 's/^/    /' || true
    grep '^example ' "$work/check" | head -12 | sed 's/^/    /' || true
    echo
    echo "**$verdict**"
} >"$here/results/chaos.md"
cat "$here/results/chaos.md"
[ "$verdict" = PASS ]
