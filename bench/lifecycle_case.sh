# Lifecycle case of bench/run.sh (sourced; uses es_psql, es_log, $PGBENCH,
# $WORK, $BENCH).
#
# lifecycle_case N SECS ROUNDS: a database of its own (purgebench).  Each
# round loads N events in 1,000 streams with import_events and soft-deletes
# every stream, then runs 8 clients appending (one stream each, as in the
# append case) for SECS seconds twice: alone, then while one session purges
# (purge(1000), one transaction per batch).  Prints "purge_per_s
# append_tps_alone append_tps_during_purge" (medians over the rounds).
lifecycle_case() {
    local n=$1 secs=$2 rounds=$3 round alone during purged span
    local purge_rates='' alone_rates='' during_rates=''
    es_psql -d postgres -c 'DROP DATABASE IF EXISTS purgebench' -c 'CREATE DATABASE purgebench' >/dev/null
    es_psql -d purgebench -c 'CREATE EXTENSION eventstore' >/dev/null
    # The relay worker's own purge (every 10 s) would purge in the "alone"
    # runs too and take the measured purge's rows: only our session purges.
    es_psql -d postgres -c 'ALTER SYSTEM SET eventstore.relay_purge = off' -c 'SELECT pg_reload_conf()' >/dev/null
    for round in $(seq 1 "$rounds"); do
        es_psql -d purgebench -c 'CREATE UNLOGGED TABLE staging (LIKE eventstore.import_row)' \
            -c "INSERT INTO staging SELECT k, 'old$round-' || (k % 1000), k / 1000 + 1, 'Placed',
                       '{\"amount\": 42, \"note\": \"a typical small event\"}', NULL, now(), gen_random_uuid()
                  FROM generate_series(0, $n - 1) k" \
            -c "SELECT eventstore.import_events('staging')" -c 'DROP TABLE staging' \
            -c "SELECT count(eventstore.delete_stream('old$round-' || i, NULL)) FROM generate_series(0, 999) i" \
            -c 'VACUUM ANALYZE' >/dev/null
        alone=$(cd "$WORK" && "$PGBENCH" -n -M prepared -c 8 -j 8 -T "$secs" -f "$BENCH/scripts/ours_append.sql" purgebench 2>&1 |
                awk '/^tps = / {printf "%.0f", $3; exit}')
        es_psql -d purgebench -c 'CHECKPOINT' >/dev/null
        ( es_psql -d purgebench -c "DO \$\$
            DECLARE t0 timestamptz := clock_timestamp();
            BEGIN
                LOOP
                    EXIT WHEN eventstore.purge(1000) = 0 OR clock_timestamp() - t0 > interval '$secs seconds';
                    COMMIT;
                END LOOP;
            END \$\$" >/dev/null 2>&1 ) &
        local purger=$!
        during=$(cd "$WORK" && "$PGBENCH" -n -M prepared -c 8 -j 8 -T "$secs" -f "$BENCH/scripts/ours_append.sql" purgebench 2>&1 |
                 awk '/^tps = / {printf "%.0f", $3; exit}')
        wait "$purger"
        read -r purged span <<<"$(es_psql -d purgebench -At -F ' ' -c "SELECT coalesce(sum(events), 0),
                   extract(epoch FROM max(at) - min(at)) FROM eventstore.lifecycle_log
                  WHERE action = 'purge' AND at > now() - interval '1 hour'
                    AND id > coalesce((SELECT max(id) FROM eventstore.lifecycle_log WHERE action = 'delete'), 0)")"
        es_log "round $round: purged $purged events in ${span}s; append alone ${alone} tps, during the purge ${during} tps"
        purge_rates+="$(awk -v n="$purged" -v t="$span" 'BEGIN {if (t > 0) printf "%.0f", n / t; else print 0}')
"
        alone_rates+="$alone
"
        during_rates+="$during
"
        # what is left goes before the next round
        es_psql -d purgebench -c "DO \$\$ BEGIN LOOP EXIT WHEN eventstore.purge(10000) = 0; COMMIT; END LOOP; END \$\$" >/dev/null
    done
    es_psql -d postgres -c 'ALTER SYSTEM RESET eventstore.relay_purge' -c 'SELECT pg_reload_conf()' >/dev/null
    echo "$(printf '%s' "$purge_rates" | median) $(printf '%s' "$alone_rates" | median) $(printf '%s' "$during_rates" | median)"
}
