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
# every outbox row.  It is dumped with pg_dump -Fc and restored with
# pg_restore --single-transaction -e (as the postgres superuser) into a new
# database.  Checks:
#
#   1. the restore succeeds (on 0.4.0 it failed on relay_state_pkey);
#   2. every table of the extension holds the same rows as the source
#      (events, projections, routes, outbox, relay_state, consumers,
#      upcasters, snapshots, snapshot_policies) and the sequences continue
#      where the source's stopped;
#   3. nothing is published twice: a LISTEN client on the restored database
#      receives only the outbox rows appended after the restore, relay_once
#      finds nothing to publish, relay_status shows no pending row;
#   4. appends continue at the right stream versions and global positions
#      (no duplicate key), their outbox rows get the next ids, the projection
#      still fires (and still vetoes), the consumer's checkpoint still holds.
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
q postgres -c "CREATE DATABASE dr_src" -c "CREATE DATABASE dr_dst" >/dev/null || exit 1

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
SQL

pending_zero() { [ "$(q "$1" -c "SELECT pending FROM eventstore.relay_status WHERE database = current_database()")" = 0 ]; }
wait_for 15 "the relay to publish the source's outbox" pending_zero dr_src || { fail "source not published"; exit 1; }
q dr_src -c "SELECT eventstore.consumer_ack('billing', 'accounts', (SELECT min(id) + 2 FROM eventstore.outbox))" >/dev/null ||
    fail "consumer_ack in the source"

src_cursor=$(q dr_src -c "SELECT last_published_id FROM eventstore.relay_state")
src_outbox_max=$(q dr_src -c "SELECT max(id) FROM eventstore.outbox")
src_pos=$(q dr_src -c "SELECT max(global_position) FROM eventstore.events")
log "source: cursor $src_cursor, outbox max id $src_outbox_max, last position $src_pos"
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

if [ $failures = 0 ]; then log "all checks passed"; exit 0; fi
log "$failures check(s) failed"
exit 1
