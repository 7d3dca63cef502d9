# Lifecycle case of bench/run.sh (sourced; uses es_psql, es_log, $PGBENCH,
# $WORK, $BENCH).
#
# lifecycle_case N SECS ROUNDS: a database of its own (purgebench).  Each
# round loads N events in 1,000 streams with import_events and soft-deletes
# every stream, then runs 8 clients appending (one stream each, as in the
# append case) for SECS seconds three times:
#   - alone (the relay worker's purge off);
#   - while the relay worker purges with its default pacing
#     (eventstore.purge_batch_size, eventstore.purge_delay): what a user
#     gets without doing anything;
#   - while one session purges flat out (purge(1000) in a loop, one
#     transaction per batch, no pause): what a user's own loop gets.
# Each purge rate is events purged over the span of its batches (audit log).
# Prints "worker_purge_per_s append_tps_alone append_tps_during_worker
# loop_purge_per_s append_tps_during_loop" (medians over the rounds).
lifecycle_append() {
    (cd "$WORK" && "$PGBENCH" -n -M prepared -c 8 -j 8 -T "$1" -D run=purge -f "$BENCH/scripts/ours_append.sql" purgebench 2>&1 |
        awk '/^tps = / {printf "%.0f", $3; exit}')
}
lifecycle_mark() { es_psql -d purgebench -At -c 'SELECT coalesce(max(id), 0) FROM eventstore.lifecycle_log'; }
# events/s purged by the batches whose audit rows have ids in (from, to]
lifecycle_rate() {
    es_psql -d purgebench -At -c "SELECT coalesce(round(sum(events) / nullif(extract(epoch FROM max(at) - min(at)), 0)), 0)
                                    FROM eventstore.lifecycle_log
                                   WHERE action = 'purge' AND id > $1 AND id <= $2"
}
lifecycle_worker_purge() {
    es_psql -d postgres -c "ALTER SYSTEM SET eventstore.relay_purge = $1" -c 'SELECT pg_reload_conf()' >/dev/null
}
lifecycle_case() {
    local n=$1 secs=$2 rounds=$3 round alone during_w during_l m0 m1 m2 rate_w rate_l
    local rates_w='' rates_l='' alone_rates='' during_w_rates='' during_l_rates=''
    es_psql -d postgres -c 'DROP DATABASE IF EXISTS purgebench' -c 'CREATE DATABASE purgebench' >/dev/null
    es_psql -d purgebench -c 'CREATE EXTENSION eventstore' >/dev/null
    # Only the phase that measures it purges: off in the "alone" runs.
    lifecycle_worker_purge off
    for round in $(seq 1 "$rounds"); do
        es_psql -d purgebench -c 'CREATE UNLOGGED TABLE staging (LIKE eventstore.import_row)' \
            -c "INSERT INTO staging SELECT k, 'old$round-' || (k % 1000), k / 1000 + 1, 'Placed',
                       '{\"amount\": 42, \"note\": \"a typical small event\"}', NULL, now(), gen_random_uuid()
                  FROM generate_series(0, $n - 1) k" \
            -c "SELECT eventstore.import_events('staging')" -c 'DROP TABLE staging' \
            -c "SELECT count(eventstore.delete_stream('old$round-' || i, NULL)) FROM generate_series(0, 999) i" \
            -c 'VACUUM ANALYZE' >/dev/null
        alone=$(lifecycle_append "$secs")
        es_psql -d purgebench -c 'CHECKPOINT' >/dev/null
        m0=$(lifecycle_mark)
        lifecycle_worker_purge on
        during_w=$(lifecycle_append "$secs")
        lifecycle_worker_purge off
        sleep 1                             # let a batch under way commit
        m1=$(lifecycle_mark)
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
        during_l=$(lifecycle_append "$secs")
        wait "$purger"
        m2=$(lifecycle_mark)
        rate_w=$(lifecycle_rate "$m0" "$m1")
        rate_l=$(lifecycle_rate "$m1" "$m2")
        es_log "round $round: append alone ${alone} tps; worker purge ${rate_w} events/s, append ${during_w} tps; purge() loop ${rate_l} events/s, append ${during_l} tps"
        rates_w+="$rate_w
"
        rates_l+="$rate_l
"
        alone_rates+="$alone
"
        during_w_rates+="$during_w
"
        during_l_rates+="$during_l
"
        # what is left goes before the next round
        es_psql -d purgebench -c "DO \$\$ BEGIN LOOP EXIT WHEN eventstore.purge(10000) = 0; COMMIT; END LOOP; END \$\$" >/dev/null
    done
    es_psql -d postgres -c 'ALTER SYSTEM RESET eventstore.relay_purge' -c 'SELECT pg_reload_conf()' >/dev/null
    echo "$(printf '%s' "$rates_w" | median) $(printf '%s' "$alone_rates" | median) $(printf '%s' "$during_w_rates" | median)" \
         "$(printf '%s' "$rates_l" | median) $(printf '%s' "$during_l_rates" | median)"
}
