#!/usr/bin/env bash
# Inputs that must be refused or handled without taking the server down, on
# a throwaway cluster of its own (port 54396 or $SURVIVES_PORT, library preloaded): a backend
# crash makes the postmaster restart every backend, so these cannot run on
# the shared test cluster without breaking the suites that follow.
# Expects the extension to be installed already (scripts/test.sh does that).
#
#   A. a snapshot policy whose reducer returns a large state (300 kB): the
#      append that crosses the policy's period succeeds and the snapshot
#      holds the state.  (In 0.4.0 the state is folded inside an SPI
#      connection, freed by SPI_finish and then written: a use-after-free,
#      which valgrind reports for any size and which crashes with SIGSEGV
#      once the state is large enough to be an mmap'ed block.)
#   B. eventstore._upcast (executable by PUBLIC) of a row whose event_type
#      or data is NULL while an upcaster is registered: 22004.
#   C. an upcaster returning an event without event_type: reads, aggregate
#      and an append with a projection fail with 22004.
#   D. a registered upcaster / policy reducer / projection handler dropped
#      and created again with another return type (bigint, a set): the read
#      or append that needs it fails with 42P13.  (0.4.0 called the new
#      function as if it returned the old type: SIGSEGV.)
#   E. handlers that change the registries and read while they run: an
#      upcaster that registers an upcaster and reads, a policy reducer that
#      sets a policy and reads -- with enough registered (40) that the
#      cache's items live in a block of their own.  The reads and appends
#      succeed.  (0.4.0 deleted the cache the running handler came from at
#      the nested read's reload and then walked it: use-after-free.)
# After each: the server did not restart ("terminated by signal" absent from
# its log) and the session is still connected.  Exit 0 when all passed.

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export ES_PORT=${SURVIVES_PORT:-54396}
export ES_PGDATA=$(mktemp -d /tmp/eventstore-survives.XXXXXX)
export ES_PRELOAD=1
export ES_FSYNC=off
unset ES_SOCKDIR
source "$ES_ROOT/scripts/cluster.sh"
set +e
set -u

PSQL="$(es_bindir)/psql"
failures=0
ok()   { printf 'ok     %s\n' "$*"; }
fail() { printf 'FAILED %s\n' "$*"; failures=$((failures + 1)); }
cleanup() { es_stop_cluster; rm -rf "$ES_PGDATA"; }
trap cleanup EXIT

es_start_cluster >/dev/null 2>&1 || { echo "server_survives: could not start the cluster" >&2; exit 1; }
"$PSQL" -X -q -d postgres -c "CREATE DATABASE survives" || exit 1
"$PSQL" -X -q -d survives -c "CREATE EXTENSION eventstore" || exit 1

crashes() { grep -c 'terminated by signal' "$ES_PGDATA/server.log"; }
server_up() {
    local i
    for i in $(seq 1 100); do
        "$PSQL" -X -q -At -d survives -c "SELECT 1" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# check NAME EXPECTED SQL: run SQL (one session, stop at the first error);
# its output (unaligned, tuples only, errors as "ERROR:  <SQLSTATE>") must
# equal EXPECTED, and the server must not have crashed.
check() {
    local name=$1 want=$2 sql=$3 got before
    before=$(crashes)
    got=$("$PSQL" -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=sqlstate -d survives -c "$sql" 2>&1)
    if [ "$(crashes)" != "$before" ]; then
        fail "$name: the server crashed: $(grep 'terminated by signal' "$ES_PGDATA/server.log" | tail -1)"
        server_up || { fail "the server did not come back"; exit 1; }
    elif [ "$got" = "$want" ]; then
        ok "$name"
    else
        fail "$name: got '$(echo "$got" | tr '\n' ' ')', want '$(echo "$want" | tr '\n' ' ')'"
    fi
}

"$PSQL" -X -q -d survives -v ON_ERROR_STOP=1 >/dev/null <<'SQL' || exit 1
CREATE FUNCTION big_state(s jsonb, e eventstore.events) RETURNS jsonb LANGUAGE sql
    AS $$ SELECT jsonb_build_object('n', coalesce((s->>'n')::int, 0) + 1, 'pad', repeat('x', 300000)) $$;
CREATE FUNCTION small_state(s jsonb, e eventstore.events) RETURNS jsonb LANGUAGE sql
    AS $$ SELECT jsonb_build_object('n', coalesce((s->>'n')::int, 0) + 1) $$;
CREATE FUNCTION up_v2(e eventstore.events) RETURNS eventstore.events LANGUAGE plpgsql
    AS $$ BEGIN e.event_type := 'V2'; RETURN e; END $$;
CREATE FUNCTION up_no_type(e eventstore.events) RETURNS eventstore.events LANGUAGE plpgsql
    AS $$ BEGIN e.event_type := NULL; RETURN e; END $$;
CREATE FUNCTION proj_noop(e eventstore.events) RETURNS void LANGUAGE sql AS $$ SELECT $$;
SQL

# Each check is one psql -c: one transaction; set-up in DO blocks (no output).
# ---- A. snapshot policies
check "A. policy with a 300 kB state: the append crossing its period succeeds, the snapshot holds the state" "2|2|300000" \
    "DO \$\$ BEGIN PERFORM eventstore.set_snapshot_policy('big', 'big_state(jsonb, eventstore.events)', 2, '{}', ARRAY['big']); END \$\$;
     DO \$\$ BEGIN PERFORM eventstore.append('big-1', 0, ARRAY[eventstore.event('A', '{}'), eventstore.event('A', '{}')]); END \$\$;
     SELECT stream_version || '|' || (state->>'n') || '|' || length(state->>'pad') FROM eventstore.snapshots WHERE stream_id = 'big-1'"
check "A. a 100-event batch with a small state: snapshot at 100" "100|100" \
    "DO \$\$ BEGIN PERFORM eventstore.set_snapshot_policy('small', 'small_state(jsonb, eventstore.events)', 100, '{}', ARRAY['small']); END \$\$;
     DO \$\$ BEGIN PERFORM eventstore.append('small-1', 0, (SELECT array_agg(eventstore.event('A', '{}')) FROM generate_series(1, 100))); END \$\$;
     SELECT stream_version || '|' || (state->>'n') FROM eventstore.snapshots WHERE stream_id = 'small-1'"
check "A. aggregate() with a 300 kB state" "3|300000" \
    "DO \$\$ BEGIN PERFORM eventstore.append('agg-1', 0, ARRAY[eventstore.event('A', '{}'), eventstore.event('A', '{}')]); END \$\$;
     SELECT (s->>'n') || '|' || length(s->>'pad') FROM eventstore.aggregate('agg-1', 'big_state(jsonb, eventstore.events)', '{\"n\": 1}') s"

# ---- B. _upcast of rows without event_type or data
check "B. _upcast of a row without event_type" "ERROR:  22004" \
    "DO \$\$ BEGIN PERFORM eventstore.register_upcaster('V1', 'up_v2(eventstore.events)'); END \$\$;
     SELECT eventstore._upcast(ROW(1, 's', 1, gen_random_uuid(), NULL, '{}', NULL, now(), '{}')::eventstore.events)"
check "B. _upcast of a row without data" "ERROR:  22004" \
    "DO \$\$ BEGIN PERFORM eventstore.register_upcaster('V1', 'up_v2(eventstore.events)'); END \$\$;
     SELECT eventstore._upcast(ROW(1, 's', 1, gen_random_uuid(), 'V1', NULL, NULL, now(), '{}')::eventstore.events)"

# ---- C. an upcaster that drops the event type
"$PSQL" -X -q -d survives -c "SELECT eventstore.append_event('nt-1', 0, 'NT', '{}')" \
        -c "SELECT eventstore.register_upcaster('NT', 'up_no_type(eventstore.events)')" >/dev/null || exit 1
check "C. read_stream through an upcaster returning no event_type" "ERROR:  22004" \
    "SELECT count(*) FROM eventstore.read_stream('nt-1')"
check "C. read_all through it" "ERROR:  22004" "SELECT count(*) FROM eventstore.read_all()"
check "C. aggregate through it" "ERROR:  22004" \
    "SELECT eventstore.aggregate('nt-1', 'small_state(jsonb, eventstore.events)')"
check "C. an append of that type with a projection registered" "ERROR:  22004" \
    "DO \$\$ BEGIN PERFORM eventstore.register_projection('noop', 'proj_noop(eventstore.events)'); END \$\$;
     SELECT eventstore.append_event('nt-1', NULL, 'NT', '{}')"

# ---- D. handlers recreated with another return type
"$PSQL" -X -q -d survives -v ON_ERROR_STOP=1 >/dev/null <<'SQL' || exit 1
CREATE FUNCTION d_up(e eventstore.events) RETURNS eventstore.events LANGUAGE plpgsql
    AS $$ BEGIN e.event_type := 'DV2'; RETURN e; END $$;
CREATE FUNCTION d_red(s jsonb, e eventstore.events) RETURNS jsonb LANGUAGE sql AS $$ SELECT s $$;
CREATE FUNCTION d_proj(e eventstore.events) RETURNS void LANGUAGE sql AS $$ SELECT $$;
SELECT eventstore.append_event('d-1', 0, 'DV1', '{}');
SELECT eventstore.register_upcaster('DV1', 'd_up(eventstore.events)');
SELECT eventstore.set_snapshot_policy('d', 'd_red(jsonb, eventstore.events)', 1, '{}', ARRAY['dpol']);
SELECT eventstore.register_projection('d', 'd_proj(eventstore.events)', ARRAY['DP']);
DROP FUNCTION d_up(eventstore.events);
CREATE FUNCTION d_up(e eventstore.events) RETURNS bigint LANGUAGE sql AS $$ SELECT 42::bigint $$;
DROP FUNCTION d_red(jsonb, eventstore.events);
CREATE FUNCTION d_red(s jsonb, e eventstore.events) RETURNS bigint LANGUAGE sql AS $$ SELECT 42::bigint $$;
DROP FUNCTION d_proj(eventstore.events);
CREATE FUNCTION d_proj(e eventstore.events) RETURNS SETOF bigint LANGUAGE sql AS $$ SELECT 42::bigint $$;
SQL
check "D. read_stream through an upcaster recreated to return bigint" "ERROR:  42P13" \
    "SELECT event_type FROM eventstore.read_stream('d-1')"
check "D. an append through a policy reducer recreated to return bigint" "ERROR:  42P13" \
    "SELECT eventstore.append_event('dpol-1', 0, 'A', '{}')"
check "D. an append through a projection handler recreated to return a set" "ERROR:  42P13" \
    "SELECT eventstore.append_event('dp-1', 0, 'DP', '{}')"
"$PSQL" -X -q -d survives -c "SELECT eventstore.unregister_upcaster('DV1')" \
        -c "SELECT eventstore.remove_snapshot_policy('d')" \
        -c "SELECT eventstore.unregister_projection('d')" >/dev/null || exit 1

# ---- E. handlers that let an invalidation in while their cache is in use
"$PSQL" -X -q -d survives -v ON_ERROR_STOP=1 >/dev/null <<'SQL' || exit 1
CREATE FUNCTION e_pad(e eventstore.events) RETURNS eventstore.events LANGUAGE plpgsql
    AS $$ BEGIN e.event_type := 'EPadded'; RETURN e; END $$;
CREATE FUNCTION e_churn(e eventstore.events) RETURNS eventstore.events LANGUAGE plpgsql AS $$
BEGIN
    PERFORM eventstore.register_upcaster('EChurnTmp' || e.stream_version, 'e_pad(eventstore.events)');
    PERFORM count(*) FROM eventstore.read_stream('e-other');
    e.event_type := 'EChurned';
    RETURN e;
END $$;
CREATE FUNCTION e_churn_red(s jsonb, e eventstore.events) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM eventstore.set_snapshot_policy('echurn_tmp' || e.stream_version,
                                           'small_state(jsonb, eventstore.events)', 1000, '{}', ARRAY['enone']);
    PERFORM count(*) FROM eventstore.read_stream('e-other');
    RETURN small_state(s, e);
END $$;
SELECT eventstore.register_upcaster('EPad' || i, 'e_pad(eventstore.events)') FROM generate_series(1, 40) i;
SELECT eventstore.set_snapshot_policy('epad' || i, 'small_state(jsonb, eventstore.events)', 1000, '{}', ARRAY['epad' || i])
  FROM generate_series(1, 40) i;
SELECT eventstore.append_event('e-other', 0, 'EPad1', '{}');
SELECT eventstore.append('echurn-1', 0, (SELECT array_agg(eventstore.event('EChurn', '{}')) FROM generate_series(1, 20)));
SELECT eventstore.register_upcaster('EChurn', 'e_churn(eventstore.events)');
SELECT eventstore.set_snapshot_policy('echurn', 'e_churn_red(jsonb, eventstore.events)', 1, '{}', ARRAY['epol']);
SQL
check "E. an upcaster that registers an upcaster and reads, 20 times in one read" "20|EChurned" \
    "SELECT count(*) || '|' || min(event_type) FROM eventstore.read_stream('echurn-1')"
check "E. a policy reducer that sets a policy and reads, 10 appends" "10|10" \
    "DO \$\$ BEGIN FOR i IN 0..9 LOOP PERFORM eventstore.append_event('epol-1', i, 'A', '{}'); END LOOP; END \$\$;
     SELECT stream_version || '|' || (state->>'n') FROM eventstore.snapshots WHERE stream_id = 'epol-1' ORDER BY stream_version DESC LIMIT 1"

echo "server_survives: $(crashes) server crash(es) in the log"
if [ $failures -gt 0 ]; then
    echo "server_survives: $failures check(s) failed"
    exit 1
fi
echo "server_survives: all checks passed"
exit 0
