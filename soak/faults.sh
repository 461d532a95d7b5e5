#!/bin/bash
# soak/faults.sh - `make faults`: the setup of soak.sh under wrk load
# (32 connections, 1 KiB), and three faults:
#   a. the nginx backend stopped (TERM to its pid) for ~2 s, then restarted:
#      failures only while it was down, then 50 sequential requests all 200;
#   b. `apache2 -k graceful` under keep-alive load (keepalive_client.py):
#      no request refused, cut, unanswered or answered other than 200.  A
#      request sent on a keep-alive connection just as the old child closes
#      it is retried once on a new connection, as RFC 9112 9.3.1 allows and
#      browsers do (wrk counts it as a read error); those are counted apart.
#      The same is done to an httpd serving the file itself (no mod_rproxy)
#      as a control: it tells httpd's own graceful behaviour from the module's.
#   c. `apache2 -k graceful-stop` on a second httpd while slow downloads run
#      (16 MiB at 4 MiB/s: a 64 KiB body would sit whole in the loopback
#      socket buffers, and the server would be done with it at once): every
#      download completes with all its bytes.
# PASS/FAIL per fault to stdout and soak/results/faults.md; exit 1 on a FAIL.
source "$(dirname "$0")/lib.sh"

conns=${FAULT_CONNS:-32}
make_data
start_backend
wait_ready backend
start_httpd httpd
wait_ready httpd
say "backend ${port[backend]}, httpd ${port[httpd]}; in $work"
wrk_run httpd "$conns" 2 /p/1k.bin >/dev/null       # warm-up
rm -f "$work/bad.httpd"
results=()
verdicts=()
result() { results+=("| $1 | $2 | $3 |"); verdicts+=("$2"); say "$1: $2 - $3"; }

# ---- a. backend down for ~2 s ----------------------------------------------
: >"$work/wrk.a"
(wrk_run httpd "$conns" 10 /p/1k.bin >"$work/wrk.a") &
wjob=$!; jobs_started+=("$wjob")
sleep 2
t_down=$(date +%s)
stop_server backend                  # TERM to the nginx master's pid, waited for
sleep 2
start_backend
wait_ready backend
t_up=$(date +%s)
# Straight after the restart: sequential requests through the proxy, the
# first ones on pooled connections to the old (now closed) backend.
seq_ok=0 seq_codes=""
for i in $(seq 50); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
           "http://127.0.0.1:${port[httpd]}/p/1k.bin" || echo 000)
    [ "$code" = 200 ] && seq_ok=$((seq_ok + 1)) || seq_codes="$seq_codes $i:$code"
done
wait "$wjob" || true
read -r an abad ase _ <"$work/wrk.a" || die "wrk failed during fault a"
# Non-2xx per second (mix.lua's BAD lines): any outside [down, up + 1]?
outside=$(awk -v d="$t_down" -v u="$t_up" '$2 < d || $2 > u + 1 { s += $3 } END { print s + 0 }' \
          "$work/bad.httpd" 2>/dev/null || echo 0)
# And once the backend is back for good: a clean run.
read -r pn pbad pse _ < <(wrk_run httpd "$conns" 3 /p/1k.bin)
[ -n "${pse:-}" ] || die "wrk failed after fault a"
detail="down ${t_down}..${t_up} ($((t_up - t_down)) s): wrk $an requests, $abad non-2xx, $ase socket errors, $outside non-2xx outside the down window (+1 s); 50 sequential after restart: $seq_ok x 200${seq_codes:+ (others:$seq_codes)}; 3 s after: $pn requests, $pbad non-2xx, $pse socket errors"
if [ "$outside" = 0 ] && [ "$seq_ok" = 50 ] && [ "$pbad" = 0 ] && [ "$pse" = 0 ]; then
    result "a. backend stopped ~2 s" PASS "$detail"
else
    result "a. backend stopped ~2 s" FAIL "$detail"
fi

# ---- b. graceful restart under load ------------------------------------------
# graceful_under_load NAME: prints "client's counts|children before|after".
graceful_under_load() {
    local name=$1 wjob gen0 gen1
    : >"$work/load.b.$name"
    "$python" "$here/keepalive_client.py" --port "${port[$name]}" --path /p/1k.bin \
        --conns "$conns" --seconds 8 >"$work/load.b.$name" 2>&1 &
    wjob=$!; jobs_started+=("$wjob")
    sleep 2
    gen0=$(pgrep -P "${pid[$name]}" | sort | tr '\n' ' ')
    "$httpd" -f "$work/$name/httpd.conf" -k graceful 2>>"$work/$name/stderr" ||
        die "apache2 -k graceful failed on $name"
    sleep 3
    gen1=$(pgrep -P "${pid[$name]}" | sort | tr '\n' ' ')
    wait "$wjob" || true
    grep -q '^requests=' "$work/load.b.$name" ||
        die "keepalive_client.py failed on $name: $(cat "$work/load.b.$name")"
    alive "${pid[$name]}" || die "$name exited after graceful"
    echo "$(grep '^requests=' "$work/load.b.$name")|$gen0|$gen1"
}
# count KEY "k=v ...": one value of the client's line.
count() { tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k { print $2 }'; }
failures() { echo $(( $(count refused "$1") + $(count cut "$1") + $(count unanswered "$1") + $(count status "$1") )); }
IFS='|' read -r bres bgen0 bgen1 < <(graceful_under_load httpd)
detail="$bres; children before: $bgen0; after: $bgen1"
if [ "$(failures "$bres")" = 0 ] && [ "$(count ok "$bres")" -gt 0 ]; then
    result "b. -k graceful under load" PASS "$detail"
else
    result "b. -k graceful under load" FAIL "$detail"
fi
start_httpd static static
wait_ready static
wrk_run static "$conns" 2 /p/1k.bin >/dev/null
IFS='|' read -r cres _ _ < <(graceful_under_load static)
stop_server static
control="control, the same against httpd serving the 1 KiB file itself (no mod_rproxy): $cres"
results+=("| b (control) | info | $control |")
say "$control"

# ---- c. graceful-stop of a second instance -----------------------------------
start_httpd httpd2
wait_ready httpd2
slow=${FAULT_SLOW:-4}
rate=${FAULT_RATE:-4M}                  # 16 MiB at 4 MiB/s: about 4 s each
: >"$work/wrk.c"
(wrk_run httpd2 "$conns" 6 /p/1k.bin >"$work/wrk.c" 2>/dev/null) &
wjob=$!; jobs_started+=("$wjob")
cjobs=()
for i in $(seq "$slow"); do
    curl -s -o /dev/null --limit-rate "$rate" --max-time 60 \
        -w '%{http_code} %{size_download}\n' \
        "http://127.0.0.1:${port[httpd2]}/p/16m.bin" >"$work/slow.$i" 2>&1 &
    cjobs+=($!); jobs_started+=($!)
done
sleep 1
t0=$SECONDS
"$httpd" -f "$work/httpd2/httpd.conf" -k graceful-stop 2>>"$work/httpd2/stderr" ||
    die "apache2 -k graceful-stop failed"
sleep 1
still=no; alive "${pid[httpd2]}" && still=yes    # waiting for in-flight requests?
for j in "${cjobs[@]}"; do wait "$j" || true; done
t_curl=$((SECONDS - t0))
# The parent exits once its children have finished (bounded: 30 s).
for i in $(seq 300); do alive "${pid[httpd2]}" || break; sleep 0.1; done
stopped=no; alive "${pid[httpd2]}" || { stopped=yes; wait "${pid[httpd2]}" 2>/dev/null || true; unset "pid[httpd2]"; }
wait "$wjob" || true
full=0 got=""
for i in $(seq "$slow"); do
    r=$(cat "$work/slow.$i")
    got="$got${got:+, }$r"
    [ "$r" = "200 $((16 * 1024 * 1024))" ] && full=$((full + 1))
done
detail="$full of $slow slow downloads ($rate/s) complete ($got), the last ${t_curl}s after graceful-stop; httpd still up 1 s after graceful-stop: $still; exited afterwards: $stopped; wrk during it: $(cat "$work/wrk.c" || true) (requests non-2xx socket-errors rps; not a criterion)"
if [ "$full" = "$slow" ] && [ "$stopped" = yes ]; then
    result "c. -k graceful-stop, in-flight downloads" PASS "$detail"
else
    result "c. -k graceful-stop, in-flight downloads" FAIL "$detail"
fi

st=$(status httpd)
outstanding=$(counter outstanding <<<"$st")
mkdir -p "$here/results"
{
    echo "# mod_rproxy faults, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "\`make faults\` at $(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown); wrk $conns connections, 1 KiB; httpd event + mod_rproxy (apr), nginx backend; $(nproc) cores."
    echo
    echo "| fault | result | figures |"
    echo "|---|---|---|"
    printf '%s\n' "${results[@]}"
    echo
    echo "Buffers outstanding on the first httpd at the end: $outstanding."
} >"$here/results/faults.md"
cat "$here/results/faults.md"
[ "$outstanding" = 0 ] || { echo "FAIL: $outstanding buffers outstanding" >&2; exit 1; }
for v in "${verdicts[@]}"; do [ "$v" = PASS ] || exit 1; done
