#!/usr/bin/env bash
# Subscription wake-ups through the relay worker (README, "Subscriptions",
# "Wake-ups").  Runs against the running, PRELOADED cluster of scripts/test.sh
# (PGHOST, PGPORT, PGUSER), in a database of its own (eventstore_sub_wakeup,
# created and dropped here).  The worker's fallback poll is set to 60 s for
# the run (eventstore.relay_naptime, reset at the end), so every wake-up seen
# here comes from the commit that asked for it, not from the timer:
#   1. latency: 50 appends matching the subscription, 10 ms apart, each
#      followed by a wait for the notification: none may be lost (2 s);
#   2. in flight: an append matching nothing holds a lower position open
#      while a matching one commits: no wake-up before the lower one
#      commits (poll could not deliver yet), and one within 2 s after,
#      though that commit matches nothing;
#   3. none for an append that matches no subscription;
#   4. wake passes (issue #12: no SQL and no write per pass): the wake-ups
#      of 1. came without the pass that publishes the log horizon (it did
#      not move); a subscription with a name longer than 48 bytes (its
#      channel is an md5) is woken; of two subscriptions, only the one an
#      append matches, by its second event's type, and every one that two
#      appends of one transaction match;
#   5. an event whose commit signalled nothing (import_events) still wakes
#      its subscription at the next timed pass (naptime 1 s), also right
#      after a wake pass notified it.
# bench/relay/wakeup_bench.c does the timing.  Exit 0 when all pass.

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$ES_ROOT/scripts/cluster.sh"
set +e
set -u

: "${PGHOST:?PGHOST must point at the test cluster}" "${PGPORT:?}" "${PGUSER:?}"
DB=eventstore_sub_wakeup
PSQL="$(es_bindir)/psql"
WORK=$(mktemp -d /tmp/eventstore-sub-wakeup.XXXXXX)
failures=0

ok()   { printf 'ok     %s\n' "$*"; }
fail() { printf 'FAILED %s\n' "$*"; failures=$((failures + 1)); }
q()    { "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

cleanup() {
    "$PSQL" -X -q -d postgres -c "ALTER SYSTEM RESET eventstore.relay_naptime" -c "SELECT pg_reload_conf()" >/dev/null 2>&1
    "$PSQL" -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

gcc -O2 -Wall -Wextra -I"$("$(es_pg_config)" --includedir)" -o "$WORK/wakeup_bench" \
    "$ES_ROOT/bench/relay/wakeup_bench.c" -L"$("$(es_pg_config)" --libdir)" -lpq || exit 1
"$PSQL" -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" \
    -c "ALTER SYSTEM SET eventstore.relay_naptime = '60s'" -c "SELECT pg_reload_conf()" >/dev/null || exit 1
q -c "CREATE EXTENSION eventstore" \
  -c "SELECT eventstore.create_subscription('wake', categories => '{order}')" >/dev/null || exit 1
CONN="host=$PGHOST port=$PGPORT user=$PGUSER dbname=$DB"

# the worker is up (the extension's creation asked for it)
for _ in $(seq 1 100); do
    [ -n "$(q -c "SELECT pid FROM eventstore.relay_status WHERE database = current_database() AND pid IS NOT NULL")" ] && break
    sleep 0.1
done

horizon0=$(q -c "SELECT position FROM eventstore.log_horizon")
out=$("$WORK/wakeup_bench" "$CONN" wake order-1 latency 50 10)
if [ $? = 0 ]; then ok "every matching commit woke the listener ($out)"; else fail "wake-ups lost: $out"; fi
horizon1=$(q -c "SELECT position FROM eventstore.log_horizon")
if [ "$horizon0" = "$horizon1" ]; then ok "the wake-ups came from wake passes: the log horizon did not move ($horizon1)"
else fail "a pass woken for a subscription published the log horizon ($horizon0 -> $horizon1)"; fi

out=$("$WORK/wakeup_bench" "$CONN" wake order-2 inflight invoice-1)
if [ $? = 0 ]; then ok "no wake-up while a lower position is in flight, one after it commits ($out)"
else fail "in flight: $out"; fi

out=$("$WORK/wakeup_bench" "$CONN" wake invoice-2 latency 3 10)
if [ "$out" = "n=3 lost=3" ]; then ok "no wake-up for events the subscription does not match"
else fail "non-matching appends woke the listener: $out"; fi

# listen OUT SECS SUB...: LISTEN on the subscriptions' channels for SECS s in
# the background; the notifications received end up in OUT
listen() {
    local out=$1 secs=$2 args=() sub
    shift 2
    for sub in "$@"; do args+=(-c "LISTEN \"$(q -c "SELECT eventstore.subscription_channel('$sub')")\""); done
    "$PSQL" -X -q -d "$DB" "${args[@]}" -c "SELECT pg_sleep($secs)" >"$out" 2>&1 &
    sleep 0.5
}
heard() { grep -c "notification \"$(q -c "SELECT eventstore.subscription_channel('$2')")\"" "$1"; }

long=$(printf 'long_%.0s' $(seq 1 12))name
q -c "SELECT eventstore.create_subscription('$long', categories => '{order}')" >/dev/null
out=$("$WORK/wakeup_bench" "$CONN" "$long" order-3 latency 5 10)
if [ $? = 0 ]; then ok "a subscription named with more than 48 bytes is woken on its md5 channel ($out)"
else fail "long name: $out"; fi
q -c "SELECT eventstore.drop_subscription('$long')" >/dev/null

q -c "SELECT eventstore.create_subscription('shipped', categories => '{parcel}', event_types => '{Shipped}')" \
  -c "SELECT eventstore.create_subscription('billed', categories => '{bill}')" >/dev/null
listen "$WORK/l1" 2 shipped billed
q -c "SELECT eventstore.append('parcel-1', NULL, ARRAY[eventstore.event('Packed', '{}'), eventstore.event('Shipped', '{}')])" >/dev/null
wait
if [ "$(heard "$WORK/l1" shipped)" -ge 1 ] && [ "$(heard "$WORK/l1" billed)" = 0 ]; then
    ok "only the subscription an append's second event matches is woken"
else fail "second event: shipped $(heard "$WORK/l1" shipped), billed $(heard "$WORK/l1" billed) wake-ups: $(cat "$WORK/l1")"; fi
listen "$WORK/l2" 2 shipped billed
q -c "BEGIN" -c "SELECT eventstore.append_event('bill-1', NULL, 'Billed', '{}')" \
  -c "SELECT eventstore.append_event('parcel-2', NULL, 'Shipped', '{}')" -c "COMMIT" >/dev/null
wait
if [ "$(heard "$WORK/l2" shipped)" -ge 1 ] && [ "$(heard "$WORK/l2" billed)" -ge 1 ]; then
    ok "a transaction whose appends match two subscriptions wakes both"
else fail "two in one transaction: shipped $(heard "$WORK/l2" shipped), billed $(heard "$WORK/l2" billed) wake-ups"; fi

"$PSQL" -X -q -d postgres -c "ALTER SYSTEM SET eventstore.relay_naptime = '1s'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1.5
listen "$WORK/l3" 4 billed
q -c "SELECT eventstore.append_event('bill-2', NULL, 'Billed', '{}')" >/dev/null
sleep 0.3
q -c "CREATE TABLE staging (LIKE eventstore.import_row)" \
  -c "INSERT INTO staging SELECT 0, 'bill-3', 1, 'Billed', '{}', NULL, now(), gen_random_uuid()" \
  -c "SELECT eventstore.import_events('staging')" >/dev/null
wait
if [ "$(heard "$WORK/l3" billed)" -ge 2 ]; then
    ok "an imported event (no signal) wakes its subscription at the next timed pass"
else fail "import after a wake pass: $(heard "$WORK/l3" billed) wake-ups: $(cat "$WORK/l3")"; fi

[ $failures = 0 ]
