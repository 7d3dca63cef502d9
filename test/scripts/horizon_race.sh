#!/usr/bin/env bash
# The read horizon under a flat-out race: appenders through pgbench
# (synchronous_commit off, one stream per client; half the transactions
# append to two streams, so a transaction takes a later position too) while
# tail readers follow read_all, each in one long DO block (read_all takes a
# fresh snapshot per call) that records every position it is given.
# Afterwards, per reader:
#   - it read something, and never the same position twice;
#   - every event at or below its last checkpoint is among what it was
#     given: a horizon that let it past a position still in flight (which
#     then committed) shows here as a skipped event;
#   - read_all from its last checkpoint returns every event after it (the
#     horizon is not stuck once nothing is in flight).
# And a reader that asks for the horizon in a loop (eventstore._log_horizon)
# never gets one lower than the one before: a client may hand a horizon it
# was given (read_query's consistency position) to a later conditional
# append, which refuses an "after" above its own (a horizon computed from an
# appender's pending bound dropped for a moment: hundreds of drops per run).
# With the library preloaded this exercises horizon.c's lock-free
# registration (src/horizon.c, file header: A1-A4 and R1-R3); without
# preload, the advisory-lock fallback.
#
# Run by scripts/test.sh with PGHOST, PGPORT and PGUSER set for a running
# cluster.  Uses a database of its own, created and dropped here.
#
#   RACE_SECS     seconds of appending (default 8)
#   RACE_CLIENTS  pgbench clients      (default 6)
#   RACE_READERS  tail readers         (default 2)
set -uo pipefail

SECS=${RACE_SECS:-8}
CLIENTS=${RACE_CLIENTS:-6}
READERS=${RACE_READERS:-2}
DB=eventstore_race_$$
PSQL=${PSQL:-psql}
PGBENCH=${PGBENCH:-pgbench}
: "${PGHOST:?PGHOST must be set}" "${PGPORT:?PGPORT must be set}"
WORK=$(mktemp -d /tmp/eventstore-race.XXXXXX)
cleanup() {
    wait 2>/dev/null
    "$PSQL" -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$DB\"" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
q() { "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
failed=0
fail() { echo "horizon_race: FAIL: $*" >&2; failed=1; }

"$PSQL" -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE \"$DB\"" || exit 1
q <<'SQL' || exit 1
CREATE EXTENSION eventstore;
CREATE TABLE seen (reader int, pos bigint);
CREATE TABLE checkpoints (reader int PRIMARY KEY, cp bigint);
CREATE TABLE monotonic (calls bigint, drops bigint, worst bigint);
SQL

cat > "$WORK/one.sql" <<'SQL'
SELECT eventstore.append_event('race-' || :client_id, NULL, 'Raced', '{}');
SQL
cat > "$WORK/two.sql" <<'SQL'
BEGIN;
SELECT eventstore.append_event('race-' || :client_id, NULL, 'Raced', '{}');
SELECT eventstore.append_event('race-b-' || :client_id, NULL, 'Raced', '{}');
COMMIT;
SQL

for ((r = 1; r <= READERS; r++)); do
    q > "$WORK/reader$r.out" 2>&1 <<SQL &
DO \$\$
DECLARE
    cp bigint := 0;
    n bigint;
    deadline timestamptz := clock_timestamp() + interval '$((SECS + 1)) seconds';
BEGIN
    WHILE clock_timestamp() < deadline LOOP
        WITH r AS (SELECT e.global_position FROM eventstore.read_all(cp, 1000) e),
             i AS (INSERT INTO seen SELECT $r, r.global_position FROM r RETURNING pos)
        SELECT max(i.pos) INTO n FROM i;
        IF n IS NOT NULL THEN
            cp := n;
        END IF;
    END LOOP;
    INSERT INTO checkpoints VALUES ($r, cp);
END
\$\$;
SQL
done

q > "$WORK/monotonic.out" 2>&1 <<SQL &
DO \$\$
DECLARE
    prev bigint := 0;
    h bigint;
    calls bigint := 0;
    drops bigint := 0;
    worst bigint := 0;
    deadline timestamptz := clock_timestamp() + interval '$((SECS + 1)) seconds';
BEGIN
    WHILE clock_timestamp() < deadline LOOP
        h := eventstore._log_horizon();
        calls := calls + 1;
        IF h < prev THEN
            drops := drops + 1;
            worst := greatest(worst, prev - h);
        END IF;
        prev := greatest(prev, h);
    END LOOP;
    INSERT INTO monotonic VALUES (calls, drops, worst);
END
\$\$;
SQL

PGOPTIONS="-c synchronous_commit=off" "$PGBENCH" -n -M prepared -c "$CLIENTS" -j 2 -T "$SECS" \
    -f "$WORK/one.sql" -f "$WORK/two.sql" "$DB" > "$WORK/pgbench.out" 2>&1 ||
    fail "pgbench: $(tail -3 "$WORK/pgbench.out")"
wait
for ((r = 1; r <= READERS; r++)); do
    [ -s "$WORK/reader$r.out" ] && fail "reader $r: $(cat "$WORK/reader$r.out")"
done

total=$(q -c "SELECT count(*) FROM eventstore.events")
echo "horizon_race: $total events appended ($(grep -o 'tps = [0-9.]*' "$WORK/pgbench.out" | head -1) transactions/s, $CLIENTS clients)"
for ((r = 1; r <= READERS; r++)); do
    read -r cp given dup skipped rest <<<"$(q -F ' ' -c "
        SELECT c.cp,
               (SELECT count(*) FROM seen s WHERE s.reader = c.reader),
               (SELECT count(*) - count(DISTINCT s.pos) FROM seen s WHERE s.reader = c.reader),
               (SELECT count(*) FROM eventstore.events e
                 WHERE e.global_position <= c.cp
                   AND NOT EXISTS (SELECT FROM seen s WHERE s.reader = c.reader AND s.pos = e.global_position)),
               (SELECT count(*) FROM eventstore.read_all(c.cp, NULL))
          FROM checkpoints c WHERE c.reader = $r")"
    echo "horizon_race: reader $r: checkpoint $cp, given $given, twice $dup, skipped $skipped, after the checkpoint now $rest"
    [ -n "$cp" ] || { fail "reader $r recorded no checkpoint"; continue; }
    [ "$given" -gt 0 ] || fail "reader $r was given nothing"
    [ "$dup" = 0 ] || fail "reader $r was given $dup position(s) twice"
    [ "$skipped" = 0 ] || fail "reader $r skipped $skipped event(s) below its checkpoint"
    [ $((given + skipped + rest)) = "$total" ] ||
        fail "reader $r: given $given + after the checkpoint $rest + skipped $skipped != $total events"
done
[ -s "$WORK/monotonic.out" ] && fail "monotonic reader: $(cat "$WORK/monotonic.out")"
read -r calls drops worst <<<"$(q -F ' ' -c "SELECT calls, drops, worst FROM monotonic")"
echo "horizon_race: horizon asked $calls times, lower than the one before $drops times (by at most $worst)"
[ -n "$calls" ] && [ "$calls" -gt 0 ] || fail "the monotonic reader recorded nothing"
[ "${drops:-1}" = 0 ] || fail "the horizon went back $drops times (by at most $worst positions)"
[ $failed = 0 ] && echo "horizon_race: PASS" || echo "horizon_race: FAILED"
exit $failed
