#!/usr/bin/env bash
# A crash in the middle of a physical purge loses nothing that should stay
# and, once the purge runs again, leaves nothing that should go.
#
# On a throwaway cluster of its own (port $ES_PURGE_CRASH_PORT, default
# 54437, library preloaded, fsync off: a process crash, not an OS crash):
#   - 150 streams keep-N (40 events each) stay; 150 streams gone-N (40
#     events) are deleted, half soft, half hard; 150 streams trunc-N (40
#     events) get truncate_before 21 (versions 1..20 go, 21..40 stay).
#   - A purge loop (batches of 100, each committed) runs while 2 clients
#     append to keep streams; once the audit log shows purge batches, the
#     postmaster and every backend are SIGKILLed, and the server restarted.
# Then:
#   - every event that should stay is stored unchanged (digest), and every
#     append a client saw acknowledged is stored;
#   - the purge batches are all or nothing: every range the audit log says
#     was purged is gone, and nothing else of a gone stream is missing;
#   - no read returns an event that should go, before or after the purge
#     resumes; the purge resumed to 0 leaves no row that should go;
#   - deleted streams keep their version (40); a soft-deleted one is
#     recreated at 41, a hard-deleted one refuses (ES410).
# Prints the figures; exits non-zero on any violation; bounded to 90 s.
#
# Expects the extension to be installed already (scripts/test.sh does that).

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export ES_PRELOAD=1
export ES_FSYNC=off
export ES_PORT=${ES_PURGE_CRASH_PORT:-54437}
export ES_PGDATA=$(mktemp -d /tmp/eventstore-purge-crash.XXXXXX)
unset ES_SOCKDIR
source "$ES_ROOT/scripts/cluster.sh"
set +e                      # cluster.sh sets -e; failures are counted here
if [ -n "${ES_PG_CONFIG:-}" ]; then
    es_pg_config() { echo "$ES_PG_CONFIG"; }
fi
WORK=$(mktemp -d /tmp/eventstore-purge-crash-work.XXXXXX)
chmod 777 "$WORK"

failures=0
pass() { echo "ok - $*"; }
fail() { echo "not ok - $*"; failures=$((failures + 1)); }
check() {   # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: expected '$2', got '$3'"; fi
}
log() { echo "# $*"; }
now_ms() { date +%s%3N; }

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

client_pids=()
watchdog=
cleanup() {
    local p
    touch "$WORK/stop" 2>/dev/null
    for p in "${client_pids[@]}"; do kill "$p" 2>/dev/null; done
    [ -n "$watchdog" ] && kill "$watchdog" 2>/dev/null
    wait 2>/dev/null
    es_stop_cluster
    for p in $(cluster_pids); do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$ES_PGDATA" "$WORK"
}
trap cleanup EXIT
trap 'exit 124' TERM INT
(
    trap 'kill $sleeper 2>/dev/null; exit 0' TERM
    sleep 90 & sleeper=$!
    wait $sleeper
    echo "purge_crash: TIMEOUT after 90 s, giving up" >&2
    kill -TERM $$
) &
watchdog=$!

es_start_cluster || { echo "purge_crash: could not start the cluster" >&2; exit 1; }
PSQL="$(es_bindir)/psql"
PG_CTL="$(es_bindir)/pg_ctl"
q() { "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d purge "$@"; }
"$PSQL" -X -q -d postgres -c 'CREATE DATABASE purge' || exit 1
q -c 'CREATE EXTENSION eventstore' || exit 1
# the purges below are the test's own; the worker's comes last
q -c 'ALTER SYSTEM SET eventstore.relay_purge = off' -c 'SELECT pg_reload_conf()' >/dev/null || exit 1

# The streams, and what should stay: a table outside the store, written
# before anything is deleted.
q >/dev/null <<'SQL' || exit 1
DO $$
BEGIN
    FOR i IN 1..150 LOOP
        PERFORM eventstore.append(k || '-' || i, 0,
            ARRAY(SELECT eventstore.event('E', jsonb_build_object('s', k, 'i', i, 'v', v, 'pad', repeat('x', 200)))
                    FROM generate_series(1, 40) v))
          FROM unnest(ARRAY['keep', 'gone', 'trunc']) k;
    END LOOP;
END $$;
CREATE TABLE should_stay AS
    SELECT stream_id, stream_version, event_id, data FROM eventstore.events
     WHERE stream_id LIKE 'keep-%' OR (stream_id LIKE 'trunc-%' AND stream_version >= 21);
CREATE TABLE should_go AS
    SELECT stream_id, stream_version FROM eventstore.events
     WHERE stream_id LIKE 'gone-%' OR (stream_id LIKE 'trunc-%' AND stream_version < 21);
SELECT eventstore.delete_stream('gone-' || i, 40, hard => i % 2 = 0) FROM generate_series(1, 150) i;
SELECT eventstore.set_category_metadata('trunc', truncate_before => 21);
SQL
check "should stay / should go" "6000 3000 / 9000" \
    "$(q -c "SELECT (SELECT count(*) FROM should_stay WHERE stream_id LIKE 'keep-%') || ' ' ||
                    (SELECT count(*) FROM should_stay WHERE stream_id LIKE 'trunc-%') || ' / ' ||
                    (SELECT count(*) FROM should_go)")"
stay_digest_sql="SELECT md5(string_agg(s.stream_id || ':' || s.stream_version || ':' || e.event_id || ':' || e.data::text,
                                        '|' ORDER BY s.stream_id, s.stream_version))
                   FROM should_stay s JOIN eventstore.events e USING (stream_id, stream_version)"
stay_digest=$(q -c "SELECT md5(string_agg(s.stream_id || ':' || s.stream_version || ':' || s.event_id || ':' || s.data::text,
                                           '|' ORDER BY s.stream_id, s.stream_version)) FROM should_stay s")
# no read returns an event that should go
leaks_sql="SELECT (SELECT count(*) FROM eventstore.read_all(0, NULL) r JOIN should_go g USING (stream_id, stream_version))
                + (SELECT count(*) FROM should_go g, LATERAL eventstore.read_stream(g.stream_id) r
                    WHERE r.stream_version = g.stream_version AND g.stream_version % 10 = 0)"
check "no read returns an event that should go, before the purge" "0" "$(q -c "$leaks_sql")"

# Clients appending to keep streams, each acknowledged append logged.
for c in 1 2; do
    (
        trap '' PIPE
        n=0
        while [ ! -e "$WORK/stop" ]; do
            n=$((n + 1))
            s="keep-$(( (n * 7 + c) % 150 + 1 ))"
            out=$("$PSQL" -X -q -At -d purge -c \
                "SELECT global_position FROM eventstore.append_event('$s', NULL, 'Live', '{\"c\": $c, \"n\": $n}')" 2>/dev/null) \
                && [ -n "$out" ] && echo "$out" >> "$WORK/acked.$c"
        done
    ) &
    client_pids+=($!)
done

# The purge, batch after batch, each committed.
(
    "$PSQL" -X -q -At -d purge -c "DO \$\$ BEGIN
        LOOP
            EXIT WHEN eventstore.purge(20) = 0;
            COMMIT;
        END LOOP; END \$\$" >/dev/null 2>&1
) &
purger=$!
client_pids+=($purger)

# Kill once some batches are committed (and before the purge is done).
deadline=$(( $(now_ms) + 30000 ))
batches=0
while [ "$(now_ms)" -lt "$deadline" ]; do
    batches=$(q -c "SELECT count(*) FROM eventstore.lifecycle_log WHERE action = 'purge'" 2>/dev/null || echo 0)
    [ "${batches:-0}" -ge 10 ] && break
    sleep 0.02
done
log "audit rows of purge batches committed before the kill: $batches"
pm=$(head -1 "$ES_PGDATA/postmaster.pid")
kill -STOP "$pm"
kill -KILL "$pm" $(cluster_pids) 2>/dev/null
for _ in $(seq 1 100); do
    [ -z "$(cluster_pids)" ] && break
    for p in $(cluster_pids); do kill -KILL "$p" 2>/dev/null; done
    sleep 0.05
done
[ -z "$(cluster_pids)" ] || fail "processes of the cluster survived SIGKILL"
for _ in $(seq 1 100); do kill -0 "$pm" 2>/dev/null || break; sleep 0.1; done
touch "$WORK/stop"
for p in "${client_pids[@]}"; do wait "$p" 2>/dev/null; done
client_pids=()
es_as_pg "$PG_CTL" -D "$ES_PGDATA" -l "$ES_PGDATA/server.log" -w -t 60 start >/dev/null \
    || { fail "the server did not start after the kill"; exit 1; }
log "SIGKILLed the cluster in the middle of the purge and restarted it"

gone_before=$(q -c "SELECT count(*) FROM should_go g WHERE NOT EXISTS (SELECT FROM eventstore.events e
                     WHERE e.stream_id = g.stream_id AND e.stream_version = g.stream_version)")
log "events purged before the crash: $gone_before of 9000"
[ "$gone_before" -gt 0 ] && [ "$gone_before" -lt 9000 ] && pass "the crash came in the middle of the purge ($gone_before of 9000 gone)" \
    || fail "the crash did not come in the middle of the purge ($gone_before of 9000 gone)"
check "every event that should stay is stored unchanged, after the crash" "$stay_digest" "$(q -c "$stay_digest_sql")"
acked=$(cat "$WORK"/acked.* 2>/dev/null | wc -l)
missing=$(cat "$WORK"/acked.* 2>/dev/null | q -c "CREATE TEMP TABLE acked (p bigint)" -c "COPY acked FROM STDIN" \
          -c "SELECT count(*) FROM acked WHERE p NOT IN (SELECT global_position FROM eventstore.events)")
check "every acknowledged append is stored ($acked)" "0" "$missing"
check "every range the audit log records as purged is gone" "0" \
    "$(q -c "SELECT count(*) FROM eventstore.lifecycle_log l JOIN should_go g
               ON l.stream_hash = sha256(convert_to(g.stream_id, 'UTF8'))
              AND g.stream_version BETWEEN l.from_version AND l.to_version
             WHERE l.action = 'purge' AND l.events = l.to_version - l.from_version + 1
               AND EXISTS (SELECT FROM eventstore.events e
                            WHERE e.stream_id = g.stream_id AND e.stream_version = g.stream_version)")"
check "the audit log counts exactly the events gone" "$gone_before" \
    "$(q -c "SELECT coalesce(sum(events), 0) FROM eventstore.lifecycle_log WHERE action = 'purge'")"
check "no read returns an event that should go, after the crash" "0" "$(q -c "$leaks_sql")"

q -c "DO \$\$ BEGIN LOOP EXIT WHEN eventstore.purge(1000) = 0; COMMIT; END LOOP; END \$\$" \
    || fail "the purge did not resume"
check "the resumed purge leaves nothing that should go" "0" \
    "$(q -c "SELECT count(*) FROM should_go g JOIN eventstore.events e USING (stream_id, stream_version)")"
check "every event that should stay is stored unchanged, after the purge" "$stay_digest" "$(q -c "$stay_digest_sql")"
check "the audit log counts every purged event" "9000" \
    "$(q -c "SELECT sum(events) FROM eventstore.lifecycle_log WHERE action = 'purge'")"
check "deleted streams keep their version" "40 40" \
    "$(q -c "SELECT eventstore.stream_version('gone-1') || ' ' || eventstore.stream_version('gone-2')")"
check "a soft-deleted stream is recreated after its version" "41" \
    "$(q -c "SELECT stream_version FROM eventstore.append_event('gone-1', 0, 'Again', '{}')")"
check "a hard-deleted stream refuses appends" "ES410" \
    "$("$PSQL" -X -q -At -d purge -v ON_ERROR_STOP=0 -c "SELECT eventstore.append_event('gone-2', 0, 'Again', '{}')" \
        -c '\echo :SQLSTATE' 2>/dev/null | tail -1)"
check "the store's triggers still refuse a DELETE" "ES002" \
    "$("$PSQL" -X -q -At -d purge -v ON_ERROR_STOP=0 -c "DELETE FROM eventstore.events WHERE stream_id = 'keep-1'" \
        -c '\echo :SQLSTATE' 2>/dev/null | tail -1)"

# The relay worker purges by itself (eventstore.relay_purge, every 10 s):
# a stream cut to its last event loses the rest without anyone calling purge.
q -c "ALTER SYSTEM SET eventstore.relay_purge = on" -c "SELECT pg_reload_conf()" >/dev/null
q -c "SELECT eventstore.append('auto-1', 0, ARRAY(SELECT eventstore.event('A', '{}') FROM generate_series(1, 5)))" >/dev/null
q -c "SELECT eventstore.set_stream_metadata('auto-1', max_count => 1)" >/dev/null
auto=
for _ in $(seq 1 60); do
    auto=$(q -c "SELECT count(*) FROM eventstore.events WHERE stream_id = 'auto-1'")
    [ "$auto" = 1 ] && break
    sleep 0.5
done
check "the relay worker purged what the metadata hides, unasked (rows of auto-1 stored)" "1" "$auto"

echo "purge_crash: purge batches before the kill: $batches; events purged before the kill: $gone_before;" \
     "appends acknowledged during the purge: $acked; failures: $failures"
[ "$failures" = 0 ]
