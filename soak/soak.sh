#!/bin/bash
# soak/soak.sh - `make soak`: SOAK_REQUESTS mixed requests (soak/mix.lua)
# over SOAK_CONNS connections through one httpd (event) + mod_rproxy in front
# of an nginx backend, then checks that nothing grew or leaked.  Summary to
# stdout and soak/results/latest.md; exits 1 if a target is missed.
source "$(dirname "$0")/lib.sh"

total=${SOAK_REQUESTS:-1000000}
conns=${SOAK_CONNS:-64}
warm_total=${SOAK_WARMUP:-20000}
# The warm-up uses as many connections as httpd has worker threads (2 x 256
# in bench/conf), so every thread has run requests before RSS is taken: a
# thread's stack pages, its malloc arena and its connection's pools only
# count from a thread's first request.  Warmed up with fewer, RSS steps up
# whenever a later wrk run happens to reach threads not used before.
warm_conns=${SOAK_WARM_CONNS:-512}
limit=${SOAK_MAX_SECONDS:-900}        # give up after 15 minutes

make_data
start_backend
wait_ready backend
start_httpd httpd
wait_ready httpd
say "backend ${port[backend]}, httpd ${port[httpd]} (pid ${pid[httpd]}); in $work"

# run_until NAME N: repeated bounded wrk runs until wrk has counted N
# requests; prints "requests non2xx sockerr seconds runs".
# MINRUNS: at least that many runs (each reconnects wrk's connections, which
# land on the children differently), sized to end together at N.
run_until() {
    local want=$1 minruns=${2:-1} nconns=${3:-$conns} rss n=0 bad=0 se=0 runs=0 start=$SECONDS secs=1 r b s rps left
    while [ "$n" -lt "$want" ] || [ "$runs" -lt "$minruns" ]; do
        [ $((SECONDS - start)) -lt "$limit" ] || { say "time limit of ${limit}s reached"; break; }
        read -r r b s rps < <(wrk_run httpd "$nconns" "$secs")
        [ -n "${rps:-}" ] || exit 1
        n=$((n + r)); bad=$((bad + b)); se=$((se + s)); runs=$((runs + 1))
        # Size the next run from this one's rate: at most 60 s, at least 1.
        left=$((want - n))
        secs=$(awk -v l="$left" -v r="$rps" 'BEGIN { s = int(l / (r > 0 ? r : 1)) + 1;
               if (l <= 0) s = 1;
               if (s > 60) s = 60; if (s < 1) s = 1; print s }')
        rss=$(rss_kb "${pid[httpd]}")
        echo "$r $rss" >>"$work/rss.series"
        say "  run $runs: $r requests at $rps req/s ($n / $want), RSS $rss KiB"
    done
    echo "$n $bad $se $((SECONDS - start)) $runs"
}

say "warm-up: $warm_total requests, $warm_conns connections"
read -r wn wbad wse _ _ < <(run_until "$warm_total" 4 "$warm_conns")
[ -n "${wn:-}" ] || die "warm-up failed"
sleep 1
rss0=$(rss_kb "${pid[httpd]}"); fd0=$(fd_count "${pid[httpd]}")
read -r stk0 oth0 < <(rss_split "${pid[httpd]}")
st0=$(status httpd)
say "after warm-up: RSS ${rss0} KiB, ${fd0} fds"

say "soak: $total requests, $conns connections"
: >"$work/rss.series"
read -r n bad se secs runs < <(run_until "$total")
[ -n "${n:-}" ] || die "soak run failed"
sleep 1
rss1=$(rss_kb "${pid[httpd]}"); fd1=$(fd_count "${pid[httpd]}")
read -r stk1 oth1 < <(rss_split "${pid[httpd]}")
st1=$(status httpd)
# A second look a few seconds later: is the growth still going?
sleep 3
rss2=$(rss_kb "${pid[httpd]}")

c() { counter "$1" <<<"$2"; }
rss_pct=$(awk -v a="$rss0" -v b="$rss1" 'BEGIN { printf "%+.2f", (b - a) * 100 / a }')
outstanding=$(c outstanding "$st1")
connects=$(( $(c backend_connects "$st1") - $(c backend_connects "$st0") ))
procs_n=$(c processes "$st1")
most=$(( conns > warm_conns ? conns : warm_conns ))
cap=$((procs_n * most))   # most requests one child can have in flight, summed
idle0=$(c idle_connections "$st0"); idle1=$(c idle_connections "$st1")
errs=$(( $(c errors "$st1") - $(c errors "$st0") ))
reqs=$(( $(c requests "$st1") - $(c requests "$st0") ))
allocated=$(( $(c buffers_allocated "$st1") - $(c buffers_allocated "$st0") ))

fail=()
[ "$n" -ge "$total" ] || fail+=("only $n of $total requests within ${limit}s")
[ "$bad" = 0 ] && [ "$se" = 0 ] || fail+=("wrk: $bad non-2xx, $se socket errors")
awk -v p="$rss_pct" 'BEGIN { exit !(p <= 1.0 && p >= -1.0) }' || fail+=("RSS changed $rss_pct%")
[ $((fd1 - fd0)) = $((idle1 - idle0)) ] || fail+=("fds $fd0 -> $fd1 while idle backend connections $idle0 -> $idle1")
[ "$outstanding" = 0 ] || fail+=("outstanding buffers $outstanding at rest")
[ "$(c backend_connects "$st1")" -le "$cap" ] || fail+=("$(c backend_connects "$st1") backend connections opened in all (> $cap)")
[ "$(c buffers_allocated "$st1")" -le "$cap" ] || fail+=("$(c buffers_allocated "$st1") apr buffers in all (> $cap)")
[ "${#fail[@]}" = 0 ] && verdict=PASS || verdict="FAIL: $(IFS=';'; echo "${fail[*]}")"

# The longest run alone: RSS before it (after the previous run) -> after it.
long=$(awk -v p="$rss0" '{ if ($1 > n) { n = $1; a = p; b = $2 } p = $2 }
       END { printf "%d requests: %d -> %d KiB (%+.2f%%)", n, a, b, (b - a) * 100 / a }' "$work/rss.series")
mkdir -p "$here/results"
{
    echo "# mod_rproxy soak, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "\`make soak SOAK_REQUESTS=$total SOAK_CONNS=$conns SOAK_WARM_CONNS=$warm_conns\` at $(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown);"
    echo "httpd event, $procs_n children x 256 threads, mod_rproxy pool apr; nginx backend;"
    echo "mix per 10 requests: 6 x 1 KiB, 3 x 64 KiB, 1 x 16 KiB chunked. $(nproc) cores."
    echo
    echo "| figure | value | target |"
    echo "|---|---:|---|"
    echo "| warm-up requests ($warm_conns connections) | $wn ($wbad non-2xx, $wse socket errors) | |"
    echo "| requests (wrk) | $n in ${secs}s, $runs wrk runs | >= $total |"
    echo "| requests (module's count) | $reqs | |"
    echo "| non-2xx / socket errors | $bad / $se | 0 / 0 |"
    echo "| module errors counter | $errs | |"
    echo "| RSS after warm-up -> after run | $rss0 -> $rss1 KiB ($rss_pct%) | within 1% |"
    echo "| RSS 3 s later | $rss2 KiB | |"
    echo "| of which thread stacks, after warm-up -> after run | $stk0 -> $stk1 KiB | |"
    echo "| all the rest (heap, arenas, code) | $oth0 -> $oth1 KiB ($(awk -v a="$oth0" -v b="$oth1" 'BEGIN { printf "%+.2f", (b - a) * 100 / a }')%) | |"
    echo "| RSS after each wrk run (KiB) | $(awk '{ printf "%s ", $2 }' "$work/rss.series") | |"
    echo "| RSS across the longest single wrk run | $long | |"
    echo "| open fds after warm-up -> after run | $fd0 -> $fd1 | grows only by idle backend conns |"
    echo "| idle backend connections after warm-up -> after run | $idle0 -> $idle1 | |"
    echo "| buffers outstanding at rest | $outstanding | 0 |"
    echo "| apr buffers allocated during run | $allocated (total $(c buffers_allocated "$st1")) | total <= $cap |"
    echo "| new backend connections during run | $connects (total $(c backend_connects "$st1"), reuses $(( $(c backend_reuses "$st1") - $(c backend_reuses "$st0") ))) | total <= $cap |"
    echo "| idle backend connections at rest | $idle1 (active $(c active_connections "$st1"); idle set may hold 256 per child) | |"
    echo
    echo "Bounds: $procs_n children x $most connections = $cap, the most requests that can"
    echo "ever be in flight in one child, summed; a pool that never churns opens at most that"
    echo "many backend connections and buffers.  Each wrk run reconnects, and the children"
    echo "share the connections differently each time, so the pool can still grow after"
    echo "warm-up up to that bound; every extra fd must be such an idle connection."
    echo
    echo "**$verdict**"
} >"$here/results/latest.md"
cat "$here/results/latest.md"
[ "$verdict" = PASS ]
