#!/usr/bin/env bash
# Crash under load: the postmaster and every backend are SIGKILLed in the
# middle of concurrent appends, CRASH_KILLS times, on a throwaway cluster of
# its own (port 54395, library preloaded), stopped and deleted on exit.
# Expects the extension to be installed already (scripts/test.sh does that).
#
# Two stores: the default store eventstore.events and crash2.events (made
# with eventstore.create_store), with the same stream ids in both.
#
# Load: 8 clients, one psql per append call, each call with explicit event
# ids and 1 to 3 events (types alternate Routed / Plain; a route sends
# Routed events to the outbox), half of them on each store:
#   - 4 clients append to the stream shared-1 of each store (2 per store)
#     with the exact expected version (the stream's version read in the same
#     statement); an ES409 is retried as a new call;
#   - 4 clients append to a stream of their own with a NULL expected
#     version: own-1 and own-2 in each store.
# Before each call its full id list is logged; after the call RETURNED
# successfully the acknowledged (version, position) is logged; an ES409 is
# logged as a conflict.  Any other failure (server gone, in recovery) is an
# unacknowledged call: its outcome is unknown and it is not retried.
#
# Every CRASH_SECONDS the postmaster is stopped (SIGSTOP, so it forks no
# more), then it and every process whose working directory is the data
# directory (all its children: backends, the relay launcher and workers,
# checkpointer, ...) are SIGKILLed, and the server is started again with
# pg_ctl (crash recovery).  Clients reconnect by themselves.
#
# Afterwards, with the relay given CRASH_DRAIN seconds to publish everything:
#   - each acknowledged append is stored in its store with all its event ids,
#     in order, at consecutive versions ending at the acknowledged version,
#     its last event at the acknowledged position;
#   - every call, acknowledged or not, is all-or-nothing: either every id it
#     sent is stored or none is; a call refused with ES409 left nothing;
#   - no stored event (in either store) that no call sent to that store;
#   - every stream of each store has versions 1..N exactly once; global
#     positions unique across the stores;
#   - every stored Routed event has exactly one outbox row, other events none,
#     no outbox row without its event; every outbox row is published;
#   - read_all of each store from 0, page by page, returns every event stored
#     in it (no in-flight slot survived the crash to hold readers back);
#   - the B-tree indexes of both stores and the outbox pass amcheck (if
#     available);
#   - clients made progress after every restart.
# Prints the figures (kills survived, appends acknowledged, appends checked,
# events checked, unacknowledged-but-committed appends); exits non-zero on
# any violation.
#
#   CRASH_KILLS    kills                     (default 3)
#   CRASH_SECONDS  seconds of load per phase (default 4)
#   CRASH_DRAIN    seconds for the relay to publish after the last restart (default 30)
#   CRASH_KEEP     set: keep the data directory and the client logs
#
# fsync is off: this is a process crash, not an OS crash; what a commit wrote
# to the kernel survives the SIGKILL.

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export ES_PORT=${CRASH_PORT:-54395}
export ES_PGDATA=$(mktemp -d /tmp/eventstore-crash.XXXXXX)
export ES_PRELOAD=1
export ES_FSYNC=off
unset ES_SOCKDIR
source "$ES_ROOT/scripts/cluster.sh"
set +e                      # cluster.sh sets -e; failures are counted here
set -u

KILLS=${CRASH_KILLS:-3}
SECONDS_PER_PHASE=${CRASH_SECONDS:-4}
DRAIN=${CRASH_DRAIN:-30}
DB=crash
CHANNEL=crash_out
STORE2=crash2.events        # the second store (the first is eventstore.events)
SHARED_CLIENTS=4            # exact expected version, 2 per store on its shared-1
OWN_CLIENTS=4               # NULL expected version, own stream each (own-1, own-2 per store)

PSQL="$(es_bindir)/psql"
PG_CTL="$(es_bindir)/pg_ctl"
WORK=$(mktemp -d /tmp/eventstore-crash-work.XXXXXX)
client_pids=()
failures=0

T_START=$(date +%s%N)
log()  { printf 'crash: [%5.1fs] %s\n' "$(( ($(date +%s%N) - T_START) / 1000000 ))e-3" "$*" >&2; }
ok()   { printf 'ok     %s\n' "$*"; }
fail() { printf 'FAILED %s\n' "$*"; failures=$((failures + 1)); }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
q() { "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

# Every live (not zombie) process of this cluster: the postmaster and all its
# children have the data directory as working directory.  Builtins only: a
# fork is slow on a loaded machine.
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
    touch "$WORK/stop" 2>/dev/null
    for p in "${client_pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    es_stop_cluster
    for p in $(cluster_pids); do kill -KILL "$p" 2>/dev/null; done
    if [ -n "${CRASH_KEEP:-}" ]; then echo "crash: kept $ES_PGDATA and $WORK" >&2; else rm -rf "$ES_PGDATA" "$WORK"; fi
}
trap cleanup EXIT

wait_for() {
    local secs=$1 what=$2; shift 2
    local deadline=$(( $(now_ms) + secs * 1000 ))
    until "$@"; do
        if [ "$(now_ms)" -ge "$deadline" ]; then
            log "timed out after ${secs}s waiting for: $what"
            return 1
        fi
        sleep 0.1
    done
}
server_up() { q -c "SELECT 1" >/dev/null 2>&1; }

# SIGKILL the postmaster and all its children at once.
crash_server() {
    local pm pids p n
    pm=$(head -1 "$ES_PGDATA/postmaster.pid" 2>/dev/null)
    [ -n "$pm" ] || { fail "no postmaster.pid to kill"; return 1; }
    kill -STOP "$pm"        # no new children from now on
    pids=$(cluster_pids)
    kill -KILL "$pm" $pids 2>/dev/null
    n=$(echo $pids | wc -w)
    for _ in $(seq 1 100); do
        [ -z "$(cluster_pids)" ] && break
        for p in $(cluster_pids); do kill -KILL "$p" 2>/dev/null; done
        sleep 0.05
    done
    if [ -n "$(cluster_pids)" ]; then
        fail "processes of the cluster survived SIGKILL: $(cluster_pids)"
        return 1
    fi
    # pg_ctl start refuses while the old postmaster's pid exists (a zombie
    # until its parent reaps it)
    for _ in $(seq 1 100); do kill -0 "$pm" 2>/dev/null || break; sleep 0.1; done
    log "SIGKILLed postmaster $pm and $((n - 1)) other processes of the cluster"
}

restart_server() {
    local try
    for try in 1 2 3; do
        if out=$(es_as_pg "$PG_CTL" -D "$ES_PGDATA" -l "$ES_PGDATA/server.log" -w -t 60 start 2>&1); then
            return 0
        fi
        log "pg_ctl start failed (attempt $try): $(echo "$out" | tail -2 | tr '\n' ' ')"
        sleep 1
    done
    return 1
}

# One client: a psql session (a coprocess) that is started again whenever it
# is gone.  kind: exact (exact expected version) or any (NULL); store: the
# store's name (eventstore.events: the calls leave the store argument out).
client() {
    local id=$1 kind=$2 stream=$3 store=$4
    local seq=0 n k ev evs ids types expected line state result typ to= from= pid= started sarg=
    local calls=$WORK/calls.$id acks=$WORK/acks.$id confl=$WORK/confl.$id err=$WORK/err.$id
    : >"$calls"; : >"$acks"; : >"$confl"; : >"$err"
    trap '' PIPE            # a write to a dead session fails instead of killing us
    [ "$store" = eventstore.events ] || sarg=", store => '$store'"
    if [ "$kind" = exact ]; then expected="eventstore.stream_version('$stream'${sarg:+, '$store'})"; else expected=NULL; fi
    while [ ! -e "$WORK/stop" ]; do
        if [ -z "$pid" ]; then
            coproc PQ { PGCONNECT_TIMEOUT=5 "$PSQL" -X -q -At -v ON_ERROR_STOP=0 -v VERBOSITY=sqlstate \
                            -d "$DB" 2>>"$WORK/psql.$id"; }
            pid=$PQ_PID; to=${PQ[1]}; from=${PQ[0]}
            # a session that connected answers; one that did not has exited
            printf '%s\n' '\echo @@ready' >&"$to"
            started=
            IFS= read -r -t 30 -u "$from" started
            if [ "$started" != "@@ready" ]; then
                exec {to}>&- {from}<&-
                wait "$pid" 2>/dev/null
                pid=
                sleep 0.05
                continue
            fi
        fi
        seq=$((seq + 1))
        n=$(( seq % 3 + 1 ))
        evs=; ids=; types=
        for ((k = 1; k <= n; k++)); do
            printf -v ev '%08x-0000-4000-8000-%08x%04x' "$id" "$seq" "$k"
            if (( (seq + k) % 2 )); then typ=Routed; else typ=Plain; fi
            evs+="${evs:+, }eventstore.event('$typ', '{\"c\": $id, \"s\": $seq, \"k\": $k}', NULL, '$ev')"
            ids+="${ids:+,}$ev"
            types+="${types:+,}$typ"
        done
        printf '%s\t%s\t%s\t%s\t{%s}\t{%s}\n' "$id" "$seq" "$store" "$stream" "$ids" "$types" >>"$calls"
        printf '%s\n' "SELECT stream_version || ' ' || global_position FROM eventstore.append('$stream', $expected, ARRAY[$evs]$sarg);" \
            '\echo @@ :SQLSTATE' >&"$to" 2>/dev/null
        result=; state=
        while IFS= read -r -t 30 -u "$from" line; do
            case $line in
                "@@ "*) state=${line#@@ }; break ;;
                *) result=$line ;;
            esac
        done
        if [ "$state" = 00000 ] && [[ "$result" =~ ^[0-9]+\ [0-9]+$ ]]; then
            printf '%s\t%s\t%s\t%s\n' "$id" "$seq" "${result% *}" "${result#* }" >>"$acks"
        elif [ "$state" = ES409 ]; then
            printf '%s\t%s\n' "$id" "$seq" >>"$confl"
        else
            # no answer (the session died with the server) or an error
            printf '%s\t%s\n' "$seq" "${state:-lost}" >>"$err"
            if [ -z "$state" ] || [[ "$state" == 08* ]] || [[ "$state" == 57* ]]; then
                exec {to}>&- {from}<&- 2>/dev/null
                kill "$pid" 2>/dev/null
                wait "$pid" 2>/dev/null
                pid=
                sleep 0.05
            fi
        fi
    done
    [ -n "$pid" ] && { exec {to}>&-; wait "$pid" 2>/dev/null; }
}

acked_count() { cat "$WORK"/acks.[0-9]* 2>/dev/null | wc -l; }

# ---------------------------------------------------------------- set-up
es_start_cluster >/dev/null 2>&1 || { echo "crash: could not start the cluster" >&2; exit 1; }
q -d postgres -c "CREATE DATABASE $DB" >/dev/null || exit 1
q -c "CREATE EXTENSION eventstore" -c "CREATE SCHEMA ${STORE2%%.*}" -c "SELECT eventstore.create_store('$STORE2')" \
  -c "SELECT eventstore.add_route('$CHANNEL', event_types => ARRAY['Routed'])" >/dev/null || exit 1
# Routes are per store and channel names unique in the database: the second
# store routes to a channel of its own.  Each Routed event of either store
# gets one outbox row.
q -c "SELECT eventstore.add_route('${CHANNEL}_2', event_types => ARRAY['Routed'], store => '$STORE2')" >/dev/null || exit 1
have_amcheck=0
q -c "CREATE EXTENSION amcheck" >/dev/null 2>&1 && have_amcheck=1

log "$((SHARED_CLIENTS + OWN_CLIENTS)) clients, $KILLS kills, ${SECONDS_PER_PHASE}s per phase"
stores=(eventstore.events "$STORE2")
for ((c = 1; c <= SHARED_CLIENTS; c++)); do
    client "$c" exact shared-1 "${stores[(c - 1) % 2]}" & client_pids+=($!)
done
for ((c = SHARED_CLIENTS + 1; c <= SHARED_CLIENTS + OWN_CLIENTS; c++)); do
    client "$c" any "own-$(( (c - SHARED_CLIENTS - 1) / 2 + 1 ))" "${stores[(c - 1) % 2]}" & client_pids+=($!)
done

kills=0
acked_at=()
for ((k = 1; k <= KILLS; k++)); do
    sleep "$SECONDS_PER_PHASE"
    acked_at+=("$(acked_count)")
    crash_server || break
    if ! restart_server; then
        fail "the server did not start again after kill $k: $(tail -5 "$ES_PGDATA/server.log")"
        break
    fi
    kills=$((kills + 1))
    wait_for 30 "connections after kill $k" server_up || { fail "no connection after restart $k"; break; }
    log "restart $k: accepting connections; $(acked_count) appends acknowledged so far"
done
sleep "$SECONDS_PER_PHASE"
acked_at+=("$(acked_count)")
touch "$WORK/stop"
for p in "${client_pids[@]}"; do wait "$p"; done
client_pids=()
log "clients stopped"

[ "$kills" = "$KILLS" ] && ok "survived $kills of $KILLS kills (postmaster and all backends SIGKILLed, crash recovery)" \
    || fail "survived only $kills of $KILLS kills"
recoveries=$(grep -c 'database system was not properly shut down' "$ES_PGDATA/server.log")
[ "$recoveries" -ge "$kills" ] && ok "the server log shows $recoveries crash recoveries" \
    || fail "the server log shows $recoveries crash recoveries for $kills kills"
progress=1
for ((i = 1; i < ${#acked_at[@]}; i++)); do
    [ "${acked_at[i]}" -gt "${acked_at[i - 1]}" ] || progress=0
done
[ "${acked_at[0]:-0}" -gt 0 ] || progress=0
[ $progress = 1 ] && ok "appends were acknowledged in every phase (running totals at each kill and at the end: ${acked_at[*]})" \
    || fail "no progress in some phase (acknowledged running totals: ${acked_at[*]})"
failed_calls=$(cat "$WORK"/err.* | wc -l)
unexpected=$(cat "$WORK"/err.* | awk -F'\t' '$2 != "lost" && $2 !~ /^(08|57)/' | head -5 | tr '\n' ' ')
[ -z "$unexpected" ] && ok "every call that failed other than with ES409 lost its session or got a connection/shutdown error ($failed_calls calls)" \
    || fail "unexpected errors (call, SQLSTATE): $unexpected"

# ---------------------------------------------------------------- outbox drain
pending() { q -c "SELECT count(*) FROM eventstore.outbox WHERE published_at IS NULL" 2>/dev/null; }
none_pending() { [ "$(pending)" = 0 ]; }
t0=$(now_ms)
if wait_for "$DRAIN" "the relay to publish the outbox" none_pending; then
    ok "the relay published every outbox row $(( $(now_ms) - t0 )) ms after the clients stopped ($(q -c "SELECT state FROM eventstore.relay_status WHERE database = current_database()"))"
else
    fail "$(pending) outbox rows still unpublished ${DRAIN}s after the last restart: $(q -c "SELECT state || ' / ' || coalesce(last_error, '') FROM eventstore.relay_status WHERE database = current_database()")"
fi

# ---------------------------------------------------------------- checks
log "checking"
cat "$WORK"/calls.* >"$WORK/all_calls.tsv"
cat "$WORK"/acks.* >"$WORK/all_acks.tsv"
cat "$WORK"/confl.* >"$WORK/all_confl.tsv"
q >"$WORK/check.out" 2>&1 <<SQL
CREATE TEMP TABLE calls (client int, seq int, store text, stream text, ids uuid[], types text[]);
CREATE TEMP TABLE acks (client int, seq int, version bigint, pos bigint);
CREATE TEMP TABLE confl (client int, seq int);
\copy calls FROM '$WORK/all_calls.tsv'
\copy acks FROM '$WORK/all_acks.tsv'
\copy confl FROM '$WORK/all_confl.tsv'
ANALYZE calls; ANALYZE acks; ANALYZE confl; ANALYZE eventstore.events; ANALYZE $STORE2; ANALYZE eventstore.outbox;
-- every event of both stores, with its store
CREATE TEMP TABLE stored AS
SELECT 'eventstore.events'::text AS store, e.* FROM eventstore.events e
UNION ALL SELECT '$STORE2', e.* FROM $STORE2 e;
ANALYZE stored;
-- one row per event a call sent, with what is stored under its id in its store
CREATE TEMP TABLE sent AS
SELECT c.client, c.seq, c.store, c.stream, u.k, u.id, c.types[u.k] AS type, cardinality(c.ids) AS n,
       e.stream_version AS v, e.global_position AS p, e.event_type AS stored_type
  FROM calls c CROSS JOIN LATERAL unnest(c.ids) WITH ORDINALITY AS u(id, k)
  LEFT JOIN stored e ON e.store = c.store AND e.stream_id = c.stream AND e.event_id = u.id;
ANALYZE sent;
CREATE TEMP TABLE sent_w AS
SELECT s.*, min(v) OVER (PARTITION BY client, seq) AS min_v,
       lag(p) OVER (PARTITION BY client, seq ORDER BY k) AS prev_p
  FROM sent s;
CREATE TEMP TABLE per_call AS
SELECT client, seq, max(n) AS n, count(v) AS present, min(v) AS first_v, max(v) AS last_v,
       coalesce(bool_and(v = min_v + k - 1 AND stored_type = type), true) AS in_order,
       max(p) FILTER (WHERE k = n) AS last_p,
       coalesce(bool_and(p > prev_p), true) AS p_increasing
  FROM sent_w GROUP BY client, seq;
ANALYZE per_call;
SELECT 'fig calls ' || count(*) FROM calls;
SELECT 'fig acked ' || count(*) FROM acks;
SELECT 'fig conflicts ' || count(*) FROM confl;
SELECT 'fig events ' || count(*) FROM stored;
SELECT 'fig events_default ' || count(*) FROM eventstore.events;
SELECT 'fig events_store2 ' || count(*) FROM $STORE2;
SELECT 'fig outbox ' || count(*) FROM eventstore.outbox;
SELECT 'fig unacked_committed ' || count(*) FROM per_call pc
 WHERE pc.present > 0 AND NOT EXISTS (SELECT FROM acks a WHERE a.client = pc.client AND a.seq = pc.seq);
SELECT 'fig unacked_absent ' || count(*) FROM per_call pc
 WHERE pc.present = 0 AND NOT EXISTS (SELECT FROM acks a WHERE a.client = pc.client AND a.seq = pc.seq)
   AND NOT EXISTS (SELECT FROM confl f WHERE f.client = pc.client AND f.seq = pc.seq);
SELECT 'check the call log is sane (each event id sent by one call): ' ||
       ((SELECT count(*) FROM sent) = (SELECT count(DISTINCT id) FROM sent));
SELECT 'check each acknowledgement is of a logged call, once: ' ||
       ((SELECT count(*) FROM acks) = (SELECT count(DISTINCT (client, seq)) FROM acks)
        AND NOT EXISTS (SELECT FROM acks a WHERE NOT EXISTS (SELECT FROM calls c WHERE c.client = a.client AND c.seq = a.seq)));
SELECT 'check every acknowledged append is stored whole, at its versions and position: ' ||
       ((SELECT count(*) FROM acks a JOIN per_call pc USING (client, seq)
          WHERE pc.present <> pc.n OR NOT pc.in_order OR NOT pc.p_increasing
                       OR pc.last_v <> a.version OR pc.first_v <> a.version - pc.n + 1 OR pc.last_p <> a.pos) = 0);
SELECT 'check no call is partly stored (all of its ids or none): ' ||
       NOT EXISTS (SELECT FROM per_call WHERE present NOT IN (0, n) OR NOT in_order OR NOT p_increasing);
SELECT 'check no call refused with ES409 left anything: ' ||
       ((SELECT count(*) FROM confl f JOIN per_call pc USING (client, seq) WHERE pc.present > 0) = 0);
SELECT 'check no stored event (in either store) that no call sent to its store: ' ||
       ((SELECT count(*) FROM stored e LEFT JOIN sent s ON s.id = e.event_id AND s.stream = e.stream_id AND s.store = e.store
          WHERE s.id IS NULL) = 0);
SELECT 'check both stores hold acknowledged appends, to the same stream ids: ' ||
       ((SELECT count(DISTINCT c.store) FROM acks a JOIN calls c USING (client, seq)) = 2
        AND (SELECT count(*) FROM (SELECT stream_id FROM stored GROUP BY stream_id HAVING count(DISTINCT store) = 2) x) = 3);
SELECT 'check every stream of each store has versions 1..N exactly once: ' ||
       NOT EXISTS (SELECT FROM stored GROUP BY store, stream_id
                   HAVING min(stream_version) <> 1 OR max(stream_version) <> count(*)
                       OR count(DISTINCT stream_version) <> count(*));
SELECT 'check global positions are unique across the stores: ' ||
       ((SELECT count(*) FROM stored) = (SELECT count(DISTINCT global_position) FROM stored));
-- count(*) = 0 rather than NOT EXISTS: a plan for the whole set, not a nested loop hoping to stop early
SELECT 'check every Routed event has exactly one outbox row, other events none: ' ||
       ((SELECT count(*) FROM stored e
           LEFT JOIN (SELECT global_position, count(*) AS rows FROM eventstore.outbox
                       GROUP BY global_position) o USING (global_position)
          WHERE coalesce(o.rows, 0) <> CASE WHEN e.event_type = 'Routed' THEN 1 ELSE 0 END) = 0
        AND NOT EXISTS (SELECT FROM eventstore.outbox WHERE channel NOT IN ('$CHANNEL', '${CHANNEL}_2')));
SELECT 'check each store''s events went to its own route''s channel: ' ||
       NOT EXISTS (SELECT FROM eventstore.outbox o JOIN stored e USING (global_position)
                    WHERE (o.channel = '${CHANNEL}_2') <> (e.store = '$STORE2'));
SELECT 'check no outbox row without its event: ' ||
       ((SELECT count(*) FROM eventstore.outbox o LEFT JOIN stored e USING (global_position)
          WHERE e.global_position IS NULL) = 0);
SELECT 'check every outbox row is published, the relay cursor at the last id: ' ||
       (NOT EXISTS (SELECT FROM eventstore.outbox WHERE published_at IS NULL)
        AND (SELECT last_published_id FROM eventstore.relay_state) = (SELECT coalesce(max(id), 0) FROM eventstore.outbox));
CREATE FUNCTION pg_temp.paged(store regclass) RETURNS bigint LANGUAGE plpgsql AS \$\$
DECLARE cp bigint := 0; n bigint; total bigint := 0; last bigint;
BEGIN
    LOOP
        n := 0;
        FOR last IN SELECT global_position FROM eventstore.read_all(cp, 500, store) LOOP
            IF last <= cp THEN RAISE EXCEPTION 'read_all went back: % after %', last, cp; END IF;
            cp := last; n := n + 1;
        END LOOP;
        total := total + n;
        EXIT WHEN n = 0;
    END LOOP;
    RETURN total;
END \$\$;
SELECT 'check read_all of eventstore.events from 0 returns every event stored in it: ' ||
       (pg_temp.paged('eventstore.events') = (SELECT count(*) FROM eventstore.events));
SELECT 'check read_all of $STORE2 from 0 returns every event stored in it: ' ||
       (pg_temp.paged('$STORE2') = (SELECT count(*) FROM $STORE2));
SQL
[ $? = 0 ] || fail "the checks did not run: $(grep -m3 ERROR "$WORK/check.out")"
if [ $have_amcheck = 1 ]; then
    if out=$(q -c "SELECT count(bt_index_parent_check(c.oid::regclass, true))
                     FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
                    WHERE i.indrelid IN ('eventstore.events'::regclass, '$STORE2'::regclass, 'eventstore.outbox'::regclass)
                      AND a.amname = 'btree'" 2>&1); then
        ok "amcheck: $out B-tree indexes of both stores and the outbox are consistent with the heap"
    else
        fail "amcheck: $out"
    fi
fi

declare -A fig=()
while IFS= read -r line; do
    case "$line" in
        "fig "*) set -- $line; fig[$2]=$3 ;;
        "check "*": true") ok "${line#check }" ;;
        "check "*) fail "${line#check }" ;;
        *) log "$line" ;;
    esac
done <"$WORK/check.out"

echo "crash: kills survived: $kills; appends acknowledged: ${fig[acked]:-?}; appends checked: ${fig[calls]:-?}" \
     "(${fig[conflicts]:-?} refused with ES409, ${fig[unacked_absent]:-?} unacknowledged and absent);" \
     "events checked: ${fig[events]:-?} (eventstore.events ${fig[events_default]:-?}, $STORE2 ${fig[events_store2]:-?}; outbox rows: ${fig[outbox]:-?});" \
     "unacknowledged but committed: ${fig[unacked_committed]:-?}; $(( ($(date +%s%N) - T_START) / 1000000000 ))s"
if [ $failures -gt 0 ]; then
    log "$failures check(s) failed"
    exit 1
fi
log "all checks passed"
exit 0
