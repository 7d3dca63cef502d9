#!/usr/bin/env bash
# A terminal view of the store for people without Prometheus: append rates,
# conflicts, retries and vetoes per second, the read horizon, relay and
# consumer lag and the slowest projections, refreshed every second.
#
#   bash scripts/top.sh [-d DATABASE] [-i SECONDS] [-n COUNT]
#
# Connects with psql and the usual PG* variables (PGHOST, PGPORT, PGUSER);
# the role needs pg_monitor (or to own the extension).  -n stops after COUNT
# refreshes (default: until Ctrl-C).  Rates are computed from two samples of
# eventstore.stats, so the first screen shows totals only.
set -uo pipefail

DB=${PGDATABASE:-}
INTERVAL=1
COUNT=0
while getopts "d:i:n:h" opt; do
    case $opt in
        d) DB=$OPTARG ;;
        i) INTERVAL=$OPTARG ;;
        n) COUNT=$OPTARG ;;
        *) sed -n '2,11p' "$0"; exit 2 ;;
    esac
done
PSQL=${PSQL:-psql}
q() { "$PSQL" -X -q -At -F '|' ${DB:+-d "$DB"} -v ON_ERROR_STOP=1 -c "$1"; }

STATS="SELECT s.appends, s.events, s.conflicts, s.retries, s.vetoes, s.bytes,
              round(s.projection_time_ms::numeric, 1), round(s.upcaster_time_ms::numeric, 1),
              round(s.policy_time_ms::numeric, 1),
              extract(epoch FROM clock_timestamp())
         FROM eventstore.stats s WHERE s.database = current_database()"

prev=""
n=0
while :; do
    cur=$(q "$STATS") || { echo "top.sh: cannot read eventstore.stats (preloaded? pg_monitor?)" >&2; exit 1; }
    screen=$(
        printf 'eventstore top — database %s — %s\n\n' "$(q 'SELECT current_database()')" "$(date '+%H:%M:%S')"
        if [ -z "$cur" ]; then
            echo "no counters: is eventstore in shared_preload_libraries and eventstore.stats on?"
        else
            awk -F'|' -v cur="$cur" -v prev="$prev" 'BEGIN {
                split(cur, c, "|"); np = split(prev, p, "|")
                printf "%-12s %12s %12s %12s %12s %12s %14s\n", "", "appends", "events", "conflicts", "retries", "vetoes", "bytes"
                printf "%-12s %12d %12d %12d %12d %12d %14d\n", "total", c[1], c[2], c[3], c[4], c[5], c[6]
                if (np > 0 && c[10] > p[10]) {
                    dt = c[10] - p[10]
                    printf "%-12s %12.1f %12.1f %12.1f %12.1f %12.1f %14.0f\n", "per second",
                        (c[1]-p[1])/dt, (c[2]-p[2])/dt, (c[3]-p[3])/dt, (c[4]-p[4])/dt, (c[5]-p[5])/dt, (c[6]-p[6])/dt
                }
                printf "\ntime in handlers (ms): projections %s, upcasters %s, policies %s\n", c[7], c[8], c[9]
            }'
        fi
        echo
        "$PSQL" -X -q ${DB:+-d "$DB"} -P footer=off -c "
            SELECT counter, newest, horizon, gap, in_flight, oldest_pid,
                   date_trunc('second', held_for) AS held_for, oldest_state
              FROM eventstore.horizon_status ORDER BY counter"
        "$PSQL" -X -q ${DB:+-d "$DB"} -P footer=off -c "
            SELECT 'relay' AS lag, pending, date_trunc('second', oldest_pending_age) AS oldest_pending_age
              FROM eventstore.relay_lag"
        "$PSQL" -X -q ${DB:+-d "$DB"} -P footer=off -c "
            SELECT consumer, channel, pending, date_trunc('second', oldest_pending_age) AS oldest_pending_age,
                   date_trunc('second', since_last_ack) AS since_last_ack
              FROM eventstore.consumer_lag ORDER BY pending DESC, consumer LIMIT 5"
        "$PSQL" -X -q ${DB:+-d "$DB"} -P footer=off -c "
            SELECT projection, calls, round(total_time_ms::numeric, 1) AS total_ms,
                   round(mean_time_ms::numeric, 3) AS mean_ms
              FROM eventstore.projection_stats WHERE database = current_database()
             ORDER BY total_time_ms DESC LIMIT 5"
    )
    [ -t 1 ] && printf '\033[H\033[2J'
    printf '%s\n' "$screen"
    prev=$cur
    n=$((n + 1))
    [ "$COUNT" -gt 0 ] && [ "$n" -ge "$COUNT" ] && break
    sleep "$INTERVAL"
done
