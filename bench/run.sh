#!/usr/bin/env bash
# The benchmark command: make bench (full) or make bench-quick.
#
# Sets up a throwaway preloaded cluster like the test command, builds the
# baselines in the same database (bench/setup.sql), and runs every case with
# pgbench (-M prepared), interleaving ours and the baselines round by round so
# machine noise hits them alike.  Prints a table of medians and ratios (each
# the median of the rounds' own ratios, the ratio of the medians beside it) and
# writes bench/results/<timestamp>.{json,md}, and charts of the ratios and
# latencies next to them (bench/chart.sh, SVG via gnuplot).  Never fails on a
# figure.
#
#   BENCH_MODE=quick  1 round x 3 s per run   (under 60 s)
#   BENCH_MODE=full   3 rounds x 8 s per run (about 13 min)
#   BENCH_ONLY="cases subscription ..."  only these parts (default: all):
#                     cases relay import subscription lifecycle memory citus
#   BENCH_CASES=REGEX only the pgbench cases whose name matches (with "cases")
ES_PORT=${ES_PORT:-54333}
source "$(dirname "$0")/../scripts/cluster.sh"

MODE=${BENCH_MODE:-quick}
want() { [ -z "${BENCH_ONLY:-}" ] || [[ " $BENCH_ONLY " == *" $1 "* ]]; }
case $MODE in
    quick) ROUNDS=1; SECS=3; CLIENT_SET="1 8"; MEM_APPENDS=10000; RELAY_RATE=500; RELAY_SECS=2; RELAY_COUNT=5000 ;;
    full)  ROUNDS=3; SECS=8; CLIENT_SET="1 8"; MEM_APPENDS=100000; RELAY_RATE=1000; RELAY_SECS=10; RELAY_COUNT=20000 ;;
    *) echo "BENCH_MODE must be quick or full" >&2; exit 2 ;;
esac
BENCH=$ES_ROOT/bench
OUT=$BENCH/results; mkdir -p "$OUT"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
WORK=$(mktemp -d /tmp/eventstore-bench.XXXXXX); chmod 777 "$WORK"

es_install_deps
# The chart needs gnuplot: install it like the other packages when we can,
# otherwise the run goes on and says it drew no chart.
if ! command -v gnuplot >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    es_log "installing gnuplot-nox (for the chart)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null 2>&1 ||
        es_log "could not install gnuplot-nox: no chart"
fi
es_build_install
ES_PGDATA=$WORK/data; mkdir -p "$ES_PGDATA"
ES_FSYNC=on
trap 'es_stop_cluster; rm -rf "$WORK"' EXIT
es_start_cluster
es_psql -d postgres -c "ALTER SYSTEM SET shared_buffers = '512MB'" -c "ALTER SYSTEM SET max_connections = 50" >/dev/null
es_as_pg "$(es_bindir)/pg_ctl" -D "$ES_PGDATA" -w restart -l "$ES_PGDATA/server.log" >/dev/null
es_psql -d postgres -c 'CREATE DATABASE bench' >/dev/null
es_log "loading bench/setup.sql"
es_psql -d bench -f "$BENCH/setup.sql" >/dev/null
PGBENCH="$(es_bindir)/pgbench"

# The raw baseline of "append, 100 stores": a one-row INSERT into a random
# one of 100 tables like raw_events (bench/setup.sql, raw100.t1 .. t100),
# each its own prepared statement behind a \if on the table's number, so
# the raw side touches as many tables and indexes as ours.  Written here,
# as pgbench has no dynamic table name; run_one looks in $WORK/scripts first.
mkdir -p "$WORK/scripts"
raw100_script() {
    echo "$1"
    for i in $(seq 1 100); do
        [ "$i" = 1 ] && echo "\\if :t = $i" || echo "\\elif :t = $i"
        echo "INSERT INTO raw100.t$i (global_position, stream_id, stream_version, event_id, event_type, data) SELECT p.p, 'bench-' || :run || '-' || :client_id, p.p, gen_random_uuid(), 'Appended', '{\"amount\": 42, \"note\": \"a typical small event\"}' FROM (SELECT nextval('raw100.seq$i') AS p) p;"
    done
    echo "\\endif"
}
raw100_script '\set t random(1, 100)' > "$WORK/scripts/raw_append_100_tables.sql"

# run_case SCRIPT CLIENTS [PGOPTIONS] -> "tps p50_ms p99_ms" (also kept in $WORK/runs)
run_one() {
    local script=$1 clients=$2 opts=${3:-}
    local dir; dir=$(mktemp -d "$WORK/run.XXXX"); chmod 777 "$dir"
    local path=$WORK/scripts/$script; [ -f "$path" ] || path=$BENCH/scripts/$script
    local out
    # run: the appending scripts' streams are bench-<run>-<client>, new for
    # every run, so that each table's (stream_id, event_id) index is in the
    # same state whichever variant ran before (one stream per client over the
    # whole bench made eventstore.events' many times raw_events': its random
    # event ids then dirtied more leaf pages after each checkpoint, each a
    # full-page write in the WAL the commit flushes)
    out=$(cd "$dir" && PGOPTIONS="$opts" "$PGBENCH" -n -M prepared -c "$clients" -j "$clients" -T "$SECS" \
              -D run="${dir##*.}" -l --log-prefix="$dir/log" -f "$path" bench 2>&1) || { echo "0 0 0"; echo "$out" >&2; return; }
    local tps; tps=$(echo "$out" | awk '/^tps = / {print $3; exit}')
    local lat; lat=$(cat "$dir"/log* | awk '{print $3}' | sort -n | awk '
        {a[NR]=$1} END {if (NR==0) {print "0 0"; exit}
        p50=a[int(NR*0.50)>0?int(NR*0.50):1]; p99=a[int(NR*0.99)>0?int(NR*0.99):1];
        printf "%.3f %.3f", p50/1000, p99/1000}')
    rm -rf "$dir"
    echo "$tps $lat"
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print 0; else print a[int((NR+1)/2)]}'; }

# Each case: name, unit multiplier (events per transaction), clients, options,
# our script, baseline scripts (name:script[:setting=value] ...).
declare -a CASES=()
add_case() {
    want cases || return 0
    [ -z "${BENCH_CASES:-}" ] || [[ ${1%%|*} =~ $BENCH_CASES ]] || return 0
    CASES+=("$*")
}
for c in $CLIENT_SET; do
    add_case "append|1|$c||ours_append.sql|raw:raw_append.sql plpgsql:plpgsql_append.sql"
    add_case "append, statistics on vs off|1|$c||ours_append.sql|stats_off:ours_append.sql:eventstore.stats=off"
    add_case "append with an encrypted field (store bench_secure)|1|$c||ours_append_encrypted.sql|plain:ours_append_plain_store.sql"
    add_case "append sync_commit=off|1|$c|-c synchronous_commit=off|ours_append.sql|raw:raw_append.sql plpgsql:plpgsql_append.sql"
    # Stores (bench/setup.sql makes bench_store.events and bench_stores.s1..s100):
    # the same append to a named store vs the default store (target >= 0.98x);
    # and with 100 stores in the database, to a random one of them per call
    # (each backend checks and prepares every store it touches once, then
    # uses its cache) vs the default store, vs always the same one of the
    # 100 (named the same way, by a text cast to regclass per call), and vs a
    # raw INSERT into a random one of 100 tables (touching 100 tables' pages
    # in turn costs the CPU's caches what it costs: the fair comparison).
    # Also with synchronous_commit=off, where the commit's flush does not
    # hide the CPU cost of resolving the store.
    for so in "" "-c synchronous_commit=off"; do
        sn=${so:+, sync_commit=off}
        add_case "append to a named store$sn|1|$c|$so|ours_append_store.sql|default_store:ours_append.sql"
        add_case "append, 100 stores, a random one per call$sn|1|$c|$so|ours_append_100_stores.sql|default_store:ours_append.sql one_of_100:ours_append_store_cast.sql raw_100_tables:raw_append_100_tables.sql"
    done
    add_case "batch of 100|100|$c||ours_batch.sql|raw:raw_batch.sql plpgsql:plpgsql_batch.sql"
    add_case "append + projection|1|$c||ours_projection.sql|hand:hand_projection.sql"
    add_case "read_stream 1000|1000|$c||ours_read_stream.sql|raw:raw_read_stream.sql"
    add_case "read_all batches of 1000|1000|$c||ours_read_all.sql|raw:raw_read_all.sql"
    add_case "conditional append, one-item query (DCB)|1|$c||ours_dcb_append.sql|plain:ours_append.sql tagged:ours_tagged_append.sql"
    add_case "read_query of 1000 tagged events|1000|$c||ours_read_query.sql|select:hand_read_query.sql"
done
# CPU-bound (no flush to wait for): 8 clients on disjoint tags, where the
# condition's check and the tags cost what they cost (README DCB, "Cost").
add_case "conditional append, 8 clients on disjoint tags, sync_commit=off|1|8|-c synchronous_commit=off|ours_dcb_append.sql|plain:ours_append.sql tagged:ours_tagged_append.sql"
add_case "hot stream (successes)|1|8||ours_hot.sql|plpgsql:plpgsql_hot.sql"
add_case "aggregate of 10,050 events, snapshot every 100|1|1||ours_agg_snapshot.sql|no_snapshot:agg_no_snapshot.sql"

declare -A SAMPLES
for round in $(seq 1 "$ROUNDS"); do
    for i in "${!CASES[@]}"; do
        IFS='|' read -r name mult clients opts ours baselines <<<"${CASES[$i]}"
        for variant in "ours:$ours" $baselines; do
            v=${variant%%:*}; script=${variant#*:}; vopts=
            # a variant may add one setting: name:script:setting=value
            case $script in *:*) vopts="-c ${script#*:}"; script=${script%%:*} ;; esac
            [ "$name" = "hot stream (successes)" ] && es_psql -d bench -c "TRUNCATE hot_results" >/dev/null
            r=$(run_one "$script" "$clients" "$opts${vopts:+ $vopts}")
            if [ "$name" = "hot stream (successes)" ]; then
                read -r tps p50 p99 <<<"$r"
                ok=$(es_psql -d bench -Atc "SELECT count(*) FILTER (WHERE ok) FROM hot_results")
                total=$(es_psql -d bench -Atc "SELECT greatest(count(*), 1) FROM hot_results")
                r="$(awk -v t="$tps" -v o="$ok" -v n="$total" 'BEGIN {printf "%.1f", t*o/n}') $p50 $p99"
                SAMPLES["$i|$v|conflicts"]+="$(awk -v t="$tps" -v o="$ok" -v n="$total" 'BEGIN {printf "%.1f", t*(n-o)/n}') "
            fi
            SAMPLES["$i|$v"]+="$r
"
            es_log "round $round: $name, $clients clients, $v: $r"
        done
    done
done

# Relay: commit-to-NOTIFY latency at a steady rate, and throughput draining a
# backlog, against a hand-written SKIP LOCKED relay; rounds interleaved.
if want relay; then
es_log "building bench/relay/relay_bench.c"
gcc -O2 -Wall -Wextra -I"$("$(es_pg_config)" --includedir)" -o "$WORK/relay_bench" \
    "$BENCH/relay/relay_bench.c" -L"$("$(es_pg_config)" --libdir)" -lpq -lpthread
CONN="host=$PGHOST port=$PGPORT user=postgres dbname=bench options='-c synchronous_commit=off'"
declare -A RELAY
for round in $(seq 1 "$ROUNDS"); do
    for v in ours hand; do
        line=$("$WORK/relay_bench" "$CONN" "$v" latency "$RELAY_RATE" "$RELAY_SECS")
        es_log "round $round: relay latency $v: $line"
        RELAY["lat|$v"]+="$line
"
        line=$("$WORK/relay_bench" "$CONN" "$v" throughput "$RELAY_COUNT")
        es_log "round $round: relay throughput $v: $line"
        RELAY["thr|$v"]+="$line
"
    done
done
fi
field() { printf '%s' "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}' | median; }

# Bulk import: COPY + import_events against a raw COPY of the same rows.
if want import; then
source "$BENCH/import_case.sh"
IMPORT_N=$([ "$MODE" = full ] && echo 1000000 || echo 100000)
es_log "import: $IMPORT_N events per round"
IMPORT_ROUNDS=$([ "$MODE" = full ] && echo 5 || echo "$ROUNDS")
read -r imp_ours imp_raw imp_ratio imp_rounds <<<"$(import_case "$IMPORT_N" "$IMPORT_ROUNDS")"
fi

# Subscriptions: one consumer draining a backlog against a read_all loop
# (default synchronous_commit and the consumer's synchronous_commit=off),
# 4 consumers against 1, commit-to-delivery with LISTEN wake-ups, and the
# append with a matching subscription against none.
if want subscription; then
source "$BENCH/subscription_case.sh"
SUB_N=$([ "$MODE" = full ] && echo 1000000 || echo 100000)
es_log "subscription: drain of $SUB_N events per round"
read -r sub_on sub_off sub_raw sub_on_cpu sub_off_cpu sub_raw_cpu sub_one sub_four \
    <<<"$(subscription_case "$SUB_N" "$ROUNDS")"
es_log "building bench/relay/wakeup_bench.c"
gcc -O2 -Wall -Wextra -I"$("$(es_pg_config)" --includedir)" -o "$WORK/wakeup_bench" \
    "$BENCH/relay/wakeup_bench.c" -L"$("$(es_pg_config)" --libdir)" -lpq -lpthread
SUB_LAT_SECS=$([ "$MODE" = full ] && echo 10 || echo 2)
es_log "subscription: commit-to-delivery at 1000 appends/s for $SUB_LAT_SECS s per round"
read -r sub_lat_p50 sub_lat_p99 sub_lat_lost sub_lat_rate <<<"$(subscription_latency_case 1000 "$SUB_LAT_SECS" "$ROUNDS")"
# what a subscription costs an append: more, shorter rounds than the other
# cases (7 x 4 s in full mode), read by the median of the rounds' ratios
SUB_COST_ROUNDS=$([ "$MODE" = full ] && echo 7 || echo "$ROUNDS")
SUB_COST_SECS=$([ "$MODE" = full ] && echo 4 || echo "$SECS")
declare -A SUB_APPEND
for c in $CLIENT_SET; do
    SUB_APPEND[$c]=$(subscription_append_case "$c" "$SUB_COST_ROUNDS" "$SUB_COST_SECS")
done
fi

# Lifecycle: purge rate while 8 clients append, and their rate without it.
if want lifecycle; then
source "$BENCH/lifecycle_case.sh"
PURGE_N=$([ "$MODE" = full ] && echo 600000 || echo 200000)
es_log "lifecycle: purge of $PURGE_N deleted events per round while 8 clients append"
read -r lc_purge lc_alone lc_during lc_loop lc_during_loop <<<"$(lifecycle_case "$PURGE_N" "$SECS" "$ROUNDS")"
fi

# Memory: one backend, MEM_APPENDS appends, memory contexts before and after.
mem_growth() {
    local f=$WORK/mem.sql
    {
        echo "SELECT eventstore.append_event('mem-1', NULL, 'M', '{}') FROM generate_series(1, 100);"
        for _ in $(seq 1 1000); do echo "SELECT eventstore.append_event('mem-1', NULL, 'M', '{\"a\": 1}');"; done
        echo "SELECT sum(total_bytes) AS before FROM pg_backend_memory_contexts \\gset"
        for _ in $(seq 1 "$MEM_APPENDS"); do echo "SELECT eventstore.append_event('mem-2', NULL, 'M', '{\"a\": 1}');"; done
        echo "SELECT sum(total_bytes) - :before AS growth FROM pg_backend_memory_contexts;"
    } > "$f"
    es_psql -d bench -At -f "$f" | tail -1
}
MEM=
if want memory; then
    es_log "memory: $MEM_APPENDS appends in one session"
    MEM=$(mem_growth)
fi

# Report.
{
    printf '| case | clients | eventstore | baseline | baseline rate | ratio | rounds'"'"' ratios | ratio of the medians | p50 ms (ours/base) | p99 ms (ours/base) |\n'
    printf '|---|---:|---:|---|---:|---:|---:|---:|---:|---:|\n'
} > "$WORK/table.md"
echo "[" > "$WORK/results.json"
first=1
for i in "${!CASES[@]}"; do
    IFS='|' read -r name mult clients opts ours baselines <<<"${CASES[$i]}"
    o_tps=$(printf '%s' "${SAMPLES[$i|ours]}" | awk 'NF {print $1}' | median)
    o_p50=$(printf '%s' "${SAMPLES[$i|ours]}" | awk 'NF {print $2}' | median)
    o_p99=$(printf '%s' "${SAMPLES[$i|ours]}" | awk 'NF {print $3}' | median)
    o_rate=$(awk -v t="$o_tps" -v m="$mult" 'BEGIN {printf "%.0f", t*m}')
    for variant in $baselines; do
        v=${variant%%:*}
        b_tps=$(printf '%s' "${SAMPLES[$i|$v]}" | awk 'NF {print $1}' | median)
        b_p50=$(printf '%s' "${SAMPLES[$i|$v]}" | awk 'NF {print $2}' | median)
        b_p99=$(printf '%s' "${SAMPLES[$i|$v]}" | awk 'NF {print $3}' | median)
        b_rate=$(awk -v t="$b_tps" -v m="$mult" 'BEGIN {printf "%.0f", t*m}')
        # the ratio: the median of the rounds' own ratios.  Ours and the
        # baseline run back to back within a round, so a round's ratio
        # compares runs seconds apart, while the medians of the rates may
        # compare runs minutes apart on a machine whose load moves; the
        # ratio of the medians is kept beside it.
        rounds=$(paste -d' ' <(printf '%s' "${SAMPLES[$i|ours]}" | awk 'NF {print $1}') \
                             <(printf '%s' "${SAMPLES[$i|$v]}" | awk 'NF {print $1}') |
                 awk '{if ($2 > 0) printf "%s%.2f", (NR > 1 ? ", " : ""), $1/$2}')
        ratio=$(printf '%s' "$rounds" | tr ',' '\n' | awk 'NF {print $1}' | median)
        [ -n "$rounds" ] || ratio=n/a
        of_medians=$(awk -v a="$o_tps" -v b="$b_tps" 'BEGIN {if (b > 0) printf "%.2f", a/b; else print "n/a"}')
        printf '| %s | %s | %s/s | %s | %s/s | %s | %s | %s | %s / %s | %s / %s |\n' \
            "$name" "$clients" "$o_rate" "$v" "$b_rate" "$ratio" "$rounds" "$of_medians" "$o_p50" "$b_p50" "$o_p99" "$b_p99" >> "$WORK/table.md"
        [ $first = 1 ] || echo "," >> "$WORK/results.json"; first=0
        printf '  {"case": "%s", "clients": %s, "ours_per_s": %s, "baseline": "%s", "baseline_per_s": %s, "ratio": "%s", "round_ratios": [%s], "ratio_of_medians": "%s", "ours_p50_ms": %s, "ours_p99_ms": %s, "baseline_p50_ms": %s, "baseline_p99_ms": %s}' \
            "$name" "$clients" "$o_rate" "$v" "$b_rate" "$ratio" "$rounds" "$of_medians" "$o_p50" "$o_p99" "$b_p50" "$b_p99" >> "$WORK/results.json"
    done
    if [ -n "${SAMPLES[$i|ours|conflicts]:-}" ]; then
        oc=$(echo "${SAMPLES[$i|ours|conflicts]}" | tr ' ' '\n' | awk 'NF' | median)
        pc=$(echo "${SAMPLES[$i|plpgsql|conflicts]}" | tr ' ' '\n' | awk 'NF' | median)
        printf '| hot stream (conflicts) | 8 | %s/s | plpgsql | %s/s | | | | | |\n' "$oc" "$pc" >> "$WORK/table.md"
    fi
done
if want relay; then
for v in ours hand; do
    eval "r_${v}_p50=\$(field \"\${RELAY[lat|$v]}\" p50_ms)"
    eval "r_${v}_p99=\$(field \"\${RELAY[lat|$v]}\" p99_ms)"
    eval "r_${v}_thr=\$(field \"\${RELAY[thr|$v]}\" events_per_s)"
done
ratio=$(awk -v a="$r_ours_thr" -v b="$r_hand_thr" 'BEGIN {if (b > 0) printf "%.2f", a/b; else print "n/a"}')
printf '| relay throughput (backlog of %s) | 1 | %s/s | hand SKIP LOCKED | %s/s | %s | | | | |\n' \
    "$RELAY_COUNT" "$r_ours_thr" "$r_hand_thr" "$ratio" >> "$WORK/table.md"
printf '| relay commit-to-NOTIFY at %s/s | 1 | | hand SKIP LOCKED | | | | | %s / %s | %s / %s |\n' \
    "$RELAY_RATE" "$r_ours_p50" "$r_hand_p50" "$r_ours_p99" "$r_hand_p99" >> "$WORK/table.md"
printf ',\n  {"case": "relay throughput", "ours_per_s": %s, "baseline": "hand", "baseline_per_s": %s, "ratio": "%s"}' \
    "$r_ours_thr" "$r_hand_thr" "$ratio" >> "$WORK/results.json"
printf ',\n  {"case": "relay latency", "rate": %s, "ours_p50_ms": %s, "ours_p99_ms": %s, "baseline": "hand", "baseline_p50_ms": %s, "baseline_p99_ms": %s}' \
    "$RELAY_RATE" "$r_ours_p50" "$r_ours_p99" "$r_hand_p50" "$r_hand_p99" >> "$WORK/results.json"
fi
if want import; then
of_medians=$(awk -v a="$imp_ours" -v b="$imp_raw" 'BEGIN {if (b > 0) printf "%.2f", a/b; else print "n/a"}')
printf '| import of %s events (COPY to staging + import_events; %s rounds, each load after a CHECKPOINT) | 1 | %s/s | raw COPY | %s/s | %s | %s | %s | | |\n' \
    "$IMPORT_N" "$IMPORT_ROUNDS" "$imp_ours" "$imp_raw" "$imp_ratio" "${imp_rounds//,/, }" "$of_medians" >> "$WORK/table.md"
printf ',\n  {"case": "import", "events": %s, "ours_per_s": %s, "baseline": "raw COPY", "baseline_per_s": %s, "ratio": "%s", "round_ratios": [%s], "ratio_of_medians": "%s"}' \
    "$IMPORT_N" "$imp_ours" "$imp_raw" "$imp_ratio" "$imp_rounds" "$of_medians" >> "$WORK/results.json"
fi
if want subscription; then
for sc in on off; do
    eval "sub_ours=\$sub_$sc sub_cpu=\$sub_${sc}_cpu"
    label=$([ $sc = on ] && echo "default synchronous_commit" || echo "consumer's synchronous_commit=off")
    ratio=$(awk -v a="$sub_ours" -v b="$sub_raw" 'BEGIN {if (b > 0) printf "%.2f", a/b; else print "n/a"}')
    printf '| subscription drain of %s events (poll 1000 + ack_many of its runs, 16 partitions, %s; backend CPU per batch %s ms vs %s ms) | 1 | %s/s | read_all loop of 1000 | %s/s | %s | | | | |\n' \
        "$SUB_N" "$label" "$sub_cpu" "$sub_raw_cpu" "$sub_ours" "$sub_raw" "$ratio" >> "$WORK/table.md"
    printf ',\n  {"case": "subscription drain, %s", "events": %s, "ours_per_s": %s, "baseline": "read_all loop", "baseline_per_s": %s, "ratio": "%s", "ours_cpu_ms_per_batch": %s, "baseline_cpu_ms_per_batch": %s}' \
        "$label" "$SUB_N" "$sub_ours" "$sub_raw" "$ratio" "$sub_cpu" "$sub_raw_cpu" >> "$WORK/results.json"
done
ratio=$(awk -v a="$sub_four" -v b="$sub_one" 'BEGIN {if (b > 0) printf "%.2f", a/b; else print "n/a"}')
printf '| subscription drain of %s events by 4 consumers on 16 partitions (%s cores: contention, not scaling) | 4 | %s/s | 1 consumer | %s/s | %s | | | | |\n' \
    "$SUB_N" "$(nproc)" "$sub_four" "$sub_one" "$ratio" >> "$WORK/table.md"
printf ',\n  {"case": "subscription drain, 4 consumers vs 1", "events": %s, "cores": %s, "ours_per_s": %s, "baseline": "1 consumer", "baseline_per_s": %s, "ratio": "%s"}' \
    "$SUB_N" "$(nproc)" "$sub_four" "$sub_one" "$ratio" >> "$WORK/results.json"
printf '| subscription commit-to-delivery at 1000 appends/s (LISTEN wake-ups, poll + ack_many; writer kept %s/s, %s lost) | 1 | | | | | | | %s / | %s / |\n' \
    "$sub_lat_rate" "$sub_lat_lost" "$sub_lat_p50" "$sub_lat_p99" >> "$WORK/table.md"
printf ',\n  {"case": "subscription commit-to-delivery", "rate": 1000, "appends_per_s": %s, "lost": %s, "ours_p50_ms": %s, "ours_p99_ms": %s}' \
    "$sub_lat_rate" "$sub_lat_lost" "$sub_lat_p50" "$sub_lat_p99" >> "$WORK/results.json"
for c in $CLIENT_SET; do
    read -r sub_with sub_without sub_ratio <<<"${SUB_APPEND[$c]}"
    ratio=$(awk -v r="$sub_ratio" 'BEGIN {printf "%.2f", r}')
    printf '| append with one matching subscription (a consumer holding it, idle; %s alternating rounds of %s s, ratio: the median of the rounds'"'"' ratios) | %s | %s/s | no subscription | %s/s | %s | | | | |\n' \
        "$SUB_COST_ROUNDS" "$SUB_COST_SECS" "$c" "$sub_with" "$sub_without" "$ratio" >> "$WORK/table.md"
    printf ',\n  {"case": "append with a matching subscription", "clients": %s, "ours_per_s": %s, "baseline": "no subscription", "baseline_per_s": %s, "ratio": "%s"}' \
        "$c" "$sub_with" "$sub_without" "$ratio" >> "$WORK/results.json"
done
fi
if want lifecycle; then
ratio=$(awk -v a="$lc_during" -v b="$lc_alone" 'BEGIN {if (b > 0) printf "%.2f", a/b; else print "n/a"}')
printf '| append while the relay worker purges, default pacing (purge: %s deleted events/s) | 8 | %s/s | append without purge | %s/s | %s | | | | |\n' \
    "$lc_purge" "$lc_during" "$lc_alone" "$ratio" >> "$WORK/table.md"
printf ',\n  {"case": "append during the worker purge", "purge_per_s": %s, "ours_per_s": %s, "baseline": "append without purge", "baseline_per_s": %s, "ratio": "%s"}' \
    "$lc_purge" "$lc_during" "$lc_alone" "$ratio" >> "$WORK/results.json"
ratio=$(awk -v a="$lc_during_loop" -v b="$lc_alone" 'BEGIN {if (b > 0) printf "%.2f", a/b; else print "n/a"}')
printf '| append while a purge(1000) loop runs flat out (purge: %s deleted events/s) | 8 | %s/s | append without purge | %s/s | %s | | | | |\n' \
    "$lc_loop" "$lc_during_loop" "$lc_alone" "$ratio" >> "$WORK/table.md"
printf ',\n  {"case": "append during a purge loop", "purge_per_s": %s, "ours_per_s": %s, "baseline": "append without purge", "baseline_per_s": %s, "ratio": "%s"}' \
    "$lc_loop" "$lc_during_loop" "$lc_alone" "$ratio" >> "$WORK/results.json"
fi
# Scale-out: appends through a Citus coordinator with two workers (its own clusters)
want citus && es_log "appends through a Citus coordinator (bench/citus.sh)" &&
    CITUS_BENCH_SECS=${CITUS_BENCH_SECS:-$SECS} bash "$BENCH/citus.sh" >> "$WORK/table.md"
echo "" >> "$WORK/results.json"; echo "]" >> "$WORK/results.json"
sed -i '2{/^,$/d}' "$WORK/results.json"   # no pgbench case ran (BENCH_ONLY): no comma after "["
{
    echo
    if want memory; then
        echo "Backend memory growth after $MEM_APPENDS appends in one session: $MEM bytes (pg_backend_memory_contexts, total_bytes)."
        echo
    fi
    echo "Mode $MODE: $ROUNDS round(s) x ${SECS}s per run, medians; $(nproc) cores; $("$(es_bindir)/postgres" --version); shared_buffers 512MB, fsync on; $(date -u +%Y-%m-%d)."
    echo "Command: ${BENCH_ONLY:+BENCH_ONLY=\"$BENCH_ONLY\" }${BENCH_CASES:+BENCH_CASES=\"$BENCH_CASES\" }BENCH_MODE=$MODE bash bench/run.sh (or make bench / make bench-quick)."
} >> "$WORK/table.md"
cp "$WORK/table.md" "$OUT/$STAMP-$MODE.md"
cp "$WORK/results.json" "$OUT/$STAMP-$MODE.json"
echo
cat "$WORK/table.md"
echo
echo "written: bench/results/$STAMP-$MODE.md and .json"
bash "$BENCH/chart.sh" "$OUT/$STAMP-$MODE.json" || echo "chart: failed (the figures above stand)"
