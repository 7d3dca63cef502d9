#!/usr/bin/env bash
# What an active subscription costs an append (issue #12), against a running
# cluster (PGHOST, PGPORT, PGUSER; a superuser, library preloaded, relay
# worker on):
#
#   bash bench/subscription_cost.sh [ROUNDS] [SECS] [CLIENTS...]   (default 3 8 1 8)
#
# In a database of its own (subcost), for each client count and round, the
# append of make bench (bench/scripts/ours_append.sql, pgbench -M prepared)
# runs SECS s with one matching subscription (no filter, a consumer holding
# its partitions, idle; like subscription_append_case of
# bench/subscription_case.sh) and then without, interleaved.  Per run:
# appends/s, the relay worker's CPU time (utime + stime of its
# /proc/<pid>/stat) and that of every other process of the cluster, both per
# 1,000 appends, and WAL bytes per append (pg_current_wal_lsn).  Prints one
# line per run and the medians.
set -euo pipefail
ROUNDS=${1:-3}; SECS=${2:-8}; shift 2 || true
CLIENTS=("$@"); [ ${#CLIENTS[@]} -gt 0 ] || CLIENTS=(1 8)
HERE=$(cd "$(dirname "$0")" && pwd)
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
TCK=$(getconf CLK_TCK)

"${PSQL[@]}" -d postgres -c 'DROP DATABASE IF EXISTS subcost' -c 'CREATE DATABASE subcost' >/dev/null
"${PSQL[@]}" -d subcost -c 'CREATE EXTENSION eventstore' >/dev/null
sleep 1
PM=$(head -1 "$("${PSQL[@]}" -d subcost -Atc 'SHOW data_directory')/postmaster.pid")

worker_pid() {
    "${PSQL[@]}" -d subcost -Atc "SELECT pid FROM eventstore.relay_status() WHERE database = current_database()"
}
ticks() {  # pid -> utime + stime
    awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat" 2>/dev/null || echo 0
}
cluster_ticks() {  # every child of the postmaster but the worker $1
    local t=0 p
    for p in $(pgrep -P "$PM"); do
        [ "$p" = "$1" ] || t=$((t + $(ticks "$p")))
    done
    echo "$t"
}
lsn() { "${PSQL[@]}" -d subcost -Atc 'SELECT pg_current_wal_lsn() - $$0/0$$::pg_lsn'; }
count() { "${PSQL[@]}" -d subcost -Atc 'SELECT count(*) FROM eventstore.events'; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print 0; else print a[int((NR+1)/2)]}'; }

# run CLIENTS -> "appends_per_s worker_ms_per_1000 others_ms_per_1000 wal_bytes_per_append"
run() {
    local w w0 w1 o0 o1 l0 l1 n0 n1 tps
    # pgbench's own backends come and go: count them through their exit, by
    # the cluster's total CPU (children's CPU is reaped into the postmaster's cutime)
    w=$(worker_pid)
    w0=$(ticks "$w"); o0=$(awk '{sub(/^.*\) /, ""); print $14 + $15}' "/proc/$PM/stat"); o0=$((o0 + $(cluster_ticks "$w")))
    l0=$(lsn); n0=$(count)
    tps=$(cd /tmp && pgbench -n -M prepared -c "$1" -j "$1" -T "$SECS" -D run="$(date +%s%N)" -f "$HERE/scripts/ours_append.sql" subcost 2>&1 |
          awk '/^tps = / {printf "%.0f", $3}')
    sleep 0.5; n1=$(count); l1=$(lsn)
    w1=$(ticks "$w"); o1=$(awk '{sub(/^.*\) /, ""); print $14 + $15}' "/proc/$PM/stat"); o1=$((o1 + $(cluster_ticks "$w")))
    [ "$(worker_pid)" = "$w" ] || echo "warning: the worker changed during the run" >&2
    awk -v tps="$tps" -v n=$((n1 - n0)) -v w=$((w1 - w0)) -v o=$((o1 - o0)) -v l=$((l1 - l0)) -v hz="$TCK" \
        'BEGIN {printf "%s %.2f %.1f %.0f\n", tps, w * 1000 / hz / n * 1000, o * 1000 / hz / n * 1000, l / n}'
}

for c in "${CLIENTS[@]}"; do
    declare -A S=()
    for r in $(seq 1 "$ROUNDS"); do
        "${PSQL[@]}" -d subcost -c "SELECT eventstore.create_subscription('cost', start => 'end')" \
            -c "SELECT count(*) FROM eventstore.poll('cost', 'c1', 0)" >/dev/null
        with=$(run "$c")
        "${PSQL[@]}" -d subcost -c "SELECT eventstore.drop_subscription('cost')" >/dev/null
        without=$(run "$c")
        echo "clients $c round $r: with [$with] without [$without] (appends/s, worker ms/1000, others ms/1000, WAL B/append)"
        S[with]+="$with
"; S[without]+="$without
"
    done
    for v in with without; do
        m=""
        for f in 1 2 3 4; do m+="$(printf '%s' "${S[$v]}" | awk -v f=$f 'NF {print $f}' | median) "; done
        echo "clients $c median $v: $m"
    done
    tw=$(printf '%s' "${S[with]}" | awk 'NF {print $1}' | median); two=$(printf '%s' "${S[without]}" | awk 'NF {print $1}' | median)
    awk -v a="$tw" -v b="$two" -v c="$c" 'BEGIN {printf "clients %s with/without appends/s: %.2fx\n", c, a / b}'
    unset S
done
"${PSQL[@]}" -d postgres -c 'DROP DATABASE subcost' >/dev/null
