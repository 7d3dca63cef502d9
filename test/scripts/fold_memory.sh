#!/usr/bin/env bash
# Memory of long folds: rebuild_projection over a large log, and aggregate()
# and a snapshot policy over a long stream whose state grows, keep the
# backend's memory bounded (issue 10, item 8).
#
# On a throwaway cluster of its own (port FOLD_MEMORY_PORT, default 54430,
# library preloaded, fsync off, shared_buffers 16MB so that the shared pages a
# backend touches add at most 16 MB to its resident size), stopped and
# deleted on exit.  Events are bulk-loaded straight into eventstore.events as
# superuser (generate_series, event ids in order so the indexes load
# fast; no handler runs):
#   - FOLD_EVENTS events (default 1,000,000) of type Bulk in streams of 1,000,
#     each with ~150 bytes of data;
#   - one stream grow-1 of FOLD_STREAM events (default 100,000) minus one.
# Then, each in a new session, with the backend's VmHWM (peak resident size,
# /proc/PID/status) read before and after:
#   1. rebuild_projection of a projection whose SQL handler sees every Bulk
#      event (it records the first event of each stream): returns
#      FOLD_EVENTS, the handler's table is right;
#   2. aggregate() of grow-1 with a reducer whose state is a counter and an
#      array that gains an element every 100 events (so the state grows to
#      ~1,000 elements, ~7 KB): the counter is FOLD_STREAM - 1;
#   3. append_event to grow-1 that crosses the period of a snapshot policy
#      (every FOLD_STREAM, same reducer, no earlier snapshot): the policy
#      folds the whole stream; its snapshot's counter is FOLD_STREAM.
# Each step must grow the backend's VmHWM by less than FOLD_MEMORY_LIMIT_MB
# (default 64).  Why 64 MB: what a bounded fold needs is shared buffers
# (16 MB), the handler's or reducer's plans, one batch of 1,000 rows and two
# states -- a few MB (measured: +17, +21, +22 MB); 0.4.0 kept every row
# copy (+276 MB for the 1,000,000-event rebuild) and every intermediate state
# (+1632 MB for the 100,000-event fold, +1631 MB for the policy's) until the
# end.  About a minute (two when the 2 cores are busy), most of it the bulk
# load.
# Prints each step's figures; exits non-zero on a failure.
#
# Expects the extension to be installed already (scripts/test.sh does that).
#   ES_PG_CONFIG         pg_config of the installation to use
#   FOLD_MEMORY_PORT     port (default 54430)
#   FOLD_EVENTS          events for the rebuild (default 1000000)
#   FOLD_STREAM          events of the folded stream (default 100000)
#   FOLD_MEMORY_LIMIT_MB bound on each step's VmHWM growth (default 64)

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export ES_PORT=${FOLD_MEMORY_PORT:-54430}
export ES_PGDATA=$(mktemp -d /tmp/eventstore-foldmem.XXXXXX)
export ES_PRELOAD=1
export ES_FSYNC=off
unset ES_SOCKDIR
source "$ES_ROOT/scripts/cluster.sh"
set +e                      # cluster.sh sets -e; failures are counted here
if [ -n "${ES_PG_CONFIG:-}" ]; then
    es_pg_config() { echo "$ES_PG_CONFIG"; }
fi

EVENTS=${FOLD_EVENTS:-1000000}
STREAM=${FOLD_STREAM:-100000}
LIMIT_MB=${FOLD_MEMORY_LIMIT_MB:-64}
failures=0

cleanup() {
    es_stop_cluster
    rm -rf "$ES_PGDATA"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

if ! es_start_cluster; then
    echo "FAIL: cluster did not start"; exit 1
fi

psql_q() { es_psql -d postgres -At "$@"; }

start=$SECONDS
psql_q <<SQL || { echo "FAIL: setup"; exit 1; }
CREATE EXTENSION eventstore;
INSERT INTO eventstore.events (global_position, stream_id, stream_version, event_id, event_type, data)
SELECT pg_catalog.nextval('eventstore.events_global_position_seq'), 'bulk-' || (g / 1000), g % 1000 + 1,
       lpad(to_hex(g), 32, '0')::uuid, 'Bulk',
       jsonb_build_object('i', g, 'note', repeat('x', 120))
  FROM generate_series(0, $EVENTS - 1) g;
INSERT INTO eventstore.events (global_position, stream_id, stream_version, event_id, event_type, data)
SELECT pg_catalog.nextval('eventstore.events_global_position_seq'), 'grow-1', g,
       lpad(to_hex(g), 32, '0')::uuid, 'Grew', jsonb_build_object('i', g)
  FROM generate_series(1, $STREAM - 1) g;
CREATE TABLE public.firsts (pos bigint, i bigint);
CREATE FUNCTION public.record_first(e eventstore.events) RETURNS void LANGUAGE sql AS \$\$
    INSERT INTO public.firsts SELECT (e).global_position, ((e).data->>'i')::bigint
     WHERE (e).stream_version = 1 \$\$;
CREATE FUNCTION public.forget_firsts() RETURNS void LANGUAGE sql AS \$\$ DELETE FROM public.firsts \$\$;
SELECT eventstore.register_projection('firsts', 'public.record_first(eventstore.events)',
                                      ARRAY['Bulk'], 'public.forget_firsts()');
-- A counter, and an array that gains an element every 100 events.
CREATE FUNCTION public.grow(s jsonb, e eventstore.events) RETURNS jsonb LANGUAGE sql AS \$\$
    SELECT CASE WHEN (e).stream_version % 100 = 0
                THEN jsonb_build_object('n', (s->>'n')::bigint + 1,
                                        'items', (s->'items') || to_jsonb((e).stream_version))
                ELSE jsonb_set(s, '{n}', to_jsonb((s->>'n')::bigint + 1)) END \$\$;
SELECT eventstore.set_snapshot_policy('grown', 'public.grow(jsonb, eventstore.events)', $STREAM,
                                      '{"n": 0, "items": []}', ARRAY['grow']);
-- Statistics now, not whenever autovacuum gets to it: on a table never
-- analyzed the rebuild's scan is estimated above jit_above_cost, and JIT
-- (LLVM loaded into the backend, about 60 MB) would be measured instead of
-- the fold (first seen once 0.5.0 added the tags column).
ANALYZE eventstore.events;
SQL
echo "loaded $EVENTS + $((STREAM - 1)) events in $((SECONDS - start)) s"

# Loaded with the default shared_buffers (faster); measured with 16MB.
# es_start_cluster wrote the settings as it started: add it, restart.
echo "shared_buffers = 16MB" | es_as_pg tee -a "$ES_PGDATA/postgresql.auto.conf" >/dev/null
es_as_pg "$(es_bindir)/pg_ctl" -D "$ES_PGDATA" -l "$ES_PGDATA/server.log" -w -t 60 -m fast restart >/dev/null ||
    { echo "FAIL: cluster did not restart"; exit 1; }
[ "$(psql_q -c 'SHOW shared_buffers')" = 16MB ] || fail "shared_buffers is not 16MB"

# Run the SQL in one session; print "result hwm_before_kB hwm_after_kB".
measure() {
    psql_q -F ' ' <<SQL
SELECT pg_catalog.pg_backend_pid() AS pid \gset
\setenv ES_PID :pid
\! awk '/^VmHWM/ {print \$2}' /proc/\$ES_PID/status > $ES_PGDATA/hwm.before
SELECT ($1) AS result \gset
\! awk '/^VmHWM/ {print \$2}' /proc/\$ES_PID/status > $ES_PGDATA/hwm.after
\echo :result
SQL
}

check() {
    local name=$1 want=$2 sql=$3 t0=$SECONDS out before after grown
    out=$(measure "$sql" 2>&1)
    before=$(cat "$ES_PGDATA/hwm.before" 2>/dev/null)
    after=$(cat "$ES_PGDATA/hwm.after" 2>/dev/null)
    rm -f "$ES_PGDATA/hwm.before" "$ES_PGDATA/hwm.after"
    if [ -z "$before" ] || [ -z "$after" ]; then
        fail "$name: no figures ($out)"; return
    fi
    grown=$(( (after - before) / 1024 ))
    echo "$name: result $out, VmHWM $((before / 1024)) MB -> $((after / 1024)) MB (+$grown MB), $((SECONDS - t0)) s"
    [ "$out" = "$want" ] || fail "$name: result $out, expected $want"
    [ "$grown" -lt "$LIMIT_MB" ] || fail "$name: VmHWM grew by $grown MB (limit $LIMIT_MB MB)"
}

check "rebuild_projection over $EVENTS events" "$EVENTS" \
    "eventstore.rebuild_projection('firsts')"
n=$(psql_q -c "SELECT count(*) || ' ' || sum(i) FROM public.firsts")
want_sum=$(( (EVENTS / 1000 - 1) * (EVENTS / 1000) / 2 * 1000 ))
[ "$n" = "$((EVENTS / 1000)) $want_sum" ] || fail "handler saw the wrong events: $n"

check "aggregate over $((STREAM - 1)) events" "$((STREAM - 1))" \
    "eventstore.aggregate('grow-1', 'public.grow(jsonb, eventstore.events)', '{\"n\": 0, \"items\": []}')->>'n'"

check "snapshot policy folding $STREAM events" "$STREAM" \
    "(eventstore.append_event('grow-1', $STREAM - 1, 'Grew', '{}')).stream_version"
n=$(psql_q -c "SELECT s.state->>'n' FROM eventstore.snapshots s WHERE s.stream_id = 'grow-1' AND s.snapshot_type = 'grown' AND s.stream_version = $STREAM")
[ "$n" = "$STREAM" ] || fail "policy snapshot: counter '$n', expected $STREAM"

echo "fold_memory: $((SECONDS - start)) s"
if [ $failures -gt 0 ]; then
    echo "fold_memory: $failures failure(s)"
    exit 1
fi
echo "fold_memory: ok"
