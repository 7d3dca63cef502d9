#!/usr/bin/env bash
# Subscriptions under chaos: a consumer group whose members are SIGKILLed.
#
# Runs against the running, PRELOADED cluster of scripts/test.sh (PGHOST,
# PGPORT, PGUSER), in a database of its own (eventstore_sub_chaos, created
# and dropped here).  One subscription of 16 partitions, lease 2 s.
#   - 8 writers append to 200 streams (category ch) for CHAOS_SECONDS (20);
#   - 4 consumers poll, log what they handled (consumer, partition, position,
#     stream, version, server time of delivery), then ack each partition's
#     run in a separate transaction; every 1-3 s one of them is SIGKILLed
#     (its whole process group: the loop and its psql) and a new consumer
#     (a new name: a new process) takes its place, so partitions are taken
#     over after their lease expires;
#   - afterwards the consumers drain the backlog, and the checks run in SQL
#     over the logs and the server's lease history (subscription_leases):
#       1. every event of the category was delivered and is acked (every
#          checkpoint is at or past the last event of its partition; no
#          retries, nothing parked), none was skipped;
#       2. per stream, first deliveries are in version order, and a
#          delivery of a lower version than one delivered before it happens
#          only after a takeover of its partition in between;
#       3. no partition was held by two consumers at once: the server's
#          holdings of a partition do not overlap, and every logged delivery
#          falls inside a holding of its consumer.
# Bounded: writers CHAOS_SECONDS, drain at most 40 s.  Exit 0 when all pass.

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$ES_ROOT/scripts/cluster.sh"
set +e
set -u

: "${PGHOST:?PGHOST must point at the test cluster}" "${PGPORT:?}" "${PGUSER:?}"
DB=eventstore_sub_chaos
SECONDS_RUN=${CHAOS_SECONDS:-20}
PSQL="$(es_bindir)/psql"
WORK=$(mktemp -d /tmp/eventstore-sub-chaos.XXXXXX)
declare -A consumer_pid=()
writer_pids=()
failures=0

log()  { printf 'subscriptions_chaos: %s\n' "$*" >&2; }
ok()   { printf 'ok     %s\n' "$*"; }
fail() { printf 'FAILED %s\n' "$*"; failures=$((failures + 1)); }
q()    { "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

cleanup() {
    local p
    for p in "${consumer_pid[@]}" "${writer_pids[@]}"; do kill -9 -- "-$p" 2>/dev/null; done
    wait 2>/dev/null
    "$PSQL" -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

"$PSQL" -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" || exit 1
q -c "CREATE EXTENSION eventstore" \
  -c "SELECT eventstore.create_subscription('chaos', categories => '{ch}', partitions => 16,
                                            lease => '2 seconds', backoff => '0 seconds')" >/dev/null || exit 1

# A consumer: poll a batch, log it (one write), ack each partition's last
# position (cumulative), repeat.  Runs in its own process group.
cat > "$WORK/consumer.sh" <<'EOC'
name=$1 logf=$2 psql=$3 db=$4
while true; do
    out=$("$psql" -X -q -At -F '|' -d "$db" -c "SELECT '$name', partition, global_position, stream_id,
              stream_version, pg_catalog.clock_timestamp() FROM eventstore.poll('chaos', '$name', 200)
              ORDER BY global_position" 2>/dev/null)
    if [ -z "$out" ]; then sleep 0.05; continue; fi
    printf '%s\n' "$out" >> "$logf"
    acks=$(printf '%s\n' "$out" | awk -F'|' -v n="$name" '{ if ($3 > m[$2]) m[$2] = $3 }
        END { for (p in m) printf "SELECT eventstore.ack(%c%s%c, %c%s%c, %s);\n", 39, "chaos", 39, 39, n, 39, m[p] }')
    printf '%s\n' "$acks" | "$psql" -X -q -At -d "$db" >/dev/null 2>&1
done
EOC

generation=0
start_consumer() {       # slot
    generation=$((generation + 1))
    setsid bash "$WORK/consumer.sh" "c$1-g$generation" "$WORK/deliveries.log" "$PSQL" "$DB" &
    consumer_pid[$1]=$!
}
kill_consumer() {        # slot
    kill -9 -- "-${consumer_pid[$1]}" 2>/dev/null
    wait "${consumer_pid[$1]}" 2>/dev/null
}

for s in 1 2 3 4; do start_consumer $s; done
for w in $(seq 1 8); do
    setsid "$PSQL" -X -q -d "$DB" -c "DO \$\$
        DECLARE stop timestamptz := clock_timestamp() + interval '$SECONDS_RUN seconds';
        BEGIN
            WHILE clock_timestamp() < stop LOOP
                PERFORM eventstore.append_event('ch-' || floor(random() * 200)::int, NULL, 'E', '{}');
                COMMIT;
                PERFORM pg_sleep(0.005);
            END LOOP;
        END \$\$" >/dev/null 2>"$WORK/writer$w.err" &
    writer_pids+=($!)
done
log "8 writers for ${SECONDS_RUN}s, 4 consumers, killing one every 1-3 s"
kills=0
end=$((SECONDS + SECONDS_RUN))
while [ $SECONDS -lt $end ]; do
    sleep "$((RANDOM % 3 + 1))"
    s=$((RANDOM % 4 + 1))
    kill_consumer $s
    start_consumer $s
    kills=$((kills + 1))
done
for p in "${writer_pids[@]}"; do wait "$p"; done
writer_pids=()
log "writers done ($kills kills); draining"

# drain: until every partition is at or past its last event, or 40 s
drained=0
for _ in $(seq 1 400); do
    left=$(q -c "SELECT count(*) FROM eventstore.subscription_partitions p
                  WHERE p.checkpoint < coalesce((SELECT max(e.global_position) FROM eventstore.events e
                        WHERE eventstore._subscription_partition(e.stream_id, 16) = p.partition), 0)")
    if [ "$left" = 0 ]; then drained=1; break; fi
    sleep 0.1
done
for s in 1 2 3 4; do kill_consumer $s; done
consumer_pid=()

events=$(q -c "SELECT count(*) FROM eventstore.events")
lines=$(wc -l < "$WORK/deliveries.log")
takeovers=$(q -c "SELECT count(*) FROM eventstore.subscription_leases")
log "$events events, $lines deliveries logged, $takeovers holdings"
[ "$kills" -ge 3 ] && ok "consumers were killed $kills times" || fail "only $kills kills"
[ "$events" -ge 1000 ] && ok "$events events appended by 8 writers" || fail "only $events events"

# the log, without a line torn by a kill, numbered: rows of one poll can
# carry the same microsecond, and the line order breaks the tie
awk -F'|' 'NF == 6 && $6 ~ /\+00$|[0-9]$/ { print $0 "|" NR }' "$WORK/deliveries.log" > "$WORK/clean.log"
q -c "CREATE TABLE d (consumer text, partition int, pos bigint, stream_id text, v bigint, at timestamptz, n bigint)" \
  -c "\\copy d FROM '$WORK/clean.log' WITH (FORMAT text, DELIMITER '|')" || fail "loading the log"

check() {   # description, SQL returning 0 when the check passes
    local got; got=$(q -c "$2")
    if [ "$got" = 0 ]; then ok "$1"; else fail "$1 (got $got)"; fi
}

[ "$drained" = 1 ] && ok "drained: every partition's checkpoint reached its last event" \
                   || fail "not drained within 40 s"
check "1. no event of the category missing from the deliveries" \
      "SELECT count(*) FROM eventstore.events e WHERE NOT EXISTS (SELECT FROM d WHERE d.pos = e.global_position)"
check "1. nothing delivered that is not an event of the subscription, partition right" \
      "SELECT count(*) FROM d LEFT JOIN eventstore.events e ON e.global_position = d.pos
        WHERE e.global_position IS NULL OR e.stream_id <> d.stream_id OR e.stream_version <> d.v
           OR d.partition <> eventstore._subscription_partition(e.stream_id, 16)"
check "1. no retries pending, nothing parked" \
      "SELECT (SELECT count(*) FROM eventstore.subscription_retries) + (SELECT count(*) FROM eventstore.subscription_parked)"
check "2. per stream, first deliveries in version order" \
      "WITH f AS (SELECT DISTINCT ON (stream_id, v) stream_id, v, at, n FROM d ORDER BY stream_id, v, at, n)
       SELECT count(*) FROM f a JOIN f b ON a.stream_id = b.stream_id AND a.v < b.v AND (a.at, a.n) > (b.at, b.n)"
check "2. a lower version after a higher one only after a takeover of the partition in between" \
      "SELECT count(*) FROM d x JOIN d y ON x.stream_id = y.stream_id AND (x.at, x.n) < (y.at, y.n) AND y.v < x.v
        WHERE NOT EXISTS (SELECT FROM eventstore.subscription_leases l
                           WHERE l.partition = y.partition AND l.consumer = y.consumer
                             AND l.acquired_at > x.at AND l.acquired_at <= y.at)"
check "2. redeliveries happen only after a takeover" \
      "SELECT count(*) FROM d x JOIN d y ON x.pos = y.pos AND (x.at, x.n) < (y.at, y.n)
        WHERE NOT EXISTS (SELECT FROM eventstore.subscription_leases l
                           WHERE l.partition = y.partition AND l.consumer = y.consumer
                             AND l.acquired_at > x.at AND l.acquired_at <= y.at)"
check "3. the server's holdings of a partition never overlap" \
      "SELECT count(*) FROM eventstore.subscription_leases a JOIN eventstore.subscription_leases b
           ON a.partition = b.partition AND a.acquired_at < b.acquired_at
        WHERE coalesce(a.ended_at, 'infinity') > b.acquired_at"
check "3. every delivery falls inside a holding of its consumer" \
      "SELECT count(*) FROM d WHERE NOT EXISTS (
           SELECT FROM eventstore.subscription_leases l
            LEFT JOIN eventstore.subscription_partitions p
                   ON p.partition = l.partition AND p.holder = l.consumer AND p.acquired_at = l.acquired_at
            WHERE l.partition = d.partition AND l.consumer = d.consumer AND l.acquired_at <= d.at
              AND d.at <= coalesce(l.ended_at, p.lease_until))"
redeliveries=$(q -c "SELECT count(*) - count(DISTINCT pos) FROM d")
log "redeliveries after takeovers: $redeliveries"

if [ "$failures" -gt 0 ]; then
    log "$failures check(s) failed"
    exit 1
fi
log "all checks passed"
