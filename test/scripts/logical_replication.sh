#!/usr/bin/env bash
# Immutability under logical replication.  The apply worker of a subscription
# fires row triggers only (and statement triggers for TRUNCATE), so the
# statement-level trigger alone let a subscriber's eventstore.events take
# replicated UPDATEs and DELETEs.  Two clusters: a publisher (wal_level
# logical) whose superuser disables the triggers and rewrites history, and a
# subscriber with the extension.  Checked: INSERTs arrive; the UPDATE, the
# DELETE and the TRUNCATE each stop the apply worker with ES002 (the
# subscription is created with disable_on_error, and each failed transaction
# is skipped with ALTER SUBSCRIPTION ... SKIP, as the README says); the
# subscriber's events stay as they were; later INSERTs arrive again.
# Ports: ES_LR_PORT (default 54420) and the next one.  About 15 s.
ES_PRELOAD=0
PUB_PORT=${ES_LR_PORT:-54420}
SUB_PORT=$((PUB_PORT + 1))
source "$(dirname "$0")/../../scripts/cluster.sh"
set +e

BIN=$(es_bindir)
PUB=$(mktemp -d /tmp/eventstore-lr-pub.XXXXXX)
SUB=$(mktemp -d /tmp/eventstore-lr-sub.XXXXXX)
failures=0
cleanup() {
    for d in "$SUB" "$PUB"; do
        [ -f "$d/postmaster.pid" ] && es_as_pg "$BIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1
    done
    rm -rf "$PUB" "$SUB"
}
trap cleanup EXIT
check() {  # check NAME EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then echo "ok     $1"; else echo "FAILED $1: expected '$2', got '$3'"; failures=$((failures + 1)); fi
}
# wait_for NAME EXPECTED COMMAND...: poll (15 s at most) until COMMAND prints EXPECTED
wait_for() {
    local name=$1 want=$2 got=; shift 2
    for _ in $(seq 1 150); do
        got=$("$@" 2>/dev/null)
        [ "$got" = "$want" ] && break
        sleep 0.1
    done
    check "$name" "$want" "$got"
}

ES_PGDATA=$PUB ES_PORT=$PUB_PORT es_start_cluster
PUB_SOCK=$PUB/sock
$BIN/psql -X -q -h "$PUB_SOCK" -p "$PUB_PORT" -U postgres -d postgres -c "ALTER SYSTEM SET wal_level = logical" >/dev/null
es_as_pg "$BIN/pg_ctl" -D "$PUB" -l "$PUB/server.log" -w -t 60 restart >/dev/null || {
    echo "FAILED publisher restart"; exit 1; }
ES_PGDATA=$SUB ES_PORT=$SUB_PORT es_start_cluster
SUB_SOCK=$SUB/sock
$BIN/psql -X -q -h "$SUB_SOCK" -p "$SUB_PORT" -U postgres -d postgres \
    -c "ALTER SYSTEM SET log_line_prefix = '[%e] %b '" -c "SELECT pg_reload_conf()" >/dev/null

pub() { $BIN/psql -X -q -At -v ON_ERROR_STOP=1 -h "$PUB_SOCK" -p "$PUB_PORT" -U postgres -d lr -c "$1"; }
sub() { $BIN/psql -X -q -At -v ON_ERROR_STOP=1 -h "$SUB_SOCK" -p "$SUB_PORT" -U postgres -d lr -c "$1"; }
digest="SELECT count(*) || ':' || md5(string_agg(e::text, '|' ORDER BY e.global_position)) FROM eventstore.events e"

for p in "$PUB_PORT" "$SUB_PORT"; do
    sock=$PUB_SOCK; [ "$p" = "$SUB_PORT" ] && sock=$SUB_SOCK
    $BIN/psql -X -q -h "$sock" -p "$p" -U postgres -d postgres -c 'CREATE DATABASE lr' >/dev/null
    $BIN/psql -X -q -h "$sock" -p "$p" -U postgres -d lr -c 'CREATE EXTENSION eventstore' >/dev/null
done
check "the subscriber has the row-level trigger, enabled always" "A" \
    "$(sub "SELECT tgenabled FROM pg_trigger WHERE tgrelid = 'eventstore.events'::regclass AND tgname = 'events_immutable_row'")"

pub "CREATE PUBLICATION es_pub FOR TABLE eventstore.events" >/dev/null
pub "SELECT count(*) FROM eventstore.append('lr-1', 0, ARRAY[eventstore.event('A', '{\"n\": 1}'),
                                                             eventstore.event('B', '{\"n\": 2}')])" >/dev/null
sub "CREATE SUBSCRIPTION es_sub CONNECTION 'host=$PUB_SOCK port=$PUB_PORT user=postgres dbname=lr'
     PUBLICATION es_pub WITH (disable_on_error = true)" >/dev/null 2>&1
wait_for "the initial copy arrives" "2" sub "SELECT count(*) FROM eventstore.events"
pub "SELECT count(*) FROM eventstore.append('lr-1', 2, ARRAY[eventstore.event('C', '{\"n\": 3}')])" >/dev/null
wait_for "a replicated INSERT arrives" "3" sub "SELECT count(*) FROM eventstore.events"
before=$(sub "$digest")

# failed_then_skip NAME OPERATION: the apply worker stopped with ES002 for
# OPERATION, the subscription is disabled; skip that transaction, enable it.
failed_then_skip() {
    local name=$1 op=$2 lsn= line=
    for _ in $(seq 1 150); do
        line=$(grep -a "\[ES002\].*$op of events is not allowed" "$SUB/server.log" | tail -1)
        [ -n "$line" ] && [ "$(sub "SELECT subenabled FROM pg_subscription WHERE subname = 'es_sub'")" = f ] && break
        sleep 0.1
    done
    check "$name: the apply worker stops with ES002" "yes" "$([ -n "$line" ] && echo yes || echo no)"
    check "$name: the subscriber's events are unchanged" "$before" "$(sub "$digest")"
    lsn=$(grep -a "$op\" for replication target relation \"eventstore.events\"" "$SUB/server.log" |
          sed -n 's/.*finished at \([0-9A-F]*\/[0-9A-F]*\).*/\1/p' | tail -1)
    [ -n "$lsn" ] || lsn=$(grep -a "finished at" "$SUB/server.log" | sed -n 's/.*finished at \([0-9A-F]*\/[0-9A-F]*\).*/\1/p' | tail -1)
    sub "ALTER SUBSCRIPTION es_sub SKIP (lsn = '$lsn')" >/dev/null
    sub "ALTER SUBSCRIPTION es_sub ENABLE" >/dev/null
}

# The publisher's superuser rewrites history, one transaction at a time.
pub "ALTER TABLE eventstore.events DISABLE TRIGGER USER" >/dev/null
pub "UPDATE eventstore.events SET data = '{\"n\": 666}' WHERE stream_version = 1" >/dev/null
failed_then_skip "replicated UPDATE" "UPDATE"
pub "DELETE FROM eventstore.events WHERE stream_version = 2" >/dev/null
failed_then_skip "replicated DELETE" "DELETE"
pub "TRUNCATE eventstore.events" >/dev/null
failed_then_skip "replicated TRUNCATE" "TRUNCATE"

# After the skips the subscription applies new INSERTs again.
pub "SELECT count(*) FROM eventstore.append('lr-2', 0, ARRAY[eventstore.event('D', '{\"n\": 4}')])" >/dev/null
wait_for "after the skipped transactions, INSERTs arrive again" "4" sub "SELECT count(*) FROM eventstore.events"
check "the original events are intact" "1,2,3" \
    "$(sub "SELECT string_agg(data->>'n', ',' ORDER BY global_position) FROM eventstore.events WHERE stream_id = 'lr-1'")"

if [ $failures -gt 0 ]; then
    echo "---- subscriber log (tail)"; tail -40 "$SUB/server.log"
    echo "logical_replication: $failures check(s) failed"; exit 1
fi
echo "logical_replication: all checks passed"
