#!/usr/bin/env bash
# The relay worker under faults, on a throwaway cluster of its own (port
# 54385, library preloaded), stopped and deleted on exit.  Expects the
# extension to be installed already (scripts/test.sh does that).
#
#   A. SIGKILL of the worker in the middle of a burst of appends (4 writers,
#      each append retried with the same event id until acknowledged, so the
#      postmaster's restart of every backend costs nothing but time): the
#      launcher starts a new worker, which publishes the rest; every
#      acknowledged event exists once, with exactly one outbox row, published;
#      no outbox id was notified twice to the listener that ran before the
#      kill and the one started after the restart, and each received its ids
#      in increasing order.
#   B. SIGTERM of the worker: it exits cleanly (no restart of the server); a
#      worker serves the database again (the launcher restarts one that
#      exited without a reason) and the next append is published.
#   C. SIGHUP with eventstore.relay_databases naming another database: the
#      worker leaves ("left: not in relay_databases") and appends stay
#      pending; with the setting reset, a worker comes back and publishes them.
#   D. DROP DATABASE of a database a worker serves succeeds within 5 s.
#   E. More databases than free background worker slots when the launcher
#      scans: the workers it could not start are tried again later, so a
#      database that then gets the extension is served.
#
# Each wait has a deadline; the script takes about 30 s.  Exit 0 when every
# check passed.

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export ES_PORT=${RELAY_FAULTS_PORT:-54385}
export ES_PGDATA=$(mktemp -d /tmp/eventstore-faults.XXXXXX)
export ES_PRELOAD=1
export ES_FSYNC=off         # a backend crash, not an OS crash: fsync is not needed
unset ES_SOCKDIR
source "$ES_ROOT/scripts/cluster.sh"
set +e                      # cluster.sh sets -e; failures are counted here
set -u

PSQL="$(es_bindir)/psql"
WORK=$(mktemp -d /tmp/eventstore-faults-work.XXXXXX)
DB=faults
CHANNEL=f
WRITERS=4
PER_WRITER=40
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

T_START=$(date +%s%N)
log()  { printf 'relay_faults: [%5.1fs] %s\n' "$(( ($(date +%s%N) - T_START) / 1000000 ))e-3" "$*" >&2; }
ok()   { printf 'ok     %s\n' "$*"; }
fail() { printf 'FAILED %s\n' "$*"; failures=$((failures + 1)); }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# q DB psql-args...: quiet, unaligned, stop on error
q() { local db=$1; shift; "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 50 ms
wait_for() {
    local secs=$1 what=$2; shift 2
    local deadline=$(( $(now_ms) + secs * 1000 ))
    until "$@"; do
        if [ "$(now_ms)" -ge "$deadline" ]; then
            log "timed out after ${secs}s waiting for: $what"
            return 1
        fi
        sleep 0.05
    done
}

# relay_status of database $1, seen from database $DB: "pid|state|pending"
status_of() {
    q "$DB" -c "SELECT coalesce(pid::text, ''), state, coalesce(pending::text, '')
                  FROM eventstore.relay_status WHERE database = '$1'" 2>/dev/null
}
worker_pid() { status_of "$1" | cut -d'|' -f1; }
# a worker other than $2 (may be empty) serves database $1
worker_up() { local p; p=$(worker_pid "$1"); [ -n "$p" ] && [ "$p" != "${2:-}" ]; }
pending() { q "$DB" -c "SELECT count(*) FROM eventstore.outbox WHERE published_at IS NULL" 2>/dev/null; }
none_pending() { [ "$(pending)" = 0 ]; }
server_up() { q postgres -c "SELECT 1" >/dev/null 2>&1; }

# start_listener NAME: a psql that LISTENs on $CHANNEL in $DB and sleeps 20 ms
# at a time until table f_stop has a row (at most about 60 s); output in
# $WORK/NAME.out.  Sets LISTENER_PID.
start_listener() {
    local name=$1
    {
        echo "LISTEN $CHANNEL;"
        for _ in $(seq 1 2500); do
            echo "SELECT pg_sleep(0.02), EXISTS (SELECT FROM f_stop) AS stop \\gset"
            echo '\if :stop'
            echo '\q'
            echo '\endif'
        done
    } > "$WORK/$name.sql"
    PGAPPNAME=$name "$PSQL" -X -q -d "$DB" -f "$WORK/$name.sql" > "$WORK/$name.out" 2>&1 &
    LISTENER_PID=$!
    bg_pids+=("$LISTENER_PID")
    listening() {
        [ "$(q "$DB" -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$name'
                           AND query LIKE '%pg_sleep%'" 2>/dev/null)" = 1 ]
    }
    wait_for 10 "listener $name" listening
}

# ids notified to listener NAME, one per line, in arrival order
notified_ids() {
    sed -n 's/^Asynchronous notification "'$CHANNEL'" with payload "{"id": \([0-9]*\),.*/\1/p' "$WORK/$1.out"
}
# strictly increasing, no repeats
increasing() { awk 'NR > 1 && $1 <= prev { bad = 1 } { prev = $1 } END { exit bad }'; }

# appender W: appends burst-W versions 1..PER_WRITER with fixed event ids;
# an append that fails (the server restarting) is retried with the same
# event id, which is an idempotent retry once the first attempt committed.
# Logs "W N position" for each acknowledged append.
appender() {
    local w=$1 n out
    for n in $(seq 1 $PER_WRITER); do
        while :; do
            if out=$("$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$DB" -c \
                    "SELECT global_position FROM eventstore.append_event('burst-$w', NULL, 'Burst',
                        jsonb_build_object('w', $w, 'n', $n), NULL,
                        '00000000-0000-4000-8000-$(printf '%04d%08d' "$w" "$n")')" 2>>"$WORK/appender$w.err"); then
                echo "$w $n $out" >> "$WORK/acked"
                break
            fi
            [ "$(now_ms)" -ge "$APPEND_DEADLINE" ] && return 1
            sleep 0.05
        done
    done
}

# ---------------------------------------------------------------- set-up
es_start_cluster || exit 1
q postgres -c "CREATE DATABASE $DB" >/dev/null || exit 1
q "$DB" -c "CREATE EXTENSION eventstore" \
        -c "SELECT eventstore.add_route('$CHANNEL')" \
        -c "CREATE TABLE f_stop ()" >/dev/null || exit 1
if ! wait_for 15 "a relay worker for $DB" worker_up "$DB"; then
    fail "no relay worker serves $DB: $(status_of "$DB")"
    exit 1
fi
crashes() { grep -c 'all server processes terminated; reinitializing' "$ES_PGDATA/server.log"; }

# ================================================================ A. SIGKILL
log "A. SIGKILL of the worker during a burst"
start_listener before_kill || fail "listener before_kill did not start"
touch "$WORK/acked"
APPEND_DEADLINE=$(( $(now_ms) + 40000 ))
writer_pids=()
for w in $(seq 1 $WRITERS); do
    appender "$w" &
    writer_pids+=($!)
    bg_pids+=($!)
done
some_acked() { [ "$(wc -l < "$WORK/acked")" -ge 20 ]; }
wait_for 15 "20 acknowledged appends" some_acked
OLD_PID=$(worker_pid "$DB")
acked_at_kill=$(wc -l < "$WORK/acked")
t_kill=$(now_ms)
kill -KILL "$OLD_PID"
log "killed worker $OLD_PID after $acked_at_kill acknowledged appends"

wait_for 30 "the server to accept connections again" server_up || fail "the server did not come back"
t_back=$(now_ms)
if wait_for 20 "a new relay worker for $DB" worker_up "$DB" "$OLD_PID"; then
    ok "a new worker ($(worker_pid "$DB")) serves $DB $(( $(now_ms) - t_kill )) ms after SIGKILL (server accepting connections after $(( t_back - t_kill )) ms)"
else
    fail "no new worker for $DB after SIGKILL: $(status_of "$DB")"
fi
[ "$(crashes)" -ge 1 ] && ok "the postmaster restarted every backend after the SIGKILL" \
    || fail "no crash restart in the server log after SIGKILL"
start_listener after_restart || fail "listener after_restart did not start"

writers_ok=1
for p in "${writer_pids[@]}"; do wait "$p" || writers_ok=0; done
n_acked=$(wc -l < "$WORK/acked")
if [ $writers_ok = 1 ] && [ "$n_acked" = $((WRITERS * PER_WRITER)) ]; then
    ok "$n_acked appends acknowledged ($acked_at_kill before the kill); $(cat "$WORK"/appender*.err 2>/dev/null | grep -c -e 'ERROR\|FATAL\|terminat\|server closed') failed attempts retried"
else
    fail "only $n_acked of $((WRITERS * PER_WRITER)) appends acknowledged: $(tail -3 "$WORK"/appender1.err)"
fi
wait_for 15 "the outbox to be published" none_pending || fail "$(pending) outbox rows still pending after the restart"

# every acknowledged event once, one outbox row each, all published
sed 's/^\([0-9]*\) \([0-9]*\) \([0-9]*\)$/\1\t\2\t\3/' "$WORK/acked" > "$WORK/acked.tsv"
q "$DB" > "$WORK/checkA.out" 2>&1 <<SQL
CREATE TABLE acked (w int, n int, pos bigint);
\copy acked FROM '$WORK/acked.tsv'
SELECT 'check each acknowledged append stored once at its position: ' || (
    (SELECT count(*) FROM acked) = (SELECT count(DISTINCT (w, n)) FROM acked)
    AND NOT EXISTS (SELECT FROM acked a LEFT JOIN eventstore.events e
                      ON e.stream_id = 'burst-' || a.w AND e.stream_version = a.n
                     WHERE e.global_position IS DISTINCT FROM a.pos
                        OR e.event_id <> ('00000000-0000-4000-8000-' || lpad(a.w::text, 4, '0') || lpad(a.n::text, 8, '0'))::uuid));
SELECT 'check no event that was not acknowledged: ' || (
    (SELECT count(*) FROM eventstore.events) = (SELECT count(*) FROM acked));
SELECT 'check exactly one outbox row per event: ' || (
    (SELECT count(*) FROM eventstore.outbox) = (SELECT count(*) FROM eventstore.events)
    AND NOT EXISTS (SELECT FROM eventstore.events e
                     WHERE (SELECT count(*) FROM eventstore.outbox o WHERE o.global_position = e.global_position) <> 1));
SELECT 'check every outbox row published: ' || bool_and(published_at IS NOT NULL) FROM eventstore.outbox;
SQL
[ $? = 0 ] || fail "checks of A did not run: $(head -3 "$WORK/checkA.out")"

# stop the listeners: a marker notified after everything was published
q "$DB" -c "SELECT pg_notify('$CHANNEL', 'done')" >/dev/null
marker() { grep -q 'with payload "done"' "$WORK/after_restart.out"; }
wait_for 5 "the marker" marker || fail "listener after_restart did not get the marker"
q "$DB" -c "INSERT INTO f_stop DEFAULT VALUES" >/dev/null
notified_ids before_kill > "$WORK/ids1"
notified_ids after_restart > "$WORK/ids2"
log "notified: $(wc -l < "$WORK/ids1") before the kill, $(wc -l < "$WORK/ids2") after the restart"
grep -q 'Asynchronous notification' "$WORK/before_kill.out" \
    || fail "listener before_kill received nothing before the kill"
increasing < "$WORK/ids1" && increasing < "$WORK/ids2" \
    && ok "each listener received its ids in strictly increasing order" \
    || fail "a listener received ids out of order or twice"
dups=$(sort "$WORK/ids1" "$WORK/ids2" | uniq -d | wc -l)
[ "$dups" = 0 ] && ok "no outbox id notified twice across the kill" \
    || fail "$dups outbox ids notified twice across the kill"
while IFS= read -r line; do
    case "$line" in
        "check "*": true") ok "${line#check }" ;;
        "check "*) fail "${line#check }" ;;
        *) log "$line" ;;
    esac
done < "$WORK/checkA.out"

# ================================================================ B. SIGTERM
log "B. SIGTERM of the worker"
crashes_before=$(crashes)
OLD_PID=$(worker_pid "$DB")
kill -TERM "$OLD_PID"
gone() { ! kill -0 "$OLD_PID" 2>/dev/null; }
wait_for 5 "worker $OLD_PID to exit" gone && ok "worker $OLD_PID exited on SIGTERM" \
    || fail "worker $OLD_PID still running 5 s after SIGTERM"
log "status right after: $(status_of "$DB")"
q "$DB" -c "SELECT * FROM eventstore.append_event('after-term', NULL, 'E', '{}')" >/dev/null
t0=$(now_ms)
if wait_for 5 "the append after SIGTERM to be published" none_pending; then
    ok "the append after SIGTERM was published after $(( $(now_ms) - t0 )) ms, by worker $(worker_pid "$DB")"
else
    fail "the append after SIGTERM was not published within 5 s: $(status_of "$DB")"
fi
worker_up "$DB" "$OLD_PID" && ok "a new worker serves $DB" || fail "no worker serves $DB after SIGTERM: $(status_of "$DB")"
[ "$(crashes)" = "$crashes_before" ] && ok "SIGTERM did not restart the server" \
    || fail "the server restarted every backend after SIGTERM of the worker"

# ================================================================ C. SIGHUP
log "C. relay_databases names another database"
OLD_PID=$(worker_pid "$DB")
q postgres -c "ALTER SYSTEM SET eventstore.relay_databases = 'postgres'" >/dev/null
q postgres -c "SELECT pg_reload_conf()" >/dev/null
left() { [ "$(status_of "$DB")" = "|left: not in relay_databases|0" ]; }
if wait_for 5 "the worker to leave" left; then
    ok "the worker left on SIGHUP: $(status_of "$DB" | cut -d'|' -f2)"
else
    fail "the worker did not leave: $(status_of "$DB")"
fi
q "$DB" -c "SELECT * FROM eventstore.append_event('not-served', NULL, 'E', '{}')" >/dev/null
sleep 2.5                   # more than the naptime
if [ "$(pending)" = 1 ] && [ -z "$(worker_pid "$DB")" ]; then
    ok "no worker started for $DB while it is not in relay_databases (1 row pending after 2.5 s)"
else
    fail "$DB served although not in relay_databases: $(status_of "$DB")"
fi
q postgres -c "ALTER SYSTEM RESET eventstore.relay_databases" >/dev/null
q postgres -c "SELECT pg_reload_conf()" >/dev/null
t0=$(now_ms)
if wait_for 15 "a worker to publish after the reset" none_pending; then
    ok "relay_databases reset: a worker ($(worker_pid "$DB")) published the pending row after $(( $(now_ms) - t0 )) ms"
else
    fail "nothing published after relay_databases was reset: $(status_of "$DB")"
fi

# ================================================================ D. DROP DATABASE
log "D. DROP DATABASE of a served database"
q postgres -c "CREATE DATABASE dropme" >/dev/null
q dropme -c "CREATE EXTENSION eventstore" -c "SELECT eventstore.add_route('d')" \
         -c "SELECT * FROM eventstore.append_event('x-1', NULL, 'E', '{}')" >/dev/null
dropme_published() { [ "$(q dropme -c "SELECT count(*) FROM eventstore.outbox WHERE published_at IS NOT NULL")" = 1 ]; }
wait_for 10 "the worker of dropme" worker_up dropme && wait_for 5 "dropme's row" dropme_published \
    || fail "no worker served dropme: $(status_of dropme)"
DROP_PID=$(worker_pid dropme)
t0=$(now_ms)
if out=$(q postgres -c "DROP DATABASE dropme" 2>&1); then
    ms=$(( $(now_ms) - t0 ))
    if [ $ms -lt 5000 ]; then
        ok "DROP DATABASE of a database served by worker $DROP_PID succeeded in $ms ms"
    else
        fail "DROP DATABASE took $ms ms"
    fi
else
    fail "DROP DATABASE failed: $out"
fi
[ -z "$(status_of dropme)" ] && ok "relay_status no longer lists the dropped database" \
    || fail "relay_status still lists dropme: $(status_of dropme)"

# ================================================================ E. no free worker slot
log "E. more databases than free worker slots"
maxw=$(q postgres -c "SHOW max_worker_processes")
ndb=$(( maxw + 2 ))
for i in $(seq 1 $ndb); do q postgres -c "CREATE DATABASE probe$i" >/dev/null; done
q postgres -c "SELECT pg_reload_conf()" >/dev/null     # the launcher scans every database now
sleep 2                     # the probing workers find no extension and exit
grep -q 'could not start a relay worker' "$ES_PGDATA/server.log" \
    && log "the launcher could not start some workers (as intended): $(grep -c 'could not start a relay worker' "$ES_PGDATA/server.log")"
# two databases whose probe did not run (if any), else the first two
picked=$(q "$DB" -c "SELECT string_agg(database, ' ' ORDER BY database) FROM (
                         SELECT database FROM eventstore.relay_status
                          WHERE database LIKE 'probe%'
                          ORDER BY state = 'starting' DESC, database LIMIT 2) s")
log "databases given the extension: $picked ($(for d in $picked; do printf '%s=%s ' "$d" "$(status_of "$d")"; done))"
for d in $picked; do
    q "$d" -c "CREATE EXTENSION eventstore" -c "SELECT eventstore.add_route('p')" \
           -c "SELECT * FROM eventstore.append_event('p-1', NULL, 'E', '{}')" >/dev/null
done
# one deadline for all: the launcher rescans every 10 s
probes_published() {
    local d
    for d in $picked; do
        [ "$(q "$d" -c "SELECT count(*) FROM eventstore.outbox WHERE published_at IS NOT NULL")" = 1 ] || return 1
    done
}
wait_for 15 "workers for $picked" probes_published
for d in $picked; do
    if [ "$(q "$d" -c "SELECT count(*) FROM eventstore.outbox WHERE published_at IS NOT NULL")" = 1 ]; then
        ok "$d, whose worker could not start at the first scan, is served"
    else
        fail "$d is never served after its worker could not be started (at the launcher's scan max_worker_processes = $maxw was exhausted): relay_status says '$(status_of "$d")'"
    fi
done

if [ $failures -gt 0 ]; then
    log "$failures check(s) failed"
    exit 1
fi
log "all checks passed"
exit 0
