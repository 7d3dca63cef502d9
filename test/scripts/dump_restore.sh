#!/usr/bin/env bash
# pg_dump / pg_restore of a database that uses every table of the extension.
#
# On a throwaway cluster of its own (port DUMP_RESTORE_PORT, default 54420,
# library preloaded, relay naptime 200 ms), stopped and deleted on exit.
# Expects the extension to be installed already (scripts/test.sh does that).
#
# The source database has events in two categories, a projection with its
# handler function and read model, a route, a plain enqueued message, an
# upcaster, a snapshot saved by hand and one made by a snapshot policy, and a
# consumer that acknowledged part of the channel; the relay has published
# every outbox row.  Besides the default store it has two named stores made
# with eventstore.create_store: public.audit_events (the caller's schema) and
# tenant_b.events (another schema), with events of their own appended after
# the default store's (so they hold the highest positions), one stream id
# (other-1) in all three.  It is dumped with pg_dump -Fc and restored with
# pg_restore --single-transaction -e (as the postgres superuser) into a new
# database.  Checks:
#
#   1. the restore succeeds (on 0.4.0 it failed on relay_state_pkey);
#   2. every table of the extension holds the same rows as the source
#      (events, projections, routes, outbox, relay_state, consumers,
#      upcasters, snapshots, snapshot_policies), so do both named stores,
#      and the sequences continue where the source's stopped;
#   3. nothing is published twice: a LISTEN client on the restored database
#      receives only the outbox rows appended after the restore, relay_once
#      finds nothing to publish, relay_status shows no pending row;
#   4. appends continue at the right stream versions and global positions
#      (no duplicate key; positions above the highest of ALL stores), in the
#      default store and in both named stores (still stores: append and
#      read_all work), their outbox rows get the next ids, the projection
#      still fires (and still vetoes), the consumer's checkpoint still holds;
#   5. one named store alone, dumped with pg_dump -t tenant_b.events and
#      restored into another database that has the extension and events of
#      its own (the documented way to move a store): eventstore.create_store
#      adopts it, its events are all there, appends continue its streams at
#      the right versions with positions above every position in that
#      database, unique across its stores, read_all of it returns them in
#      order.
#
# Bounded: every wait has a deadline; the script takes about 10 s.

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export ES_PORT=${DUMP_RESTORE_PORT:-54420}
export ES_PGDATA=$(mktemp -d /tmp/eventstore-dump.XXXXXX)
export ES_PRELOAD=1
export ES_FSYNC=off
unset ES_SOCKDIR
source "$ES_ROOT/scripts/cluster.sh"
set +e                      # cluster.sh sets -e; failures are counted here
set -u

BIN=$(es_bindir)
WORK=$(mktemp -d /tmp/eventstore-dump-work.XXXXXX)
chmod 777 "$WORK"
bg_pids=()
failures=0

cleanup() {
    local p
    for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    es_stop_cluster
    rm -rf "$ES_PGDATA" "$WORK"
}
trap cleanup EXIT

log()  { printf 'dump_restore: %s\n' "$*" >&2; }
ok()   { printf 'ok     %s\n' "$*"; }
fail() { printf 'FAILED %s\n' "$*"; failures=$((failures + 1)); }
q()    { local db=$1; shift; "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
wait_for() {
    local secs=$1 what=$2; shift 2
    local deadline=$(( $(now_ms) + secs * 1000 ))
    until "$@"; do
        if [ "$(now_ms)" -ge "$deadline" ]; then log "timed out after ${secs}s waiting for: $what"; return 1; fi
        sleep 0.05
    done
}

es_start_cluster || exit 1
q postgres -c "ALTER SYSTEM SET eventstore.relay_naptime = 200" -c "SELECT pg_reload_conf()" >/dev/null
q postgres -c "CREATE DATABASE dr_src" -c "CREATE DATABASE dr_dst" -c "CREATE DATABASE dr_one" >/dev/null || exit 1

# ---------------------------------------------------------------- source
q dr_src >/dev/null <<'SQL' || { fail "setting up the source database"; exit 1; }
CREATE EXTENSION eventstore;
CREATE TABLE account_balance (account text PRIMARY KEY, balance numeric NOT NULL);
CREATE FUNCTION project_balance(e eventstore.events) RETURNS void LANGUAGE plpgsql AS $$
DECLARE delta numeric := CASE e.event_type WHEN 'Deposited' THEN (e.data->>'amount')::numeric
                                           WHEN 'Withdrawn' THEN -(e.data->>'amount')::numeric ELSE 0 END;
        nb numeric;
BEGIN
    INSERT INTO account_balance AS b VALUES (e.stream_id, delta)
    ON CONFLICT (account) DO UPDATE SET balance = b.balance + delta RETURNING balance INTO nb;
    IF nb < 0 THEN RAISE EXCEPTION 'insufficient funds in %', e.stream_id USING ERRCODE = 'check_violation'; END IF;
END $$;
SELECT eventstore.register_projection('balance', 'project_balance(eventstore.events)', ARRAY['Deposited', 'Withdrawn']);
CREATE FUNCTION up_v1(e eventstore.events) RETURNS eventstore.events LANGUAGE plpgsql AS $$
BEGIN e.event_type := 'Deposited'; RETURN e; END $$;
SELECT eventstore.register_upcaster('DepositedV1', 'up_v1(eventstore.events)');
CREATE FUNCTION bal(s jsonb, e eventstore.events) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('n', coalesce((s->>'n')::int, 0) + 1) $$;
SELECT eventstore.set_snapshot_policy('count', 'bal(jsonb, eventstore.events)', 3);
SELECT eventstore.add_route('accounts', categories => ARRAY['account']);
SELECT eventstore.append_event('account-' || (i % 3), NULL, 'Deposited', jsonb_build_object('amount', 10))
  FROM generate_series(1, 9) i;
SELECT eventstore.append_event('account-0', 3, 'Withdrawn', '{"amount": 5}');
SELECT eventstore.append_event('other-1', NULL, 'Noted', '{}');
SELECT eventstore.enqueue('accounts', '{"kind": "plain"}');
SELECT eventstore.save_snapshot('account-1', 2, '{"hand": true}', 'manual');
-- two named stores, appended to after the default store (no stream reaches
-- version 3 in them: the snapshot policy stays out of it)
CREATE SCHEMA tenant_b;
SELECT eventstore.create_store('audit_events');
SELECT eventstore.create_store('tenant_b.events');
SELECT eventstore.append_event('other-1', 0, 'Noted', '{"store": "audit"}', store => 'audit_events');
SELECT eventstore.append_event('ledger-1', 0, 'Noted', '{"n": 1}', store => 'tenant_b.events');
SELECT eventstore.append_event('other-1', 0, 'Noted', '{"store": "tenant_b"}', store => 'tenant_b.events');
SELECT eventstore.append_event('ledger-1', 1, 'Noted', '{"n": 2}', store => 'tenant_b.events');
SELECT eventstore.append_event('audit-1', 0, 'Noted', '{"n": 1}', store => 'audit_events');
SQL

pending_zero() { [ "$(q "$1" -c "SELECT pending FROM eventstore.relay_status WHERE database = current_database()")" = 0 ]; }
wait_for 15 "the relay to publish the source's outbox" pending_zero dr_src || { fail "source not published"; exit 1; }
q dr_src -c "SELECT eventstore.consumer_ack('billing', 'accounts', (SELECT min(id) + 2 FROM eventstore.outbox))" >/dev/null ||
    fail "consumer_ack in the source"

src_cursor=$(q dr_src -c "SELECT last_published_id FROM eventstore.relay_state")
src_outbox_max=$(q dr_src -c "SELECT max(id) FROM eventstore.outbox")
src_pos=$(q dr_src -c "SELECT max(p) FROM (SELECT max(global_position) AS p FROM eventstore.events
                                             UNION ALL SELECT max(global_position) FROM audit_events
                                             UNION ALL SELECT max(global_position) FROM tenant_b.events) m")
default_pos=$(q dr_src -c "SELECT max(global_position) FROM eventstore.events")
[ "$src_pos" -gt "$default_pos" ] || fail "the named stores' events should hold the highest positions ($src_pos, default store $default_pos)"
log "source: cursor $src_cursor, outbox max id $src_outbox_max, last position $src_pos (default store: $default_pos)"
[ "$src_cursor" = "$src_outbox_max" ] || fail "source cursor $src_cursor is not its last outbox id $src_outbox_max"

# ---------------------------------------------------------------- dump, restore
es_as_pg "$BIN/pg_dump" -h "$PGHOST" -p "$PGPORT" -U postgres -Fc -f "$WORK/dr.dump" dr_src ||
    { fail "pg_dump"; exit 1; }
if es_as_pg "$BIN/pg_restore" -h "$PGHOST" -p "$PGPORT" -U postgres --single-transaction -e \
       -d dr_dst "$WORK/dr.dump" > "$WORK/restore.log" 2>&1; then
    ok "pg_restore --single-transaction -e succeeded"
else
    fail "pg_restore --single-transaction -e: $(head -c 600 "$WORK/restore.log")"
    exit 1
fi

# ---------------------------------------------------------------- 2. same rows
for t in events projections routes outbox relay_state consumers upcasters snapshots snapshot_policies; do
    sum="SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM eventstore.$t t"
    a=$(q dr_src -c "$sum"); b=$(q dr_dst -c "$sum")
    if [ -n "$a" ] && [ "$a" = "$b" ]; then ok "eventstore.$t restored ($(q dr_dst -c "SELECT count(*) FROM eventstore.$t") rows)"
    else fail "eventstore.$t differs after the restore"; fi
done
for t in audit_events tenant_b.events; do
    sum="SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM $t t"
    a=$(q dr_src -c "$sum"); b=$(q dr_dst -c "$sum")
    if [ -n "$a" ] && [ "$a" = "$b" ]; then ok "named store $t restored ($(q dr_dst -c "SELECT count(*) FROM $t") rows)"
    else fail "named store $t differs after the restore"; fi
done
dst_cursor=$(q dr_dst -c "SELECT last_published_id FROM eventstore.relay_state")
[ "$dst_cursor" = "$src_cursor" ] && ok "relay cursor restored ($dst_cursor)" ||
    fail "relay cursor $dst_cursor after the restore, $src_cursor before"

# ---------------------------------------------------------------- 3. nothing twice
# The listener: LISTEN, then sleep in 50 ms steps until dr_stop has a row.
q dr_dst -c "CREATE TABLE dr_stop ()" >/dev/null
{
    echo "LISTEN accounts;"
    for _ in $(seq 1 300); do
        echo "SELECT pg_sleep(0.05), EXISTS (SELECT FROM dr_stop) AS stop \\gset"
        echo '\if :stop'; echo '\q'; echo '\endif'
    done
} > "$WORK/listener.sql"
PGAPPNAME=dr_listener "$BIN/psql" -X -q -d dr_dst -f "$WORK/listener.sql" > "$WORK/listener.out" 2>&1 &
bg_pids+=($!)
listening() {
    [ "$(q dr_dst -c "SELECT count(*) FROM pg_stat_activity WHERE datname = 'dr_dst'
                        AND application_name = 'dr_listener' AND query LIKE '%pg_sleep%'")" = 1 ]
}
wait_for 10 "the listener" listening || fail "listener did not start"
worker_up() { [ -n "$(q dr_dst -c "SELECT pid FROM eventstore.relay_status WHERE database = 'dr_dst' AND pid IS NOT NULL")" ]; }
wait_for 15 "a relay worker for dr_dst" worker_up || fail "no relay worker serves dr_dst"
sleep 1                     # several naptimes: a worker that would republish has done so
n=$(q dr_dst -c "SELECT eventstore.relay_once()")
[ "$n" = 0 ] && ok "relay_once after the restore publishes nothing" || fail "relay_once after the restore published $n rows"
tot=$(q dr_dst -c "SELECT published_total FROM eventstore.relay_status WHERE database = current_database()")
[ "$tot" = 0 ] && ok "the worker of the restored database published nothing (published_total 0)" ||
    fail "the worker of the restored database published $tot restored rows again"
pend=$(q dr_dst -c "SELECT pending FROM eventstore.relay_status WHERE database = current_database()")
[ "$pend" = 0 ] && ok "relay_status: nothing pending after the restore" || fail "relay_status: $pend pending after the restore"

# ---------------------------------------------------------------- 4. appends continue
out=$(q dr_dst -c "SELECT stream_version || ' ' || global_position FROM eventstore.append_event('account-0', 4, 'Deposited', '{\"amount\": 1}')")
[ "$out" = "5 $((src_pos + 1))" ] && ok "append continues at version 5, position $((src_pos + 1))" ||
    fail "append after the restore: '$out' (expected '5 $((src_pos + 1))')"
out=$(q dr_dst -c "SELECT stream_version || ' ' || global_position FROM eventstore.append_event('account-9', NULL, 'Deposited', '{\"amount\": 2}')")
[ "$out" = "1 $((src_pos + 2))" ] && ok "a new stream starts at version 1, position $((src_pos + 2))" ||
    fail "new stream after the restore: '$out'"
out=$(q dr_dst -c "SELECT stream_version || ' ' || global_position FROM eventstore.append_event('other-1', 1, 'Noted', '{}', store => 'tenant_b.events')")
[ "$out" = "2 $((src_pos + 3))" ] && ok "named store tenant_b.events: other-1 continues at version 2, position $((src_pos + 3))" ||
    fail "append to tenant_b.events after the restore: '$out' (expected '2 $((src_pos + 3))')"
out=$(q dr_dst -c "SELECT stream_version || ' ' || global_position FROM eventstore.append_event('other-1', 1, 'Noted', '{}', store => 'audit_events')")
[ "$out" = "2 $((src_pos + 4))" ] && ok "named store public.audit_events: other-1 continues at version 2, position $((src_pos + 4))" ||
    fail "append to audit_events after the restore: '$out' (expected '2 $((src_pos + 4))')"
out=$(q dr_dst -c "SELECT eventstore.stream_version('other-1') || ' ' || eventstore.stream_version('other-1', 'audit_events')
                          || ' ' || eventstore.stream_version('other-1', 'tenant_b.events')")
[ "$out" = "1 2 2" ] && ok "other-1 is three streams: version 1 in the default store, 2 in each named store" ||
    fail "other-1 versions (default, audit_events, tenant_b.events) after the restore: '$out', expected '1 2 2'"
for t in audit_events tenant_b.events; do
    out=$(q dr_dst -c "SELECT count(*) || ' ' || (count(*) = (SELECT count(*) FROM $t)) || ' ' || bool_and(global_position > 0)
                         FROM eventstore.read_all(0, 1000, '$t')")
    [ "$out" = "$(q dr_src -c "SELECT count(*) + 1 FROM $t") true true" ] && ok "read_all of the restored store $t returns its events and the new one" ||
        fail "read_all of $t after the restore: '$out'"
done
dup=$(q dr_dst -c "SELECT count(*) - count(DISTINCT global_position) FROM (SELECT global_position FROM eventstore.events
                       UNION ALL SELECT global_position FROM audit_events UNION ALL SELECT global_position FROM tenant_b.events) p")
[ "$dup" = 0 ] && ok "positions unique across the three restored stores" || fail "$dup duplicate positions across the restored stores"
new_ids=$(q dr_dst -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM eventstore.outbox WHERE id > $src_outbox_max")
[ "$new_ids" = "$((src_outbox_max + 1)),$((src_outbox_max + 2))" ] && ok "new outbox rows get ids $new_ids" ||
    fail "new outbox ids after the restore: '$new_ids'"
bal=$(q dr_dst -c "SELECT balance FROM account_balance WHERE account = 'account-0'")
[ "$bal" = 26 ] && ok "projection still fires (account-0 balance 26)" || fail "projection after the restore: balance '$bal', expected 26"
if q dr_dst -c "SELECT eventstore.append_event('account-9', 1, 'Withdrawn', '{\"amount\": 100}')" >/dev/null 2>&1; then
    fail "projection no longer vetoes after the restore"
else ok "projection still vetoes"; fi

got_both() { [ "$(grep -c 'Asynchronous notification "accounts"' "$WORK/listener.out")" -ge 2 ]; }
wait_for 10 "notifications of the two new rows" got_both
sleep 0.5
polled=$(q dr_dst -c "SELECT count(*) FROM eventstore.consumer_poll('billing', 'accounts', 100)")
q dr_dst -c "INSERT INTO dr_stop DEFAULT VALUES" >/dev/null
wait "${bg_pids[0]}" 2>/dev/null
notified=$(grep -o 'payload "{\\\?"id": [0-9]*' "$WORK/listener.out" | grep -o '[0-9]*$' | paste -sd, -)
[ -z "$notified" ] && notified=$(sed -n 's/.*payload "{"id": \([0-9]*\).*/\1/p' "$WORK/listener.out" | paste -sd, -)
if [ "$notified" = "$new_ids" ]; then ok "the listener got exactly the new rows ($notified), nothing restored twice"
else fail "the listener got ids '$notified', expected only '$new_ids'"; fi
expect_polled=$(( src_outbox_max - $(q dr_src -c "SELECT min(id) + 2 FROM eventstore.outbox") + 2 ))
[ "$polled" = "$expect_polled" ] && ok "consumer checkpoint restored ($polled messages after it)" ||
    fail "consumer_poll after the restore: $polled messages, expected $expect_polled"

# ---------------------------------------------------------------- 5. one store alone
# dr_one: the extension and three events of its own (positions 1..3, below
# the dumped store's), then tenant_b.events from pg_dump -t.
q dr_one -c "CREATE EXTENSION eventstore" -c "CREATE SCHEMA tenant_b" \
  -c "SELECT eventstore.append_event('mine-' || i, 0, 'Mine', '{}') FROM generate_series(1, 3) i" >/dev/null ||
    fail "setting up dr_one"
es_as_pg "$BIN/pg_dump" -h "$PGHOST" -p "$PGPORT" -U postgres -t tenant_b.events -f "$WORK/one.sql" dr_src ||
    fail "pg_dump -t tenant_b.events"
if q dr_one -f "$WORK/one.sql" > "$WORK/one.log" 2>&1; then ok "pg_dump -t tenant_b.events restored into a database with the extension"
else fail "restoring pg_dump -t tenant_b.events: $(head -c 600 "$WORK/one.log")"; fi
out=$(q dr_one -c "SELECT eventstore.create_store('tenant_b.events')")
[ "$out" = tenant_b.events ] && ok "create_store adopts the restored table" || fail "create_store('tenant_b.events') in dr_one: '$out'"
sum="SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM tenant_b.events t"
[ "$(q dr_src -c "$sum")" = "$(q dr_one -c "$sum")" ] && ok "the adopted store holds the dumped events" ||
    fail "the adopted store's events differ from the source's"
one_max=$(q dr_one -c "SELECT max(p) FROM (SELECT max(global_position) AS p FROM eventstore.events
                                            UNION ALL SELECT max(global_position) FROM tenant_b.events) m")
out=$(q dr_one -c "SELECT stream_version || ' ' || (global_position > $one_max) FROM eventstore.append_event('ledger-1', 2, 'Noted', '{\"n\": 3}', store => 'tenant_b.events')")
[ "$out" = "3 true" ] && ok "append to the adopted store continues ledger-1 at version 3, at a position above every position in the database ($one_max)" ||
    fail "append to the adopted store: '$out' (expected '3 true': version 3, at a position above $one_max)"
out=$(q dr_one -c "SELECT stream_version || ' ' || (global_position > $one_max) FROM eventstore.append_event('other-1', 1, 'Noted', '{}', store => 'tenant_b.events')")
[ "$out" = "2 true" ] && ok "other-1 of the adopted store continues at version 2, above position $one_max" ||
    fail "append of other-1 to the adopted store: '$out' (expected '2 true')"
q dr_one -c "SELECT eventstore.append_event('mine-1', 1, 'Mine', '{}')" >/dev/null || fail "append to dr_one's default store"
dup=$(q dr_one -c "SELECT count(*) - count(DISTINCT global_position) FROM (SELECT global_position FROM eventstore.events
                       UNION ALL SELECT global_position FROM tenant_b.events) p")
[ "$dup" = 0 ] && ok "positions unique across dr_one's two stores" || fail "$dup duplicate positions across dr_one's stores"
out=$(q dr_one -c "SELECT string_agg(stream_id || ':' || stream_version, ' ' ORDER BY global_position) FROM eventstore.read_all(0, 100, 'tenant_b.events')")
[ "$out" = "ledger-1:1 other-1:1 ledger-1:2 ledger-1:3 other-1:2" ] && ok "read_all of the adopted store: its events in order, then the new ones" ||
    fail "read_all of the adopted store: '$out', expected 'ledger-1:1 other-1:1 ledger-1:2 ledger-1:3 other-1:2'"

if [ $failures = 0 ]; then log "all checks passed"; exit 0; fi
log "$failures check(s) failed"
exit 1
