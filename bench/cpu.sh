#!/usr/bin/env bash
# CPU cost per call, by instruction count: noise-free where the pgbench
# figures of a shared machine are not.  Not in CI; needs valgrind.
#
#   bash bench/cpu.sh [N] [CASE...]        (default: 2000 ours raw tagged)
#
# Each case runs N and 200 prepared EXECUTEs in a single-user postgres under
# callgrind (a fresh cluster of its own, library preloaded,
# synchronous_commit and fsync off) and prints the difference divided by
# N - 200: the instructions one call costs, start-up excluded.  Cases:
#   ours    append_event to one growing stream
#   raw     the raw baseline of make bench: a one-row INSERT into a table
#           LIKE eventstore.events INCLUDING ALL, position from one sequence
#   tagged  append_event with one tag
#   plain_store, encrypted   the encryption case of make bench: append_event
#           to a store of its own, without and with one field encrypted
#           (eventstore.encrypt, pgcrypto)
#   dcb     append_event with one tag and a condition of one item (type and
#           tag) that never matches: the conditional append of make bench.
#           Its tag is not tagged's: events appended to one GIN posting
#           list make each next insert into it dearer, so two cases on one
#           tag would cost what their order makes them.
#   subscribed   append_event to a store of its own (bench_sub) with one
#           subscription matching every event, created for this case only
#           (issue #12: what a subscription costs the append itself, the
#           commit's signal included; compare with plain_store)
#   routed  append_event to bench_plain with one outbox route matching
#           every event, added for this case only (an outbox row per
#           append; compare with plain_store)
#   read_query, select   read_query of 1,000 events of one tag (of 10,000
#           tagged events, as in make bench, in a store of their own so that
#           ours and raw append to tables in the same state) vs the
#           hand-written SELECT,
#           each counted as whole rows (count(x): printing 1,000 rows in
#           single-user mode would cost 30 times the read)
#   drain, read_all   a consumer's batch of a subscription drain (make
#           bench's subscription case): poll(1000) of a subscription of 16
#           partitions and one ack_many of the last position of each
#           partition's run, vs read_all(after, 1000) of the same store
#           walking it as the drain does (after from a sequence); a store of
#           its own with a backlog of N * 1,000 + 10,000 events, 1,000
#           streams; each run starts a new subscription (its first poll
#           takes the partitions) and the sequence anew, in both counts alike
source "$(dirname "$0")/../scripts/cluster.sh"
N=${1:-2000}; shift || true
CASES=("$@"); [ ${#CASES[@]} -gt 0 ] || CASES=(ours raw tagged)
[ "$N" -gt 200 ] || { echo "N must be above 200" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "bench/cpu.sh needs valgrind" >&2; exit 2; }
BIN=$(es_bindir)
WORK=$(mktemp -d /tmp/eventstore-cpu.XXXXXX); chmod 777 "$WORK"
trap 'rm -rf "$WORK"' EXIT
es_as_pg "$BIN/initdb" -D "$WORK/data" -A trust -U postgres --no-sync >/dev/null
printf '%s\n' "shared_preload_libraries = 'eventstore'" "synchronous_commit = off" "fsync = off" |
    es_as_pg tee -a "$WORK/data/postgresql.conf" >/dev/null
single() { es_as_pg "$BIN/postgres" --single -D "$WORK/data" postgres; }
single >/dev/null <<'SQL'
CREATE EXTENSION eventstore;
CREATE SEQUENCE raw_seq;
CREATE TABLE raw_events (LIKE eventstore.events INCLUDING ALL);
CREATE EXTENSION pgcrypto;
SELECT eventstore.create_store('public.bench_secure');
SELECT eventstore.create_store('public.bench_plain');
SELECT eventstore.create_store('public.bench_rq');
SELECT eventstore.create_store('public.bench_sub');
SELECT eventstore.append('tagged-1', 0, (SELECT array_agg(eventstore.event('Tagged', jsonb_build_object('n', i), tags => ARRAY['shard:' || (i % 10)])) FROM generate_series(1, 10000) i), store => 'public.bench_rq');
ANALYZE public.bench_rq;
SQL
if [[ " ${CASES[*]} " =~ " drain " || " ${CASES[*]} " =~ " read_all " ]]; then
    single >/dev/null <<SQL
SELECT eventstore.create_store('public.bench_drain');
CREATE UNLOGGED TABLE drain_staging (LIKE eventstore.import_row);
INSERT INTO drain_staging SELECT k, 'sb-' || (k % 1000), k / 1000 + 1, 'Placed', '{"amount": 42, "note": "a typical small event"}', NULL, now(), gen_random_uuid() FROM generate_series(0, $N * 1000 + 9999) k;
SELECT eventstore.import_events('drain_staging', 'public.bench_drain');
DROP TABLE drain_staging;
VACUUM ANALYZE public.bench_drain;
CREATE SEQUENCE drain_after;
SQL
fi
# what a case runs once before its calls, and after them (counted in both
# runs alike): subscribed's subscription exists during that case only
prologue() {
    case $1 in
        subscribed) echo "SELECT eventstore.create_subscription('bench_sub', store => 'public.bench_sub');" ;;
        drain) echo "SELECT eventstore.drop_subscription(s.name) FROM eventstore.subscriptions s WHERE s.name = 'bench_drain';"
               echo "SELECT eventstore.create_subscription('bench_drain', partitions => 16, store => 'public.bench_drain');"
               echo "SELECT count(*) FROM eventstore.poll('bench_drain', 'c1', 0);"
               ;;
        read_all) echo "SELECT pg_catalog.setval('drain_after', 1, false);" ;;
        routed) echo "SELECT eventstore.add_route('bench_routed', store => 'public.bench_plain');" ;;
    esac
}
epilogue() {
    case $1 in
        subscribed) echo "SELECT eventstore.drop_subscription('bench_sub');" ;;
        routed) echo "SELECT eventstore.remove_route('bench_routed');" ;;
    esac
}
statement() {
    case $1 in
        ours)   echo "SELECT eventstore.append_event('s-1', NULL, 'T', '{\"amount\": 42}')" ;;
        tagged) echo "SELECT eventstore.append_event('t-1', NULL, 'T', '{\"amount\": 42}', tags => ARRAY['t:1'])" ;;
        dcb)    echo "SELECT eventstore.append_event('d-1', NULL, 'T', '{\"amount\": 42}', tags => ARRAY['d:1'], condition => '{\"fail_if_events_match\": {\"items\": [{\"types\": [\"T\"], \"tags\": [\"key:1\"]}]}}')" ;;
        read_query) echo "SELECT count(x) FROM eventstore.read_query('{\"items\": [{\"types\": [\"Tagged\"], \"tags\": [\"shard:3\"]}]}', 0, 1000, store => 'public.bench_rq') x" ;;
        select) echo "SELECT count(x) FROM (SELECT * FROM public.bench_rq e WHERE e.event_type = 'Tagged' AND e.tags @> ARRAY['shard:3'] AND e.tags <> '{}' ORDER BY e.global_position LIMIT 1000) x" ;;
        drain)  echo "SELECT eventstore.ack_many('bench_drain', 'c1', ARRAY(SELECT max(p.global_position) FROM eventstore.poll('bench_drain', 'c1', 1000) p GROUP BY p.partition))" ;;
        read_all) echo "SELECT max(r.global_position) FROM eventstore.read_all((pg_catalog.nextval('drain_after') - 1) * 1000, 1000, store => 'public.bench_drain') r" ;;
        raw)    echo "INSERT INTO raw_events (global_position, stream_id, stream_version, event_id, event_type, data, created_at)" \
                     "SELECT n, 's-1', n, gen_random_uuid(), 'T', '{\"amount\": 42}', now() FROM nextval('raw_seq') n" ;;
        plain_store|routed) echo "SELECT eventstore.append_event('benc-1', NULL, 'Appended', jsonb_build_object('amount', 42, 'note', 'a typical small event'), store => 'public.bench_plain')" ;;
        subscribed) echo "SELECT eventstore.append_event('benc-1', NULL, 'Appended', jsonb_build_object('amount', 42, 'note', 'a typical small event'), store => 'public.bench_sub')" ;;
        encrypted) echo "SELECT eventstore.append_event('benc-1', NULL, 'Appended', jsonb_build_object('amount', 42, 'note', eventstore.encrypt('subject-1', '\"a typical small event\"', 'public.bench_secure')), store => 'public.bench_secure')" ;;
        *) echo "unknown case $1" >&2; exit 2 ;;
    esac
}
# (single-user mode ends a statement at a newline: one line each)
instructions() {    # case calls -> total instructions of the process
    { prologue "$1"; echo "PREPARE p AS $(statement "$1");"; for ((i = 0; i < $2; i++)); do echo 'EXECUTE p;'; done
      epilogue "$1"; } > "$WORK/in.sql"
    rm -f "$WORK/cg.out"
    es_as_pg valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" \
        "$BIN/postgres" --single -D "$WORK/data" postgres < "$WORK/in.sql" >/dev/null 2>&1
    awk '/^(summary|totals):/ {print $2; exit}' "$WORK/cg.out"
}
declare -A per
for c in "${CASES[@]}"; do
    lo=$(instructions "$c" 200); hi=$(instructions "$c" "$N")
    per[$c]=$(( (hi - lo) / (N - 200) ))
    printf '%-8s %9d instructions per call\n' "$c" "${per[$c]}"
done
if [ -n "${per[encrypted]:-}" ] && [ -n "${per[plain_store]:-}" ]; then
    awk -v e="${per[encrypted]}" -v p="${per[plain_store]}" 'BEGIN {printf "plain_store / encrypted: %.2f\n", p / e}'
fi
if [ -n "${per[subscribed]:-}" ] && [ -n "${per[plain_store]:-}" ]; then
    awk -v s="${per[subscribed]}" -v p="${per[plain_store]}" 'BEGIN {printf "plain_store / subscribed: %.3f\n", p / s}'
fi
if [ -n "${per[routed]:-}" ] && [ -n "${per[plain_store]:-}" ]; then
    awk -v r="${per[routed]}" -v p="${per[plain_store]}" 'BEGIN {printf "plain_store / routed: %.3f\n", p / r}'
fi
if [ -n "${per[read_query]:-}" ] && [ -n "${per[select]:-}" ]; then
    awk -v o="${per[read_query]}" -v s="${per[select]}" 'BEGIN {printf "select / read_query: %.2f\n", s / o}'
fi
if [ -n "${per[dcb]:-}" ] && [ -n "${per[tagged]:-}" ]; then
    awk -v d="${per[dcb]}" -v t="${per[tagged]}" 'BEGIN {printf "tagged / dcb: %.2f\n", t / d}'
fi
if [ -n "${per[drain]:-}" ] && [ -n "${per[read_all]:-}" ]; then
    awk -v d="${per[drain]}" -v r="${per[read_all]}" 'BEGIN {printf "read_all / drain: %.2f\n", r / d}'
fi
if [ -n "${per[ours]:-}" ] && [ -n "${per[raw]:-}" ]; then
    awk -v o="${per[ours]}" -v r="${per[raw]}" 'BEGIN {printf "raw / ours: %.2f (the CPU-bound ratio an append can reach)\n", r / o}'
fi
