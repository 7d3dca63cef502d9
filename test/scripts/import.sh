#!/usr/bin/env bash
# Bulk import at a scale that append() cannot reach in one transaction.
#
# Starts a throwaway cluster of its own (port $ES_IMPORT_PORT, default 54423)
# with the default max_locks_per_transaction.  First the naive path: one
# transaction that appends to many streams with append() keeps one lock per
# stream to its end and fails with "out of shared memory" (53200).  Then
# import_events() loads 100,000 streams x 2 events (COPY into a staging table,
# one call), holding a handful of locks: every stream has versions 1..2, the
# positions are unique and follow the staging order, and an append continues
# an imported stream.  The import's memory does not grow with its rows.
# Finally the same import works with the library not preloaded.  Stops and deletes the cluster on exit; bounded to 120 s.
#
# Expects the extension to be installed already (scripts/test.sh does that).
#   ES_PG_CONFIG    pg_config of the installation to use
#   IMPORT_STREAMS  number of streams (default 100000)

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export ES_PRELOAD=1
export ES_PORT=${ES_IMPORT_PORT:-54423}
export ES_PGDATA=$(mktemp -d /tmp/eventstore-import.XXXXXX)
unset ES_SOCKDIR
source "$ES_ROOT/scripts/cluster.sh"
set +e                      # cluster.sh sets -e; failures are counted here
if [ -n "${ES_PG_CONFIG:-}" ]; then
    es_pg_config() { echo "$ES_PG_CONFIG"; }
fi
STREAMS=${IMPORT_STREAMS:-100000}

watchdog=
cleanup() {
    [ -n "$watchdog" ] && kill "$watchdog" 2>/dev/null
    wait 2>/dev/null
    es_stop_cluster
    rm -rf "$ES_PGDATA"
}
trap cleanup EXIT
trap 'exit 124' TERM INT
(
    trap 'kill $sleeper 2>/dev/null; exit 0' TERM
    sleep 120 & sleeper=$!
    wait $sleeper
    echo "import: TIMEOUT after 120 s, giving up" >&2
    kill -TERM $$
) &
watchdog=$!

failures=0
pass() { echo "ok - $*"; }
fail() { echo "not ok - $*"; failures=$((failures + 1)); }
check() {   # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: expected '$2', got '$3'"; fi
}

es_start_cluster || { echo "import: could not start the cluster" >&2; exit 1; }
PSQL="$(es_bindir)/psql"
q() { "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d import "$@"; }
# SQLSTATE of running the statement, 00000 on success
sqlstate() { "$PSQL" -X -q -At -v ON_ERROR_STOP=0 -d import -c "$1" -c '\echo :SQLSTATE' 2>/dev/null | tail -1; }
now_ms() { date +%s%3N; }

"$PSQL" -X -q -d postgres -c 'CREATE DATABASE import' || exit 1
q -c 'CREATE EXTENSION eventstore' || exit 1
check "max_locks_per_transaction is the default" "64" "$(q -c 'SHOW max_locks_per_transaction')"

# The naive path: append() to every stream in one transaction.
t0=$(now_ms)
check "one transaction appending to $STREAMS streams fails: out of shared memory" "53200" \
    "$(sqlstate "DO \$\$ BEGIN
        FOR i IN 1..$STREAMS LOOP
            PERFORM eventstore.append('naive-' || i, 0,
                ARRAY[eventstore.event('Opened', '{}'), eventstore.event('Deposited', '{\"n\": 1}')]);
        END LOOP; END \$\$")"
echo "# append() path failed after $(( $(now_ms) - t0 )) ms"
check "and stored nothing" "0" "$(q -c 'SELECT count(*) FROM eventstore.events')"

# The import: COPY into a staging table, then one call.  ord interleaves the
# streams (all first events, then all second events), as a log would.
q -c 'CREATE TABLE staging (LIKE eventstore.import_row)' || exit 1
t0=$(now_ms)
awk -v n="$STREAMS" 'BEGIN {
    for (v = 1; v <= 2; v++)
        for (i = 1; i <= n; i++)
            printf "%d\tacct-%d\t%d\t%s\t{\"n\": %d}\t\\N\t2020-01-0%d 00:00:00+00\t\\N\n",
                   (v - 1) * n + i, i, v, (v == 1 ? "Opened" : "Deposited"), i, v
}' | q -c 'COPY staging FROM STDIN' || exit 1
t1=$(now_ms)
out=$(q -c 'BEGIN' -c 'SELECT eventstore.import_events($$staging$$)' \
        -c 'SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid()' -c 'COMMIT')
t2=$(now_ms)
imported=$(echo "$out" | sed -n 1p); locks=$(echo "$out" | sed -n 2p)
echo "# COPY of $((2 * STREAMS)) rows: $((t1 - t0)) ms, import_events: $((t2 - t1)) ms"
check "import_events imports $((2 * STREAMS)) events in one call" "$((2 * STREAMS))" "$imported"
if [ -n "$locks" ] && [ "$locks" -lt 20 ]; then pass "the import holds $locks locks, not one per stream"
else fail "the import holds $locks locks"; fi
check "every stream has versions 1..2 in position order" "$STREAMS 0" \
    "$(q -c "SELECT count(*), count(*) FILTER (WHERE v <> '{1,2}')
               FROM (SELECT array_agg(stream_version ORDER BY global_position) v
                       FROM eventstore.events GROUP BY stream_id) s" | tr '|' ' ')"
check "positions are unique" "$((2 * STREAMS))" "$(q -c 'SELECT count(DISTINCT global_position) FROM eventstore.events')"
check "positions follow the staging order" "0" \
    "$(q -c "SELECT count(*) FROM (SELECT s.ord, rank() OVER (ORDER BY e.global_position) AS r
                                     FROM eventstore.events e
                                     JOIN staging s USING (stream_id, stream_version)) x
              WHERE x.ord <> x.r")"
check "read_all returns the imported log" "1000 1" \
    "$(q -c 'SELECT count(*), min(stream_version) FROM eventstore.read_all(0, 1000)' | tr '|' ' ')"
check "an append continues an imported stream" "3" \
    "$(q -c "SELECT stream_version FROM eventstore.append_event('acct-7', 2, 'Closed', '{}')")"
check "importing the same rows again is refused (ES409)" "ES409" "$(sqlstate 'SELECT eventstore.import_events($$staging$$)')"

# Memory: what the table AM allocates for a batch of 1,000 rows goes with
# the batch.  Before 0.7.0's fix it stayed to the end of the call, 8 kB a
# batch (80 MB for 10,000,000 rows): 200,000 more rows kept 1.6 MB more.  A
# statement trigger on the store, which fires before the call returns,
# records the size of the import's SPI memory after 100,000 and after
# 300,000 rows.
q -c "CREATE TABLE mem_seen (id serial, bytes bigint)" \
  -c "CREATE FUNCTION mem_probe() RETURNS trigger LANGUAGE plpgsql AS \$\$
      BEGIN
          INSERT INTO mem_seen (bytes)
          SELECT max(total_bytes) FROM pg_backend_memory_contexts WHERE name = 'SPI Proc';
          RETURN NULL;
      END \$\$" \
  -c "CREATE TRIGGER mem_probe AFTER INSERT ON eventstore.events
          FOR EACH STATEMENT EXECUTE FUNCTION mem_probe()" || exit 1
for rows in 100000 300000; do
    q -c 'TRUNCATE staging' -c "INSERT INTO staging
            SELECT i, 'mem$rows-' || (i % 1000), i / 1000 + 1, 'T', '{}', NULL, '2020-01-01', NULL
              FROM generate_series(0, $rows - 1) i" \
      -c 'SELECT eventstore.import_events($$staging$$)' >/dev/null || exit 1
done
sizes=$(q -c "SELECT string_agg(bytes::text, ' ' ORDER BY id) FROM mem_seen")
echo "# the import's SPI memory after 100,000 and 300,000 rows: $sizes bytes"
growth=$(q -c "SELECT max(bytes) FILTER (WHERE id = 2) - max(bytes) FILTER (WHERE id = 1) FROM mem_seen")
if [ -n "$growth" ] && [ "$growth" -lt 524288 ]; then pass "200,000 more imported rows keep $growth bytes more (< 512 kB)"
else fail "200,000 more imported rows keep '$growth' bytes more"; fi
q -c 'DROP TRIGGER mem_probe ON eventstore.events' || exit 1

# Without shared_preload_libraries.
es_as_pg sed -i '/^shared_preload_libraries/d' "$ES_PGDATA/postgresql.auto.conf"
es_as_pg "$(es_bindir)/pg_ctl" -D "$ES_PGDATA" -w -m fast restart -l "$ES_PGDATA/server.log" >/dev/null ||
    { echo "import: restart failed" >&2; exit 1; }
check "library not preloaded" "" "$(q -c "SELECT current_setting('shared_preload_libraries')")"
q -c 'TRUNCATE staging' -c "INSERT INTO staging
        SELECT i, 'np-' || (i % 100), i / 100 + 1, 'T', '{}', NULL, '2020-01-01', NULL
          FROM generate_series(0, 999) i" || exit 1
check "without preload: import_events imports 1000 events" "1000" "$(q -c 'SELECT eventstore.import_events($$staging$$)')"
check "without preload: streams np-* have versions 1..10" "100 10" \
    "$(q -c "SELECT count(DISTINCT stream_id), max(stream_version) FROM eventstore.events WHERE stream_id LIKE 'np-%'" | tr '|' ' ')"

echo "import: $failures failure(s)"
[ "$failures" = 0 ]
