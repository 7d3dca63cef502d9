#!/usr/bin/env bash
# Command two: run every test suite against a throwaway cluster, then stop it.
# On a fresh Debian 12 machine as root it first installs what is missing and
# builds with -Wall -Wextra -Werror.  Suites:
#   pg_regress   sql/*.sql against expected/*.out      (make installcheck)
#   isolation    specs/*.spec against expected/*.out   (make installcheck)
#   pgTAP        test/pgtap/*.sql                       (pg_prove)
#   scripts      test/scripts/*.sh: stress, no-preload, crash/restart
# Ends with one line "N passed, N failed"; exits non-zero if anything failed.
ES_PORT=${ES_PORT:-54331}
source "$(dirname "$0")/cluster.sh"

es_install_deps
es_build_install
ES_PGDATA=$(mktemp -d /tmp/eventstore-test.XXXXXX)
trap 'es_stop_cluster; rm -rf "$ES_PGDATA"' EXIT
es_start_cluster
# The regression tests call purge() themselves and count what it removes:
# the relay worker's own purge (eventstore.relay_purge) would race them.
# test/scripts/purge_crash.sh tests the worker's purge on its own cluster.
es_psql -d postgres -c 'ALTER SYSTEM SET eventstore.relay_purge = off' -c 'SELECT pg_reload_conf()' >/dev/null

passed=0; failed=0; failures=()
suite() {
    local name=$1; shift
    es_log "suite: $name"
    if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$name"); fi
}

# pg_regress and isolation share one make target; they run as root against
# the cluster (only initdb and postgres refuse root).
regress() {
    local rc=0
    make -C "$ES_ROOT" -s PG_CONFIG="$(es_pg_config)" installcheck || rc=$?
    if [ $rc != 0 ]; then
        for f in "$ES_ROOT"/regression.diffs "$ES_ROOT"/output_iso/regression.diffs; do
            [ -f "$f" ] && { echo "---- $f"; head -c 20000 "$f"; }
        done
    fi
    return $rc
}
suite "pg_regress + isolation" regress

# The C hook, from a test extension built against the installed header.
hook_module() {
    local dir=$ES_ROOT/test/modules/es_hook_test rc=0
    make -C "$dir" -s PG_CONFIG="$(es_pg_config)" PG_CFLAGS="${ES_CFLAGS:--Wall -Wextra -Werror}" \
        clean all install installcheck || rc=$?
    if [ $rc != 0 ] && [ -f "$dir/regression.diffs" ]; then
        echo "---- $dir/regression.diffs"; head -c 20000 "$dir/regression.diffs"
    fi
    return $rc
}
suite "C hook module" hook_module

prove_tap() {
    es_psql -d postgres -c 'DROP DATABASE IF EXISTS eventstore_tap' -c 'CREATE DATABASE eventstore_tap'
    es_psql -d eventstore_tap -c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION eventstore'
    pg_prove -d eventstore_tap -U postgres -h "$PGHOST" -p "$PGPORT" --ext .sql -r "$ES_ROOT/test/pgtap"
}
suite "pgTAP" prove_tap

for script in "$ES_ROOT"/test/scripts/*.sh; do
    [ -e "$script" ] || continue
    suite "$(basename "$script")" bash "$script"
done

echo
[ $failed -gt 0 ] && printf 'failed suites: %s\n' "${failures[*]}"
echo "suites: $passed passed, $failed failed"
[ $failed = 0 ]
