#!/bin/bash
# make mutate: applies each mutate/NN-name.patch (a realistic one-line bug)
# to a scratch copy of the tree, one at a time, builds it and runs the test
# files its "Tests:" line names.  A mutant is killed when that run fails,
# survived when it passes.  Prints one line per mutant, the kill rate, and
# exits non-zero if any survived (or the unmutated baseline fails).
#
#   MUTATE_PORT    first test-server port (default 9700; keep runs >= 10 apart)
#   MUTATE_ONLY    a glob of patch names to run (default: all)
#   MUTATE_TIMEOUT seconds per mutant's test run (default 300)
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
port=${MUTATE_PORT:-9700}
only=${MUTATE_ONLY:-*}
limit=${MUTATE_TIMEOUT:-300}
scratch=$(mktemp -d /tmp/rproxy-mutate.XXXXXX)
tree=$scratch/tree
log=$scratch/log
trap 'rm -rf "$scratch"' EXIT

# The tracked files as they are in the work tree (uncommitted edits too).
mkdir -p "$tree"
(cd "$top" && git ls-files -z | xargs -0 cp --parents -t "$tree")
chmod -R a+rX "$scratch"     # the test server's children run as nobody

header() { sed -n "s/^$1: //p" "$2" | head -1; }

run_tests() {   # $1: the test files; returns the suite's status
    (cd "$tree" && make -s all >"$log" 2>&1) || return 2
    (cd "$tree" && perl t/TEST.PL -clean >/dev/null 2>&1
     APACHE_TEST_PORT=$port timeout "$limit" perl t/TEST.PL $1 >>"$log" 2>&1)
}

patches=$(ls "$top"/mutate/$only.patch 2>/dev/null)
all_tests=$(for p in $patches; do header Tests "$p"; done | tr ' ' '\n' | sort -u | tr '\n' ' ')
echo "baseline: $all_tests"
if ! run_tests "$all_tests"; then
    echo "baseline FAILS unmutated; see below" >&2
    tail -30 "$log" >&2
    exit 2
fi

killed=0 survived=0 skipped=0 survivors=""
for p in $patches; do
    name=$(basename "$p" .patch)
    tests=$(header Tests "$p")
    needs=$(header Needs "$p")
    if [ -n "$needs" ] && ! (cd "$tree" && bash -c "$needs") >/dev/null 2>&1; then
        printf '%-36s not run here (its Needs: command fails)\n' "$name"
        skipped=$((skipped + 1))
        continue
    fi
    if ! (cd "$tree" && git apply "$p"); then
        printf '%-36s PATCH DOES NOT APPLY\n' "$name"
        survived=$((survived + 1)); survivors="$survivors $name"
        continue
    fi
    start=$(date +%s)
    run_tests "$tests"; rc=$?
    (cd "$tree" && git apply -R "$p")
    secs=$(( $(date +%s) - start ))
    if [ $rc -eq 2 ]; then
        printf '%-36s does not build (%ss)\n' "$name" "$secs"
        survived=$((survived + 1)); survivors="$survivors $name"
    elif [ $rc -ne 0 ]; then
        failed=$(grep -E '^Failed tests?:' "$log" | head -1 | sed 's/^ *//')
        printf '%-36s killed   by %s (%ss)%s\n' "$name" "$tests" "$secs" \
               "${failed:+: $failed}"
        killed=$((killed + 1))
    else
        printf '%-36s SURVIVED %s (%ss)\n' "$name" "$tests" "$secs"
        survived=$((survived + 1)); survivors="$survivors $name"
    fi
done
(cd "$tree" && make -s all >/dev/null 2>&1; perl t/TEST.PL -clean >/dev/null 2>&1)
total=$((killed + survived))
echo "killed $killed of $total ($(( total ? 100 * killed / total : 0 ))%), $skipped not run here${survivors:+; survived:$survivors}"
[ $survived -eq 0 ]
