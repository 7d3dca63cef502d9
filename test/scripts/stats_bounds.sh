#!/usr/bin/env bash
# The statistics' bound and lifetime, on a cluster of its own (port 54422,
# library preloaded, eventstore.stats_max_categories = 3):
#   - past 3 categories (and projections), new ones are counted under
#     "(other)", and nothing is lost: the rows add up to the store's totals;
#     stores other than the default one count against the bound too;
#   - counts flushed by many backends at once add up exactly;
#   - stats_reset() clears only the current database;
#   - a restart resets every counter (shared memory only).
# Bounded: 60 s at most; cleans up after itself.
#   ES_STATS_BOUNDS_PORT  port of the cluster (default 54422)

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export ES_PRELOAD=1
export ES_PORT=${ES_STATS_BOUNDS_PORT:-54422}
export ES_PGDATA=$(mktemp -d /tmp/eventstore-statsbounds.XXXXXX)
unset ES_SOCKDIR
source "$ES_ROOT/scripts/cluster.sh"
set +e
if [ -n "${ES_PG_CONFIG:-}" ]; then
    es_pg_config() { echo "$ES_PG_CONFIG"; }
fi
bg_pids=()
cleanup() {
    local p
    for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    es_stop_cluster
    rm -rf "$ES_PGDATA"
}
trap cleanup EXIT
trap 'exit 124' TERM INT
(
    trap 'kill $sleeper 2>/dev/null; exit 0' TERM
    sleep 60 & sleeper=$!
    wait $sleeper
    echo "stats_bounds: TIMEOUT after 60 s, giving up" >&2
    kill -TERM $$
) &
bg_pids+=($!)

failures=0
check() {   # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then echo "ok - $1"; else echo "not ok - $1: expected '$2', got '$3'"; failures=$((failures + 1)); fi
}

es_start_cluster || { echo "stats_bounds: could not start the cluster" >&2; exit 1; }
PSQL="$(es_bindir)/psql"
q() { local db=$1; shift; "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
"$PSQL" -X -q -d postgres -c "ALTER SYSTEM SET eventstore.stats_max_categories = 3" || exit 1
es_as_pg "$(es_bindir)/pg_ctl" -D "$ES_PGDATA" -m fast -w restart -l "$ES_PGDATA/server.log" >/dev/null
for db in sb1 sb2; do
    "$PSQL" -X -q -d postgres -c "CREATE DATABASE $db" || exit 1
    q $db -c 'CREATE EXTENSION eventstore' || exit 1
done
check "the bound is in force" "3" "$(q sb1 -c 'SHOW eventstore.stats_max_categories')"

# 6 categories in sb1, one append each, in separate transactions
for c in a b c d e f; do
    q sb1 -c "SELECT eventstore.append_event('$c-1', 0, 'X', '{}')" >/dev/null
done
check "3 categories counted by name, the other 3 under (other)" "a:1 b:1 c:1 (other):3" \
    "$(q sb1 -c "SELECT string_agg(category || ':' || appends, ' ' ORDER BY category = '(other)', category)
                   FROM eventstore.category_stats WHERE database = 'sb1'")"
# sb2: the named slots are taken cluster-wide, so its categories go to its own (other)
q sb2 -c "SELECT eventstore.append_event('g-1', 0, 'X', '{}')" >/dev/null
check "another database's new category goes to its (other)" "(other):1" \
    "$(q sb1 -c "SELECT string_agg(category || ':' || appends, ' ') FROM eventstore.category_stats WHERE database = 'sb2'")"

# 4 backends x 50 appends at the same time, every 10th a conflict: 6 + 4 x 45 = 186 appends, 20 conflicts
for w in 1 2 3 4; do
    q sb1 -c "DO \$\$ BEGIN FOR i IN 1..50 LOOP
                  BEGIN
                      IF i % 10 = 0 THEN
                          PERFORM eventstore.append_event('a-1', 0, 'X', '{}');
                      ELSE
                          PERFORM eventstore.append_event('b-$w', NULL, 'X', '{}');
                      END IF;
                  EXCEPTION WHEN SQLSTATE 'ES409' THEN NULL;
                  END;
                  COMMIT;
              END LOOP; END \$\$" >/dev/null &
    bg_pids+=($!)
done
wait "${bg_pids[@]:1}"
check "concurrent flushes add up: appends and conflicts" "186 20" \
    "$(q sb1 -c "SELECT appends || ' ' || conflicts FROM eventstore.stats WHERE database = 'sb1'")"
check "the category rows add up to the store's totals" "t" \
    "$(q sb1 -c "SELECT (SELECT sum(appends) FROM eventstore.category_stats WHERE database = 'sb1')
                      = (SELECT appends FROM eventstore.stats WHERE database = 'sb1')")"

# Another database's rows (its category names) are shown only to members of
# pg_read_all_stats: an admin of sb1 sees sb1's rows, pg_monitor sees both.
q sb1 -c "CREATE ROLE sb_admin" -c "SELECT eventstore.grant_access('sb_admin', 'admin')" \
      -c "CREATE ROLE sb_monitor IN ROLE pg_monitor" >/dev/null
check "an admin of sb1 sees only sb1's rows" "sb1|sb1" \
    "$(q sb1 -c "SET ROLE sb_admin" -c "SELECT (SELECT string_agg(DISTINCT database, ',') FROM eventstore.stats) || '|' ||
                                               (SELECT string_agg(DISTINCT database, ',') FROM eventstore.category_stats)")"
check "pg_monitor sees every database's rows" "sb1,sb2" \
    "$(q sb1 -c "SET ROLE sb_monitor" -c "SELECT string_agg(DISTINCT database, ',' ORDER BY database) FROM eventstore.category_stats")"
q sb1 -c "DROP OWNED BY sb_admin" -c "DROP ROLE sb_admin" -c "DROP ROLE sb_monitor" >/dev/null

# stats_reset clears the current database only, and frees its named slots
q sb2 -c "SELECT eventstore.stats_reset()" >/dev/null
check "stats_reset in sb2 leaves sb1" "0 186" \
    "$(q sb1 -c "SELECT (SELECT count(*) FROM eventstore.stats WHERE database = 'sb2') || ' ' ||
                        (SELECT appends FROM eventstore.stats WHERE database = 'sb1')")"
q sb1 -c "SELECT eventstore.stats_reset()" >/dev/null
q sb2 -c "SELECT eventstore.append_event('h-1', 0, 'X', '{}')" >/dev/null
check "after sb1's reset its named slots are free again" "h:1" \
    "$(q sb2 -c "SELECT string_agg(category || ':' || appends, ' ') FROM eventstore.category_stats WHERE database = 'sb2'")"

# stores other than the default one count against the bound too: with the
# three named slots taken (sb2's h, sb1's p and q), a new store's totals go
# under the store "(other)", its categories under its own "(other)"
q sb1 -c "SELECT eventstore.create_store('public.sb_store')" \
      -c "SELECT eventstore.append_event('p-1', 0, 'X', '{}')" \
      -c "SELECT eventstore.append_event('q-1', 0, 'X', '{}')" \
      -c "SELECT eventstore.append_event('r-1', 0, 'X', '{}', store => 'public.sb_store')" >/dev/null
check "a store past the bound is counted under the store (other)" "(other):1 eventstore.events:2" \
    "$(q sb1 -c "SELECT string_agg(store || ':' || appends, ' ' ORDER BY store) FROM eventstore.stats WHERE database = 'sb1'")"
check "its categories under its own (other)" "public.sb_store/(other):1" \
    "$(q sb1 -c "SELECT string_agg(store || '/' || category || ':' || appends, ' ') FROM eventstore.category_stats
                  WHERE database = 'sb1' AND store <> 'eventstore.events'")"

# a restart resets everything
es_as_pg "$(es_bindir)/pg_ctl" -D "$ES_PGDATA" -m fast -w restart -l "$ES_PGDATA/server.log" >/dev/null
check "after a restart no counters remain" "0" "$(q sb1 -c "SELECT count(*) FROM eventstore._stats()")"

echo
if [ $failures = 0 ]; then echo "stats_bounds: PASS"; else echo "stats_bounds: $failures check(s) FAILED"; fi
exit $((failures > 0))
