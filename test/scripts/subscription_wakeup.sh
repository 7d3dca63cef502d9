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
#   3. none for an append that matches no subscription.
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

out=$("$WORK/wakeup_bench" "$CONN" wake order-1 latency 50 10)
if [ $? = 0 ]; then ok "every matching commit woke the listener ($out)"; else fail "wake-ups lost: $out"; fi

out=$("$WORK/wakeup_bench" "$CONN" wake order-2 inflight invoice-1)
if [ $? = 0 ]; then ok "no wake-up while a lower position is in flight, one after it commits ($out)"
else fail "in flight: $out"; fi

out=$("$WORK/wakeup_bench" "$CONN" wake invoice-2 latency 3 10)
if [ "$out" = "n=3 lost=3" ]; then ok "no wake-up for events the subscription does not match"
else fail "non-matching appends woke the listener: $out"; fi

[ $failures = 0 ]
