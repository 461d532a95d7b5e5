#!/bin/bash
# t/install-check.sh (make install-check): `make install` and `make
# uninstall` against the live system, as root.  Snapshots the directories
# they touch (httpd's module, include and config dirs, /var/lib/apache2,
# names under /etc, /usr/include, /usr/local) and checks:
#
#   1. make install adds exactly mod_rproxy.so, mod_rproxy.h, rproxy.load
#      and rproxy.conf, as shipped, mode 644, and changes nothing else;
#      a second make install changes nothing; make uninstall gives back
#      exactly the first snapshot;
#   2. an edited rproxy.conf survives make install, the shipped one goes
#      beside it as rproxy.conf.dist;
#   3. make uninstall refuses while the module is enabled (a2enmod rproxy)
#      and then removes nothing;
#   4. after a2dismod, make uninstall removes everything but the edited
#      rproxy.conf, which it keeps; removing that by hand gives back
#      exactly the first snapshot.
#
# Refuses to start if any of mod_rproxy's files is already installed.
# Whatever happens, it removes what it installed on exit, and fails loudly
# if the system then differs from the first snapshot.  a2enmod/a2dismod
# keep their state markers in a scratch directory (APACHE_STATE_DIRECTORY),
# not in /var/lib/apache2.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

fail() { echo "install-check: FAIL: $*" >&2; exit 1; }
say() { echo "== install-check: $*"; }

[ "$(id -u)" = 0 ] || fail "run as root: it installs into the live system"
apxs=${APXS:-$(command -v apxs || echo /usr/bin/apxs)}
[ -x "$apxs" ] || fail "apxs not found: run 'make deps' (as root) first"
libexec=$("$apxs" -q LIBEXECDIR)
include=$("$apxs" -q INCLUDEDIR)
sysconf=$("$apxs" -q SYSCONFDIR)
for d in "$libexec" "$include" "$sysconf"; do
    [ -n "$d" ] && [ -d "$d" ] || fail "apxs -q gave a missing directory: '$d'"
done
avail=$sysconf/mods-available
enabled=$sysconf/mods-enabled

so=$libexec/mod_rproxy.so
hdr=$include/mod_rproxy.h
load=$avail/rproxy.load
conf=$avail/rproxy.conf
ours=("$so" "$hdr" "$load" "$conf" "$load.dist" "$conf.dist"
      "$enabled/rproxy.load" "$enabled/rproxy.conf")

for f in "${ours[@]}"; do
    if [ -e "$f" ] || [ -L "$f" ]; then
        fail "$f exists already: this check needs a system without mod_rproxy (make uninstall first)"
    fi
done

work=$(mktemp -d /tmp/rproxy-install-check.XXXXXX)
export APACHE_STATE_DIRECTORY=$work/a2state

# snapshot FILE: one line per entry: type, mode, owner, group, path, and a
# content hash for files, the target for links.  Directories' times and
# sizes are left out (they change when an entry comes and goes); entries
# of the name-only trees are listed by name.
snapshot() {
    {
        find "$libexec" "$include" "$sysconf" /usr/lib/apache2 /usr/share/apache2 \
             /var/lib/apache2 -xdev \
             -printf '%y %m %u %g %p -> %l\n' 2>/dev/null | sort -u |
        while IFS= read -r line; do
            case $line in
                f\ *) p=${line#* * * * }; p=${p% -> }
                      echo "$line $(md5sum <"$p" | cut -d' ' -f1)" ;;
                *) echo "$line" ;;
            esac
        done
        find /etc /usr/include /usr/local -xdev -printf 'name %p\n' 2>/dev/null | sort
    } >"$1"
}

# expect_diff BEFORE AFTER LABEL PATH...: the paths of the lines AFTER adds
# (or changes) must be exactly PATH..., and it must lose no line of BEFORE
# but the changed ones.
paths_of() { sed -e 's/^name //' -e 's/^[a-z] [0-7]* [^ ]* [^ ]* //' -e 's/ -> .*//' | sort -u; }
expect_diff() {
    local before=$1 after=$2 label=$3; shift 3
    local added removed want
    added=$(comm -13 "$before" "$after" | paths_of)
    removed=$(comm -23 "$before" "$after" | paths_of)
    want=$(printf '%s\n' "$@" | sed '/^$/d' | sort -u)
    # A changed file shows as removed and added: only expected paths may.
    if [ "$added" != "$want" ] || [ -n "$(comm -23 <(echo "$removed" | sed '/^$/d') <(echo "$want"))" ]; then
        echo "install-check: $label: expected new or changed:" >&2
        printf '  %s\n' "$@" >&2
        echo "got new or changed:" >&2; echo "$added" | sed 's/^/  /' >&2
        echo "got gone or changed:" >&2; echo "$removed" | sed 's/^/  /' >&2
        echo "diff:" >&2; diff "$before" "$after" >&2 || true
        fail "$label"
    fi
    say "$label: ok"
}

same() { cmp -s "$1" "$2" || { diff "$1" "$2" >&2 || true; fail "$3"; }; say "$3: ok"; }

# On any exit: disable and remove whatever of ours is there, then compare
# with the first snapshot.
cleanup() {
    rc=$?
    set +e
    if [ -e "$enabled/rproxy.load" ] || [ -L "$enabled/rproxy.load" ]; then
        a2dismod -q -f rproxy >/dev/null 2>&1
        [ "${slotmem_was_on:-1}" = 1 ] || a2dismod -q -f slotmem_shm >/dev/null 2>&1
    fi
    rm -f "${ours[@]}"
    if [ -s "$work/s0" ]; then
        snapshot "$work/end"
        if ! cmp -s "$work/s0" "$work/end"; then
            echo "install-check: FAIL: the system differs from before the check:" >&2
            diff "$work/s0" "$work/end" >&2
            rc=1
        fi
    fi
    rm -rf "$work"
    if [ "$rc" = 0 ]; then say "PASS"; else echo "install-check: FAILED" >&2; fi
    exit "$rc"
}
trap cleanup EXIT

make -s all
snapshot "$work/s0"
[ -s "$work/s0" ] || fail "empty snapshot"

# 1. install, reinstall, uninstall
say "make install"
make install >"$work/out" 2>&1 || { cat "$work/out"; fail "make install"; }
cat "$work/out"
snapshot "$work/s1"
expect_diff "$work/s0" "$work/s1" "make install adds exactly our four files" \
    "$so" "$hdr" "$load" "$conf"
cmp -s .libs/mod_rproxy.so "$so" || fail "$so is not the build's"
cmp -s mod_rproxy.h "$hdr" || fail "$hdr is not mod_rproxy.h"
cmp -s conf/rproxy.load "$load" || fail "$load is not conf/rproxy.load"
cmp -s conf/rproxy.conf "$conf" || fail "$conf is not conf/rproxy.conf"
for f in "$so" "$hdr" "$load" "$conf"; do
    [ "$(stat -c %a "$f")" = 644 ] || fail "$f: mode $(stat -c %a "$f"), not 644"
done

say "make install again"
make install >"$work/out" 2>&1 || { cat "$work/out"; fail "second make install"; }
snapshot "$work/s1b"
same "$work/s1" "$work/s1b" "a second make install changes nothing"

say "make uninstall"
make uninstall >"$work/out" 2>&1 || { cat "$work/out"; fail "make uninstall"; }
cat "$work/out"
snapshot "$work/s2"
same "$work/s0" "$work/s2" "make uninstall restores the system exactly"

# 2. an edited rproxy.conf
say "make install, edit rproxy.conf, make install"
make install >/dev/null 2>&1 || fail "make install"
echo "# edited by t/install-check.sh" >>"$conf"
cp "$conf" "$work/edited"
make install >"$work/out" 2>&1 || { cat "$work/out"; fail "make install over an edited rproxy.conf"; }
cat "$work/out"
cmp -s "$work/edited" "$conf" || fail "make install overwrote the edited $conf"
cmp -s conf/rproxy.conf "$conf.dist" || fail "$conf.dist is not conf/rproxy.conf"
grep -qF "$conf.dist" "$work/out" || fail "make install did not say where the shipped rproxy.conf went"
snapshot "$work/s3"
expect_diff "$work/s0" "$work/s3" "edited rproxy.conf kept, rproxy.conf.dist beside it" \
    "$so" "$hdr" "$load" "$conf" "$conf.dist"

# 3. uninstall refuses while enabled
say "a2enmod rproxy; make uninstall must refuse"
# rproxy.load says "# Depends: slotmem_shm": a2enmod enables that too, and
# a2dismod rproxy leaves it, as for any dependency; the check takes back
# what it enabled.
slotmem_was_on=0
[ -e "$enabled/slotmem_shm.load" ] && slotmem_was_on=1
a2enmod -q rproxy >/dev/null
[ -e "$enabled/slotmem_shm.load" ] || fail "a2enmod rproxy did not enable slotmem_shm, its dependency"
snapshot "$work/s4"
if make uninstall >"$work/out" 2>&1; then
    cat "$work/out"; fail "make uninstall went ahead while the module is enabled"
fi
cat "$work/out"
snapshot "$work/s4b"
same "$work/s4" "$work/s4b" "make uninstall of an enabled module removes nothing"
a2dismod -q rproxy >/dev/null
[ "$slotmem_was_on" = 1 ] || a2dismod -q slotmem_shm >/dev/null
snapshot "$work/s5"
same "$work/s3" "$work/s5" "a2dismod gives back the installed state"

# 4. uninstall keeps the edited rproxy.conf
say "make uninstall with an edited rproxy.conf"
make uninstall >"$work/out" 2>&1 || { cat "$work/out"; fail "make uninstall"; }
cat "$work/out"
cmp -s "$work/edited" "$conf" || fail "make uninstall did not keep the edited $conf"
grep -qF "$conf" "$work/out" || fail "make uninstall did not say it kept $conf"
snapshot "$work/s6"
expect_diff "$work/s0" "$work/s6" "make uninstall leaves only the edited rproxy.conf" "$conf"
rm -f "$conf"
snapshot "$work/s7"
same "$work/s0" "$work/s7" "without the edited rproxy.conf the system is as before"
