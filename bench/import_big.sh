#!/usr/bin/env bash
# One import of N events in one call, with its time, the backend's peak
# memory and its temporary files (not part of make bench; not in CI).
#
#   bash bench/import_big.sh N        (e.g. 10000000)
#
# Uses the cluster of PGHOST/PGPORT/PGUSER (a superuser: it reads
# /proc/<pid>/status through pg_read_file and COPYs a server-side file),
# database ${BENCH_DB:-bench} with the extension installed, psql from PATH.
# The rows are those of bench/import_case.sh (N/10 streams of 10 events,
# interleaved, event ids given, stored in import order), in streams
# imp<tag>-* (a new tag each run), COPYed into an UNLOGGED staging table big_staging, then
# eventstore.import_events('big_staging').  The server's process must be
# able to read the work directory (${WORK:-a fresh one under /tmp}).
set -u
n=$1; s=$((n / 10)); db=${BENCH_DB:-bench}; tag=$(( $(date +%s) % 1000000 ))
W=${WORK:-$(mktemp -d /tmp/eventstore-import-big.XXXXXX)}; chmod 755 "$W"
q() { psql -X -q -At -d "$db" "$@"; }
awk -v n="$n" -v s="$s" -v r="$tag" 'BEGIN {
    for (k = 0; k < n; k++)
        printf "%d\timp%d-%d\t%d\tImported\t{\"amount\": 42, \"note\": \"a typical small event\"}\t\\N\t2020-01-01 00:00:00+00\t%08x-0000-4000-8000-%012x\n",
               k + 1, r, k % s, int(k / s) + 1, r, k
}' > "$W/big.tsv"; chmod 644 "$W/big.tsv"
q -c 'DROP TABLE IF EXISTS big_staging' -c 'CREATE UNLOGGED TABLE big_staging (LIKE eventstore.import_row)' \
  -c '\timing on' -c "COPY big_staging FROM '$W/big.tsv'" | sed 's/^/staging COPY: /'
rm -f "$W/big.tsv"
q -c "SELECT pg_size_pretty(pg_relation_size('big_staging')), pg_size_pretty(pg_total_relation_size('eventstore.events'))" |
    sed 's/^/staging size | store size before: /'
temp0=$(q -c "SELECT temp_files || ' ' || temp_bytes FROM pg_stat_database WHERE datname = current_database()")
( q -c 'SELECT pg_backend_pid()' -c 'SELECT pg_sleep(1)' -c '\timing on' \
    -c '\echo import_events (events imported, time):' -c "SELECT eventstore.import_events('big_staging')" \
    -c "SELECT 'memory contexts after: ' || sum(total_bytes) FROM pg_backend_memory_contexts" \
    -c "SELECT pg_read_file('/proc/' || pg_backend_pid() || '/status')" > "$W/big.out" 2>&1 ) &
sleep 0.5; pid=$(head -1 "$W/big.out"); peak=0
# RssAnon (private memory, without the shared buffers VmHWM also counts), sampled each second
while kill -0 "$pid" 2>/dev/null && ! grep -q 'memory contexts after' "$W/big.out"; do
    a=$(awk '/RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null)
    [ -n "$a" ] && [ "$a" -gt "$peak" ] && peak=$a
    sleep 1
done
wait
sed -n '/^import_events/,/^Time/p' "$W/big.out"
grep 'memory contexts' "$W/big.out"
grep -E 'VmHWM|RssShmem' "$W/big.out"
echo "peak RssAnon (sampled each second): $peak kB"
read -r f0 b0 <<<"$temp0"
q -c "SELECT 'temporary files: ' || (temp_files - $f0) || ', ' || pg_size_pretty(temp_bytes - $b0) FROM pg_stat_database WHERE datname = current_database()"
q -c "SELECT pg_size_pretty(pg_total_relation_size('eventstore.events'))" | sed 's/^/store size after: /'
q -c 'DROP TABLE big_staging'
rm -rf "$W"
