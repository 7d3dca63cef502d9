#!/usr/bin/env bash
# Stress: concurrent appends with exact expected versions to a few shared
# streams in several stores (the same stream ids in each), and tail readers of
# each store's log running meanwhile.
#
# Run by scripts/test.sh with PGHOST, PGPORT and PGUSER set for a running
# cluster (library preloaded or not).  Uses a database of its own, created and
# dropped here.
#
# Stores: the default store eventstore.events and STRESS_STORES - 1 more,
# made with eventstore.create_store('stress_<k>.events') (k = 2, 3, ...).
# Every store has the streams stress-1 .. stress-STRESS_STREAMS: the same
# stream ids, independent streams.
#
# Each client is one psql session (a bash coprocess) that loops for
# STRESS_DURATION seconds: pick a store and a stream, read its current
# version, append one event with that version as the expected version; on
# ES409 read the version again and retry the same stream.  It records every
# append that returned, with the version and position it got.  Each tail
# reader follows one store (reader r the store (r - 1) % STRESS_STORES + 1),
# loops read_all(checkpoint, STRESS_PAGE, store) and records every position
# it is given.  Afterwards, per store:
#   - every stream has versions exactly 1..N (no gap, no duplicate);
#   - the sum of N over the streams equals the appends the clients saw, and
#     the (store, stream, version, position) rows the clients were given are
#     exactly the rows stored;
#   - each tail reader saw strictly increasing positions and, once the writers
#     had finished and it had caught up, every event stored in its store and
#     nothing else: it skipped none;
#   - read_all of the store from 0, page by page, returns every event of the
#     store once, in order;
# and over all stores:
#   - global positions are unique ACROSS stores;
#   - no client got an error other than ES409.
# Prints a summary; exits non-zero on any violation.
#
#   STRESS_CLIENTS   appending clients     (default 8)
#   STRESS_DURATION  seconds of appending  (default 10)
#   STRESS_STREAMS   shared streams per store (default 4)
#   STRESS_STORES    stores, the default one included (default 2)
#   STRESS_READERS   tail readers          (default STRESS_STORES: one per store)
#   STRESS_PAGE      read_all page size    (default 100)
#   STRESS_DB        database to create    (default eventstore_stress_<pid>)
#   STRESS_ISOLATION run each append in BEGIN ISOLATION LEVEL <this> ... COMMIT
#                    (e.g. "serializable"; default: autocommit, read committed).
#                    A serialization failure (40001) is retried and counted; it
#                    is a violation when there is a single stream (the README
#                    promises none between appenders to one stream).

set -uo pipefail

CLIENTS=${STRESS_CLIENTS:-8}
DURATION=${STRESS_DURATION:-10}
STREAMS=${STRESS_STREAMS:-4}
STORES=${STRESS_STORES:-2}
READERS=${STRESS_READERS:-$STORES}
PAGE=${STRESS_PAGE:-100}
ISOLATION=${STRESS_ISOLATION:-}
DB=${STRESS_DB:-eventstore_stress_$$}
MAX_RETRIES=10000          # per append; more means starvation: a failure
READ_TIMEOUT=60            # seconds to wait for one psql answer

PSQL=${PSQL:-psql}
WORK=$(mktemp -d /tmp/eventstore-stress.XXXXXX)
: "${PGHOST:?PGHOST must be set}" "${PGPORT:?PGPORT must be set}"

pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    "$PSQL" -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$DB\"" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() { echo "stress: FAIL: $*" >&2; failed=1; }
failed=0

q() { "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

"$PSQL" -X -q -v ON_ERROR_STOP=1 -d postgres \
    -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS \"$DB\"" \
    -c "CREATE DATABASE \"$DB\"" >/dev/null || exit 1
q -c 'CREATE EXTENSION eventstore' || exit 1
# store k: its name and the store argument its calls take (none for the default store)
STORE_NAME=(none eventstore.events)
STORE_ARG=(none '')
for ((k = 2; k <= STORES; k++)); do
    q -c "CREATE SCHEMA stress_$k" -c "SELECT eventstore.create_store('stress_$k.events')" >/dev/null || exit 1
    STORE_NAME+=("stress_$k.events")
    STORE_ARG+=(", store => 'stress_$k.events'")
done
preload=$(q -c "SELECT current_setting('shared_preload_libraries') LIKE '%eventstore%'")

# One appending client.  Writes client.<id>.rows (store|stream|version|position
# per append that returned) and client.<id>.sum ("appends conflicts errors
# serialization_failures").  Without STRESS_ISOLATION each append is its own
# statement (autocommit); with it, the append runs in BEGIN ISOLATION LEVEL
# ... COMMIT (the version is still read just before, outside it).
client() {
    local id=$1 end=$2
    local rows=$WORK/client.$id.rows err=$WORK/client.$id.err
    local ok=0 conflicts=0 errors=0 serfail=0 tries s k line state cstate result begin= commit=
    RANDOM=$(( (id + 1) * 7919 + $$ ))
    : >"$rows"
    if [ -n "$ISOLATION" ]; then
        begin="BEGIN ISOLATION LEVEL $ISOLATION;"
        commit='COMMIT;'
    fi
    coproc PQ { "$PSQL" -X -q -At -v ON_ERROR_STOP=0 -v VERBOSITY=terse -d "$DB" 2>>"$WORK/client.$id.psql"; }
    local to=${PQ[1]} from=${PQ[0]}
    while [ "$EPOCHSECONDS" -lt "$end" ]; do
        k=$(( RANDOM % STORES + 1 ))
        s=stress-$(( RANDOM % STREAMS + 1 ))
        tries=0
        while :; do
            tries=$((tries + 1))
            printf '%s\n' \
                '\unset v' \
                "SELECT eventstore.stream_version('$s'${STORE_ARG[k]}) AS v \\gset" \
                "$begin" \
                "SELECT stream_version || '|' || global_position FROM eventstore.append_event('$s', :v, 'Tick', '{\"client\": $id}'${STORE_ARG[k]});" \
                '\echo @@ :SQLSTATE' \
                "$commit" \
                '\echo @@ :SQLSTATE' >&"$to"
            result=
            state=
            cstate=
            while IFS= read -r -t "$READ_TIMEOUT" -u "$from" line; do
                case $line in
                    "@@ "*)
                        if [ -z "$state" ]; then state=${line#@@ }; else cstate=${line#@@ }; break; fi ;;
                    *) result=$line ;;
                esac
            done
            if [ "$state" = 00000 ] && [ "$cstate" = 00000 ] && [ -n "$result" ]; then
                ok=$((ok + 1))
                printf '%s|%s|%s\n' "${STORE_NAME[k]}" "$s" "$result" >>"$rows"
                break
            elif [ "$state" = ES409 ] || { [ "$state" = 40001 ] || [ "$cstate" = 40001 ]; }; then
                if [ "$state" = ES409 ]; then
                    conflicts=$((conflicts + 1))
                else
                    serfail=$((serfail + 1))
                    echo "client $id: serialization failure (40001) on $s in ${STORE_NAME[k]}" >>"$err"
                fi
                if [ $tries -ge $MAX_RETRIES ]; then
                    echo "client $id: gave up on $s in ${STORE_NAME[k]} after $tries attempts" >>"$err"
                    errors=$((errors + 1))
                    break
                fi
            else
                echo "client $id: unexpected outcome on $s in ${STORE_NAME[k]}: append '${state:-<no answer>}' commit '${cstate:-<no answer>}' result '$result'" >>"$err"
                errors=$((errors + 1))
                [ -z "$cstate" ] && break 2      # psql gone or silent: stop
                break
            fi
        done
    done
    exec {to}>&-
    wait "$PQ_PID" 2>/dev/null
    echo "$ok $conflicts $errors $serfail" >"$WORK/client.$id.sum"
}

# One tail reader: reads the log of store k after its checkpoint until told to
# stop (file $WORK/stop) and then until a read returns nothing.  Writes
# reader.<id>.pos.
reader() {
    local id=$1 k=$2
    local out=$WORK/reader.$id.pos err=$WORK/reader.$id.err
    local cp=0 n line state reads=0 draining=0
    : >"$out"
    coproc PR { "$PSQL" -X -q -At -v ON_ERROR_STOP=0 -v VERBOSITY=terse -d "$DB" 2>>"$err"; }
    local to=${PR[1]} from=${PR[0]}
    while :; do
        # the stop flag is checked before the read: a read that returns
        # nothing after it was seen began after every writer had finished
        [ -e "$WORK/stop" ] && draining=1
        printf '%s\n' "SELECT global_position FROM eventstore.read_all($cp, $PAGE${STORE_ARG[k]});" \
            '\echo @@ :SQLSTATE' >&"$to"
        n=0
        state=
        while IFS= read -r -t "$READ_TIMEOUT" -u "$from" line; do
            case $line in
                "@@ "*) state=${line#@@ }; break ;;
                *) echo "$line" >>"$out"; cp=$line; n=$((n + 1)) ;;
            esac
        done
        reads=$((reads + 1))
        if [ "$state" != 00000 ]; then
            echo "reader $id: read_all failed: state '${state:-<no answer>}'" >>"$err"
            break
        fi
        [ $n = 0 ] && [ $draining = 1 ] && break
        [ $n = 0 ] && sleep 0.01
    done
    exec {to}>&-
    wait "$PR_PID" 2>/dev/null
    echo "$reads" >"$WORK/reader.$id.reads"
}

echo "stress: $CLIENTS clients, $STORES stores (${STORE_NAME[*]:1}) x $STREAMS streams, ${DURATION}s, $READERS tail reader(s), isolation ${ISOLATION:-autocommit}, preload=$preload, database $DB"
start=$EPOCHSECONDS
end=$((start + DURATION))
for ((r = 1; r <= READERS; r++)); do reader "$r" $(( (r - 1) % STORES + 1 )) & pids+=($!); done
writers=()
for ((c = 1; c <= CLIENTS; c++)); do client "$c" "$end" & writers+=($!); pids+=($!); done
for p in "${writers[@]}"; do wait "$p"; done
touch "$WORK/stop"
wait
elapsed=$((EPOCHSECONDS - start))

# ---- what the clients saw
appends=0; conflicts=0; errors=0; serfails=0
for ((c = 1; c <= CLIENTS; c++)); do
    if [ ! -s "$WORK/client.$c.sum" ]; then
        fail "client $c did not finish"
        continue
    fi
    read -r a k e z <"$WORK/client.$c.sum"
    appends=$((appends + a)); conflicts=$((conflicts + k)); errors=$((errors + e)); serfails=$((serfails + z))
    [ "$a" -gt 0 ] || fail "client $c appended nothing"
done
cat "$WORK"/client.*.rows >"$WORK/seen.rows" 2>/dev/null
if [ -n "$(cat "$WORK"/client.*.err 2>/dev/null)" ]; then
    echo "stress: client errors (first lines):" >&2
    cat "$WORK"/client.*.err | head -20 >&2
fi
[ "$errors" = 0 ] || fail "$errors client error(s) other than ES409"
if [ "$serfails" != 0 ] && [ "$STREAMS" = 1 ]; then
    fail "$serfails serialization failure(s) between appenders to a single stream"
fi
[ "$(wc -l <"$WORK/seen.rows")" = "$appends" ] || fail "clients' row files disagree with their counts"

# ---- what the stores hold
# stored: every event of every store, with its store's name
view="CREATE VIEW stored AS SELECT 'eventstore.events'::text AS store, e.* FROM eventstore.events e"
for ((k = 2; k <= STORES; k++)); do view+=" UNION ALL SELECT '${STORE_NAME[k]}', e.* FROM ${STORE_NAME[k]} e"; done
q -c "$view" || exit 1
q -c "CREATE TABLE seen (store text, stream_id text, stream_version bigint, global_position bigint)" || exit 1
q -c "\\copy seen FROM '$WORK/seen.rows' WITH (FORMAT text, DELIMITER '|')" || exit 1

echo "stress: per store and stream (N, versions 1..N exactly once):"
q -F ' ' -c "
    SELECT '  ' || store || ' ' || stream_id || ': N=' || count(*) || ' ' ||
           CASE WHEN min(stream_version) = 1 AND max(stream_version) = count(*)
                 AND count(DISTINCT stream_version) = count(*) THEN 'ok' ELSE 'VIOLATION' END
      FROM stored GROUP BY store, stream_id ORDER BY store, stream_id"

stored=$(q -c "SELECT count(*) FROM stored")
bad_streams=$(q -c "
    SELECT count(*) FROM (
        SELECT store, stream_id FROM stored GROUP BY store, stream_id
        HAVING min(stream_version) <> 1 OR max(stream_version) <> count(*)
            OR count(DISTINCT stream_version) <> count(*)) b")
[ "$bad_streams" = 0 ] || fail "$bad_streams stream(s) with a gap or a duplicate version"
sum_n=$(q -c "SELECT coalesce(sum(n), 0) FROM (SELECT max(stream_version) AS n FROM stored GROUP BY store, stream_id) s")
[ "$sum_n" = "$appends" ] || fail "sum of N over streams is $sum_n, the clients saw $appends appends"
[ "$stored" = "$appends" ] || fail "$stored events stored, the clients saw $appends appends"
for ((k = 1; k <= STORES; k++)); do
    in_store=$(q -c "SELECT count(*) FROM stored WHERE store = '${STORE_NAME[k]}'")
    seen_store=$(q -c "SELECT count(*) FROM seen WHERE store = '${STORE_NAME[k]}'")
    [ "$in_store" = "$seen_store" ] || fail "${STORE_NAME[k]}: $in_store events stored, the clients saw $seen_store appends to it"
    [ "$in_store" -gt 0 ] || fail "${STORE_NAME[k]}: nothing appended"
    shared=$(q -c "SELECT count(DISTINCT stream_id) FROM stored WHERE store = '${STORE_NAME[k]}'")
    echo "stress: ${STORE_NAME[k]}: $in_store events in $shared streams"
done
dup_pos=$(q -c "SELECT count(*) - count(DISTINCT global_position) FROM stored")
[ "$dup_pos" = 0 ] || fail "$dup_pos duplicate global position(s) across the stores"
mismatch=$(q -c "
    SELECT (SELECT count(*) FROM (SELECT store, stream_id, stream_version, global_position FROM stored
                                  EXCEPT SELECT * FROM seen) a)
         + (SELECT count(*) FROM (SELECT * FROM seen
                                  EXCEPT SELECT store, stream_id, stream_version, global_position FROM stored) b)")
[ "$mismatch" = 0 ] || fail "$mismatch row(s) differ between what the clients were told and what is stored"
dup_seen=$(q -c "SELECT count(*) - count(DISTINCT (store, stream_id, stream_version)) FROM seen")
[ "$dup_seen" = 0 ] || fail "two clients were told they appended the same stream version ($dup_seen)"

# ---- tail readers: increasing, complete, their store only
for ((r = 1; r <= READERS; r++)); do
    pos=$WORK/reader.$r.pos
    st=${STORE_NAME[(r - 1) % STORES + 1]}
    if [ -s "$WORK/reader.$r.err" ]; then
        fail "reader $r: $(head -3 "$WORK/reader.$r.err")"
    fi
    if ! sort -n -c -u "$pos" 2>/dev/null; then
        fail "reader $r ($st): positions not strictly increasing (went back or repeated)"
    fi
    q -c "CREATE TABLE reader_$r (global_position bigint)" -c "\\copy reader_$r FROM '$pos'" || exit 1
    missing=$(q -c "SELECT count(*) FROM stored e WHERE e.store = '$st' AND NOT EXISTS
                        (SELECT 1 FROM reader_$r x WHERE x.global_position = e.global_position)")
    extra=$(q -c "SELECT count(*) FROM reader_$r x WHERE NOT EXISTS
                        (SELECT 1 FROM stored e WHERE e.store = '$st' AND e.global_position = x.global_position)")
    [ "$missing" = 0 ] || fail "reader $r ($st) skipped $missing event(s)"
    [ "$extra" = 0 ] || fail "reader $r ($st) saw $extra position(s) that are not stored in its store"
    echo "stress: reader $r ($st): $(wc -l <"$pos") events in $(cat "$WORK/reader.$r.reads" 2>/dev/null || echo '?') reads, skipped $missing, foreign $extra"
done

# ---- one pass of read_all from 0, page by page, per store
for ((k = 1; k <= STORES; k++)); do
    paged=$(q -c "
        DO \$\$
        DECLARE cp bigint := 0; n bigint := 0; total bigint := 0; last bigint;
        BEGIN
            LOOP
                n := 0;
                FOR last IN SELECT global_position FROM eventstore.read_all(cp, $PAGE, '${STORE_NAME[k]}') LOOP
                    IF last <= cp THEN RAISE EXCEPTION 'read_all went back: % after %', last, cp; END IF;
                    cp := last; n := n + 1;
                END LOOP;
                total := total + n;
                EXIT WHEN n = 0;
            END LOOP;
            PERFORM set_config('stress.paged', total::text, false);
        END \$\$;
        SELECT current_setting('stress.paged')" 2>&1)
    in_store=$(q -c "SELECT count(*) FROM stored WHERE store = '${STORE_NAME[k]}'")
    [ "$paged" = "$in_store" ] || fail "read_all of ${STORE_NAME[k]} from 0 returned ${paged} events, $in_store are stored in it"
done

echo "stress: ${elapsed}s: $appends appends ($(( appends / (elapsed > 0 ? elapsed : 1) ))/s), $conflicts ES409 conflicts retried, $serfails serialization failures retried, $errors other errors, $stored events stored in $STORES stores, positions unique across stores: $([ "$dup_pos" = 0 ] && echo yes || echo NO)"
if [ $failed = 0 ]; then
    echo "stress: PASS"
else
    echo "stress: FAILED"
fi
exit $failed
