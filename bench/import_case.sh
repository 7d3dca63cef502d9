# Bulk import case of bench/run.sh (sourced; uses es_psql, es_log, $WORK).
#
# import_case N ROUNDS: N events (streams of 10, interleaved, event ids
# given) loaded per round, raw and ours in turn (raw first in odd rounds),
# each after a CHECKPOINT and into new streams:
#   raw   COPY of the rows into raw_events (LIKE eventstore.events INCLUDING
#         ALL: the same indexes), from a server-side file
#   ours  COPY of the same rows into an UNLOGGED staging table, then
#         eventstore.import_events(staging)
# Both tables grow alike round by round.  Prints "ours_per_s raw_per_s
# ratio rounds": medians over the rounds of events per second (COPY included
# for ours), the median of the rounds' own ratios, and those ratios.
import_case() {
    local n=$1 rounds=$2 streams=$(( $1 / 10 )) round t raw ours
    local ours_rates='' raw_rates='' ratios=''
    for round in $(seq 1 "$rounds"); do
        # ord, stream, version, type, data, metadata, created_at, event_id
        awk -v n="$n" -v s="$streams" -v r="$round" 'BEGIN {
            for (k = 0; k < n; k++)
                printf "%d\timp%d-%d\t%d\tImported\t{\"amount\": 42, \"note\": \"a typical small event\"}\t\\N\t2020-01-01 00:00:00+00\t%08x-0000-4000-8000-%012x\n",
                       k + 1, r, k % s, int(k / s) + 1, r, k
        }' > "$WORK/import.tsv"
        # the same rows in the column order of eventstore.events (position = ord,
        # no tags)
        awk -F'\t' '{printf "%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t{}\n", $1 + 1000000000 * '"$round"', $2, $3, $8, $4, $5, $6, $7}' \
            "$WORK/import.tsv" > "$WORK/raw.tsv"
        chmod 644 "$WORK/import.tsv" "$WORK/raw.tsv"
        # each load starts after a CHECKPOINT (the other's WAL would
        # otherwise set one off in the middle of it), and they take turns
        # at going first
        for side in $( ((round % 2)) && echo "raw ours" || echo "ours raw"); do
            es_psql -d bench -c CHECKPOINT >/dev/null
            if [ "$side" = raw ]; then
                raw=$(es_psql -d bench -At -c '\timing on' -c "COPY raw_events FROM '$WORK/raw.tsv'" |
                      awk '/^Time:/ {t += $2} END {print t}')
            else
                ours=$(es_psql -d bench -At -c 'SET client_min_messages = warning' -c 'DROP TABLE IF EXISTS import_staging' \
                           -c 'CREATE UNLOGGED TABLE import_staging (LIKE eventstore.import_row)' \
                           -c '\timing on' -c "COPY import_staging FROM '$WORK/import.tsv'" \
                           -c "SELECT eventstore.import_events('import_staging')" |
                       awk '/^Time:/ {t += $2} END {print t}')
            fi
        done
        es_log "round $round: import of $n events: raw COPY ${raw} ms, COPY + import_events ${ours} ms"
        raw_rates+="$(awk -v n="$n" -v t="$raw" 'BEGIN {printf "%.0f", n / (t / 1000)}')
"
        ours_rates+="$(awk -v n="$n" -v t="$ours" 'BEGIN {printf "%.0f", n / (t / 1000)}')
"
        ratios+="$(awk -v a="$ours" -v b="$raw" 'BEGIN {if (a > 0) printf "%.2f", b / a}')
"
    done
    es_psql -d bench -c 'DROP TABLE IF EXISTS import_staging' >/dev/null
    echo "$(printf '%s' "$ours_rates" | median) $(printf '%s' "$raw_rates" | median)" \
         "$(printf '%s' "$ratios" | median) $(printf '%s' "$ratios" | paste -sd, -)"
}
