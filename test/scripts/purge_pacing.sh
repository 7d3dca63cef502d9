#!/usr/bin/env bash
# The relay worker's purge is paced: batches of eventstore.purge_batch_size,
# eventstore.purge_delay apart while there is more, without waiting for the
# 10-second period between full batches.
#
# On a throwaway cluster of its own (port $ES_PURGE_PACING_PORT, default
# 54438, library preloaded, fsync off): 100 events in 4 streams are
# soft-deleted, with purge_batch_size = 10 and purge_delay = 400 ms; the
# worker's purge is then switched on while a client keeps appending (its
# commits wake the worker, which must not bring a batch forward).  Checks,
# from the audit log (one transaction per batch: its rows share an xmin):
#   - every hidden event is purged, in exactly 10 batches;
#   - consecutive batches are at least 400 ms apart (the last audit row of
#     one to the first of the next: a lower bound, no timing flakiness);
#   - and less than 5 s apart (not the 10-second period).
# Exits non-zero on any violation; bounded to 90 s.
#
# Expects the extension to be installed already (scripts/test.sh does that).

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export ES_PRELOAD=1
export ES_FSYNC=off
export ES_PORT=${ES_PURGE_PACING_PORT:-54438}
export ES_PGDATA=$(mktemp -d /tmp/eventstore-purge-pacing.XXXXXX)
unset ES_SOCKDIR
source "$ES_ROOT/scripts/cluster.sh"
set +e                      # cluster.sh sets -e; failures are counted here
if [ -n "${ES_PG_CONFIG:-}" ]; then
    es_pg_config() { echo "$ES_PG_CONFIG"; }
fi

failures=0
check() {   # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then echo "ok - $1"; else echo "not ok - $1: expected '$2', got '$3'"; failures=$((failures + 1)); fi
}
appender=
cleanup() {
    [ -n "$appender" ] && kill "$appender" 2>/dev/null
    wait 2>/dev/null
    es_stop_cluster
    rm -rf "$ES_PGDATA"
}
trap cleanup EXIT

es_start_cluster >/dev/null 2>&1 || { echo "not ok - cluster did not start"; exit 1; }
q() { es_psql -d pacing -At -c "$1"; }
es_psql -d postgres -c 'ALTER SYSTEM SET eventstore.relay_purge = off' \
    -c 'ALTER SYSTEM SET eventstore.purge_batch_size = 10' \
    -c "ALTER SYSTEM SET eventstore.purge_delay = '400ms'" -c 'SELECT pg_reload_conf()' \
    -c 'CREATE DATABASE pacing' >/dev/null
es_psql -d pacing -c 'CREATE EXTENSION eventstore' \
    -c "SELECT count(eventstore.append_event('gone-' || (i % 4), NULL, 'E', '{}')) FROM generate_series(1, 100) i" \
    -c "SELECT count(eventstore.delete_stream('gone-' || i, NULL)) FROM generate_series(0, 3) i" \
    -c "SELECT eventstore.add_route('pacing', NULL)" >/dev/null
# a client appending (and, through the route, waking the worker) meanwhile
( for _ in $(seq 1 400); do
      es_psql -d pacing -c "SELECT eventstore.append_event('keep-1', NULL, 'E', '{}')" >/dev/null 2>&1 || break
      sleep 0.05
  done ) &
appender=$!
es_psql -d postgres -c 'ALTER SYSTEM SET eventstore.relay_purge = on' -c 'SELECT pg_reload_conf()' >/dev/null

left=100
for _ in $(seq 1 120); do
    left=$(q "SELECT count(*) FROM eventstore.events WHERE stream_id LIKE 'gone-%'")
    [ "$left" = 0 ] && break
    sleep 0.5
done
check "the worker purged every hidden event" 0 "$left"
check "in batches of purge_batch_size: 10 batches" 10 \
    "$(q "SELECT count(DISTINCT xmin::text) FROM eventstore.lifecycle_log WHERE action = 'purge'")"
gaps=$(q "WITH b AS (SELECT min(at) AS first, max(at) AS last FROM eventstore.lifecycle_log
                      WHERE action = 'purge' GROUP BY xmin::text),
               g AS (SELECT first - lag(last) OVER (ORDER BY first) AS gap FROM b)
          SELECT coalesce(bool_and(gap >= interval '400 ms'), false) || ' ' || coalesce(bool_and(gap < interval '5 s'), false)
                 || ' ' || count(gap) || ' ' || coalesce(min(gap)::text, '-') || ' ' || coalesce(max(gap)::text, '-')
            FROM g WHERE gap IS NOT NULL")
echo "# gaps between batches (ok ok count min max): $gaps"
read -r slow_enough fast_enough _ <<<"$gaps"
check "batches are purge_delay apart (>= 400 ms)" true "$slow_enough"
check "and not the 10 s period apart (< 5 s)" true "$fast_enough"
kill "$appender" 2>/dev/null
if [ "$failures" -gt 0 ]; then echo "purge_pacing: $failures failure(s)"; exit 1; fi
echo "purge_pacing: ok"
