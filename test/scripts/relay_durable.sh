#!/usr/bin/env bash
# What a LISTEN client was told survives a crash, even with
# synchronous_commit = off.
#
# A throwaway cluster of its own (port RELAY_DURABLE_PORT, default 54421,
# library preloaded) runs with synchronous_commit = off and
# wal_writer_delay = 10s, so a commit's WAL can sit in shared memory for up
# to ten seconds.  A NOTIFY is delivered once its transaction is marked
# committed, which with synchronous_commit = off happens before its WAL is
# flushed.  Each of RELAY_DURABLE_ROUNDS rounds (default 2):
#
#   - a psql LISTENs on the route's channel;
#   - 5 routed events are appended, one transaction each (asynchronous
#     commits, like the rest of the cluster);
#   - as soon as the listener has printed the 5 notifications sent by the
#     relay worker, the postmaster and every process of the cluster are
#     SIGKILLed (no shutdown, no WAL flush);
#   - the server is started again (crash recovery) with the relay off
#     (eventstore.relay_databases names no database), and every notified
#     outbox id must still exist, be marked published and be at or below the
#     relay's cursor: otherwise a listener was told of a row that is gone (a
#     phantom) or the row is published again after the restart.
#
# The relay commits its passes with synchronous_commit at least local, which
# flushes its commit and everything before it in the WAL (the appends it
# read included) before any listener is notified.  Before that change the
# first round already failed.
#
# Last, relay_once in a transaction raises synchronous_commit for that
# transaction only.
#
# Bounded: every wait has a deadline; about 20 s.

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export ES_PORT=${RELAY_DURABLE_PORT:-54421}
export ES_PGDATA=$(mktemp -d /tmp/eventstore-durable.XXXXXX)
export ES_PRELOAD=1
export ES_FSYNC=on
unset ES_SOCKDIR
source "$ES_ROOT/scripts/cluster.sh"
set +e                      # cluster.sh sets -e; failures are counted here
set -u

ROUNDS=${RELAY_DURABLE_ROUNDS:-2}
PER_ROUND=5
DB=relay_durable
BIN=$(es_bindir)
WORK=$(mktemp -d /tmp/eventstore-durable-work.XXXXXX)
listener=
failures=0

cluster_pids() {
    local d k v st
    for d in /proc/[0-9]*; do
        [ "$d/cwd" -ef "$ES_PGDATA" ] 2>/dev/null || continue
        st=
        while read -r k v; do
            [ "$k" = State: ] && { st=${v%% *}; break; }
        done <"$d/status" 2>/dev/null
        [ -n "$st" ] && [ "$st" != Z ] && echo "${d#/proc/}"
    done
}
cleanup() {
    local p
    [ -n "$listener" ] && kill "$listener" 2>/dev/null
    wait 2>/dev/null
    es_stop_cluster
    for p in $(cluster_pids); do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$ES_PGDATA" "$WORK"
}
trap cleanup EXIT

log()  { printf 'relay_durable: %s\n' "$*" >&2; }
ok()   { printf 'ok     %s\n' "$*"; }
fail() { printf 'FAILED %s\n' "$*"; failures=$((failures + 1)); }
q()    { "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
wait_for() {
    local secs=$1 what=$2; shift 2
    local deadline=$(( $(now_ms) + secs * 1000 ))
    until "$@"; do
        if [ "$(now_ms)" -ge "$deadline" ]; then log "timed out after ${secs}s waiting for: $what"; return 1; fi
        sleep 0.01
    done
}

crash_server() {
    local pm p
    pm=$(head -1 "$ES_PGDATA/postmaster.pid" 2>/dev/null)
    kill -STOP "$pm"        # no new children, no orderly shutdown
    kill -KILL "$pm" $(cluster_pids) 2>/dev/null
    for _ in $(seq 1 100); do
        [ -z "$(cluster_pids)" ] && break
        for p in $(cluster_pids); do kill -KILL "$p" 2>/dev/null; done
        sleep 0.05
    done
    for _ in $(seq 1 100); do kill -0 "$pm" 2>/dev/null || break; sleep 0.05; done
}
# start [extra postgres options]
start_server() {
    es_as_pg "$BIN/pg_ctl" -D "$ES_PGDATA" -l "$ES_PGDATA/server.log" -w -t 60 ${1:+-o "$1"} start >/dev/null
}

es_start_cluster || exit 1
{
    echo "synchronous_commit = off"
    echo "wal_writer_delay = 10s"
    echo "autovacuum = off"
} | es_as_pg tee -a "$ES_PGDATA/postgresql.auto.conf" >/dev/null
es_as_pg "$BIN/pg_ctl" -D "$ES_PGDATA" -w restart >/dev/null || { fail "restart with synchronous_commit = off"; exit 1; }
"$BIN/psql" -X -q -d postgres -c "CREATE DATABASE $DB" || exit 1
q -c "CREATE EXTENSION eventstore" -c "SELECT eventstore.add_route('dur', categories => ARRAY['dur'])" \
  -c "CREATE TABLE stop_listening ()" >/dev/null || exit 1
[ "$(q -c 'SHOW synchronous_commit')" = off ] || fail "synchronous_commit is not off"

worker_up() { [ -n "$(q -c "SELECT pid FROM eventstore.relay_status WHERE database = current_database() AND pid IS NOT NULL" 2>/dev/null)" ]; }
listening() {
    [ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                 AND application_name = 'dur_listener' AND query LIKE '%pg_sleep%'")" = 1 ]
}
notified_count() { grep -c 'Asynchronous notification "dur"' "$WORK/listener.out"; }
all_notified() { [ "$(notified_count)" -ge "$1" ]; }

{
    echo "LISTEN dur;"
    for _ in $(seq 1 3000); do
        echo "SELECT pg_sleep(0.005), EXISTS (SELECT FROM stop_listening) AS stop \\gset"
        echo '\if :stop'; echo '\q'; echo '\endif'
    done
} > "$WORK/listener.sql"

lost_total=0; notified_total=0
# round N MODE: MODE worker (the background worker publishes) or relay_once
# (the worker is off; a session with synchronous_commit = off calls
# relay_once, which must commit durably all the same).
round() {
    local round=$1 mode=$2 i ids n_ids survived cursor max_id lost
    if [ "$mode" = worker ]; then
        wait_for 20 "a relay worker" worker_up || { fail "round $round: no relay worker"; return 1; }
    fi
    PGAPPNAME=dur_listener "$BIN/psql" -X -q -d "$DB" -f "$WORK/listener.sql" > "$WORK/listener.out" 2>&1 &
    listener=$!
    wait_for 10 "the listener" listening || { fail "round $round: listener did not start"; return 1; }
    for i in $(seq 1 $PER_ROUND); do
        q -c "SELECT eventstore.append_event('dur-$round-$i', NULL, 'Happened', '{\"round\": $round}')" >/dev/null ||
            fail "round $round: append $i"
    done
    if [ "$mode" = relay_once ]; then
        [ "$(q -c "SET synchronous_commit = off" -c "SELECT eventstore.relay_once()")" = $PER_ROUND ] ||
            fail "round $round: relay_once did not publish $PER_ROUND rows"
    fi
    if ! wait_for 10 "$PER_ROUND notifications" all_notified $PER_ROUND; then
        fail "round $round: only $(notified_count) of $PER_ROUND notifications arrived"
        return 1
    fi
    crash_server
    kill "$listener" 2>/dev/null; wait "$listener" 2>/dev/null; listener=
    ids=$(sed -n 's/.*payload "{"id": \([0-9]*\).*/\1/p' "$WORK/listener.out" | paste -sd, -)
    n_ids=$(echo "$ids" | tr ',' '\n' | grep -c .)
    notified_total=$((notified_total + n_ids))

    # Recovery with the relay off: what survived is what the WAL had.
    start_server "-c eventstore.relay_databases=no_such_database" ||
        { fail "round $round: restart after the kill: $(tail -3 "$ES_PGDATA/server.log")"; return 1; }
    read -r survived cursor <<<"$(q -F ' ' -c "SELECT (SELECT count(*) FROM eventstore.outbox
                                                        WHERE id = ANY('{$ids}'::bigint[]) AND published_at IS NOT NULL),
                                                      (SELECT last_published_id FROM eventstore.relay_state)")"
    max_id=$(echo "$ids" | tr ',' '\n' | sort -n | tail -1)
    lost=$((n_ids - survived))
    lost_total=$((lost_total + lost))
    if [ "$n_ids" = "$PER_ROUND" ] && [ "$lost" = 0 ] && [ "$cursor" -ge "$max_id" ]; then
        ok "round $round ($mode): the $n_ids notified rows ($ids) survived the SIGKILL, published, cursor $cursor"
    else
        fail "round $round ($mode): notified ids {$ids}; after the SIGKILL $survived of them exist and are published, relay cursor $cursor (must be >= $max_id)"
    fi
    es_as_pg "$BIN/pg_ctl" -D "$ES_PGDATA" -m fast -w stop >/dev/null
    if [ "$mode" = worker ]; then start_server; else start_server "-c eventstore.relay_databases=no_such_database"; fi ||
        { fail "round $round: restart"; return 1; }
}

for r in $(seq 1 "$ROUNDS"); do round "$r" worker || break; done
es_as_pg "$BIN/pg_ctl" -D "$ES_PGDATA" -m fast -w stop >/dev/null
start_server "-c eventstore.relay_databases=no_such_database"
round $((ROUNDS + 1)) relay_once

# relay_once raises synchronous_commit for its own transaction only.
out=$(q -c "SET synchronous_commit = off" -c "SELECT eventstore.enqueue('dur', '{}')" -c "BEGIN" \
        -c "SELECT eventstore.relay_once()" -c "SHOW synchronous_commit" -c "COMMIT" -c "SHOW synchronous_commit" | paste -sd' ' -)
[ "$out" = "$(q -c "SELECT max(id) FROM eventstore.outbox") 1 local off" ] &&
    ok "relay_once: synchronous_commit local in its transaction, off again after it ($out)" ||
    fail "relay_once and synchronous_commit: '$out' (want: <id> 1 local off)"

log "notified $notified_total rows over $((ROUNDS + 1)) rounds; lost or unpublished after the kill: $lost_total"
if [ $failures = 0 ]; then log "all checks passed"; exit 0; fi
log "$failures check(s) failed"
exit 1
