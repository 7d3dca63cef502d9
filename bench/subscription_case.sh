# Subscription cases of bench/run.sh (sourced; uses es_psql, es_log, median,
# run_one).
#
# subscription_case N ROUNDS: a database of its own (subbench) with a backlog
# of N events (1,000 streams, loaded with import_events), drained each round
#   on     by one consumer of a subscription (16 partitions, no filter):
#          poll(1000), ack the last position of each partition's run (one
#          ack_many call, as a consumer acking a whole batch would), COMMIT,
#          until poll returns nothing; default synchronous_commit
#   off    the same with the consumer's synchronous_commit = off (delivery is
#          at least once: an ack lost in a crash is a run delivered again)
#   raw    by a plain read_all loop of the same batch size, one transaction
#          per batch (read-only: no commit to flush)
#   one, four  by 1 and by 4 concurrent consumers of a subscription of 16
#          partitions (the same loop; a consumer whose poll comes back empty
#          stops once every partition's checkpoint is at its last event);
#          wall time from the start of the first to the end of the last
# and the backend's CPU time of on, off and raw (utime + stime from
# /proc/self/stat, read by pg_read_file: the bench runs as a superuser).
# Prints "on_per_s off_per_s raw_per_s on_cpu_ms off_cpu_ms raw_cpu_ms
# one_per_s four_per_s" (medians over the rounds; cpu per batch of 1,000).
sub_cpu_sql="SELECT (split_part(s, ' ', 12)::bigint + split_part(s, ' ', 13)::bigint) * 10
               FROM (SELECT split_part(pg_read_file('/proc/self/stat'), ') ', 2) s) x"

# sub_loop NAME CONSUMER WHEN_EMPTY: the consumer's loop (a DO block): poll
# 1000, one ack_many of the runs, COMMIT; WHEN_EMPTY runs when poll returns
# nothing (it must EXIT at some point)
sub_loop() {
    echo "DO \$\$
        DECLARE runs bigint[];
        BEGIN
            LOOP
                SELECT array_agg(x.last) INTO runs
                  FROM (SELECT max(p.global_position) AS last
                          FROM eventstore.poll('$1', '$2', 1000) p GROUP BY p.partition) x;
                IF runs IS NULL THEN
                    $3
                ELSE
                    PERFORM eventstore.ack_many('$1', '$2', runs);
                END IF;
                COMMIT;
            END LOOP;
        END \$\$"
}

# sub_drain NAME SYNC: one consumer drains subscription NAME; prints "wall_ms cpu_ms"
sub_drain() {
    es_psql -d subbench -At -c "SET synchronous_commit = $2" -c "$sub_cpu_sql" -c '\timing on' \
        -c "$(sub_loop "$1" c1 'EXIT;')" -c '\timing off' -c "$sub_cpu_sql" |
        awk '/^Time:/ {t = $2} /^[0-9]+$/ {c[++k] = $1} END {printf "%s %d\n", t, c[2] - c[1]}'
}

# sub_drain_group NAME K: K consumers drain subscription NAME at once; prints
# wall ms.  A consumer whose poll comes back empty (its share not taken yet,
# or done) stops once every partition's checkpoint is at its last event.
sub_drain_group() {
    local k start pids=()
    start=$(date +%s%N)
    for k in $(seq 1 "$2"); do
        es_psql -d subbench -c "$(sub_loop "$1" "c$k" "EXIT WHEN NOT EXISTS (
                SELECT FROM sub_last l JOIN eventstore.subscription_partitions x
                    ON x.subscription = '$1' AND x.partition = l.part
                 WHERE x.checkpoint < l.last);
            PERFORM pg_sleep(0.005);")" >/dev/null &
        pids+=($!)
    done
    wait "${pids[@]}"
    echo $(( ($(date +%s%N) - start) / 1000000 ))
}

subscription_case() {
    local n=$1 rounds=$2 round on off raw one four
    local on_r='' off_r='' raw_r='' on_c='' off_c='' raw_c='' one_r='' four_r=''
    local batches=$(( (n + 999) / 1000 ))
    es_psql -d postgres -c 'DROP DATABASE IF EXISTS subbench' -c 'CREATE DATABASE subbench' >/dev/null
    es_psql -d subbench -c 'CREATE EXTENSION eventstore' \
        -c 'CREATE UNLOGGED TABLE staging (LIKE eventstore.import_row)' \
        -c "INSERT INTO staging SELECT k, 'sb-' || (k % 1000), k / 1000 + 1, 'Placed',
                   '{\"amount\": 42, \"note\": \"a typical small event\"}', NULL, now(), gen_random_uuid()
              FROM generate_series(0, $n - 1) k" \
        -c "SELECT eventstore.import_events('staging')" -c 'DROP TABLE staging' \
        -c "CREATE TABLE sub_last AS SELECT eventstore._subscription_partition(stream_id, 16) AS part,
                   max(global_position) AS last FROM eventstore.events GROUP BY 1" \
        -c 'VACUUM ANALYZE' >/dev/null
    rate() { awk -v n="$n" -v t="$1" 'BEGIN {printf "%.0f", n / (t / 1000)}'; }
    per_batch() { awk -v c="$1" -v b="$batches" 'BEGIN {printf "%.2f", c / b}'; }
    for round in $(seq 1 "$rounds"); do
        es_psql -d subbench -c "SELECT eventstore.create_subscription(s, partitions => 16)
                                  FROM unnest(ARRAY['on$round', 'off$round', 'one$round', 'four$round']) s" >/dev/null
        read -r on on_cpu <<<"$(sub_drain "on$round" on)"
        read -r off off_cpu <<<"$(sub_drain "off$round" off)"
        raw=$(es_psql -d subbench -At -c "$sub_cpu_sql" -c '\timing on' -c "DO \$\$
            DECLARE after bigint := 0; last bigint;
            BEGIN
                LOOP
                    SELECT max(r.global_position) INTO last FROM eventstore.read_all(after, 1000) r;
                    EXIT WHEN last IS NULL;
                    after := last;
                    COMMIT;
                END LOOP;
            END \$\$" -c '\timing off' -c "$sub_cpu_sql" |
            awk '/^Time:/ {t = $2} /^[0-9]+$/ {c[++k] = $1} END {printf "%s %d\n", t, c[2] - c[1]}')
        read -r raw raw_cpu <<<"$raw"
        one=$(sub_drain_group "one$round" 1)
        four=$(sub_drain_group "four$round" 4)
        es_psql -d subbench -c "SELECT eventstore.drop_subscription(s)
                                  FROM unnest(ARRAY['on$round', 'off$round', 'one$round', 'four$round']) s" >/dev/null
        on_r+="$(rate "$on") "; off_r+="$(rate "$off") "; raw_r+="$(rate "$raw") "
        on_c+="$(per_batch "$on_cpu") "; off_c+="$(per_batch "$off_cpu") "; raw_c+="$(per_batch "$raw_cpu") "
        one_r+="$(rate "$one") "; four_r+="$(rate "$four") "
        es_log "round $round: subscription drain of $n: ${on} ms (cpu ${on_cpu} ms), synchronous_commit=off ${off} ms (cpu ${off_cpu} ms), read_all loop ${raw} ms (cpu ${raw_cpu} ms); 1 consumer ${one} ms, 4 consumers ${four} ms"
    done
    es_psql -d postgres -c 'DROP DATABASE subbench' >/dev/null
    local f out=''
    for f in "$on_r" "$off_r" "$raw_r" "$on_c" "$off_c" "$raw_c" "$one_r" "$four_r"; do
        out+="$(echo "$f" | tr ' ' '\n' | awk 'NF' | median) "
    done
    echo "$out"
}

# subscription_latency_case RATE SECS ROUNDS: commit-to-delivery at RATE
# appends/s for SECS s (bench/relay/wakeup_bench.c delivery, built in
# $WORK by run.sh) in database bench: a consumer LISTENs on its
# subscription's channel (category lat, 16 partitions, created at the end of
# the log) and polls + acks on each wake-up.  Prints "p50_ms p99_ms lost
# appends_per_s" (medians over the rounds).
subscription_latency_case() {
    local rate=$1 secs=$2 rounds=$3 round line all=''
    local conn="host=$PGHOST port=$PGPORT user=postgres dbname=bench options='-c synchronous_commit=off'"
    for round in $(seq 1 "$rounds"); do
        es_psql -d bench -c "SELECT eventstore.create_subscription('bench_lat', categories => ARRAY['lat'], start => 'end')" >/dev/null
        line=$("$WORK/wakeup_bench" "$conn" bench_lat "lat-$round" delivery "$rate" "$secs")
        es_psql -d bench -c "SELECT eventstore.drop_subscription('bench_lat')" >/dev/null
        es_log "round $round: commit-to-delivery at $rate appends/s: $line"
        all+="$line
"
    done
    echo "$(field "$all" p50_ms) $(field "$all" p99_ms) $(field "$all" lost) $(field "$all" appends_per_s)"
}

# subscription_append_case CLIENTS ROUNDS SECS: append (bench/scripts/ours_append.sql,
# pgbench for SECS s) with one matching subscription (no filter, a consumer
# holding its partitions, idle) against none, interleaved, the order
# alternating round by round.  Prints "with_tps without_tps ratio": the
# medians of the rates, and the median of the rounds' own ratios (each
# round's two runs are next to each other, so the machine's drift, which
# moved the "without" runs alone by a third within one bench, cancels).
subscription_append_case() {
    local clients=$1 rounds=$2 SECS=$3 round w wo with='' without='' ratios=''
    for round in $(seq 1 "$rounds"); do
        # the order alternates round by round: the store grows as it runs
        if [ $((round % 2)) = 0 ]; then
            wo=$(run_one ours_append.sql "$clients" | awk '{printf "%.0f", $1}')
        fi
        es_psql -d bench -c "SELECT eventstore.create_subscription('bench_cost', start => 'end')" \
            -c "SELECT count(*) FROM eventstore.poll('bench_cost', 'c1', 0)" >/dev/null
        w=$(run_one ours_append.sql "$clients" | awk '{printf "%.0f", $1}')
        es_psql -d bench -c "SELECT eventstore.drop_subscription('bench_cost')" >/dev/null
        if [ $((round % 2)) = 1 ]; then
            wo=$(run_one ours_append.sql "$clients" | awk '{printf "%.0f", $1}')
        fi
        with+="$w "; without+="$wo "
        ratios+="$(awk -v a="$w" -v b="$wo" 'BEGIN {if (b > 0) printf "%.3f", a/b; else print 0}') "
        es_log "round $round: append, $clients clients, with a matching subscription $w/s, without $wo/s"
    done
    echo "$(echo "$with" | tr ' ' '\n' | awk 'NF' | median) $(echo "$without" | tr ' ' '\n' | awk 'NF' | median) $(echo "$ratios" | tr ' ' '\n' | awk 'NF' | median)"
}
