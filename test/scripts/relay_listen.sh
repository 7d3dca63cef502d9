#!/usr/bin/env bash
# The relay worker, seen from a real LISTEN client.
#
# Runs against the running, PRELOADED cluster of scripts/test.sh (PGHOST,
# PGPORT, PGUSER), in a database of its own (eventstore_relay_listen, created
# and dropped here).  A psql in the background LISTENs on the route's channel
# and prints what it receives; nothing here calls relay_once, so every
# notification comes from the background worker.  Checks:
#
#   1. one appended event reaches the listener, from the worker's PID, with
#      the right stream_id, stream_version, position, event id and data;
#      prints the latency from the append's start to its arrival; then 30
#      appends one after the other are each notified within 500 ms of their
#      commit (the worker is woken at commit; the 1 s naptime is a fallback);
#   2. 200 events appended by 4 concurrent writers (every fifth append in a
#      transaction that stays open a little after it, so ids commit out of
#      order) arrive in strictly increasing outbox id order, none twice, none
#      missing: the notified ids are exactly the outbox rows, all published;
#   3. an append that rolls back is never notified;
#   4. relay_status: the worker's published_total grew by the number of rows,
#      pending is 0.
#
# Bounded: every wait has a deadline; the whole script takes a few seconds.
# Exit 0 when every check passed.

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$ES_ROOT/scripts/cluster.sh"
set +e                      # cluster.sh sets -e; failures are counted here
set -u

: "${PGHOST:?PGHOST must point at the test cluster}" "${PGPORT:?}" "${PGUSER:?}"
DB=eventstore_relay_listen
CHANNEL=rl
WRITERS=4
PER_WRITER=50
PSQL="$(es_bindir)/psql"
WORK=$(mktemp -d /tmp/eventstore-relay-listen.XXXXXX)
bg_pids=()
failures=0

cleanup() {
    local p
    for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    "$PSQL" -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

log()  { printf 'relay_listen: %s\n' "$*" >&2; }
ok()   { printf 'ok     %s\n' "$*"; }
fail() { printf 'FAILED %s\n' "$*"; failures=$((failures + 1)); }
q()    { "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 20 ms
wait_for() {
    local secs=$1 what=$2; shift 2
    local deadline=$(( $(now_ms) + secs * 1000 ))
    until "$@"; do
        if [ "$(now_ms)" -ge "$deadline" ]; then
            log "timed out after ${secs}s waiting for: $what"
            return 1
        fi
        sleep 0.02
    done
}

# ---------------------------------------------------------------- set-up
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
    -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" || exit 1
q -c "CREATE EXTENSION eventstore" \
  -c "SELECT eventstore.add_route('$CHANNEL', categories => ARRAY['rl'])" \
  -c "CREATE TABLE rl_stop ()" >/dev/null || exit 1

worker_up() {
    [ -n "$(q -c "SELECT pid FROM eventstore.relay_status WHERE database = current_database() AND pid IS NOT NULL")" ]
}
if ! wait_for 15 "a relay worker for $DB" worker_up; then
    fail "no relay worker serves $DB (relay_status: $(q -c "SELECT state FROM eventstore.relay_status WHERE database = current_database()"); relay_databases = '$(q -c 'SHOW eventstore.relay_databases')')"
    exit 1
fi
WORKER_PID=$(q -c "SELECT pid FROM eventstore.relay_status WHERE database = current_database()")
PUBLISHED_BEFORE=$(q -c "SELECT published_total FROM eventstore.relay_status WHERE database = current_database()")
log "worker pid $WORKER_PID"

# The listener: LISTEN, then sleep 20 ms at a time (psql prints the
# notifications received after each statement) until rl_stop has a row; at
# most about 30 s.
{
    echo "LISTEN $CHANNEL;"
    for _ in $(seq 1 1400); do
        echo "SELECT pg_sleep(0.02), EXISTS (SELECT FROM rl_stop) AS stop \\gset"
        echo '\if :stop'
        echo '\q'
        echo '\endif'
    done
} > "$WORK/listener.sql"
PGAPPNAME=rl_listener "$PSQL" -X -q -d "$DB" -f "$WORK/listener.sql" > "$WORK/listener.out" 2>&1 &
LISTENER=$!
bg_pids+=("$LISTENER")
listening() {
    [ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                 AND application_name = 'rl_listener' AND query LIKE '%pg_sleep%'")" = 1 ]
}
wait_for 10 "the listener to LISTEN" listening || exit 1

received() { grep -q -F "$1" "$WORK/listener.out"; }

# ---------------------------------------------------------------- 1. one event
t0=$(now_ms)
q -c "SELECT * FROM eventstore.append_event('rl-single', NULL, 'Ping', '{\"k\": 1}', NULL,
                                            '00000000-0000-4000-8000-00000000a001')" >/dev/null
if wait_for 5 "the notification of rl-single" received '"stream_id": "rl-single"'; then
    latency=$(( $(now_ms) - t0 ))
    ok "one appended event notified by the worker after ${latency} ms (append + poll granularity 20 ms)"
else
    fail "the appended event was not notified within 5 s"
fi

# ---------------------------------------------------------------- 1b. woken at commit
# The worker is woken by each commit that wrote outbox rows; the naptime
# (1 s by default) is only the fallback.  So each of a series of appends is
# notified well within the naptime after its commit: at most 500 ms.
SEQ=30
slow=0; max_ms=0; lat_list=""
for i in $(seq 1 $SEQ); do
    q -c "SELECT * FROM eventstore.append_event('rl-seq-$i', NULL, 'Ping', '{}')" >/dev/null
    t1=$(now_ms)
    deadline=$(( t1 + 3000 ))
    until received "\"stream_id\": \"rl-seq-$i\""; do
        [ "$(now_ms)" -ge "$deadline" ] && break
        sleep 0.005
    done
    ms=$(( $(now_ms) - t1 ))
    lat_list="$lat_list $ms"
    [ $ms -gt $max_ms ] && max_ms=$ms
    [ $ms -gt 500 ] && slow=$((slow + 1))
done
if [ $slow = 0 ]; then
    ok "$SEQ sequential appends each notified within 500 ms of their commit (max ${max_ms} ms)"
else
    fail "$slow of $SEQ sequential appends were notified more than 500 ms after their commit (ms:$lat_list): the commit's wake-up was lost and the worker waited for eventstore.relay_naptime"
fi

# ---------------------------------------------------------------- 3. rolled back
q -c "BEGIN" \
  -c "SELECT * FROM eventstore.append_event('rl-rolledback', NULL, 'Ping', '{}')" \
  -c "ROLLBACK" >/dev/null

# ---------------------------------------------------------------- 2. 4 writers
for w in $(seq 1 $WRITERS); do
    {
        for n in $(seq 1 $PER_WRITER); do
            if [ $((n % 5)) = 0 ]; then
                # committed a little after a later id may have been taken
                echo "BEGIN;"
                echo "SELECT * FROM eventstore.append_event('rl-w$w', NULL, 'Tick', jsonb_build_object('w', $w, 'n', $n));"
                echo "SELECT pg_sleep(0.01);"
                echo "COMMIT;"
            else
                echo "SELECT * FROM eventstore.append_event('rl-w$w', NULL, 'Tick', jsonb_build_object('w', $w, 'n', $n));"
            fi
        done
    } > "$WORK/writer$w.sql"
done
t_writers=$(now_ms)
writer_pids=()
for w in $(seq 1 $WRITERS); do
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$DB" -f "$WORK/writer$w.sql" > "$WORK/writer$w.out" 2>&1 &
    writer_pids+=($!)
    bg_pids+=($!)
done
writers_ok=1
for p in "${writer_pids[@]}"; do
    wait "$p" || writers_ok=0
done
if [ $writers_ok = 1 ]; then
    ok "$WRITERS writers appended $((WRITERS * PER_WRITER)) events in $(( $(now_ms) - t_writers )) ms"
else
    fail "a writer failed: $(cat "$WORK"/writer*.out | grep -m3 ERROR)"
fi

none_pending() { [ "$(q -c "SELECT count(*) FROM eventstore.outbox WHERE published_at IS NULL")" = 0 ]; }
wait_for 15 "every outbox row to be published" none_pending || fail "outbox rows left unpublished"
last_arrived() {
    [ "$(grep -c '^Asynchronous notification "'$CHANNEL'"' "$WORK/listener.out")" -ge $((1 + SEQ + WRITERS * PER_WRITER)) ]
}
if wait_for 10 "all notifications" last_arrived; then
    ok "all notifications arrived $(( $(now_ms) - t_writers )) ms after the writers started"
fi

# A marker sent after everything was published: once the listener has it,
# it has every earlier notification (NOTIFY delivers in commit order).
q -c "SELECT pg_notify('$CHANNEL', 'done')" >/dev/null
wait_for 5 "the marker" received 'with payload "done"' || fail "the marker notification did not arrive"
q -c "INSERT INTO rl_stop DEFAULT VALUES" >/dev/null
listener_gone() { ! kill -0 "$LISTENER" 2>/dev/null; }
wait_for 5 "the listener to stop" listener_gone || fail "the listener did not stop"

# ---------------------------------------------------------------- checks
# seq (arrival order), sender pid, payload
sed -n 's/^Asynchronous notification "'$CHANNEL'" with payload "\(.*\)" received from server process with PID \([0-9]*\)\.$/\2\t\1/p' \
    "$WORK/listener.out" | grep -v "$(printf '\t')done$" | awk -F'\t' -v OFS='\t' '{ print NR, $1, $2 }' > "$WORK/notes.tsv"
log "$(wc -l < "$WORK/notes.tsv") notifications received"

q >"$WORK/checks.out" 2>&1 <<SQL
CREATE TABLE rl_notes (seq int, pid int, payload jsonb);
\copy rl_notes FROM '$WORK/notes.tsv'
CREATE VIEW rl_ids AS SELECT seq, pid, (payload->>'id')::bigint AS id, payload FROM rl_notes;
SELECT 'rows ' || (SELECT count(*) FROM rl_notes) || ' notified, '
       || (SELECT count(*) FROM eventstore.outbox) || ' outbox rows, '
       || (SELECT count(*) FROM eventstore.events) || ' events';
SELECT 'check single: ' || (count(*) = 1 AND bool_and(payload->>'stream_version' = '1'
                             AND payload->>'event_type' = 'Ping' AND payload->'data' = '{"k": 1}'
                             AND payload->>'event_id' = '00000000-0000-4000-8000-00000000a001'))
  FROM rl_ids WHERE payload->>'stream_id' = 'rl-single';
SELECT 'check from_worker: ' || bool_and(pid = $WORKER_PID) FROM rl_notes;
SELECT 'check increasing: ' || coalesce(bool_and(id > prev), true)
  FROM (SELECT id, lag(id) OVER (ORDER BY seq) AS prev FROM rl_ids) s WHERE prev IS NOT NULL;
SELECT 'check no_duplicates: ' || (count(DISTINCT id) = count(*)) FROM rl_ids;
SELECT 'check none_missing: ' || NOT EXISTS (
           SELECT FROM eventstore.outbox o FULL JOIN rl_ids n ON n.id = o.id
            WHERE o.id IS NULL OR n.id IS NULL);
SELECT 'check all_published: ' || bool_and(published_at IS NOT NULL) FROM eventstore.outbox;
SELECT 'check one_row_per_event: ' || (
           (SELECT count(*) FROM eventstore.events)
         = (SELECT count(DISTINCT global_position) FROM eventstore.outbox)
       AND (SELECT count(*) FROM eventstore.events) = (SELECT count(*) FROM eventstore.outbox));
SELECT 'check payload_matches_event: ' || bool_and(
           (n.payload->>'position')::bigint = e.global_position AND n.payload->>'stream_id' = e.stream_id
           AND (n.payload->>'stream_version')::bigint = e.stream_version
           AND (n.payload->>'event_id')::uuid = e.event_id AND n.payload->'data' = e.data)
  FROM rl_ids n JOIN eventstore.outbox o ON o.id = n.id
  JOIN eventstore.events e ON e.global_position = o.global_position;
SELECT 'check writer_order: ' || bool_and(ok) FROM (
    SELECT (payload->'data'->>'n')::int > lag((payload->'data'->>'n')::int, 1, 0)
               OVER (PARTITION BY payload->>'stream_id' ORDER BY seq) AS ok
      FROM rl_ids WHERE payload->>'stream_id' LIKE 'rl-w%') s;
SELECT 'check count: ' || (count(*) = 1 + $SEQ + $WRITERS * $PER_WRITER) FROM rl_notes;
SELECT 'check rolled_back_not_notified: ' || (NOT EXISTS (
           SELECT FROM rl_notes WHERE payload->>'stream_id' = 'rl-rolledback')
       AND NOT EXISTS (SELECT FROM eventstore.events WHERE stream_id = 'rl-rolledback'));
SELECT 'check relay_status: ' || (pending = 0 AND pid = $WORKER_PID
                                  AND published_total - $PUBLISHED_BEFORE = (SELECT count(*) FROM eventstore.outbox))
  FROM eventstore.relay_status WHERE database = current_database();
SQL
rc=$?
if [ $rc != 0 ]; then
    fail "checks did not run: $(head -5 "$WORK/checks.out")"
fi
while IFS= read -r line; do
    case "$line" in
        "check "*": true") ok "${line#check }" ;;
        "check "*) fail "${line#check }" ;;
        *) log "$line" ;;
    esac
done < "$WORK/checks.out"

if [ $failures -gt 0 ]; then
    log "listener output (first lines):"
    head -5 "$WORK/listener.out" >&2
    log "$failures check(s) failed"
    exit 1
fi
log "all checks passed"
exit 0
