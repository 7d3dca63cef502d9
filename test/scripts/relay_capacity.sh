#!/usr/bin/env bash
# More databases than background worker slots: the relay serves them in turns.
#
# A throwaway cluster of its own (port RELAY_CAPACITY_PORT, default 54422,
# library preloaded) with the default max_worker_processes = 8, of which the
# relay launcher takes one and the logical replication launcher another:
# six slots at most for relay workers.  RELAY_CAPACITY_DBS databases (default
# 12) get the extension and a route each.  Checks:
#
#   1. relay_status shows the databases that wait for a slot (state "waiting
#      for a worker slot", waiting_since set, no pid), and the server log
#      says why (max_worker_processes);
#   2. an event appended in every database, all at once, is published in
#      every one of them within RELAY_CAPACITY_BOUND seconds (default 30):
#      idle workers give their slot to the databases woken by a commit;
#   3. so is a second round, appended once everything is idle again;
#   4. nothing is left pending anywhere, every row was published once.
#
# Before databases took turns, the ones past the sixth were never served.
# Prints the time the slowest database took in each round.

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export ES_PORT=${RELAY_CAPACITY_PORT:-54422}
export ES_PGDATA=$(mktemp -d /tmp/eventstore-capacity.XXXXXX)
export ES_PRELOAD=1
export ES_FSYNC=off
unset ES_SOCKDIR
source "$ES_ROOT/scripts/cluster.sh"
set +e                      # cluster.sh sets -e; failures are counted here
set -u

NDB=${RELAY_CAPACITY_DBS:-12}
BOUND=${RELAY_CAPACITY_BOUND:-30}
BIN=$(es_bindir)
failures=0

cleanup() { es_stop_cluster; rm -rf "$ES_PGDATA"; }
trap cleanup EXIT

log()  { printf 'relay_capacity: %s\n' "$*" >&2; }
ok()   { printf 'ok     %s\n' "$*"; }
fail() { printf 'FAILED %s\n' "$*"; failures=$((failures + 1)); }
q()    { local db=$1; shift; "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

es_start_cluster || exit 1
[ "$(q postgres -c 'SHOW max_worker_processes')" = 8 ] || fail "max_worker_processes is not the default 8"

for i in $(seq 1 "$NDB"); do
    q postgres -c "CREATE DATABASE cap$i STRATEGY FILE_COPY" || { fail "CREATE DATABASE cap$i"; exit 1; }
    q "cap$i" -c "CREATE EXTENSION eventstore" -c "SELECT eventstore.add_route('cap', categories => ARRAY['cap'])" \
        >/dev/null || { fail "extension in cap$i"; exit 1; }
done

# ---------------------------------------------------------------- 1. visible
saw_waiting=
deadline=$(( $(now_ms) + 20000 ))
while [ "$(now_ms)" -lt "$deadline" ]; do
    # every database asks for its worker at once (as a commit with outbox
    # rows does), so more databases want a slot than there are slots
    if [ -z "$saw_waiting" ]; then
        for i in $(seq 1 "$NDB"); do q "cap$i" -c "SELECT eventstore._relay_wakeup()" >/dev/null 2>&1 & done
        wait
    fi
    saw_waiting=$(q cap1 -c "SELECT database || ' since ' || waiting_since FROM eventstore.relay_status
                              WHERE state = 'waiting for a worker slot' AND waiting_since IS NOT NULL AND pid IS NULL
                              LIMIT 1" 2>/dev/null)
    [ -n "$saw_waiting" ] && break
    sleep 0.1
done
[ -n "$saw_waiting" ] && ok "relay_status shows a database waiting for a worker slot ($saw_waiting)" ||
    fail "relay_status never showed a database waiting for a worker slot"
grep -q "no background worker slot free for the relay" "$ES_PGDATA/server.log" &&
    ok "the server log says the relay is short of background worker slots" ||
    fail "no log line about the missing worker slots"

# ---------------------------------------------------------------- 2., 3. served
published() { [ "$(q "$1" -c "SELECT count(*) FROM eventstore.outbox WHERE published_at IS NULL")" = 0 ]; }
round() {
    local r=$1 t0 i left slowest=0 ms
    t0=$(now_ms)
    for i in $(seq 1 "$NDB"); do
        q "cap$i" -c "SELECT eventstore.append_event('cap-$r', NULL, 'Ping', '{}')" >/dev/null || fail "append in cap$i"
    done
    left=$(seq 1 "$NDB")
    while [ -n "$left" ] && [ $(( $(now_ms) - t0 )) -lt $(( BOUND * 1000 )) ]; do
        local still=""
        for i in $left; do
            if published "cap$i"; then
                ms=$(( $(now_ms) - t0 )); [ $ms -gt $slowest ] && slowest=$ms
            else still="$still $i"; fi
        done
        left=$still
        [ -n "$left" ] && sleep 0.2
    done
    if [ -z "$left" ]; then
        ok "round $r: the event appended in each of $NDB databases was published in every one, the slowest after ${slowest} ms"
    else
        fail "round $r: not published within ${BOUND}s in:$(for i in $left; do printf ' cap%s' "$i"; done);" \
             "relay_status: $(q cap1 -c "SELECT string_agg(database || '=' || state, ', ' ORDER BY database) FROM eventstore.relay_status")"
    fi
}
round 1
sleep 3                      # everything idle again; workers have taken turns
round 2

# ---------------------------------------------------------------- 4. nothing left
bad=""
for i in $(seq 1 "$NDB"); do
    r=$(q "cap$i" -c "SELECT count(*) || '/' || count(published_at) || '/' || (SELECT last_published_id FROM eventstore.relay_state)
                      || '/' || (SELECT pending FROM eventstore.relay_status WHERE database = current_database())
                      FROM eventstore.outbox")
    [ "$r" = "2/2/2/0" ] || bad="$bad cap$i=$r"
done
[ -z "$bad" ] && ok "every database: 2 outbox rows, both published, cursor 2, nothing pending" ||
    fail "rows/published/cursor/pending:$bad"

if [ $failures = 0 ]; then log "all checks passed"; exit 0; fi
log "$failures check(s) failed"
exit 1
