#!/usr/bin/env bash
# Growth benchmark: make bench-scale (not in CI).
#
# Starts its own cluster, loads a database of its own per size in SCALE_SIZES,
# then measures the same figures
# at every size with pgbench -M prepared, round by round and size by size
# (interleaved, so noise hits the sizes alike), so that a cost that grows with
# the store shows as a ratio below 1 against the previous size:
#
#   append tps at 1 and 8 clients  append_event to one of 100,000 "app-N" streams
#   read_all at the tail            the last 100 events of the log
#   read_category, common           100 events of category c3 (10% of the log) from a random position
#   read_category, rare             the first 100 events of category "rare" (0.01% of the log)
#   read_stream                     the first 10 events of a random loaded stream
#   stream_version                  of a random loaded stream
#   read after a burst              a fresh category read just after 10,000 events
#                                   were appended to it, before and after ANALYZE
#
# The history is loaded with COPY-speed import_events (one call per
# SCALE_CHUNK events, from an UNLOGGED staging table filled by generate_series):
# 100,000 streams "cK-N" in 10 categories c0..c9, of which 10 streams are
# category "rare" instead (0.01% of the events); event i goes to stream
# (i - 1) % 100000 + 1, so every stream grows evenly.  Then VACUUM ANALYZE and a
# CHECKPOINT; autovacuum is off, so statistics are exactly what each step left.
# Also prints, at each size, the plan the rare-category read actually runs
# (auto_explain of the 7th call in one session, after the plan cache has chosen
# between custom and generic plans; the same for the burst's category before
# ANALYZE): it must use the category index, not scan the log.  Target: every figure at 10^7 >= 0.8x its value at 10^6.
#
#   SCALE_SIZES   sizes in events, ascending   (default "0 1000000 10000000")
#   SCALE_SECS    seconds per pgbench run      (default 5)
#   SCALE_ROUNDS  runs per figure, interleaved; the median is kept (default 3)
#   SCALE_CHUNK   events per import_events call (default 1000000)
#   SCALE_SHARED_BUFFERS  shared_buffers of the cluster (default: a quarter of
#                 the machine's memory, PostgreSQL's documented starting point)
#   SCALE_HUGE_PAGES  try (default): huge_pages = try, so the server's shared
#                 memory is in 2 MB huge pages if the machine has enough
#                 reserved (vm.nr_hugepages), else in 4 kB pages; reserve: as
#                 root, raise vm.nr_hugepages by what the cluster needs for the
#                 run (put back at exit) and start with huge_pages = on; off.
#                 The table's last lines say which the run had.
#   SCALE_PREWARM 1 (default): read each size's table and indexes into
#                 shared_buffers (pg_prewarm) before the runs; 0: not
#   ES_PORT       port of the throwaway cluster (default 54334)
#   SCALE_NO_BUILD=1  use the installed extension as it is (no make clean all install)
# The full run needs up to about 10 GB of disk in /tmp and, on 2 cores, about
# 25 minutes with 3 rounds (the load of 10^7 events takes about 10).
ES_PORT=${ES_PORT:-54334}
source "$(dirname "$0")/../scripts/cluster.sh"

SIZES=${SCALE_SIZES:-0 1000000 10000000}
SECS=${SCALE_SECS:-5}
ROUNDS=${SCALE_ROUNDS:-3}
CHUNK=${SCALE_CHUNK:-1000000}
SHARED_BUFFERS=${SCALE_SHARED_BUFFERS:-$(awk '/^MemTotal:/ {printf "%dMB", $2 / 1024 / 4}' /proc/meminfo)}
STREAMS=100000
BENCH=$ES_ROOT/bench
OUT=$BENCH/results; mkdir -p "$OUT"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
WORK=$(mktemp -d /tmp/eventstore-scale.XXXXXX); chmod 777 "$WORK"

prev=-1
for s in $SIZES; do
    [[ $s =~ ^[0-9]+$ ]] && [ "$s" -gt "$prev" ] || { echo "SCALE_SIZES must be ascending integers" >&2; exit 2; }
    prev=$s
done

es_install_deps
[ "${SCALE_NO_BUILD:-0}" = 1 ] || es_build_install
ES_PGDATA=$WORK/data; mkdir -p "$ES_PGDATA"
ES_FSYNC=on
HUGE_PAGES=${SCALE_HUGE_PAGES:-try}
case $HUGE_PAGES in try|reserve|off) ;; *) echo "SCALE_HUGE_PAGES must be try, reserve or off" >&2; exit 2 ;; esac
NR_HUGEPAGES_BEFORE=$(cat /proc/sys/vm/nr_hugepages)
trap 'es_stop_cluster; rm -rf "$WORK"; if [ "$HUGE_PAGES" = reserve ]; then sysctl -qw vm.nr_hugepages="$NR_HUGEPAGES_BEFORE"; fi' EXIT
es_start_cluster
es_psql -d postgres -c "ALTER SYSTEM SET shared_buffers = '$SHARED_BUFFERS'" -c "ALTER SYSTEM SET max_connections = 50" \
    -c "ALTER SYSTEM SET autovacuum = off" -c "ALTER SYSTEM SET max_wal_size = '4GB'" \
    -c "ALTER SYSTEM SET huge_pages = $([ "$HUGE_PAGES" = reserve ] && echo on || echo "$HUGE_PAGES")" >/dev/null
es_stop_cluster
if [ "$HUGE_PAGES" = reserve ]; then
    # what the server's shared memory needs, in huge pages (PostgreSQL 15 on)
    need=$(es_as_pg "$(es_bindir)/postgres" -D "$ES_PGDATA" -C shared_memory_size_in_huge_pages)
    # on top of the huge pages in use now (other servers' with huge_pages = try)
    sysctl -qw vm.nr_hugepages=$(($(awk '/^HugePages_Total:/ {print $2}' /proc/meminfo) + need)) ||
        { echo "SCALE_HUGE_PAGES=reserve: could not raise vm.nr_hugepages (not root?)" >&2; exit 2; }
fi
es_as_pg "$(es_bindir)/pg_ctl" -D "$ES_PGDATA" -w start -l "$ES_PGDATA/server.log" >/dev/null
# Whether the shared memory got huge pages: its mapping is /anon_hugepage.
if grep -q anon_hugepage "/proc/$(head -1 "$ES_PGDATA/postmaster.pid")/maps"; then
    HUGE_PAGES_USED="in 2 MB huge pages"
else
    HUGE_PAGES_USED="in 4 kB pages"
fi
es_log "shared_buffers $SHARED_BUFFERS, shared memory $HUGE_PAGES_USED (SCALE_HUGE_PAGES=$HUGE_PAGES)"
PGBENCH="$(es_bindir)/pgbench"
# Each size is a database of its own (scale_<size>), so that every figure is
# measured at every size round by round, interleaved: machine noise then hits
# the sizes alike instead of whichever size ran while the machine was busy.
DB=scale
q() { es_psql -d "$DB" -Atc "$1"; }

# The pgbench scripts.  :tail is the log's last position, :n a run number.
S=$WORK/scripts; mkdir -p "$S"; chmod 777 "$S"
cat > "$S/append.sql" <<'EOF'
\set s random(1, 100000)
SELECT eventstore.append_event('app-' || :s, NULL, 'Appended', '{"amount": 42, "note": "a typical small event"}');
EOF
cat > "$S/read_all_tail.sql" <<'EOF'
SELECT * FROM eventstore.read_all(greatest(:tail - 100, 0), 100);
EOF
cat > "$S/read_category_common.sql" <<'EOF'
\set p random(0, greatest(:tail - 2000, 0))
SELECT * FROM eventstore.read_category('c3', :p, 100);
EOF
cat > "$S/read_category_rare.sql" <<'EOF'
SELECT * FROM eventstore.read_category('rare', 0, 100);
EOF
cat > "$S/read_stream.sql" <<'EOF'
\set s random(1, 100000)
SELECT * FROM eventstore.read_stream(CASE WHEN :s % 10000 = 0 THEN 'rare' ELSE 'c' || (:s % 10) END || '-' || :s, 1, 10);
EOF
cat > "$S/read_stream_hand.sql" <<'EOF'
\set s random(1, 100000)
SELECT * FROM eventstore.events
 WHERE stream_id = CASE WHEN :s % 10000 = 0 THEN 'rare' ELSE 'c' || (:s % 10) END || '-' || :s
   AND stream_version > 1 AND stream_version <= 11 ORDER BY stream_version;
EOF
cat > "$S/stream_version.sql" <<'EOF'
\set s random(1, 100000)
SELECT eventstore.stream_version(CASE WHEN :s % 10000 = 0 THEN 'rare' ELSE 'c' || (:s % 10) END || '-' || :s);
EOF
cat > "$S/read_burst.sql" <<'EOF'
SELECT * FROM eventstore.read_category('burst' || :n, 0, 100);
EOF
chmod 644 "$S"/*.sql

# measure KEY SCRIPT CLIENTS [pgbench -D args...]: one pgbench run; its
# transactions per second go to RUNS[KEY], and the CPU time its backends used
# per transaction (microseconds) to CPUS[KEY].  pgbench's backends exit with
# the run, so the postmaster has reaped their CPU time (cutime + cstime of
# /proc/<postmaster>/stat): what the server spent on the calls, which other
# work on a shared machine slows down but hardly changes, where the rate
# falls with it.
pm_cpu() { awk '{sub(/^.*\) /, ""); print $14 + $15}' "/proc/$(head -1 "$ES_PGDATA/postmaster.pid")/stat"; }
measure() {
    local key=$1 script=$2 clients=$3; shift 3
    local out c0 c1 tps n
    c0=$(pm_cpu)
    out=$(cd "$WORK" && "$PGBENCH" -n -M prepared -c "$clients" -j "$clients" -T "$SECS" "$@" \
              -f "$S/$script" "$DB" 2>&1) || { echo "$out" >&2; RUNS[$key]+="0 "; CPUS[$key]+="0 "; return; }
    sleep 0.2   # the backends' exit reaches the postmaster
    c1=$(pm_cpu)
    tps=$(echo "$out" | awk '/^tps = / {printf "%.0f", $3; exit}')
    n=$(echo "$out" | awk '/^number of transactions actually processed:/ {split($NF, a, "/"); print a[1]; exit}')
    RUNS[$key]+="$tps "
    CPUS[$key]+="$(awk -v c=$((c1 - c0)) -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.0f", (n > 0 ? c * 1e6 / hz / n : 0)}') "
}

# Grow the store from $1 to $2 events.
load() {
    local from=$1 to=$2 lo hi
    for ((lo = from; lo < to; lo += CHUNK)); do
        hi=$((lo + CHUNK < to ? lo + CHUNK : to))
        es_psql -d "$DB" <<EOF >/dev/null
CREATE UNLOGGED TABLE staging (LIKE eventstore.import_row);
INSERT INTO staging
SELECT i,
       CASE WHEN s % 10000 = 0 THEN 'rare' ELSE 'c' || (s % 10) END || '-' || s,
       (i - 1) / $STREAMS + 1,
       'Loaded',
       jsonb_build_object('n', i, 'amount', i % 1000, 'note', 'a typical small event'),
       NULL,
       timestamptz '2020-01-01' + i * interval '1 millisecond',
       md5(i::text)::uuid
  FROM generate_series($lo + 1, $hi) i, LATERAL (SELECT (i - 1) % $STREAMS + 1 AS s) x;
SELECT eventstore.import_events('staging');
DROP TABLE staging;
EOF
        es_log "loaded $hi events"
    done
}

# plan CALL: the plan of the log read inside eventstore.CALL as it runs at the
# 7th call in one session (after the plan cache chose between a custom and a
# generic plan, as in a pgbench run), from auto_explain.  auto_explain prints
# the outer query last; keep the inner one (the log read).
plan() {
    es_psql -d "$DB" -v call="$1" 2>&1 >/dev/null <<'EOF' |
LOAD 'auto_explain';
SELECT count(*) FROM eventstore.:call \g /dev/null
SELECT count(*) FROM eventstore.:call \g /dev/null
SELECT count(*) FROM eventstore.:call \g /dev/null
SELECT count(*) FROM eventstore.:call \g /dev/null
SELECT count(*) FROM eventstore.:call \g /dev/null
SELECT count(*) FROM eventstore.:call \g /dev/null
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_analyze = on;
SET auto_explain.log_timing = off;
SET auto_explain.log_level = notice;
SELECT count(*) FROM eventstore.:call \g /dev/null
EOF
    awk '/^NOTICE:/ {n++} {buf[n] = buf[n] $0 "\n"} END {printf "%s", buf[n - 1]}' |
        grep -v '^NOTICE:\|Query Text\|^\s*$' | sed 's/^/    /'
}

declare -A FIG SIZE_MB
NAMES=("append tps, 1 client" "append tps, 8 clients" "read_all, tail (100 events)"
       "read_category, common (100 events)" "read_category, rare (first 100)"
       "read_stream (10 events)" "stream_version"
       "fresh category after a burst, before ANALYZE" "same, after ANALYZE"
       "read_stream's SELECT by hand on the table (baseline)")
PLANS=$WORK/plans.txt; : > "$PLANS"
declare -A TAIL
# Load: a database per size, loaded from empty (a copy by CREATE DATABASE
# ... TEMPLATE would wait for the relay worker to leave the template).
for size in $SIZES; do
    DB=scale_$size
    es_psql -d postgres -c "CREATE DATABASE $DB" >/dev/null
    es_psql -d "$DB" -c 'CREATE EXTENSION eventstore' >/dev/null
    load 0 "$size"
    es_log "size $size: VACUUM ANALYZE, CHECKPOINT"
    es_psql -d "$DB" -c 'VACUUM ANALYZE eventstore.events' -c 'CHECKPOINT' >/dev/null
    TAIL[$size]=$(q "SELECT coalesce(max(global_position), 0) FROM eventstore.events")
    SIZE_MB[$size]=$(q "SELECT pg_total_relation_size('eventstore.events') / 1048576")
done
# The loads and VACUUM went through small ring buffers and left the data in
# the kernel's cache: read every size's table and indexes into shared_buffers
# (pg_prewarm), as a server that has run a while holds its hot data, so that
# the runs measure the steady state and not the warm-up (SCALE_PREWARM=0: not).
if [ "${SCALE_PREWARM:-1}" = 1 ]; then
    for size in $SIZES; do
        DB=scale_$size
        es_psql -d "$DB" -c 'CREATE EXTENSION IF NOT EXISTS pg_prewarm' \
            -c "SELECT sum(pg_prewarm(c.oid)) FROM pg_class c
                 WHERE c.oid = 'eventstore.events'::regclass
                    OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'eventstore.events'::regclass)" >/dev/null
    done
fi
# ROUNDS runs of every figure at every size, round by round and size by size;
# the median of each kept.
declare -A RUNS=() CPUS=() CPU=()
for ((r = 1; r <= ROUNDS; r++)); do
    for size in $SIZES; do
        DB=scale_$size tail=${TAIL[$size]}
        measure "$size|2" read_all_tail.sql 1 -D tail="$tail"
        measure "$size|3" read_category_common.sql 1 -D tail="$tail"
        measure "$size|4" read_category_rare.sql 1
        measure "$size|5" read_stream.sql 1
        measure "$size|9" read_stream_hand.sql 1
        measure "$size|6" stream_version.sql 1
        measure "$size|0" append.sql 1
        measure "$size|1" append.sql 8
    done
    es_log "round $r of $ROUNDS done"
done
for size in $SIZES; do
    DB=scale_$size tail=${TAIL[$size]}
    {
        echo "-- size $size: plan of read_category('rare', 0, 100), 7th call in a session:"
        plan "read_category('rare', 0, 100)"
        echo "-- size $size: plan of read_all($((tail > 100 ? tail - 100 : 0)), 100), 7th call in a session:"
        plan "read_all($((tail > 100 ? tail - 100 : 0)), 100)"
    } >> "$PLANS"
    # A burst of 10,000 events (100 streams x 100) to a category never seen
    # before, then reads of it at once, then after ANALYZE.
    cat=burst$size
    es_psql -d "$DB" -v cat="$cat" <<'EOF' >/dev/null
SELECT eventstore.append(:'cat' || '-' || s, 0,
       (SELECT array_agg(eventstore.event('Burst', jsonb_build_object('n', i))) FROM generate_series(1, 100) i))
  FROM generate_series(1, 100) s;
EOF
    measure "$size|7" read_burst.sql 1 -D n="$size"
    {
        echo "-- size $size: plan of read_category('$cat', 0, 100) just after the burst, before ANALYZE, 7th call:"
        plan "read_category('$cat', 0, 100)"
    } >> "$PLANS"
    es_psql -d "$DB" -c 'ANALYZE eventstore.events' >/dev/null
    measure "$size|8" read_burst.sql 1 -D n="$size"
done
med() { printf '%s\n' $1 | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
for k in "${!RUNS[@]}"; do
    FIG[$k]=$(med "${RUNS[$k]}")
    CPU[$k]=$(med "${CPUS[$k]}")
done
for size in $SIZES; do
    es_log "size $size: $(for i in "${!NAMES[@]}"; do printf '%s=%s/s (%s us); ' "${NAMES[$i]}" "${FIG[$size|$i]}" "${CPU[$size|$i]}"; done)"
done

# The table: each figure per size, with its ratio to the previous size; then
# the server's CPU time per call, likewise (a ratio above 1: dearer).
TABLE=$WORK/table.md
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a/b; else print "n/a"}'; }
{
    printf '| figure (per second) |'
    for size in $SIZES; do printf ' %s events |' "$(printf "%'d" "$size")"; done
    printf ' server CPU per call, µs |'
    printf '\n|---|'; for _ in $SIZES; do printf -- '---:|'; done; printf -- '---:|\n'
    for i in "${!NAMES[@]}"; do
        printf '| %s |' "${NAMES[$i]}"
        p= cpus= pc=
        for size in $SIZES; do
            v=${FIG[$size|$i]} c=${CPU[$size|$i]}
            if [ -z "$p" ]; then printf ' %s |' "$v"; cpus+="$c"
            else printf ' %s (%s×) |' "$v" "$(ratio "$v" "$p")"; cpus+=" / $c ($(ratio "$c" "$pc")×)"
            fi
            p=$v pc=$c
        done
        printf ' %s |\n' "$cpus"
    done
    echo
    echo "In parentheses: the ratio to the previous size (target: >= 0.8 from 10^6 to 10^7; for the CPU per call, below 1.25 is the same target)."
    echo "Server CPU per call: what the cluster's backends used during the run (the postmaster's reaped children's time), per transaction."
    echo "Table and indexes (MB):$(for size in $SIZES; do printf ' %s at %s events;' "${SIZE_MB[$size]}" "$size"; done)"
    echo "pgbench -M prepared, medians of ${ROUNDS} interleaved runs of ${SECS}s per figure, 1 client unless stated; $(nproc) cores;"
    echo "$("$(es_bindir)/postgres" --version); shared_buffers $SHARED_BUFFERS, shared memory $HUGE_PAGES_USED, fsync on, autovacuum off; $(date -u +%Y-%m-%d)."
    echo "Command: SCALE_SIZES=\"$SIZES\" SCALE_HUGE_PAGES=$HUGE_PAGES bash bench/scale.sh (make bench-scale)."
} > "$TABLE"
cp "$TABLE" "$OUT/$STAMP-scale.md"
cp "$PLANS" "$OUT/$STAMP-scale-plans.txt"
echo
cat "$PLANS"
echo
cat "$TABLE"
echo
echo "written: bench/results/$STAMP-scale.md and $STAMP-scale-plans.txt"
