# Subscription case of bench/run.sh (sourced; uses es_psql, es_log).
#
# subscription_case N ROUNDS: a database of its own (subbench) with a backlog
# of N events (1,000 streams, loaded with import_events), drained each round
#   ours  by one consumer of a subscription (16 partitions, no filter):
#         poll(1000), ack the last position of each partition's run (one
#         ack_many call, as a consumer acking a whole batch would), COMMIT,
#         until poll returns nothing
#   raw   by a plain read_all loop of the same batch size, one transaction
#         per batch
# Prints "ours_per_s raw_per_s" (medians over the rounds, events per second).
subscription_case() {
    local n=$1 rounds=$2 round ours raw ours_rates='' raw_rates=''
    es_psql -d postgres -c 'DROP DATABASE IF EXISTS subbench' -c 'CREATE DATABASE subbench' >/dev/null
    es_psql -d subbench -c 'CREATE EXTENSION eventstore' \
        -c 'CREATE UNLOGGED TABLE staging (LIKE eventstore.import_row)' \
        -c "INSERT INTO staging SELECT k, 'sb-' || (k % 1000), k / 1000 + 1, 'Placed',
                   '{\"amount\": 42, \"note\": \"a typical small event\"}', NULL, now(), gen_random_uuid()
              FROM generate_series(0, $n - 1) k" \
        -c "SELECT eventstore.import_events('staging')" -c 'DROP TABLE staging' -c 'VACUUM ANALYZE' >/dev/null
    for round in $(seq 1 "$rounds"); do
        ours=$(es_psql -d subbench -At -c "SELECT eventstore.create_subscription('drain$round', partitions => 16)" \
                   -c '\timing on' -c "DO \$\$
            DECLARE runs bigint[];
            BEGIN
                LOOP
                    SELECT array_agg(x.last) INTO runs
                      FROM (SELECT max(p.global_position) AS last
                              FROM eventstore.poll('drain$round', 'c1', 1000) p GROUP BY p.partition) x;
                    EXIT WHEN runs IS NULL;
                    PERFORM eventstore.ack_many('drain$round', 'c1', runs);
                    COMMIT;
                END LOOP;
            END \$\$" | awk '/^Time:/ {t = $2} END {print t}')
        raw=$(es_psql -d subbench -At -c '\timing on' -c "DO \$\$
            DECLARE after bigint := 0; last bigint;
            BEGIN
                LOOP
                    SELECT max(r.global_position) INTO last FROM eventstore.read_all(after, 1000) r;
                    EXIT WHEN last IS NULL;
                    after := last;
                    COMMIT;
                END LOOP;
            END \$\$" | awk '/^Time:/ {t = $2} END {print t}')
        ours_rates+="$(awk -v n="$n" -v t="$ours" 'BEGIN {printf "%.0f", n / (t / 1000)}') "
        raw_rates+="$(awk -v n="$n" -v t="$raw" 'BEGIN {printf "%.0f", n / (t / 1000)}') "
        es_log "round $round: subscription drain of $n: ours ${ours} ms, read_all loop ${raw} ms"
    done
    es_psql -d postgres -c 'DROP DATABASE subbench' >/dev/null
    echo "$(echo "$ours_rates" | tr ' ' '\n' | awk 'NF' | median) $(echo "$raw_rates" | tr ' ' '\n' | awk 'NF' | median)"
}
