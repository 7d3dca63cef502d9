#!/usr/bin/env bash
# A hot standby: reads work there, and read_all never skips an event that
# commits late on the primary (it reads up to the horizon the primary's relay
# publishes in eventstore.log_horizon).  Starts its own primary and standby.
ES_PORT=${STANDBY_PORT:-54410}
ES_PGDATA=$(mktemp -d /tmp/eventstore-primary.XXXXXX)
source "$(dirname "$0")/../../scripts/cluster.sh"
set +e

STANDBY=$(mktemp -d /tmp/eventstore-standby.XXXXXX)
SPORT=${STANDBY_SPORT:-54411}
BIN=$(es_bindir)
failures=0
holder_pid=
cleanup() {
    [ -n "$holder_pid" ] && kill "$holder_pid" 2>/dev/null
    es_as_pg "$BIN/pg_ctl" -D "$STANDBY" -m immediate -w stop >/dev/null 2>&1
    es_stop_cluster
    rm -rf "$ES_PGDATA" "$STANDBY"
}
trap cleanup EXIT
check() {  # check NAME EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then echo "ok     $1"; else echo "FAILED $1: expected '$2', got '$3'"; failures=$((failures + 1)); fi
}
# wait_for NAME EXPECTED COMMAND...: poll (10 s at most) until COMMAND prints EXPECTED
wait_for() {
    local name=$1 want=$2 got=; shift 2
    for _ in $(seq 1 100); do
        got=$("$@" 2>/dev/null)
        [ "$got" = "$want" ] && break
        sleep 0.1
    done
    check "$name" "$want" "$got"
}

es_start_cluster
P="$BIN/psql -X -q -At -h $ES_SOCKDIR"
$P -p "$ES_PORT" -d postgres -c "ALTER SYSTEM SET eventstore.relay_naptime = '200ms'" -c "SELECT pg_reload_conf()" >/dev/null
$P -p "$ES_PORT" -d postgres -c 'CREATE DATABASE sb' >/dev/null
$P -p "$ES_PORT" -d sb -c 'CREATE EXTENSION eventstore' >/dev/null

rm -rf "$STANDBY"; mkdir -p "$STANDBY"; chown postgres: "$STANDBY"; chmod 700 "$STANDBY"
es_as_pg "$BIN/pg_basebackup" -h "$ES_SOCKDIR" -p "$ES_PORT" -U postgres -D "$STANDBY" -R -X stream -c fast >/dev/null || {
    echo "FAILED pg_basebackup"; exit 1; }
es_as_pg mkdir -p "$STANDBY/sock"
{
    echo "port = $SPORT"
    echo "unix_socket_directories = '$STANDBY/sock'"
    echo "hot_standby = on"
} | es_as_pg tee -a "$STANDBY/postgresql.auto.conf" >/dev/null
es_as_pg "$BIN/pg_ctl" -D "$STANDBY" -l "$STANDBY/server.log" -w -t 60 start >/dev/null || {
    echo "FAILED standby start"; cat "$STANDBY/server.log"; exit 1; }
S="$BIN/psql -X -q -At -h $STANDBY/sock -p $SPORT -d sb"
check "the standby is in recovery" t "$($S -c 'SELECT pg_is_in_recovery()')"

primary() { $P -p "$ES_PORT" -d sb -c "$1"; }

# Reads on the standby.
primary "SELECT global_position FROM eventstore.append('sb-1', 0, ARRAY[eventstore.event('A', '{}'), eventstore.event('B', '{}')])" >/dev/null
wait_for "read_stream on the standby" "1,2" $S -c "SELECT string_agg(stream_version::text, ',' ORDER BY stream_version) FROM eventstore.read_stream('sb-1')"
wait_for "read_all on the standby reaches the published horizon" "2" $S -c "SELECT count(*) FROM eventstore.read_all(0)"
check "the standby refuses to append" "25006" "$($S -c "DO \$\$ BEGIN PERFORM eventstore.append_event('sb-1', NULL, 'C', '{}'); EXCEPTION WHEN OTHERS THEN RAISE NOTICE '%', SQLSTATE; END \$\$" 2>&1 | sed -n 's/.*NOTICE: *\([0-9A-Z]\{5\}\).*/\1/p' | head -1)"

# An append that commits late on the primary: p is held open, p+1 commits.
base=$(primary "SELECT max(global_position) FROM eventstore.events")
fifo=$(mktemp -u); mkfifo "$fifo"
( $P -p "$ES_PORT" -d sb < "$fifo" >/dev/null 2>&1 ) &
holder_pid=$!
exec 7>"$fifo"
echo "BEGIN; SELECT eventstore.append_event('sb-late', NULL, 'Late', '{}');" >&7
sleep 0.5
primary "SELECT eventstore.append_event('sb-early', NULL, 'Early', '{}')" >/dev/null
# wait until the early event is on the standby, then give the relay 3 naptimes
wait_for "the early event replicated" 1 $S -c "SELECT count(*) FROM eventstore.events WHERE stream_id = 'sb-early'"
sleep 0.8
check "read_all on the standby stops before the open append's position" "" \
    "$($S -c "SELECT string_agg(stream_id, ',') FROM eventstore.read_all($base)")"
check "read_category on the standby too" "" \
    "$($S -c "SELECT string_agg(stream_id, ',') FROM eventstore.read_category('sb', $base)")"
echo "COMMIT;" >&7
exec 7>&-
wait "$holder_pid"; holder_pid=
wait_for "after the commit the standby returns both, in position order" "sb-late,sb-early" \
    $S -c "SELECT string_agg(stream_id, ',' ORDER BY global_position) FROM eventstore.read_all($base)"
rm -f "$fifo"

# Subscriptions: the status and the parked list read on the standby; poll
# writes (leases, checkpoints) and is refused there like an append.
primary "SELECT eventstore.create_subscription('sbs', categories => ARRAY['sb'], partitions => 2)" >/dev/null
primary "SELECT count(*) FROM eventstore.poll('sbs', 'c1', 100)" >/dev/null
wait_for "subscription_status on the standby" "2" \
    $S -c "SELECT count(*) FROM eventstore.subscription_status WHERE subscription = 'sbs' AND holder = 'c1'"
check "parked on the standby" "0" "$($S -c "SELECT count(*) FROM eventstore.parked('sbs')")"
check "poll on the standby is refused (read-only)" "25006" "$($S -c "DO \$\$ BEGIN PERFORM eventstore.poll('sbs', 'c2', 1); EXCEPTION WHEN OTHERS THEN RAISE NOTICE '%', SQLSTATE; END \$\$" 2>&1 | sed -n 's/.*NOTICE: *\([0-9A-Z]\{5\}\).*/\1/p' | head -1)"

# Stores share the horizon: when only another store grows, the horizon the
# relay publishes moves on, and the standby reads that store's new events.
primary "CREATE SCHEMA sb2; SELECT eventstore.create_store('sb2.events')" >/dev/null
primary "SELECT eventstore.append_event('sb2only-' || i, 0, 'InB', '{}', store => 'sb2.events') FROM generate_series(1, 3) i" >/dev/null
wait_for "read_all of another store on the standby reaches its events (one horizon for every store)" "3" \
    $S -c "SELECT count(*) FROM eventstore.read_all(0, 100, 'sb2.events')"
check "read_stream of another store on the standby" "1" \
    "$($S -c "SELECT count(*) FROM eventstore.read_stream('sb2only-1', store => 'sb2.events')")"

if [ $failures -gt 0 ]; then echo "standby: $failures check(s) failed"; exit 1; fi
echo "standby: all checks passed"
