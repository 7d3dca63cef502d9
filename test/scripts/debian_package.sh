#!/usr/bin/env bash
# The Debian package: build it, install it, use it, put things back.
#
#   1. the version is the same in eventstore.control, META.json (twice) and
#      debian/changelog, and debian/control is what `pg_buildext
#      updatecontrol` makes of debian/control.in;
#   2. `dpkg-buildpackage -us -uc -b` in a temporary copy of the tree (the
#      repository is left alone) produces postgresql-15-eventstore;
#   3. `dpkg -i` installs it; `dpkg -L` lists eventstore.so, the control file
#      and every install/upgrade script; `dpkg -V` finds the files intact;
#   4. a throwaway cluster of the system's PostgreSQL 15 (port
#      $DEBIAN_PORT, default 54422, library preloaded) runs CREATE EXTENSION
#      from the package's files: version 0.5.0, an append, a read;
#   5. afterwards the package is removed again (unless it was installed
#      before) and every file it replaced is restored byte for byte: what
#      `make install` (scripts/test.sh) put into /usr/lib/postgresql/15 and
#      /usr/share/postgresql/15 is there again for the other suites.
#
# Installs the build dependencies if missing (apt-get build-essential dpkg-dev debhelper
# postgresql-server-dev-all).  Without root or without them: a SKIP line,
# success only when CI is not set.  About a minute, mostly the build.

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ES_PORT=${DEBIAN_PORT:-54422}
ES_PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config   # the package installs here
source "$ES_ROOT/scripts/cluster.sh"
set +e
set -u

PKG=postgresql-15-eventstore
WORK=$(mktemp -d /tmp/eventstore-deb.XXXXXX)
ES_PGDATA=
failures=0
was_installed=0
installed_by_us=0
BACKUP=$WORK/backup

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
skip() {
    echo "SKIP: debian package: $*"
    if [ "${CI:-}" = true ]; then echo "FAIL: prerequisite missing under CI"; exit 1; fi
    exit 0
}

# Put the system back: remove the package if we installed it, then restore
# every file it replaced.  Files are restored by rename, never rewritten in
# place: a running server may have eventstore.so mapped.
restore() {
    es_stop_cluster
    [ -n "$ES_PGDATA" ] && rm -rf "$ES_PGDATA"
    if [ $installed_by_us = 1 ] && [ $was_installed = 0 ]; then
        dpkg -r "$PKG" >/dev/null 2>&1 || echo "FAIL: dpkg -r $PKG"
    fi
    if [ -d "$BACKUP" ]; then
        (cd "$BACKUP" && find . -type f) | while read -r f; do
            f=${f#.}
            mkdir -p "$(dirname "$f")"
            cp -p "$BACKUP$f" "$f.es-restore" && mv -f "$f.es-restore" "$f"
            cmp -s "$BACKUP$f" "$f" || echo "FAIL: could not restore $f"
        done | tee "$WORK/restore.log"
    fi
    local bad=0
    grep -q FAIL "$WORK/restore.log" 2>/dev/null && bad=1
    rm -rf "$WORK"
    [ $bad = 0 ] || exit 1
}
trap restore EXIT

# ---- 1. metadata ------------------------------------------------------------
control_version=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$ES_ROOT/eventstore.control")
meta_versions=$(perl -MJSON::PP -0777 -ne '
    my $m = decode_json($_); print "$m->{version} $m->{provides}{eventstore}{version}"' "$ES_ROOT/META.json")
deb_version=$(sed -n '1s/^[^ ]* (\([^)-]*\)-[^)]*).*/\1/p' "$ES_ROOT/debian/changelog")
[ "$meta_versions" = "$control_version $control_version" ] ||
    fail "META.json versions '$meta_versions', eventstore.control '$control_version'"
[ "$deb_version" = "$control_version" ] ||
    fail "debian/changelog version '$deb_version', eventstore.control '$control_version'"

# ---- build dependencies ----------------------------------------------------
need=()
for p in build-essential dpkg-dev debhelper postgresql-server-dev-all postgresql-15; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || skip "missing ${need[*]} and not root"
    es_log "installing ${need[*]}"
    mkdir -p /etc/postgresql-common
    grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf ||
        echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=120 update -qq >/dev/null 2>&1
    apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
        skip "cannot install ${need[*]}"
fi
[ "$(id -u)" = 0 ] || skip "dpkg -i needs root"

# ---- 2. build in a copy ----------------------------------------------------
mkdir -p "$WORK/src"
if git -C "$ES_ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # tracked and new files as they are in the work tree, no build products
    (cd "$ES_ROOT" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -xf - -C "$WORK/src"
else
    cp -a "$ES_ROOT/." "$WORK/src/"
fi
(cd "$WORK/src" && pg_buildext checkcontrol >"$WORK/checkcontrol.log" 2>&1) ||
    { cat "$WORK/checkcontrol.log"; fail "debian/control is not up to date with debian/control.in"; }

es_log "dpkg-buildpackage -us -uc -b"
start=$(date +%s)
if ! (cd "$WORK/src" && DEB_BUILD_OPTIONS="noddebs nocheck parallel=$(nproc)" \
        timeout 300 dpkg-buildpackage -us -uc -b >"$WORK/build.log" 2>&1); then
    tail -40 "$WORK/build.log"
    fail "dpkg-buildpackage failed"
    exit 1
fi
deb=$(ls "$WORK"/${PKG}_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || { fail "no ${PKG}_*.deb was built"; exit 1; }
echo "built $(basename "$deb") in $(( $(date +%s) - start )) s"

# ---- 3. install ------------------------------------------------------------
dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q 'install ok installed' && was_installed=1
# back up whatever sits where the package's files go (make install's copies)
dpkg-deb --fsys-tarfile "$deb" | tar -t | sed 's|^\.||' | while read -r f; do
    if [ -f "$f" ] && [ ! -L "$f" ]; then
        mkdir -p "$BACKUP$(dirname "$f")" && cp -p "$f" "$BACKUP$f"
    fi
done
if ! dpkg -i "$deb" >"$WORK/dpkg.log" 2>&1; then
    cat "$WORK/dpkg.log"; fail "dpkg -i"; exit 1
fi
installed_by_us=1
listed=$(dpkg -L "$PKG")
for f in /usr/lib/postgresql/15/lib/eventstore.so /usr/share/postgresql/15/extension/eventstore.control \
         /usr/include/postgresql/15/server/extension/eventstore/eventstore_hooks.h; do
    grep -qxF "$f" <<<"$listed" || fail "dpkg -L $PKG does not list $f"
done
for f in "$ES_ROOT"/sql/eventstore--*.sql; do
    grep -qxF "/usr/share/postgresql/15/extension/$(basename "$f")" <<<"$listed" ||
        fail "dpkg -L $PKG does not list $(basename "$f")"
done
verify=$(dpkg -V "$PKG" 2>&1)
[ -z "$verify" ] || fail "dpkg -V $PKG: $verify"

# ---- 4. use it -------------------------------------------------------------
ES_PGDATA=$(mktemp -d /tmp/eventstore-deb-pg.XXXXXX)
es_start_cluster
got=$(es_psql -d postgres -At -F' ' \
    -c 'CREATE EXTENSION eventstore' \
    -c "SELECT * FROM eventstore.append_event('deb-1', 0, 'Installed', '{\"from\": \"deb\"}')" \
    -c "SELECT extversion FROM pg_extension WHERE extname = 'eventstore'" \
    -c "SELECT stream_version, event_type, data->>'from' FROM eventstore.read_stream('deb-1')" \
    -c "SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries'" 2>&1)
want="1 1
$control_version
1 Installed deb
eventstore"
[ "$got" = "$want" ] || fail "the installed package: got '$got', want '$want'"

if [ $failures -gt 0 ]; then
    echo "debian package: $failures check(s) failed"
    exit 1
fi
echo "debian package: built, installed, CREATE EXTENSION $control_version and an append work"
exit 0
