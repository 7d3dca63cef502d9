#!/usr/bin/env bash
# Appends through a Citus coordinator with two workers, against one plain
# node, on this machine: pgbench, CITUS_BENCH_CLIENTS clients for
# CITUS_BENCH_SECS seconds each, append_event to 1000 streams per client
# (NULL expected version), simple protocol.  All nodes share the machine's
# cores, so the figure shows the cost of the extra hop, not scaling.  Also
# counts the commands the coordinator sends per append
# (citus.log_remote_commands).  Then the reads of a node's log on worker 1
# against the plain node, each holding CITUS_BENCH_EVENTS events of its own
# (appended on the node): a read_all loop of batches of 1000 (on the worker:
# its shards, UNION ALL) and a subscription drain (16 partitions, poll 1000
# + ack_many of the runs, in one DO block), median of 3 rounds, interleaved.
# Prints one table line per figure; never fails on a figure.
# Run by bench/run.sh (make bench) after the other cases; skipped with a line
# when Citus cannot be built (shared/citus/build.sh, see test/scripts/citus.sh).
#
#   CITUS_BENCH_PORT     first of four ports (default 54480)
#   CITUS_BENCH_SECS     seconds per run (default 10)
#   CITUS_BENCH_CLIENTS  clients (default 8)
#   CITUS_BENCH_EVENTS   events per node for the reads (default 20000)
ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ES_ROOT/scripts/cluster.sh"
set +e
PORT0=${CITUS_BENCH_PORT:-54480}
SECS=${CITUS_BENCH_SECS:-10}
CLIENTS=${CITUS_BENCH_CLIENTS:-8}
EVENTS=${CITUS_BENCH_EVENTS:-20000}
BIN=$(es_bindir)
WORK=$(mktemp -d /tmp/eventstore-citus-bench.XXXXXX); chmod 755 "$WORK"
cleanup() {
    for n in 0 1 2 3; do
        [ -f "$WORK/n$n/postmaster.pid" ] && es_as_pg "$BIN/pg_ctl" -D "$WORK/n$n" -m immediate -w stop >/dev/null 2>&1
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

build=${CITUS_BUILD:-}
for c in "$ES_ROOT/../shared/citus/build.sh" "$ES_ROOT/../../shared/citus/build.sh" /work/shared/citus/build.sh; do
    [ -z "$build" ] && [ -f "$c" ] && build=$c
done
if [ -z "$build" ] || ! PG_CONFIG="$(es_pg_config)" bash "$build" >"$WORK/build.log" 2>&1; then
    echo "| append_event through a Citus coordinator + 2 workers: SKIPPED, Citus cannot be built here | | | | | | | | | |"
    exit 0
fi

q() { local n=$1; shift; "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $((PORT0 + n)) -U postgres -d es "$@"; }
# node 0: coordinator, 1 and 2: workers, 3: a plain node without Citus
for n in 0 1 2 3; do
    d=$WORK/n$n; mkdir -p "$d"; chown postgres: "$d"; chmod 700 "$d"
    es_as_pg "$BIN/initdb" -D "$d" -A trust -U postgres --no-sync >/dev/null
    es_as_pg mkdir -p "$d/sock"
    libs="citus,eventstore"; [ $n = 3 ] && libs=eventstore
    {
        echo "port = $((PORT0 + n))"; echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$d/sock'"; echo "shared_preload_libraries = '$libs'"
        echo "max_prepared_transactions = 50"; echo "max_worker_processes = 32"
        echo "shared_buffers = '128MB'"
    } | es_as_pg tee -a "$d/postgresql.auto.conf" >/dev/null
    es_as_pg "$BIN/pg_ctl" -D "$d" -l "$d/server.log" -w -t 60 start >/dev/null
    "$BIN/psql" -X -q -h 127.0.0.1 -p $((PORT0 + n)) -U postgres -d postgres -c 'CREATE DATABASE es'
    [ $n != 3 ] && q $n -c 'CREATE EXTENSION citus'
done
q 0 -c "SELECT citus_set_coordinator_host('127.0.0.1', $PORT0)" \
    -c "SELECT citus_add_node('127.0.0.1', $((PORT0 + 1)))" -c "SELECT citus_add_node('127.0.0.1', $((PORT0 + 2)))" \
    -c 'CREATE EXTENSION eventstore' -c 'SELECT eventstore.distribute()' >/dev/null
q 3 -c 'CREATE EXTENSION eventstore'

cat >"$WORK/append.sql" <<'EOF'
\set s random(1, 1000)
SELECT eventstore.append_event('bench-:client_id-:s', NULL, 'Appended', '{"amount": 42, "note": "a typical small event"}');
EOF
run() {  # run NODE -> tps
    "$BIN/pgbench" -n -M simple -c "$CLIENTS" -j "$CLIENTS" -T "$SECS" -h 127.0.0.1 -p $((PORT0 + $1)) -U postgres \
        -f "$WORK/append.sql" es 2>&1 | awk '/^tps = / {printf "%.0f", $3; exit}'
}
single=$(run 3)
cluster=$(run 0)
hops=$(q 0 -c "SET citus.log_remote_commands = on" -c "SET client_min_messages = log" \
           -c "SELECT eventstore.append_event('hops-1', NULL, 'Appended', '{}')" 2>&1 | grep -c 'issuing')
ratio=$(awk -v a="$cluster" -v b="$single" 'BEGIN {if (b > 0) printf "%.2f", a/b; else print "n/a"}')
echo "| append_event through a Citus coordinator + 2 workers, $hops command(s) to a worker per append (same $(nproc) cores: overhead, not scaling) | $CLIENTS | ${cluster}/s | one plain node | ${single}/s | $ratio | | | | |"

# -- reads of a node's log: worker 1 (its shards) against the plain node --------
# Each node appends EVENTS events of its own to streams it holds (on the
# worker, the stream ids whose shard is placed there).
local_streams="SELECT 'r-' || g AS s FROM generate_series(1, $((EVENTS * 4))) g"
q 1 -c "SELECT count(*) FROM (SELECT eventstore.append_event(x.s, NULL, 'R', '{\"amount\": 42}')
          FROM ($local_streams) x
         WHERE EXISTS (SELECT FROM pg_dist_placement p, pg_dist_local_group l
                        WHERE p.shardid = get_shard_id_for_distribution_column('eventstore.events', x.s)
                          AND p.groupid = l.groupid)
         LIMIT $EVENTS) y" >/dev/null
q 3 -c "SELECT count(*) FROM (SELECT eventstore.append_event(x.s, NULL, 'R', '{\"amount\": 42}') FROM ($local_streams) x LIMIT $EVENTS) y" >/dev/null
cat >"$WORK/read_loop.sql" <<'SQL'
DO $$ DECLARE p bigint := 0; q bigint;
BEGIN
    LOOP
        SELECT max(global_position) INTO q FROM eventstore.read_all(p, 1000);
        EXIT WHEN q IS NULL;
        p := q;
    END LOOP;
END $$;
SQL
cat >"$WORK/drain.sql" <<'SQL'
DO $$ DECLARE last bigint[];
BEGIN
    LOOP
        SELECT array_agg(m) INTO last
          FROM (SELECT max(global_position) AS m FROM eventstore.poll('bench', 'c', 1000) GROUP BY partition) x;
        EXIT WHEN last IS NULL;
        PERFORM eventstore.ack_many('bench', 'c', last);
    END LOOP;
END $$;
SQL
timed() {  # timed NODE SQL... -> milliseconds
    local n=$1 t0 t1; shift
    t0=$(date +%s%N); q "$n" "$@" >/dev/null; t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000000 ))
}
median() { tr ' ' '\n' | sort -n | sed -n 2p; }
rw=""; rp=""; dw=""; dp=""
for r in 1 2 3; do
    rw+="$(timed 1 -f "$WORK/read_loop.sql") "; rp+="$(timed 3 -f "$WORK/read_loop.sql") "
    for n in 1 3; do
        q $n -c "SELECT eventstore.drop_subscription('bench')" >/dev/null 2>&1
        q $n -c "SELECT eventstore.create_subscription('bench', categories => ARRAY['r'])" >/dev/null
    done
    dw+="$(timed 1 -f "$WORK/drain.sql") "; dp+="$(timed 3 -f "$WORK/drain.sql") "
done
got=$(q 1 -c "SELECT count(*) FROM eventstore.read_all(0, NULL) WHERE event_type = 'R'")
acked=$(q 1 -c "SELECT coalesce(sum(events_behind), -1) FROM eventstore.subscription_status WHERE subscription = 'bench'")
rate() { awk -v n="$EVENTS" -v ms="$1" 'BEGIN {if (ms > 0) printf "%.0f", n * 1000 / ms; else print "n/a"}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a > 0) printf "%.2f", b / a; else print "n/a"}'; }
rwm=$(echo $rw | median); rpm=$(echo $rp | median); dwm=$(echo $dw | median); dpm=$(echo $dp | median)
echo "| read_all loop of 1000 on a Citus worker, its shards of the store ($got events; ms per round $rw) | 1 | $(rate "$rwm")/s | the same on one plain node (ms $rp) | $(rate "$rpm")/s | $(ratio "$rwm" "$rpm") | | | | |"
echo "| subscription drain on a Citus worker, its shards (poll 1000 + ack_many, 16 partitions; behind after: $acked; ms per round $dw) | 1 | $(rate "$dwm")/s | the same on one plain node (ms $dp) | $(rate "$dpm")/s | $(ratio "$dwm" "$dpm") | | | | |"
