#!/usr/bin/env bash
# The extension without shared_preload_libraries.
#
# Starts a throwaway cluster of its own (port $ES_NOPRELOAD_PORT, default
# 54361, library NOT preloaded),
# creates the extension and checks that append, the wrong-expected-version
# conflict (ES409) and the reads work, then that read_all does not skip an
# event that commits late: while a transaction that appended (position p) is
# open and a later append (p+1) has committed, a read_all started after p-1
# waits for the open appender (horizon.c: without preload a reader waits for
# the appending transactions open when it starts) and, once that commits,
# returns p and p+1 in order; when it rolls back instead, the reader returns
# p+1 alone.  The same holds when the transaction took its first position (or
# outbox id) in a subtransaction it rolled back (ROLLBACK TO SAVEPOINT, a
# PL/pgSQL EXCEPTION block): readers and relay_once still wait for it.  Stops
# and deletes the cluster on exit.  Bounded: every wait has a
# timeout.
#
# Expects the extension to be installed already (scripts/test.sh does that).
#   ES_PG_CONFIG  pg_config of the installation to use (default: the one
#                 scripts/cluster.sh finds)

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export ES_PRELOAD=0
export ES_PORT=${ES_NOPRELOAD_PORT:-54361}
export ES_PGDATA=$(mktemp -d /tmp/eventstore-nopreload.XXXXXX)
unset ES_SOCKDIR
source "$ES_ROOT/scripts/cluster.sh"
set +e                      # cluster.sh sets -e; failures are counted here
if [ -n "${ES_PG_CONFIG:-}" ]; then
    es_pg_config() { echo "$ES_PG_CONFIG"; }
fi

WORK=$(mktemp -d /tmp/eventstore-nopreload-work.XXXXXX)
bg_pids=()
cleanup() {
    local p
    exec 3>&-
    for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    es_stop_cluster
    rm -rf "$ES_PGDATA" "$WORK"
}
trap cleanup EXIT
trap 'exit 124' TERM INT
# the whole script must not outlive 60 s even if something hangs
(
    trap 'kill $sleeper 2>/dev/null; exit 0' TERM
    sleep 60 & sleeper=$!
    wait $sleeper
    echo "no_preload: TIMEOUT after 60 s, giving up" >&2
    kill -TERM $$
) &
bg_pids+=($!)

failures=0
pass() { echo "ok - $*"; }
fail() { echo "not ok - $*"; failures=$((failures + 1)); }
check() {   # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: expected '$2', got '$3'"; fi
}

es_start_cluster || { echo "no_preload: could not start the cluster" >&2; exit 1; }
PSQL="$(es_bindir)/psql"
q() { "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d nopreload "$@"; }
# SQLSTATE of running the statement(s), 00000 on success
sqlstate() { "$PSQL" -X -q -At -v ON_ERROR_STOP=0 -d nopreload -c "$1" -c '\echo :SQLSTATE' 2>/dev/null | tail -1; }
# wait until file $1 has a line matching $2, at most $3 seconds
wait_for_line() {
    local i
    for ((i = 0; i < $3 * 20; i++)); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

"$PSQL" -X -q -d postgres -c 'CREATE DATABASE nopreload' || exit 1
check "library not preloaded" "" "$(q -c "SELECT current_setting('shared_preload_libraries')")"
q -c 'CREATE EXTENSION eventstore' || exit 1
pass "CREATE EXTENSION eventstore"

# ---- append, conflict, reads
check "append to a new stream (expected 0)" "2" \
    "$(q -c "SELECT stream_version FROM eventstore.append('acct-1', 0, ARRAY[
                eventstore.event('Opened', '{}'), eventstore.event('Deposited', '{\"amount\": 5}')])")"
check "append with the exact expected version" "3" \
    "$(q -c "SELECT stream_version FROM eventstore.append_event('acct-1', 2, 'Withdrawn', '{}')")"
check "wrong expected version is ES409" "ES409" \
    "$(sqlstate "SELECT * FROM eventstore.append_event('acct-1', 2, 'Withdrawn', '{}')")"
check "expected 0 on an existing stream is ES409" "ES409" \
    "$(sqlstate "SELECT * FROM eventstore.append_event('acct-1', 0, 'Opened', '{}')")"
check "the losing appends wrote nothing" "3" "$(q -c "SELECT eventstore.stream_version('acct-1')")"
check "append with NULL expected version" "1" \
    "$(q -c "SELECT stream_version FROM eventstore.append_event('acct-2', NULL, 'Opened', '{}')")"
check "read_stream" "1:Opened 2:Deposited 3:Withdrawn" \
    "$(q -c "SELECT string_agg(stream_version || ':' || event_type, ' ' ORDER BY stream_version)
               FROM eventstore.read_stream('acct-1')")"
check "read_stream_backwards" "3 2 1" \
    "$(q -c "SELECT string_agg(stream_version::text, ' ') FROM eventstore.read_stream_backwards('acct-1')")"
check "read_all returns every event in position order" "acct-1/1 acct-1/2 acct-1/3 acct-2/1" \
    "$(q -c "SELECT string_agg(stream_id || '/' || stream_version, ' ') FROM eventstore.read_all(0)")"
check "read_category" "4" "$(q -c "SELECT count(*) FROM eventstore.read_category('acct', 0)")"
check "read_all with nothing in flight does not wait" "0" \
    "$(timeout 5 "$PSQL" -X -q -At -d nopreload -c "SELECT count(*) FROM eventstore.read_all(1000000)")"

# ---- read_all does not skip an event that commits late
# round OUTCOME: s1 appends (p) and stays open, s2 appends (p+1) and commits,
# a reader starts read_all(p-1) and must wait; s1 then ends with OUTCOME.
round() {
    local outcome=$1 stream=late-$1 base p s1_out=$WORK/s1.$1.out r_out=$WORK/reader.$1.out reader
    base=$(q -c "SELECT coalesce(max(global_position), 0) FROM eventstore.events")

    rm -f "$WORK/s1.in"; mkfifo "$WORK/s1.in"
    "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d nopreload <"$WORK/s1.in" >"$s1_out" 2>&1 &
    bg_pids+=($!)
    local s1=$!
    exec 3>"$WORK/s1.in"
    echo "BEGIN; SELECT 'pid=' || pg_backend_pid(); SELECT 'p=' || global_position FROM eventstore.append_event('$stream-1', NULL, 'Placed', '{}');" >&3
    if ! wait_for_line "$s1_out" '^p=' 10; then
        fail "$outcome: the open appender did not append: $(cat "$s1_out")"
        exec 3>&-; return
    fi
    p=$(sed -n 's/^p=//p' "$s1_out")
    check "$outcome: the open appender took the next position" "$((base + 1))" "$p"
    check "$outcome: horizon_status names the open appender (found by its lock)" "1|true|" \
        "$(q -c "SELECT in_flight || '|' || (oldest_pid = $(sed -n 's/^pid=//p' "$s1_out")) || '|' ||
                        coalesce(horizon::text, '') FROM eventstore.horizon_status WHERE counter = 'position'")"

    check "$outcome: a second appender does not wait and takes p+1" "$((p + 1))" \
        "$(timeout 10 "$PSQL" -X -q -At -d nopreload \
              -c "SELECT global_position FROM eventstore.append_event('$stream-2', NULL, 'Placed', '{}')")"

    timeout 20 "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d nopreload \
        -c "SELECT 'row ' || global_position || ' ' || stream_id FROM eventstore.read_all($((p - 1)))" \
        >"$r_out" 2>&1 &
    reader=$!
    bg_pids+=("$reader")
    sleep 1
    if kill -0 "$reader" 2>/dev/null; then
        pass "$outcome: read_all waits while the appender at p is open"
    else
        fail "$outcome: read_all returned while the appender at p was open: $(tr '\n' ' ' <"$r_out")"
    fi
    check "$outcome: the reader waits on a lock" "Lock" \
        "$(q -c "SELECT string_agg(DISTINCT wait_event_type, ',') FROM pg_stat_activity
                  WHERE datname = 'nopreload' AND query LIKE '%read_all($((p - 1)))%'
                    AND pid <> pg_backend_pid()")"

    echo "$outcome;" >&3
    exec 3>&-
    local i
    for ((i = 0; i < 200; i++)); do kill -0 "$reader" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$reader" 2>/dev/null; then
        fail "$outcome: read_all still waits 10 s after the appender ended"
    fi
    wait "$reader"; local rc=$?
    check "$outcome: read_all finished without error" "0" "$rc"
    wait "$s1" 2>/dev/null
    local expected
    if [ "$outcome" = COMMIT ]; then
        expected="row $p $stream-1|row $((p + 1)) $stream-2"
    else
        expected="row $((p + 1)) $stream-2"
    fi
    check "$outcome: read_all returns what committed, in order" "$expected" "$(paste -sd'|' "$r_out")"
}
round COMMIT
round ROLLBACK

check "the rolled-back position is a gap: nothing skipped, nothing extra" \
    "$(q -c "SELECT count(*) FROM eventstore.events")" \
    "$(q -c "SELECT count(*) FROM eventstore.read_all(0)")"

# ---- a rolled-back subtransaction does not unregister its transaction
# held_back NAME S1_SQL S2_SQL READER_SQL EXPECTED: s1 runs S1_SQL, which takes
# its first value (position or outbox id) in a subtransaction that is rolled
# back, then takes value p and prints 'p=<p>'; s1 stays open.  s2 runs S2_SQL
# (takes p+1, commits).  The reader (READER_SQL) must wait for s1, and once s1
# commits return EXPECTED, in which P stands for p and P1 for p+1.  Before
# 0.5.0 the lock that makes readers wait belonged to the subtransaction:
# ROLLBACK TO released it, the reader returned p+1 at once and p was behind
# every checkpoint.
held_back() {
    local name=$1 s1_sql=$2 s2_sql=$3 reader_sql=$4 expected=$5
    local s1_out=$WORK/hb-s1.$name.out r_out=$WORK/hb-reader.$name.out p s1 reader i rc
    rm -f "$WORK/hb.in"; mkfifo "$WORK/hb.in"
    "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d nopreload <"$WORK/hb.in" >"$s1_out" 2>&1 &
    s1=$!; bg_pids+=("$s1")
    exec 3>"$WORK/hb.in"
    echo "BEGIN; $s1_sql" >&3
    if ! wait_for_line "$s1_out" '^p=' 10; then
        fail "$name: s1 did not take its value: $(cat "$s1_out")"
        exec 3>&-; return
    fi
    p=$(sed -n 's/^p=//p' "$s1_out")
    check "$name: a second session does not wait and takes p+1" "$((p + 1))" \
        "$(timeout 10 "$PSQL" -X -q -At -d nopreload -c "$s2_sql")"
    timeout 20 "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d nopreload -c "$reader_sql" >"$r_out" 2>&1 &
    reader=$!; bg_pids+=("$reader")
    sleep 1
    if kill -0 "$reader" 2>/dev/null; then
        pass "$name: the reader waits while s1 is open"
    else
        fail "$name: the reader returned while s1 was open: $(paste -sd'|' "$r_out")"
    fi
    echo "COMMIT;" >&3
    exec 3>&-
    for ((i = 0; i < 200; i++)); do kill -0 "$reader" 2>/dev/null || break; sleep 0.05; done
    wait "$reader"; rc=$?
    check "$name: the reader finished without error" "0" "$rc"
    wait "$s1" 2>/dev/null
    expected=${expected//P1/$((p + 1))}
    expected=${expected//P/$p}
    check "$name: the reader returns p and p+1" "$expected" "$(paste -sd'|' "$r_out")"
}
base=$(q -c "SELECT max(global_position) FROM eventstore.events")
held_back "ROLLBACK TO SAVEPOINT" \
    "SAVEPOINT s; SELECT FROM eventstore.append_event('sp-0', NULL, 'Placed', '{}'); ROLLBACK TO s;
     SELECT 'p=' || global_position FROM eventstore.append_event('sp-1', NULL, 'Placed', '{}');" \
    "SELECT global_position FROM eventstore.append_event('sp-2', NULL, 'Placed', '{}')" \
    "SELECT global_position || ' ' || stream_id FROM eventstore.read_all($base)" \
    "P sp-1|P1 sp-2"
base=$(q -c "SELECT max(global_position) FROM eventstore.events")
held_back "EXCEPTION block" \
    "DO \$\$ BEGIN PERFORM eventstore.append_event('ex-0', NULL, 'Placed', '{}'); RAISE EXCEPTION 'undo';
                EXCEPTION WHEN raise_exception THEN NULL; END \$\$;
     SELECT 'p=' || global_position FROM eventstore.append_event('ex-1', NULL, 'Placed', '{}');" \
    "SELECT global_position FROM eventstore.append_event('ex-2', NULL, 'Placed', '{}')" \
    "SELECT global_position || ' ' || stream_id FROM eventstore.read_all($base)" \
    "P ex-1|P1 ex-2"
q -c "SELECT eventstore.relay_once()" >/dev/null
held_back "outbox: ROLLBACK TO SAVEPOINT" \
    "SAVEPOINT s; SELECT eventstore.enqueue('sp', '{}'); ROLLBACK TO s;
     SELECT 'p=' || eventstore.enqueue('sp', '{\"n\": 1}');" \
    "SELECT eventstore.enqueue('sp', '{\"n\": 2}')" \
    "SELECT eventstore.relay_once()" \
    "2"
check "outbox: every message is published, none left behind the cursor" "0|0" \
    "$(q -c "SELECT eventstore.relay_once()")|$(q -c "SELECT count(*) FROM eventstore.outbox WHERE published_at IS NULL")"
# ---- observability without preload: no counters, a clear error on reset
check "eventstore.stats has no rows" "0" "$(q -c "SELECT count(*) FROM eventstore.stats")"
check "stats_reset fails with 55000" "55000" "$(sqlstate "SELECT eventstore.stats_reset()")"
check "horizon_status: nothing in flight, newest is the last position" \
    "position|0|$(q -c "SELECT max(global_position) FROM eventstore.events")" \
    "$(q -c "SELECT counter || '|' || in_flight || '|' || newest FROM eventstore.horizon_status WHERE counter = 'position'")"

echo
if [ $failures = 0 ]; then
    echo "no_preload: PASS"
else
    echo "no_preload: $failures check(s) FAILED"
fi
exit $((failures > 0))
