#!/usr/bin/env bash
# Scale-out on Citus: a coordinator and two workers (a third added at the
# end), each a throwaway cluster of its own on loopback ports CITUS_PORT, +1,
# +2, +3 (default 54470-54473), stopped and deleted on exit.  Expects eventstore to be installed already
# (scripts/test.sh does that); builds and installs Citus 13.2.2 with
# shared/citus/build.sh (CITUS_BUILD names it; found beside the repository or
# in /work/shared otherwise) and SKIPS, with one line saying why, only when
# that script is missing or cannot build Citus.
#
# Checks:
#   - eventstore.distribute() refuses a store with a subscription on the
#     coordinator (0A000);
#   - eventstore.distribute() distributes the default store (with 20 events
#     stored before) and a second store by stream_id, co-located, and
#     delegates the append functions; the earlier streams go on;
#   - an append reads the stream's head on the local shard (the bug of issue
#     18: a second append with expected version 1 failed, "actual 0");
#   - an append goes to the worker in one round trip (citus.log_remote_commands);
#   - an append that Citus does not delegate (explicit transaction block) is
#     refused with 0A000 instead of writing from the wrong node;
#   - positions of each node come from its own range (group << 48; events
#     stored before distribute() keep theirs, 1..20);
#   - load: CITUS_CLIENTS clients append through the coordinator to 200
#     streams (half their calls to 8 hot streams, so expected versions race),
#     each reading the stream's version and appending with it (one or two
#     events, ids chosen by the client); one worker is SIGKILLed once in the
#     middle and started again; a reader per worker reads its log with
#     eventstore.read_node() all along (last position, events seen);
#   - afterwards: per stream versions 1..N exactly once; no event id twice;
#     positions unique; every acknowledged append stored at its version and
#     position; every event's position in its node's range; per node, the
#     events at or below every sampled horizon are exactly those counted
#     then by a reader of that node's log (read_node: skips nothing); read_node
#     on each worker returns the worker's events, in order, page by page.
#   - a route registered before distribute() names the store on every node
#     (worker 2's OIDs are shifted: Citus copies the rows in binary, with the
#     coordinator's OID of the store, and distribute() sets them again by
#     name), and remove_route removes it everywhere;
#   - the registries are reference tables: a route and a projection
#     registered once on the coordinator are on every node; a worker
#     backend that cached the routes sees a route added on the coordinator
#     at its next transaction;
#   - the projection runs on the worker in the append's transaction and
#     writes that worker's read model;
#   - each worker's relay publishes its own outbox (the route registered on
#     the coordinator): every routed event of the node once, in id order.
#   - read_all, read_all_until, read_category and read_query of a distributed store are
#     refused on the coordinator (0A000); on a worker they return the node's
#     log (what read_node returns, in its order, paged).
#   - subscriptions per node: create_subscription on the coordinator of a
#     distributed store is refused (0A000); created on every worker with
#     run_command_on_workers (start => 'end' starts at the end of the
#     worker's own log, start_time before the worker's own first event
#     since then); a consumer per worker polls and acks, recording
#     what it got in the ack's transaction, while the load runs (and a
#     worker is killed): every event of the node's log delivered once, in
#     the node's position order, each stream's versions in order, nothing
#     of another node.
#   - shard moves while appending: a shard moves to the other worker, with
#     shard_transfer_mode block_writes and then (another shard) force_logical
#     (the nodes run wal_level = logical), while four clients append to its
#     streams through the coordinator with their own event ids, retrying on
#     40001: the shard is on the other worker; appends that waited for the
#     block_writes move were refused with 40001; nothing else failed; every
#     acknowledged append is on the new placement at its version, each
#     stream's versions 1..N once, no more events than acknowledged.
#   - a per-node subscription across a shard move, worker 1 -> 2 and 2 -> 1:
#     of the moving shard's events, the old node's consumer gets those it
#     drained before the move and the new node's consumer those appended
#     after it; those appended before and not yet consumed reach neither
#     (the new node's checkpoint is past a lower range, its horizon below a
#     higher one); read_node on the new node returns the moved rows only from
#     a lower range; the README's catch-up query returns exactly the missed
#     events.
#   - snapshots: distribute() distributes eventstore.snapshots by stream_id,
#     co-located with the stores; a snapshot policy runs on the worker in the
#     appends of the streams of each moving shard (every 5 events, before,
#     during and after the move) and a snapshot saved through the coordinator
#     before the move is found after it (load_snapshot, aggregate from it), on
#     the new node, although rows copied with the shard keep the old node's
#     OID of the store; the old placements of the moved shards are cleaned
#     up on their workers;
#   - a worker added later (worker 3, its OIDs shifted again): distribute()
#     run again after citus_add_node gives it the registries naming its own
#     OIDs (the same stores and roles as the coordinator's); on a shard moved
#     to it the snapshot policy and the route apply and the moved snapshot is
#     found;
#   - drop_store of a distributed store removes its snapshots on every node.
#
#   CITUS_PORT     first port (default 54470)
#   CITUS_CLIENTS  clients (default 6)
#   CITUS_CALLS    calls per client (default 150)
#   CITUS_KEEP     set: keep the data directories and the logs

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$ES_ROOT/scripts/cluster.sh"
set +e
set -u

PORT0=${CITUS_PORT:-54470}
CLIENTS=${CITUS_CLIENTS:-6}
CALLS=${CITUS_CALLS:-150}
BIN=$(es_bindir)
PSQL="$BIN/psql"
WORK=$(mktemp -d /tmp/eventstore-citus.XXXXXX)
chmod 755 "$WORK"
failures=0
pids=()
T_START=$(date +%s)

ok()   { printf 'ok     %s\n' "$*"; }
fail() { printf 'FAILED %s\n' "$*"; failures=$((failures + 1)); }
check() {  # check NAME EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: expected '$2', got '$3'"; fi
}
node_dir() { echo "$WORK/n$1"; }
node_port() { echo $((PORT0 + $1)); }
q() {  # q NODE SQL...: one psql call on node NODE (0 = coordinator), database es
    local n=$1; shift
    PGCONNECT_TIMEOUT=5 "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(node_port "$n")" \
        -U postgres -d es "$@"
}

cleanup() {
    local p n
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    for n in 0 1 2 3; do
        [ -f "$(node_dir $n)/postmaster.pid" ] &&
            es_as_pg "$BIN/pg_ctl" -D "$(node_dir $n)" -m immediate -w stop >/dev/null 2>&1
    done
    if [ -n "${CITUS_KEEP:-}" ]; then echo "citus: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# -- Citus ----------------------------------------------------------------------
build=${CITUS_BUILD:-}
if [ -z "$build" ]; then
    for c in "$ES_ROOT/../shared/citus/build.sh" "$ES_ROOT/../../shared/citus/build.sh" /work/shared/citus/build.sh; do
        [ -f "$c" ] && { build=$c; break; }
    done
fi
if [ -z "$build" ] || [ ! -f "$build" ]; then
    echo "SKIPPED citus.sh: shared/citus/build.sh not found (set CITUS_BUILD), Citus cannot be built"
    exit 0
fi
if ! out=$(PG_CONFIG="$(es_pg_config)" bash "$build" 2>&1); then
    echo "SKIPPED citus.sh: Citus could not be built: $(echo "$out" | tail -3 | tr '\n' ' ')"
    exit 0
fi
echo "citus: $(echo "$out" | tail -1)"

# -- three nodes --------------------------------------------------------------
start_node() {
    local d; d=$(node_dir "$1")
    es_as_pg "$BIN/pg_ctl" -D "$d" -l "$d/server.log" -w -t 60 start >/dev/null
}
make_node() {  # make_node N: initdb, configure and start node N, with database es and citus in it
    local n=$1 d
    d=$(node_dir $n)
    mkdir -p "$d"; chown postgres: "$d"; chmod 700 "$d"
    es_as_pg "$BIN/initdb" -D "$d" -A trust -U postgres --no-sync >/dev/null || { fail "initdb node $n"; exit 1; }
    es_as_pg mkdir -p "$d/sock"
    {
        echo "port = $(node_port $n)"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$d/sock'"
        echo "shared_preload_libraries = 'citus,eventstore'"
        echo "max_prepared_transactions = 50"
        echo "max_worker_processes = 32"
        echo "max_connections = 100"
        echo "fsync = off"
        echo "wal_level = logical"      # the force_logical shard move
    } | es_as_pg tee -a "$d/postgresql.auto.conf" >/dev/null
    start_node $n || { fail "start node $n"; cat "$d/server.log"; exit 1; }
    q $n -d postgres -c 'CREATE DATABASE es' && q $n -c 'CREATE EXTENSION citus' ||
        { fail "citus on node $n"; exit 1; }
}
shift_oids() {  # shift_oids N K: node N's next OIDs run K tables ahead of the others'
    q "$1" -c "DO \$\$BEGIN FOR i IN 1..$2 LOOP EXECUTE pg_catalog.format('CREATE TABLE public.oid_pad_%s (x int)', i); END LOOP; END\$\$" ||
        fail "shifting node $1's OIDs"
}
for n in 0 1 2; do make_node $n; done
# worker 2's OIDs run ahead: its eventstore objects get other OIDs than the coordinator's
shift_oids 2 50
q 0 -c "SELECT pg_catalog.citus_set_coordinator_host('127.0.0.1', $(node_port 0))" \
    -c "SELECT pg_catalog.citus_add_node('127.0.0.1', $(node_port 1))" \
    -c "SELECT pg_catalog.citus_add_node('127.0.0.1', $(node_port 2))" \
    -c 'CREATE EXTENSION eventstore' >/dev/null || { fail "cluster set-up"; exit 1; }
check "eventstore installed on both workers by the coordinator" "0.7.0 0.7.0" \
    "$(q 1 -c "SELECT extversion FROM pg_extension WHERE extname = 'eventstore'") $(q 2 -c "SELECT extversion FROM pg_extension WHERE extname = 'eventstore'")"

# -- distribute -------------------------------------------------------------------
# events stored before the store is distributed (on the coordinator)
q 0 -c "SELECT count(*) FROM (SELECT eventstore.append_event('pre-' || g, NULL, 'A', '{}') FROM generate_series(1, 20) g) x" >/dev/null
# a store with a subscription on the coordinator is refused (consumed per worker)
check "distribute() of a store with a subscription on the coordinator is refused (0A000)" "0A000" \
    "$(q 0 -v VERBOSITY=sqlstate -c "SELECT eventstore.create_subscription('pre_sub')" -c "SELECT eventstore.distribute()" 2>&1 | grep -o '0A000')"
q 0 -c "SELECT eventstore.drop_subscription('pre_sub')" >/dev/null || fail "drop_subscription(pre_sub)"
# a route registered before distribute(): the registries become reference tables with it
q 0 -c "SELECT eventstore.add_route('pre_out', ARRAY['PR'])" >/dev/null || fail "add_route before distribute()"
q 0 -c "SET client_min_messages = warning" -c "SELECT eventstore.create_store('second')" \
    -c "SELECT eventstore.distribute('second')" >/dev/null 2>"$WORK/distribute.err"
check "distribute(second) distributes both stores, co-located" "eventstore.events|true eventstore.snapshots|true second|true" \
    "$(q 0 -c "SELECT string_agg(logicalrelid::regclass::text || '|' || (colocationid = (SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = 'eventstore.events'::regclass))::text, ' ' ORDER BY logicalrelid::regclass::text) FROM pg_dist_partition WHERE partmethod = 'h'" 2>&1)$(sed 's/^/ /' "$WORK/distribute.err")"
check "distribute() distributes the snapshots by stream_id, co-located with the stores" "h|stream_id|true" \
    "$(q 0 -c "SELECT partmethod::text || '|' || column_to_column_name(logicalrelid, partkey) || '|' || (colocationid = (SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = 'eventstore.events'::regclass))::text FROM pg_dist_partition WHERE logicalrelid = 'eventstore.snapshots'::regclass" 2>&1)"
check "events stored before distribute() are in the shards and their streams go on" "20 2 21" \
    "$(q 0 -c "SELECT count(*) FROM eventstore.events WHERE stream_id LIKE 'pre-%'") $(q 0 -c "SELECT stream_version FROM eventstore.append_event('pre-1', 1, 'A', '{}')" 2>&1) $(q 0 -c "SELECT count(*) FROM eventstore.events WHERE stream_id LIKE 'pre-%'")"
check "the append functions are delegated by stream, co-located with the store" "append|0 append_event|0" \
    "$(q 0 -c "SELECT string_agg(p.proname || '|' || d.distribution_argument_index, ' ' ORDER BY p.proname) FROM pg_dist_object d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid WHERE p.pronamespace = 'eventstore'::regnamespace AND d.colocationid = (SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = 'eventstore.events'::regclass)" 2>&1)"
check "distribute() again is harmless" "" "$(q 0 -c "SELECT eventstore.distribute()" 2>&1)"
check "worker 2 has other OIDs than the coordinator (the store's)" "t" \
    "$(q 0 -c "SELECT 'eventstore.events'::regclass::oid <> '$(q 2 -c "SELECT 'eventstore.events'::regclass::oid")'::oid")"
# Citus copies a registry's rows to the workers in binary (the coordinator's
# OID of the store); distribute() sets them again by name on every node
check "a route registered before distribute() names the store on every node" "1 1 1" \
    "$(for n in 0 1 2; do q $n -c "SELECT count(*) FROM eventstore.routes WHERE channel = 'pre_out' AND store = 'eventstore.events'::regclass"; done | tr '\n' ' ' | sed 's/ $//')"
q 0 -c "SELECT eventstore.remove_route('pre_out')" >/dev/null || fail "remove_route(pre_out)"
check "remove_route of it removes it on every node" "0 0 0" \
    "$(for n in 0 1 2; do q $n -c "SELECT count(*) FROM eventstore.routes WHERE channel = 'pre_out'"; done | tr '\n' ' ' | sed 's/ $//')"

# -- the bug of issue 18: the head is read on the local shard ------------------------
check "second append with expected version 1" "2" \
    "$(q 0 -c "SELECT stream_version FROM eventstore.append_event('bug-1', 0, 'A', '{}', NULL, NULL)" \
          -c "SELECT stream_version FROM eventstore.append_event('bug-1', 1, 'A', '{}', NULL, NULL)" 2>&1 | tail -1)"
check "a stale expected version is refused on the worker" "ES409" \
    "$(q 0 -v VERBOSITY=sqlstate -c "SELECT stream_version FROM eventstore.append_event('bug-1', 1, 'A', '{}', NULL, NULL)" 2>&1 | grep -o 'ES409')"
check "a batch to the second store, then a retry of it" "2 2" \
    "$(q 0 -c "SELECT stream_version FROM eventstore.append('bug-2', 0, ARRAY[eventstore.event('A', '{}', NULL, '00000000-0000-4000-8000-000000000001'), eventstore.event('B', '{}', NULL, '00000000-0000-4000-8000-000000000002')], NULL, 'second')" \
          -c "SELECT stream_version FROM eventstore.append('bug-2', 0, ARRAY[eventstore.event('A', '{}', NULL, '00000000-0000-4000-8000-000000000001'), eventstore.event('B', '{}', NULL, '00000000-0000-4000-8000-000000000002')], NULL, 'second')" 2>&1 | tr '\n' ' ' | sed 's/ $//')"
check "reads through the coordinator see the events" "2 2" \
    "$(q 0 -F ' ' -c "SELECT (SELECT count(*) FROM eventstore.events WHERE stream_id = 'bug-1'), (SELECT count(*) FROM second)")"
check "read_stream and stream_version of a distributed store through the coordinator" "2|2" \
    "$(q 0 -c "SELECT (SELECT count(*) FROM eventstore.read_stream('bug-1')) || '|' || eventstore.stream_version('bug-1')" 2>&1)"
check "an append reaches the worker in one round trip" "1" \
    "$(q 0 -c "SET citus.log_remote_commands = on" -c "SET client_min_messages = log" \
          -c "SELECT stream_version FROM eventstore.append_event('hop-1', NULL, 'A', '{}', NULL, NULL)" 2>&1 | grep -c 'issuing')"
check "an append Citus does not delegate is refused (0A000)" "0A000" \
    "$(q 0 -v VERBOSITY=sqlstate -c "BEGIN" -c "SELECT stream_version FROM eventstore.append_event('bug-1', NULL, 'A', '{}', NULL, NULL)" 2>&1 | grep -o '0A000')"
check "an append with a volatile argument (not delegated) is refused (0A000)" "0A000" \
    "$(q 0 -v VERBOSITY=sqlstate -c "SELECT stream_version FROM eventstore.append_event('bug-1', NULL, 'A', '{}', NULL, gen_random_uuid())" 2>&1 | grep -o '0A000')"
check "a condition on a distributed store is refused (0A000)" "0A000" \
    "$(q 0 -v VERBOSITY=sqlstate -c "SELECT stream_version FROM eventstore.append_event('bug-1', NULL, 'A', '{}', NULL, NULL, NULL, '{\"fail_if_events_match\": {}, \"after\": 0}')" 2>&1 | grep -o '0A000')"
q 0 -c "CREATE ROLE citus_writer LOGIN" -c "CREATE ROLE citus_reader LOGIN" \
    -c "SELECT eventstore.grant_access('citus_writer', 'writer')" -c "SELECT eventstore.grant_access('citus_reader', 'reader')" >/dev/null
check "a writer role appends through the coordinator (grants reach the workers)" "1" \
    "$(q 0 -U citus_writer -c "SELECT stream_version FROM eventstore.append_event('role-1', 0, 'A', '{}')" 2>&1)"
check "a reader role may not append (42501 on the worker)" "42501" \
    "$(q 0 -U citus_reader -v VERBOSITY=sqlstate -c "SELECT stream_version FROM eventstore.append_event('role-1', NULL, 'A', '{}')" 2>&1 | grep -o '42501')"
check "positions of each worker come from its group's range (group << 48)" "t" \
    "$(q 0 -c "CREATE TEMP TABLE e AS SELECT stream_id, global_position FROM eventstore.events WHERE global_position > 20" -c "SELECT bool_and(global_position >> 48 = (SELECT p.groupid FROM pg_dist_placement p WHERE p.shardid = get_shard_id_for_distribution_column('eventstore.events', e.stream_id))) FROM e")"

# The registries are reference tables (distribute()): a route registered on
# the coordinator is on every node; each node has its own outbox.
check "distribute() made the registries reference tables" "projections|n routes|n snapshot_policies|n upcasters|n" \
    "$(q 0 -c "SELECT string_agg(replace(logicalrelid::regclass::text, 'eventstore.', '') || '|' || partmethod::text, ' ' ORDER BY logicalrelid::regclass::text) FROM pg_dist_partition WHERE logicalrelid::regclass::text IN ('eventstore.projections', 'eventstore.routes', 'eventstore.upcasters', 'eventstore.snapshot_policies')")"
q 0 -c "SELECT eventstore.add_route('citus_out', ARRAY['T'])" >/dev/null || fail "add_route on the coordinator"
check "a route registered on the coordinator is seen on every node" "citus_out citus_out citus_out" \
    "$(for n in 0 1 2; do q $n -c "SELECT string_agg(channel, ',') FROM eventstore.routes"; done | tr '\n' ' ' | sed 's/ $//')"
# A worker backend that cached the routes sees one registered on the
# coordinator at its next transaction (the registry trigger fires on the
# worker's shard of the reference table and invalidates the cache).
s1=$(q 0 -c "SELECT x.s FROM (SELECT 'inv-' || g AS s FROM generate_series(1, 100) g) x
              WHERE (SELECT p.groupid FROM pg_dist_placement p WHERE p.shardid = get_shard_id_for_distribution_column('eventstore.events', x.s))
                    = (SELECT groupid FROM pg_dist_node WHERE nodeport = $(node_port 1)) LIMIT 1")
check "a worker's cached routes see a route added on the coordinator" "0|1" \
    "$(q 1 -F '|' 2>&1 <<SQL | tr '\n' '|' | sed 's/|$//'
SELECT count(*) FROM eventstore.append_event('$s1', NULL, 'W', '{}') \\gset
SELECT count(*) FROM eventstore.outbox WHERE channel = 'w_out';
\! "$PSQL" -X -q -At -h 127.0.0.1 -p $(node_port 0) -U postgres -d es -c "SELECT eventstore.add_route('w_out', ARRAY['W'])" >/dev/null
SELECT count(*) FROM eventstore.append_event('$s1', NULL, 'W', '{}') \\gset
SELECT count(*) FROM eventstore.outbox WHERE channel = 'w_out';
SQL
)"
# (worker 1's outbox keeps that W event's row: the relay check below leaves channel w_out out)
q 0 -c "SELECT eventstore.remove_route('w_out')" >/dev/null || fail "remove_route on the coordinator"

# A projection registered on every node runs on the worker, in the append's
# transaction, and writes the worker's own read model.
q 0 -c "SELECT run_command_on_all_nodes(\$\$CREATE TABLE public.pj_counts (stream_id text PRIMARY KEY, n int NOT NULL)\$\$)" \
    -c "SELECT run_command_on_all_nodes(\$\$CREATE FUNCTION public.pj_count(e eventstore.events) RETURNS void LANGUAGE sql AS 'INSERT INTO public.pj_counts VALUES (e.stream_id, 1) ON CONFLICT (stream_id) DO UPDATE SET n = pj_counts.n + 1'\$\$)" \
    -c "SELECT eventstore.register_projection('pj', 'public.pj_count(eventstore.events)', ARRAY['P'])" >/dev/null ||
    fail "projection registered on the coordinator"
for k in $(seq 1 20); do
    q 0 -c "SELECT eventstore.append('pj-$k', 0, ARRAY[eventstore.event('P', '{}'), eventstore.event('P', '{}')])" >/dev/null || fail "append pj-$k"
done
pj=""
for n in 1 2; do
    pj+="$(q $n -c "SELECT (SELECT coalesce(sum(n), 0) FROM public.pj_counts) = (SELECT count(*) FROM eventstore.read_node(0, NULL) WHERE event_type = 'P') AND (SELECT count(*) FROM public.pj_counts) > 0 AND (SELECT count(*) FROM public.pj_counts) = (SELECT count(DISTINCT stream_id) FROM eventstore.read_node(0, NULL) WHERE event_type = 'P')") "
done
pj1=$(q 1 -c "SELECT coalesce(sum(n), 0) FROM public.pj_counts"); pj2=$(q 2 -c "SELECT coalesce(sum(n), 0) FROM public.pj_counts")
check "a projection registered on the coordinator runs on every worker: each counts its own streams, 40 events in all" "t t 40" "$pj$((pj1 + pj2))"

# -- subscriptions per node ------------------------------------------------------------
# A subscription on a cluster is consumed per node: created on every worker
# with run_command_on_workers, polled on each worker, where it reads the
# node's shards up to the node's horizon with the node's checkpoints.  One
# partition, so that a node's events come in the node's log order.
check "create_subscription on the coordinator of a distributed store is refused (0A000)" "0A000" \
    "$(q 0 -v VERBOSITY=sqlstate -c "SELECT eventstore.create_subscription('citus_sub')" 2>&1 | grep -o '0A000')"
q 0 -c "SELECT run_command_on_workers(\$\$SELECT eventstore.create_subscription('citus_sub', categories => ARRAY['s'], partition_by => 'none', partitions => 1)\$\$)" \
    -c "SELECT run_command_on_workers(\$\$CREATE TABLE public.sub_seen (seq bigserial PRIMARY KEY, pos bigint NOT NULL, stream_id text NOT NULL, version bigint NOT NULL)\$\$)" >/dev/null ||
    fail "create_subscription on every worker"
check "the subscription exists on each worker, not on the coordinator" "0 1 1" \
    "$(for n in 0 1 2; do q $n -c "SELECT count(*) FROM eventstore.subscriptions WHERE name = 'citus_sub'"; done | tr '\n' ' ' | sed 's/ $//')"
# start => 'end' on a worker starts at the end of that worker's log, not of the cluster's
q 0 -c "SELECT run_command_on_workers(\$\$SELECT eventstore.create_subscription('citus_end', start => 'end')\$\$)" >/dev/null ||
    fail "create_subscription(start => end) on every worker"
check "start => 'end' on each worker: the checkpoint is the end of the worker's own log" "t t" \
    "$(for n in 1 2; do q $n -c "SELECT bool_and(checkpoint >> 48 = (SELECT groupid FROM pg_dist_local_group) AND checkpoint = (SELECT max(global_position) FROM eventstore.read_node(0, NULL))) FROM eventstore.subscription_partitions WHERE subscription = 'citus_end'"; done | tr '\n' ' ' | sed 's/ $//')"
# start_time on a worker: the first event of the worker's own log created then or later
t_pj=$(q 0 -c "SELECT min(created_at) FROM eventstore.events WHERE stream_id LIKE 'pj-%'")
q 0 -c "SELECT run_command_on_workers(\$\$SELECT eventstore.create_subscription('citus_time', start_time => '$t_pj')\$\$)" >/dev/null ||
    fail "create_subscription(start_time) on every worker"
check "start_time on each worker: the checkpoint is before the worker's own first event since then" "t t" \
    "$(for n in 1 2; do q $n -c "SELECT bool_and(checkpoint >> 48 = (SELECT groupid FROM pg_dist_local_group) AND checkpoint + 1 = (SELECT min(global_position) FROM eventstore.read_node(0, NULL) WHERE created_at >= '$t_pj')) FROM eventstore.subscription_partitions WHERE subscription = 'citus_time'"; done | tr '\n' ' ' | sed 's/ $//')"
# one consumer step: poll, record what came (the effects) and ack it, in one transaction
cat >"$WORK/consume.sql" <<'SQL'
BEGIN;
CREATE TEMP TABLE b ON COMMIT DROP AS SELECT * FROM eventstore.poll('citus_sub', 'c', 300);
INSERT INTO public.sub_seen (pos, stream_id, version)
SELECT global_position, stream_id, stream_version FROM b ORDER BY global_position;
SELECT eventstore.ack_many('citus_sub', 'c', ARRAY(SELECT max(global_position) FROM b GROUP BY partition))
 WHERE EXISTS (SELECT FROM b);
SELECT 'polled|' || count(*) FROM b;
COMMIT;
SQL
consumer() {  # consumer NODE: drains its worker's subscription until told to stop
    while [ ! -e "$WORK/stop" ]; do
        q "$1" -f "$WORK/consume.sql" >/dev/null 2>>"$WORK/consumer.$1.err"
        sleep 0.05
    done
}

# -- load, with one worker killed --------------------------------------------------------
# A client: one psql session running a generated script; it reads a stream's
# version and appends with it, so concurrent clients on a hot stream race.
for c in $(seq 1 "$CLIENTS"); do
    f=$WORK/client.$c.sql
    {
        echo '\set ON_ERROR_STOP 0'
        echo '\set v 0'
        for k in $(seq 1 "$CALLS"); do
            if (( RANDOM % 2 )); then s=$(( RANDOM % 8 + 1 )); else s=$(( RANDOM % 200 + 1 )); fi
            printf -v id1 '%08x-0000-4000-8000-%08x0001' "$c" "$k"
            printf -v id2 '%08x-0000-4000-8000-%08x0002' "$c" "$k"
            echo "SELECT coalesce(max(stream_version), 0) AS v FROM eventstore.events WHERE stream_id = 's-$s' \\gset"
            if (( k % 3 )); then
                echo "SELECT 'ack|s-$s|$id1||' || stream_version || '|' || global_position FROM eventstore.append_event('s-$s', :v, 'T', '{\"c\": $c}', NULL, '$id1');"
            else
                echo "SELECT 'ack|s-$s|$id1|$id2|' || stream_version || '|' || global_position FROM eventstore.append('s-$s', :v, ARRAY[eventstore.event('T', '{}', NULL, '$id1'), eventstore.event('U', '{}', NULL, '$id2')]);"
            fi
        done
    } >"$f"
done
# Sampler: a reader of each worker's log (read_node: its shards, up to its
# horizon) records the last position it got and how many events it got.
sampler() {
    local n=$1 g=$2 r
    while [ ! -e "$WORK/stop" ]; do
        r=$(q "$n" -c "SELECT coalesce(max(global_position), 0) || '|' || count(*) FROM eventstore.read_node(0, NULL)" 2>/dev/null)
        [ -n "$r" ] && echo "$g|$r" >>"$WORK/samples"
        sleep 0.1
    done
}
: >"$WORK/samples"
group1=$(q 1 -c "SELECT groupid FROM pg_dist_local_group")
group2=$(q 2 -c "SELECT groupid FROM pg_dist_local_group")
sampler 1 "$group1" & pids+=($!)
sampler 2 "$group2" & pids+=($!)
consumer 1 & pids+=($!)
consumer 2 & pids+=($!)
t0=$(date +%s%N)
cpids=()
for c in $(seq 1 "$CLIENTS"); do
    PGCONNECT_TIMEOUT=5 "$PSQL" -X -q -At -h 127.0.0.1 -p "$PORT0" -U postgres -d es \
        -f "$WORK/client.$c.sql" >"$WORK/out.$c" 2>"$WORK/err.$c" &
    cpids+=($!)
done
# Kill worker 1 once, when some appends have been acknowledged.
for _ in $(seq 1 300); do
    [ "$(cat "$WORK"/out.* 2>/dev/null | wc -l)" -ge $((CLIENTS * CALLS / 8)) ] && break
    sleep 0.1
done
d1=$(node_dir 1)
pm=$(head -1 "$d1/postmaster.pid")
kill -STOP "$pm"
victims=$(for p in /proc/[0-9]*; do [ "$p/cwd" -ef "$d1" ] 2>/dev/null && echo "${p#/proc/}"; done)
kill -KILL $victims 2>/dev/null
for _ in $(seq 1 100); do kill -0 "$pm" 2>/dev/null || break; sleep 0.1; done
acked_at_kill=$(cat "$WORK"/out.* | wc -l)
sleep 1
start_node 1 || fail "worker 1 restarts after SIGKILL"
# Through the coordinator again: appends to streams of worker 1 succeed.
after=0
for k in $(seq 1 200); do
    s=$(q 0 -c "SELECT 'after-' || $k WHERE (SELECT p.groupid FROM pg_dist_placement p WHERE p.shardid = get_shard_id_for_distribution_column('eventstore.events', 'after-' || $k)) = $(q 1 -c "SELECT groupid FROM pg_dist_local_group" 2>/dev/null || echo -1)" 2>/dev/null)
    [ -n "$s" ] || continue
    for _ in $(seq 1 50); do
        v=$(q 0 -c "SELECT stream_version FROM eventstore.append_event('$s', 0, 'A', '{}')" 2>/dev/null) && break
        sleep 0.1
    done
    [ "$v" = 1 ] && after=$((after + 1))
    [ $after -ge 10 ] && break
done
check "after its restart, appends to worker 1's streams through the coordinator succeed" 10 "$after"
for p in "${cpids[@]}"; do wait "$p"; done
t1=$(date +%s%N)
touch "$WORK/stop"
for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
pids=()

cat "$WORK"/out.* | grep '^ack|' | sed 's/^ack|//' >"$WORK/acks"
acked=$(wc -l <"$WORK/acks")
conflicts=$(cat "$WORK"/err.* | grep -c 'wrong expected version')
down=$(cat "$WORK"/err.* | grep -v 'wrong expected version' | grep -c 'ERROR')
secs=$(( (t1 - t0) / 1000000 ))
echo "citus: $acked appends acknowledged ($acked_at_kill before the kill), $conflicts refused by expected version, $down failed on the killed worker's connection, in ${secs} ms"
[ "$acked" -gt $((CLIENTS * CALLS / 4)) ] && ok "clients made progress ($acked acknowledged)" || fail "too few appends acknowledged: $acked"
# the worker's backends, told by Citus or seen directly, when its postmaster died
lost='connection to the remote node\|terminating connection due to unexpected postmaster exit'
other=$(cat "$WORK"/err.* | grep 'ERROR' | grep -v 'wrong expected version' | grep -cv "$lost")
check "every other failure was the killed worker's connection" 0 "$other"
[ "$other" = 0 ] || cat "$WORK"/err.* | grep 'ERROR' | grep -v 'wrong expected version' | grep -v "$lost" | head -5
[ "$conflicts" -gt 0 ] && ok "expected versions raced ($conflicts conflicts)" || fail "no expected-version conflict happened"
[ "$(grep -c . "$WORK/samples")" -gt 4 ] && ok "horizons sampled ($(grep -c . "$WORK/samples") samples)" || fail "too few horizon samples"

# -- checks ---------------------------------------------------------------------------
q 0 >"$WORK/check.out" 2>&1 <<EOF
CREATE TEMP TABLE ev AS
SELECT e.stream_id, e.stream_version, e.event_id, e.global_position, 0 AS groupid
  FROM eventstore.events e;
UPDATE ev SET groupid = (SELECT p.groupid FROM pg_dist_placement p
                          WHERE p.shardid = get_shard_id_for_distribution_column('eventstore.events', ev.stream_id));
CREATE TEMP TABLE acks (stream_id text, id1 uuid, id2 text, version bigint, pos bigint);
\copy acks FROM '$WORK/acks' WITH (FORMAT csv, DELIMITER '|')
CREATE TEMP TABLE samples (node int, horizon bigint, n bigint);
\copy samples FROM '$WORK/samples' WITH (FORMAT csv, DELIMITER '|')
SELECT 'streams_bad', count(*) FROM (SELECT stream_id FROM ev GROUP BY stream_id
        HAVING count(*) <> max(stream_version) OR count(DISTINCT stream_version) <> count(*) OR min(stream_version) <> 1) s;
SELECT 'ids_dup', count(*) - count(DISTINCT event_id) FROM ev;
SELECT 'positions_dup', count(*) - count(DISTINCT global_position) FROM ev;
SELECT 'acks_missing', count(*) FROM acks a
 WHERE NOT EXISTS (SELECT FROM ev e WHERE e.event_id = coalesce(a.id2, a.id1::text)::uuid AND e.stream_id = a.stream_id
                      AND e.stream_version = a.version AND e.global_position = a.pos)
    OR (a.id2 IS NOT NULL AND NOT EXISTS (SELECT FROM ev e WHERE e.event_id = a.id1 AND e.stream_id = a.stream_id
                      AND e.stream_version = a.version - 1));
SELECT 'foreign_positions', count(*) FROM ev WHERE global_position >> 48 <> groupid AND global_position > 20;
SELECT 'horizon_skipped', count(*) FROM samples s
 WHERE s.n <> (SELECT count(*) FROM ev e WHERE e.groupid = s.node AND e.global_position <= s.horizon);
SELECT 'node_events', string_agg(n::text, ' ' ORDER BY groupid) FROM (SELECT groupid, count(*) n FROM ev GROUP BY groupid) s;
SELECT 'sample', s.*, (SELECT count(*) FROM ev e WHERE e.groupid = s.node AND e.global_position <= s.horizon) FROM samples s;
SELECT 'events', count(*) FROM ev WHERE stream_id LIKE 's-%';
SELECT 'streams', count(DISTINCT stream_id) FROM ev WHERE stream_id LIKE 's-%';
EOF
val() { grep "^$1|" "$WORK/check.out" | cut -d'|' -f2; }
check "per stream: versions 1..N exactly once" 0 "$(val streams_bad)"
check "no event id stored twice" 0 "$(val ids_dup)"
check "global positions unique in the cluster" 0 "$(val positions_dup)"
check "every acknowledged append stored at its version and position" 0 "$(val acks_missing)"
check "every event's position in its node's range" 0 "$(val foreign_positions)"
check "per node: a reader of the node's log (read_node) skipped nothing" 0 "$(val horizon_skipped)"
# Each worker's relay publishes its own outbox, in id order, one row per routed event.
for n in 1 2; do
    for _ in $(seq 1 50); do [ "$(q $n -c "SELECT eventstore.relay_once(1000)")" = 0 ] && break; done
    check "worker $n: its relay published its outbox: every T event once, in id order" "0|0|0|0" \
        "$(q $n -F '|' -c "SELECT (SELECT count(*) FROM eventstore.outbox WHERE published_at IS NULL),
                                   (SELECT count(*) FROM eventstore.read_node(0, NULL) e WHERE e.event_type = 'T'
                                      AND (SELECT count(*) FROM eventstore.outbox o WHERE o.global_position = e.global_position AND o.channel = 'citus_out') <> 1),
                                   (SELECT count(*) FROM eventstore.outbox o WHERE o.channel <> 'w_out' AND NOT EXISTS
                                      (SELECT FROM eventstore.read_node(0, NULL) e WHERE e.global_position = o.global_position AND e.event_type = 'T')),
                                   (SELECT count(*) FROM (SELECT published_at < lag(published_at) OVER (ORDER BY id) AS back FROM eventstore.outbox) s WHERE back)")"
done
# Each worker's consumer drains the rest; then what it recorded is the node's
# log of category s: each event once, in the node's position order, each
# stream's versions 1..N in order, nothing of another node.
for n in 1 2; do
    for _ in $(seq 1 200); do
        r=$(q $n -f "$WORK/consume.sql" 2>>"$WORK/consumer.$n.err" | grep '^polled|')
        [ "$r" = "polled|0" ] && [ "$(q $n -c "SELECT coalesce(sum(events_behind), 0) FROM eventstore.subscription_status WHERE subscription = 'citus_sub'")" = 0 ] && break
        sleep 0.05
    done
    check "worker $n: its subscription delivered its log of s once each, in node order, streams in version order" "0|0|0|0|0|t" \
        "$(q $n -F '|' -c "CREATE TEMP TABLE nodelog AS SELECT global_position, stream_id FROM eventstore.read_node(0, NULL) WHERE split_part(stream_id, '-', 1) = 's'" \
                        -c "SELECT (SELECT count(*) - count(DISTINCT pos) FROM public.sub_seen),
                                   (SELECT count(*) FROM nodelog l WHERE NOT EXISTS (SELECT FROM public.sub_seen x WHERE x.pos = l.global_position)),
                                   (SELECT count(*) FROM public.sub_seen x WHERE NOT EXISTS (SELECT FROM nodelog l WHERE l.global_position = x.pos)),
                                   (SELECT count(*) FROM (SELECT pos < lag(pos) OVER (ORDER BY seq) AS back FROM public.sub_seen) o WHERE back),
                                   (SELECT count(*) FROM (SELECT version <> coalesce(lag(version) OVER (PARTITION BY stream_id ORDER BY seq), 0) + 1 AS bad FROM public.sub_seen) v WHERE bad),
                                   (SELECT count(*) > 0 FROM public.sub_seen)" 2>&1)"
    echo "citus: worker $n: $(q $n -c "SELECT count(*) FROM public.sub_seen") events delivered by its subscription; $(cat "$WORK/consumer.$n.err" 2>/dev/null | grep -ci error) consumer steps failed (the killed worker)"
done

nodes="$(q 1 -c "SELECT count(*) FROM eventstore.read_node(0, NULL)") $(q 2 -c "SELECT count(*) FROM eventstore.read_node(0, NULL)")"
check "read_node on each worker returns the worker's events" "$(val node_events)" "$nodes"
check "read_node returns them in position order, paged" "t t" \
    "$(for n in 1 2; do q $n -c "WITH RECURSIVE p(after, n, ok) AS (SELECT 0::bigint, 0::bigint, true UNION ALL SELECT (SELECT max(global_position) FROM eventstore.read_node(p.after, 100)), p.n + (SELECT count(*) FROM eventstore.read_node(p.after, 100)), p.ok AND (SELECT bool_and(global_position > p.after) FROM eventstore.read_node(p.after, 100)) FROM p WHERE EXISTS (SELECT FROM eventstore.read_node(p.after, 1))) SELECT bool_and(ok) AND max(n) = (SELECT count(*) FROM eventstore.read_node(0, NULL)) FROM p"; done | tr '\n' ' ' | sed 's/ $//')"
# read_all and read_category of a distributed store: refused on the
# coordinator; on a worker, the node's log (as read_node returns it).
for f in "read_all(0, 10)" "read_all_until(now(), 0, 10)" "read_category('s', 0, 10)" "read_query('{\"items\": []}', 0, 10)"; do
    check "$f on the coordinator is refused (0A000)" "0A000" \
        "$(q 0 -v VERBOSITY=sqlstate -c "SELECT count(*) FROM eventstore.$f" 2>&1 | grep -o '0A000')"
done
for n in 1 2; do
    check "worker $n: read_all and read_category read the node's log, in its order, paged" "t|t|t|t" \
        "$(q $n -F '|' -c "SELECT array(SELECT global_position FROM eventstore.read_all(0, NULL)) = array(SELECT global_position FROM eventstore.read_node(0, NULL)),
                                  array(SELECT global_position FROM eventstore.read_category('s', 0, NULL))
                                    = array(SELECT global_position FROM eventstore.read_node(0, NULL) WHERE split_part(stream_id, '-', 1) = 's'),
                                  array(SELECT global_position FROM eventstore.read_all((SELECT global_position FROM eventstore.read_node(0, 50) ORDER BY 1 DESC LIMIT 1), 20))
                                    = array(SELECT global_position FROM eventstore.read_node((SELECT global_position FROM eventstore.read_node(0, 50) ORDER BY 1 DESC LIMIT 1), 20)),
                                  (SELECT count(*) > 0 FROM eventstore.read_category('s', 0, NULL))" 2>&1)"
    check "worker $n: read_query reads the node's log, in its order" "t|t" \
        "$(q $n -F '|' -c "SELECT array(SELECT global_position FROM eventstore.read_query('{\"items\": []}', 0, 1000000))
                                    = array(SELECT global_position FROM eventstore.read_node(0, NULL)),
                                  (SELECT count(*) > 0 FROM eventstore.read_query('{\"items\": []}', 0, 1000000))" 2>&1)"
done
# -- shard moves while appends run ------------------------------------------------------
# A shard moves to the other worker while clients append to its streams
# through the coordinator.  An append on the old placement takes Citus's
# shard metadata lock (as Citus's executor does), so it waits for the move's
# write block and, when the shard has moved meanwhile, is refused with 40001;
# the client retries and the coordinator sends the retry to the new node.
# Afterwards every acknowledged append is on the new placement, each
# stream's versions 1..N once.  (Before: the appends that reached the old
# placement during the move were acknowledged and lost with it.)
mover() {  # mover TAG CLIENT: appends to TAG's streams until TAG.stop exists, retrying on 40001
    local tag=$1 c=$2 k=0 s id r
    local -a streams
    read -r -a streams <"$WORK/$tag.streams"
    while [ ! -e "$WORK/$tag.stop" ] || [ $k -lt 20 ]; do
        k=$((k + 1))
        s=${streams[$(( RANDOM % ${#streams[@]} ))]}
        printf -v id '%08x-0000-4000-9000-%012x' "$c" "$k"
        for _ in $(seq 1 100); do
            r=$(q 0 -v VERBOSITY=sqlstate -c "SELECT stream_version || '|' || global_position FROM eventstore.append_event('$s', NULL, 'M', '{}', NULL, '$id')" 2>&1)
            case $r in
                *40001*) echo "retry|$s|$id" >>"$WORK/$tag.retries.$c"; sleep 0.01 ;;
                ERROR*|*ERROR*) echo "$s|$id|$r" >>"$WORK/$tag.errors.$c"; break ;;
                *) echo "$s|$id|$r" >>"$WORK/$tag.acks.$c"; break ;;
            esac
        done
    done
}
# Snapshots move with their stream's shard: a snapshot policy (every 5
# events) runs on the worker inside the appends of the moving streams, before,
# during and after the move; a snapshot saved through the coordinator before
# the move (a made-up state) is found after it.
q 0 -c "SELECT run_command_on_all_nodes(\$\$CREATE FUNCTION public.mv_count(s jsonb, e eventstore.events) RETURNS jsonb LANGUAGE sql IMMUTABLE AS 'SELECT pg_catalog.jsonb_build_object(''n'', coalesce((s->>''n'')::bigint, 0) + 1)'\$\$)" \
    -c "SELECT eventstore.set_snapshot_policy('mv_count', 'public.mv_count(jsonb, eventstore.events)', 5, categories => ARRAY['mvb', 'mvl'])" >/dev/null ||
    fail "snapshot policy for the moving streams"
moved=0
move_test() {  # move_test TAG MODE: moves a shard (not moved before) with shard_transfer_mode MODE
    local tag=$1 mode=$2 shard src dst n0 t_move c
    local -a mpids=()
    shard=$(q 0 -c "SELECT s FROM (SELECT get_shard_id_for_distribution_column('eventstore.events', '$tag-' || g) s
                     FROM generate_series(1, 100) g) x WHERE s NOT IN ($moved) LIMIT 1")
    moved+=",$shard"
    src=$(q 0 -c "SELECT nodeport FROM pg_dist_shard_placement WHERE shardid = $shard")
    if [ "$src" = "$(node_port 1)" ]; then dst=$(node_port 2); else dst=$(node_port 1); fi
    q 0 -c "SELECT string_agg(s, ' ') FROM (SELECT '$tag-' || g AS s FROM generate_series(1, 5000) g
             WHERE get_shard_id_for_distribution_column('eventstore.events', '$tag-' || g) = $shard LIMIT 8) x" >"$WORK/$tag.streams"
    : >"$WORK/$tag.acks.0"
    for c in 1 2 3 4; do mover "$tag" "$c" & mpids+=($!); done
    for _ in $(seq 1 300); do
        [ "$(cat "$WORK/$tag".acks.* | wc -l)" -ge 40 ] && break
        sleep 0.05
    done
    n0=$(cat "$WORK/$tag".acks.* | wc -l)
    # a snapshot of a moving stream, saved through the coordinator (the state is made up: a fold from it shows it was used)
    local s1 v1
    read -r s1 _ <"$WORK/$tag.streams"
    v1=$(q 0 -c "SELECT eventstore.stream_version('$s1')")
    q 0 -c "SELECT eventstore.save_snapshot('$s1', $v1, '{\"n\": 1000000}', 'mv_fake')" >/dev/null 2>&1 ||
        fail "$mode move: save_snapshot through the coordinator"
    t_move=$(date +%s%N)
    q 0 -c "SELECT citus_move_shard_placement($shard, '127.0.0.1', $src, '127.0.0.1', $dst, shard_transfer_mode => '$mode')" \
        >/dev/null 2>"$WORK/$tag.move.err" || fail "$mode move of shard $shard: $(head -3 "$WORK/$tag.move.err")"
    t_move=$(( ($(date +%s%N) - t_move) / 1000000 ))
    for _ in $(seq 1 300); do
        [ "$(cat "$WORK/$tag".acks.* | wc -l)" -ge $((n0 * 2 + 40)) ] && break
        sleep 0.05
    done
    touch "$WORK/$tag.stop"
    for c in "${mpids[@]}"; do wait "$c"; done
    cat "$WORK/$tag".acks.* >"$WORK/$tag.acks"
    local acked retries errors
    acked=$(grep -c . "$WORK/$tag.acks"); retries=$(cat "$WORK/$tag".retries.* 2>/dev/null | grep -c .)
    errors=$(cat "$WORK/$tag".errors.* 2>/dev/null | grep -c .)
    echo "citus: $mode move of shard $shard ($src -> $dst) took ${t_move} ms; $acked appends acknowledged ($n0 before it), $retries refused with 40001 and retried"
    check "$mode move: the shard is on the other worker" "$dst" \
        "$(q 0 -c "SELECT nodeport FROM pg_dist_shard_placement WHERE shardid = $shard")"
    # a block_writes move holds the writes for the whole copy: appends wait on the old placement, then are refused
    if [ "$mode" = block_writes ]; then
        [ "$retries" -gt 0 ] && ok "$mode move: appends that waited for it were refused (40001) and retried" ||
            fail "$mode move: no append was refused with 40001 (none waited for the move)"
    fi
    check "$mode move: no append failed otherwise" 0 "$errors"
    [ "$errors" = 0 ] || cat "$WORK/$tag".errors.* | head -3
    # what the new placement holds, read on its worker
    local dn; if [ "$dst" = "$(node_port 1)" ]; then dn=1; else dn=2; fi
    check "$mode move: every acknowledged append is on the new placement, streams 1..N once" "0|0|0|0" \
        "$(q $dn -F '|' 2>&1 <<SQL
CREATE TEMP TABLE acks (stream_id text, id uuid, version bigint, pos bigint);
\\copy acks FROM '$WORK/$tag.acks' WITH (FORMAT csv, DELIMITER '|')
CREATE TEMP TABLE ev AS SELECT stream_id, stream_version, event_id FROM eventstore.events_$shard WHERE stream_id LIKE '$tag-%';
SELECT (SELECT count(*) FROM acks a WHERE NOT EXISTS (SELECT FROM ev e WHERE e.event_id = a.id AND e.stream_id = a.stream_id AND e.stream_version = a.version)),
       (SELECT count(*) FROM (SELECT stream_id FROM ev GROUP BY stream_id
                              HAVING count(*) <> max(stream_version) OR count(DISTINCT stream_version) <> count(*) OR min(stream_version) <> 1) s),
       (SELECT count(*) - count(DISTINCT event_id) FROM ev),
       (SELECT count(*) FROM ev) - (SELECT count(*) FROM acks);
SQL
)"    # the snapshots moved with the shard: on the new node, under the store's
    # name (some rows keep the old node's OID of the store, which names
    # another table there or none), and the policy went on there
    local ssh; ssh=$(q 0 -c "SELECT get_shard_id_for_distribution_column('eventstore.snapshots', '$s1')")
    check "$mode move: the snapshots are in the new node's shard, found by name although copied with the old node's OID of the store" "$dst|t|t|0|0" \
        "$(q 0 -c "SELECT nodeport FROM pg_dist_shard_placement WHERE shardid = $ssh")|$(q $dn -F '|' -c "SELECT (SELECT count(*) FROM eventstore.snapshots WHERE stream_id = '$s1' AND snapshot_type = 'mv_fake') = 1,
              (SELECT count(*) FROM eventstore.snapshots WHERE stream_id LIKE '$tag-%' AND store::oid <> 'eventstore.events'::regclass::oid) > 0,
              (SELECT count(*) FROM eventstore.snapshots WHERE stream_id LIKE '$tag-%' AND store_name <> 'eventstore.events'),
              (SELECT count(*) FROM eventstore.snapshots s WHERE stream_id LIKE '$tag-%' AND snapshot_type = 'mv_count' AND (s.state->>'n')::bigint <> s.stream_version)" 2>&1)"
    check "$mode move: each moving stream has a policy snapshot every 5 events, before and after the move" "0" \
        "$(q 0 -c "SELECT count(*) FROM (SELECT e.stream_id, e.n, (SELECT count(*) FROM eventstore.snapshots s WHERE s.stream_id = e.stream_id AND s.snapshot_type = 'mv_count') AS k
              FROM (SELECT stream_id, max(stream_version) AS n FROM eventstore.events WHERE stream_id LIKE '$tag-%' GROUP BY stream_id) e) x WHERE x.k <> x.n / 5" 2>&1)"
    check "$mode move: load_snapshot and aggregate through the coordinator find the snapshot saved before the move" "$v1|1000000|true" \
        "$(q 0 -c "SELECT l.stream_version || '|' || (l.state->>'n') || '|' || ((eventstore.aggregate('$s1', 'public.mv_count(jsonb, eventstore.events)', '{}', snapshot_type => 'mv_fake')->>'n')::bigint = 1000000 + eventstore.stream_version('$s1') - $v1)::text FROM eventstore.load_snapshot('$s1', 'mv_fake') l" 2>&1)"
}
move_test mvb block_writes
if [ "$(q 0 -c "SHOW wal_level")" = logical ]; then
    move_test mvl force_logical
else
    echo "citus: wal_level is not logical; the force_logical move is not tested"
fi

# -- a per-node consumer across a shard move ------------------------------------------
# A moved shard's rows keep their positions, from the old node's range.  A
# subscription per worker (one partition, categories mu and md); for each
# direction (worker 1 -> 2: streams mu-*, worker 2 -> 1: md-*) a shard of the
# old node gets events A, which the old node's consumer drains, then events
# B, which it does not, and the destination's consumer drains its own events
# of the category; the shard moves; events C are appended after the move;
# both consumers drain.  What each gets, as it is: A on the old node only
# (once), C on the new node only, B by neither (the old node's log lost them;
# the new node's consumer is past them when they come from a lower node's
# range, and its horizon never reaches a higher node's range).  So the safe
# procedure is the one A follows: drain the old node's consumers past the
# shard's events (or stop appending to it) before the move.
q 0 -c "SELECT run_command_on_workers(\$\$SELECT eventstore.create_subscription('mv_sub', categories => ARRAY['mu', 'md'], partition_by => 'none', partitions => 1)\$\$)" \
    -c "SELECT run_command_on_workers(\$\$CREATE TABLE public.mv_seen (seq bigserial PRIMARY KEY, pos bigint NOT NULL, stream_id text NOT NULL, version bigint NOT NULL)\$\$)" >/dev/null ||
    fail "mv_sub on every worker"
sed -e 's/citus_sub/mv_sub/' -e 's/public\.sub_seen/public.mv_seen/' "$WORK/consume.sql" >"$WORK/mv_consume.sql"
mv_drain() {  # mv_drain NODE: polls and acks mv_sub on NODE until a poll is empty
    local r
    for _ in $(seq 1 50); do
        r=$(q "$1" -f "$WORK/mv_consume.sql" 2>>"$WORK/mv_consume.err" | grep '^polled|')
        [ "$r" = "polled|0" ] && return 0
    done
    fail "mv_sub on worker $1 does not drain"
}
mv_append() {  # mv_append PHASE STREAM...: one event of type PHASE to each stream, through the coordinator
    local p=$1 s; shift
    for s in "$@"; do
        q 0 -c "SELECT eventstore.append_event('$s', NULL, '$p', '{}')" >/dev/null || fail "append $p to $s"
    done
}
move_read() {  # move_read TAG SRC: moves a shard of TAG's streams from worker SRC to the other one
    local tag=$1 sn=$2 dn shard ms ds cp g
    if [ "$sn" = 1 ]; then dn=2; else dn=1; fi
    shard=$(q 0 -c "SELECT s FROM (SELECT get_shard_id_for_distribution_column('eventstore.events', '$tag-' || g) s
                     FROM generate_series(1, 1000) g) x JOIN pg_dist_shard_placement p ON p.shardid = s
                     WHERE p.nodeport = $(node_port "$sn") AND s NOT IN ($moved) LIMIT 1")
    moved+=",$shard"
    # two streams of the moving shard, one stream on the destination
    read -r -a ms <<<"$(q 0 -c "SELECT string_agg(s, ' ') FROM (SELECT '$tag-' || g AS s FROM generate_series(1, 5000) g
             WHERE get_shard_id_for_distribution_column('eventstore.events', '$tag-' || g) = $shard LIMIT 2) x")"
    ds=$(q 0 -c "SELECT '$tag-' || g FROM generate_series(1, 5000) g JOIN pg_dist_shard_placement p
                  ON p.shardid = get_shard_id_for_distribution_column('eventstore.events', '$tag-' || g)
                 WHERE p.nodeport = $(node_port "$dn") LIMIT 1")
    mv_append A "${ms[@]}" "${ms[@]}"; mv_append D "$ds" "$ds"
    mv_drain "$sn"; mv_drain "$dn"
    mv_append B "${ms[@]}" "${ms[@]}"
    # the old node's checkpoint and group when the move starts (the catch-up query below reads above it)
    cp=$(q "$sn" -c "SELECT min(checkpoint) FROM eventstore.subscription_partitions WHERE subscription = 'mv_sub'")
    g=$(q "$sn" -c "SELECT groupid FROM pg_dist_local_group")
    q 0 -c "SELECT citus_move_shard_placement($shard, '127.0.0.1', $(node_port "$sn"), '127.0.0.1', $(node_port "$dn"), shard_transfer_mode => 'block_writes')" \
        >/dev/null 2>"$WORK/$tag.move.err" || fail "move of shard $shard: $(head -3 "$WORK/$tag.move.err")"
    mv_append C "${ms[@]}"
    mv_drain "$sn"; mv_drain "$dn"
    # per worker: events of the moving streams its consumer got, per phase (versions: A 1-2, B 3-4, C 5)
    local phases="SELECT string_agg(n::text, ' ' ORDER BY ph) FROM (SELECT ph, (SELECT count(*) FROM public.mv_seen x
                   WHERE x.stream_id IN ('${ms[0]}', '${ms[1]}') AND x.version = ANY (CASE ph WHEN 'A' THEN ARRAY[1, 2]
                   WHEN 'B' THEN ARRAY[3, 4] ELSE ARRAY[5] END)) n FROM unnest(ARRAY['A', 'B', 'C']) ph) s"
    check "move $sn -> $dn: the new node's consumer gets C and its own events, not A or B (B lost to it)" "0 0 2 2" \
        "$(q "$dn" -c "$phases") $(q "$dn" -c "SELECT count(*) FROM public.mv_seen WHERE stream_id = '$ds'")"
    check "move $sn -> $dn: the old node's consumer got A (drained before the move), not B or C" "4 0 0" \
        "$(q "$sn" -c "$phases")"
    # the catch-up the README documents: on the coordinator, the moved shard's
    # rows of the subscription's categories in the old node's range above its
    # checkpoint at the move are exactly what its consumer missed (B)
    check "move $sn -> $dn: the documented catch-up query returns B, in position order" "3 3 4 4" \
        "$(q 0 -c "SELECT string_agg(stream_version::text, ' ' ORDER BY global_position) FROM eventstore.events
                    WHERE get_shard_id_for_distribution_column('eventstore.events', stream_id) = $shard
                      AND eventstore.category(stream_id) = ANY (ARRAY['mu', 'md'])
                      AND global_position >> 48 = $g AND global_position > $cp" 2>&1)"
    # the store lost nothing; the new node's log holds the moved rows only if they come from a lower node's range
    check "move $sn -> $dn: the streams hold A B C; the new node's read_node returns $( [ "$sn" -lt "$dn" ] && echo 'all of them' || echo 'C only')" \
        "10 $( [ "$sn" -lt "$dn" ] && echo 10 || echo 2)" \
        "$(q 0 -c "SELECT count(*) FROM eventstore.events WHERE stream_id IN ('${ms[0]}', '${ms[1]}')") $(q "$dn" -c "SELECT count(*) FROM eventstore.read_node(0, NULL) WHERE stream_id IN ('${ms[0]}', '${ms[1]}')")"
}
move_read mu 1
move_read md 2

# the old placements of the moves above are dropped on their workers (the
# sql_drop trigger there leaves the shards of registries and snapshots alone)
check "the moved shards' old placements are cleaned up" "0" \
    "$(q 0 -c "CALL citus_cleanup_orphaned_resources()" -c "SELECT count(*) FROM pg_dist_cleanup" 2>&1 | grep -v '^NOTICE')"

# -- a worker added later ------------------------------------------------------------------
# Citus copies the reference tables to a new node in binary, from another
# node's placement: the registries' store (regclass) and owner (regrole)
# there are that node's OIDs.  distribute() run again after citus_add_node
# copies them there and sets them again by name.  Worker 3's OIDs run ahead
# of both other nodes'; a shard of the moving streams moves to it, and the
# registrations apply there: the snapshot policy snapshots its stream, the
# route writes the node's outbox, and the snapshots moved with the shard are
# found.
make_node 3
shift_oids 3 20
q 0 -c "SELECT pg_catalog.citus_add_node('127.0.0.1', $(node_port 3))" -c "SELECT eventstore.distribute()" >/dev/null 2>"$WORK/add3.err" ||
    fail "citus_add_node and distribute() again: $(head -3 "$WORK/add3.err")"
check "worker 3 has other OIDs than the coordinator and worker 2 (the store's)" "t" \
    "$(q 0 -c "SELECT NOT ('$(q 3 -c "SELECT 'eventstore.events'::regclass::oid")'::oid IN ('eventstore.events'::regclass::oid, '$(q 2 -c "SELECT 'eventstore.events'::regclass::oid")'::oid))")"
registries="SELECT string_agg(x, ' ' ORDER BY x) FROM (SELECT 'projections:' || r::text AS x FROM eventstore.projections r
              UNION ALL SELECT 'routes:' || r::text FROM eventstore.routes r UNION ALL SELECT 'upcasters:' || r::text FROM eventstore.upcasters r
              UNION ALL SELECT 'snapshot_policies:' || r::text FROM eventstore.snapshot_policies r) s"
check "a worker added later: after distribute() it holds the registries, naming the same stores and roles as the coordinator's" \
    "4 $(q 0 -c "$registries")" \
    "$(q 0 -c "SELECT count(*) FROM pg_dist_placement p JOIN pg_dist_shard s USING (shardid)
                WHERE s.logicalrelid::text IN ('eventstore.projections', 'eventstore.routes', 'eventstore.upcasters', 'eventstore.snapshot_policies')
                  AND p.groupid = (SELECT groupid FROM pg_dist_node WHERE nodeport = $(node_port 3))") $(q 3 -c "$registries" 2>&1)"
q 0 -c "SELECT run_command_on_all_nodes(\$\$CREATE OR REPLACE FUNCTION public.mv_count(s jsonb, e eventstore.events) RETURNS jsonb LANGUAGE sql IMMUTABLE AS 'SELECT pg_catalog.jsonb_build_object(''n'', coalesce((s->>''n'')::bigint, 0) + 1)'\$\$)" >/dev/null ||
    fail "the reducer on worker 3"
read -r s3 _ <"$WORK/mvb.streams"
sh3=$(q 0 -c "SELECT get_shard_id_for_distribution_column('eventstore.events', '$s3')")
q 0 -c "SELECT citus_move_shard_placement($sh3, '127.0.0.1', (SELECT nodeport FROM pg_dist_shard_placement WHERE shardid = $sh3), '127.0.0.1', $(node_port 3), shard_transfer_mode => 'block_writes')" \
    >/dev/null 2>"$WORK/move3.err" || fail "move of shard $sh3 to worker 3: $(head -3 "$WORK/move3.err")"
n3=$(q 0 -c "SELECT eventstore.stream_version('$s3')")
for k in 1 2 3 4 5; do
    q 0 -c "SELECT eventstore.append_event('$s3', NULL, 'T', '{}')" >/dev/null || fail "append to $s3 on worker 3"
done
check "worker 3: the policy snapshots the stream it now holds, the route fills its outbox, the moved snapshot is found" \
    "$(( (n3 + 5) / 5 ))|5|1000000" \
    "$(q 3 -c "SELECT (SELECT count(*) FROM eventstore.snapshots WHERE stream_id = '$s3' AND snapshot_type = 'mv_count') || '|' ||
                      (SELECT count(*) FROM eventstore.outbox WHERE channel = 'citus_out')" 2>&1)|$(q 3 -c "SELECT state->>'n' FROM eventstore.load_snapshot('$s3', 'mv_fake')" 2>&1)"

# drop_store of a distributed store: the coordinator's sql_drop trigger
# forgets its registrations and snapshots on every node (the snapshots by
# name: rows written on a worker hold the worker's OID of the store); the
# workers' triggers leave the Citus tables alone (a query of one is refused
# inside the coordinator's DROP)
q 0 -c "SET client_min_messages = warning" -c "SELECT eventstore.create_store('gone')" -c "SELECT eventstore.distribute('gone')" \
    -c "SELECT eventstore.append_event('gone-1', NULL, 'A', '{}', store => 'gone')" \
    -c "SELECT eventstore.save_snapshot('gone-1', 1, '{}', 'gone_manual', 'gone')" >/dev/null 2>"$WORK/gone.err" ||
    fail "a third distributed store: $(head -3 "$WORK/gone.err")"
check "drop_store of a distributed store succeeds and removes its snapshots on every node" "|0" \
    "$(q 0 -c "SELECT eventstore.drop_store('gone')" 2>&1)|$(q 0 -c "SELECT count(*) FROM eventstore.snapshots WHERE stream_id = 'gone-1'" 2>&1)"

echo "citus: $(val events) events in $(val streams) streams checked; $(( $(date +%s) - T_START )) s in all"
if grep -q ERROR "$WORK/check.out"; then cat "$WORK/check.out"; fail "check queries"; fi
[ "$(val horizon_skipped)" = 0 ] || grep '^sample|' "$WORK/check.out"

[ $failures = 0 ] && echo "citus: all checks passed" || echo "citus: $failures check(s) failed"
[ $failures = 0 ]
