#!/usr/bin/env bash
# DCB stress: 8 clients make random conditional appends over a small tag
# space for DCB_DURATION seconds, then an offline checker replays the log.
#
# Run by scripts/test.sh with PGHOST, PGPORT and PGUSER set for a running
# cluster.  Uses a database of its own, created and dropped here.  Clients
# 1-3 run at READ COMMITTED, 4-6 at REPEATABLE READ, 7-8 at SERIALIZABLE.
# Each client is one CALL of a procedure that loops, one transaction per
# decision: read with read_query, decide, append with the condition
# {fail_if_events_match: the query read, after: its consistency position}
# (the last position read_query returned, 0 when none).  The decisions are
# the specification's examples:
#   - subscribe a student to a course (6 students and 3 courses, new ones
#     every half second): at most 3 students per course, at most 2 courses
#     per student, not twice;
#   - register a user name (3 names, a fresh user each time), no "after":
#     the name must not be taken at all;
#   - create the next invoice: number = invoices read + 1.
# Every conditional append stores its condition in its event's data.
#
# The checker's rule, from the log alone: for every stored event C carrying a
# condition (Q, after), no event matching Q has a position in (after, p(C)).
# Why that is the whole promise: an event matching Q with a position above
# after that committed before C's check makes C fail; one still in flight then
# holds a key lock C waits for (so it committed or rolled back before the
# check); one that starts after C's check waits for C's locks and takes its
# position after C's.  So "committed before C" needs no timing record: every
# matching position in (after, p(C)) would have been one of the first kind.
# The examples' invariants are checked too (capacity, limit, no duplicate
# subscription, unique names, invoice numbers 1..N), as are positions
# (unique), errors (none but ES412 and, at REPEATABLE READ/SERIALIZABLE,
# 40001 from read_query's snapshot, retried) and that every kind of decision
# both succeeded and conflicted at least once (the race was exercised).
#
#   DCB_DURATION  seconds (default 30)      DCB_CLIENTS  clients (default 8)
set -uo pipefail

DURATION=${DCB_DURATION:-30}
CLIENTS=${DCB_CLIENTS:-8}
DB=eventstore_dcb_stress_$$
PSQL=${PSQL:-psql}
: "${PGHOST:?PGHOST must be set}" "${PGPORT:?PGPORT must be set}"
WORK=$(mktemp -d /tmp/eventstore-dcb.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    "$PSQL" -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$DB\"" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
failed=0
fail() { echo "dcb_stress: FAIL: $*" >&2; failed=1; }
q() { "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

"$PSQL" -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
    -c "DROP DATABASE IF EXISTS \"$DB\"" -c "CREATE DATABASE \"$DB\"" >/dev/null || exit 1

q <<'SQL' || exit 1
CREATE EXTENSION eventstore;
CREATE TABLE outcomes (client int, kind text, outcome text);

-- one decision: read q, decide with decide(rows), append on the position read
CREATE PROCEDURE work(client int, until timestamptz) LANGUAGE plpgsql AS $$
DECLARE
    kind text; qry jsonb; cond jsonb; pos bigint; n int; m int; dup int; ev record;
    outcome text; student bigint; course bigint; bucket bigint; name text; r float8;
BEGIN
    PERFORM setseed(client / 100.0);
    WHILE clock_timestamp() < until LOOP
        r := random();
        outcome := NULL;
        BEGIN
            IF r < 0.5 THEN
                kind := 'subscribe';
                -- fresh courses and students every half second, so races go on
                bucket := floor(extract(epoch FROM clock_timestamp()) * 2)::bigint % 1000000;
                student := bucket * 6 + floor(random() * 6)::int;
                course := bucket * 3 + floor(random() * 3)::int;
                qry := jsonb_build_object('items', jsonb_build_array(
                    jsonb_build_object('types', '["Subscribed"]'::jsonb, 'tags', jsonb_build_array('course:' || course)),
                    jsonb_build_object('types', '["Subscribed"]'::jsonb, 'tags', jsonb_build_array('student:' || student))));
                SELECT coalesce(max(e.global_position), 0),
                       count(*) FILTER (WHERE e.tags @> ARRAY['course:' || course]),
                       count(*) FILTER (WHERE e.tags @> ARRAY['student:' || student]),
                       count(*) FILTER (WHERE e.tags @> ARRAY['course:' || course, 'student:' || student])
                  INTO pos, n, m, dup FROM eventstore.read_query(qry, 0, NULL) e;
                IF n >= 3 OR m >= 2 OR dup > 0 THEN
                    outcome := 'declined';
                ELSE
                    cond := jsonb_build_object('fail_if_events_match', qry, 'after', pos);
                    PERFORM eventstore.append_event('subscription-' || student || '-' || course || '-' || gen_random_uuid(),
                        0, 'Subscribed', jsonb_build_object('cond', cond),
                        tags => ARRAY['student:' || student, 'course:' || course], condition => cond);
                    outcome := 'ok';
                END IF;
            ELSIF r < 0.7 THEN
                kind := 'register';
                name := (ARRAY['ada', 'bob', 'cy'])[1 + floor(random() * 3)::int];
                cond := jsonb_build_object('fail_if_events_match', jsonb_build_object('items', jsonb_build_array(
                    jsonb_build_object('types', '["UserRegistered"]'::jsonb, 'tags', jsonb_build_array('username:' || name)))));
                PERFORM eventstore.append_event('user-' || gen_random_uuid(), 0, 'UserRegistered',
                    jsonb_build_object('cond', cond, 'name', name), tags => ARRAY['username:' || name], condition => cond);
                outcome := 'ok';
            ELSE
                kind := 'invoice';
                qry := '{"items": [{"types": ["InvoiceCreated"]}]}';
                SELECT coalesce(max(e.global_position), 0), count(*) INTO pos, n
                  FROM eventstore.read_query(qry, 0, NULL) e;
                cond := jsonb_build_object('fail_if_events_match', qry, 'after', pos);
                PERFORM eventstore.append_event('invoice-' || (n + 1) || '-' || gen_random_uuid(), 0, 'InvoiceCreated',
                    jsonb_build_object('cond', cond, 'number', n + 1), tags => ARRAY['invoice'], condition => cond);
                outcome := 'ok';
            END IF;
        EXCEPTION WHEN OTHERS THEN
            outcome := SQLSTATE;
            IF SQLSTATE NOT IN ('ES412', '40001') THEN
                outcome := SQLSTATE || ' ' || SQLERRM;
            END IF;
        END;
        COMMIT;
        INSERT INTO outcomes VALUES (client, kind, outcome);
        COMMIT;
    END LOOP;
END $$;

-- does query q match an event of type t with tags g?  (independent of dcb.c)
CREATE FUNCTION matches(q jsonb, t text, g text[]) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_array_length(q->'items'), 0) = 0 OR EXISTS (
        SELECT FROM jsonb_array_elements(q->'items') i
         WHERE (NOT i ? 'types' OR t IN (SELECT jsonb_array_elements_text(i->'types')))
           AND (NOT i ? 'tags' OR g @> ARRAY(SELECT jsonb_array_elements_text(i->'tags'))))
$$;
SQL

until=$(q -c "SELECT (clock_timestamp() + interval '$DURATION seconds')::text")
levels=("read committed" "read committed" "read committed" "repeatable read" "repeatable read"
        "repeatable read" "serializable" "serializable")
# A client calls work() until the deadline.  Under REPEATABLE READ and
# SERIALIZABLE the COMMIT of a decision can itself fail with 40001 (SSI finds
# the pivot at commit); that ends the CALL, so the client records it as that
# decision's outcome and calls work() again.  Anything else fails the client.
client() {
    local c=$1 level=$2
    while :; do
        if PGOPTIONS="-c default_transaction_isolation=${level/ /\\ }" timeout $((DURATION + 60)) \
            "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$DB" -c "CALL work($c, '$until')" >"$WORK/client.$c.out" 2>&1; then
            return 0
        fi
        grep -q 'could not serialize access' "$WORK/client.$c.out" || return 1
        q -c "INSERT INTO outcomes VALUES ($c, 'commit', '40001')" >/dev/null || return 1
    done
}
for ((c = 1; c <= CLIENTS; c++)); do
    level=${levels[$(( (c - 1) % 8 ))]}
    client "$c" "$level" &
    pids+=($!)
done
for ((c = 1; c <= CLIENTS; c++)); do
    wait "${pids[$((c - 1))]}" || fail "client $c failed: $(head -c 500 "$WORK/client.$c.out")"
done
pids=()

echo "dcb_stress: outcomes (kind outcome count):"
q -F ' ' -c "SELECT kind, outcome, count(*) FROM outcomes GROUP BY 1, 2 ORDER BY 1, 2" | sed 's/^/  /'

check() {   # check <what> <sql returning the violations>
    local out; out=$(q -c "$2") || { fail "$1: query failed"; return; }
    [ -z "$out" ] || fail "$1: $(echo "$out" | head -5 | tr '\n' ';')"
}
check "the rule: no event matching a condition in (after, p)" "
    SELECT c.global_position || ' violated by ' || f.global_position
      FROM eventstore.events c JOIN eventstore.events f
        ON f.global_position > coalesce((c.data->'cond'->>'after')::bigint, 0)
       AND f.global_position < c.global_position
       AND matches(c.data->'cond'->'fail_if_events_match', f.event_type, f.tags)
     WHERE c.data ? 'cond'"
check "course capacity 3" "
    SELECT t, count(*) FROM eventstore.events, unnest(tags) t
     WHERE event_type = 'Subscribed' AND t LIKE 'course:%' GROUP BY t HAVING count(*) > 3"
check "student limit 2" "
    SELECT t, count(*) FROM eventstore.events, unnest(tags) t
     WHERE event_type = 'Subscribed' AND t LIKE 'student:%' GROUP BY t HAVING count(*) > 2"
check "no duplicate subscription" "
    SELECT tags, count(*) FROM eventstore.events WHERE event_type = 'Subscribed' GROUP BY tags HAVING count(*) > 1"
check "unique user names" "
    SELECT data->>'name', count(*) FROM eventstore.events WHERE event_type = 'UserRegistered'
     GROUP BY 1 HAVING count(*) > 1"
check "invoice numbers 1..N in position order" "
    WITH i AS (SELECT array_agg((data->>'number')::int ORDER BY global_position) AS a, count(*)::int AS n
                 FROM eventstore.events WHERE event_type = 'InvoiceCreated')
    SELECT 'got ' || left(a::text, 200) FROM i WHERE a <> array(SELECT generate_series(1, n))"
check "positions unique" "
    SELECT global_position FROM eventstore.events GROUP BY 1 HAVING count(*) > 1"
check "no unexpected errors" "
    SELECT client, kind, outcome FROM outcomes WHERE outcome NOT IN ('ok', 'declined', 'ES412', '40001')
        OR (outcome = '40001' AND client <= 3)"
check "every kind both won and lost a race" "
    SELECT k FROM unnest(ARRAY['subscribe', 'register', 'invoice']) k
     WHERE NOT EXISTS (SELECT FROM outcomes o WHERE o.kind = k AND o.outcome = 'ok')
        OR NOT EXISTS (SELECT FROM outcomes o WHERE o.kind = k AND o.outcome = 'ES412')"
# The rule's query can fail: an unconditional append that claims a condition
# it did not meet (an invoice event after position 0) is reported.
q -c "SELECT eventstore.append_event('fake-1', 0, 'Fake', jsonb_build_object('cond',
        '{\"fail_if_events_match\": {\"items\": [{\"types\": [\"InvoiceCreated\"]}]}, \"after\": 0}'::jsonb))" >/dev/null
caught=$(q -c "
    SELECT count(*) FROM eventstore.events c
     WHERE c.data ? 'cond' AND EXISTS (SELECT FROM eventstore.events f
        WHERE f.global_position > coalesce((c.data->'cond'->>'after')::bigint, 0)
          AND f.global_position < c.global_position
          AND matches(c.data->'cond'->'fail_if_events_match', f.event_type, f.tags))")
[ "$caught" = 1 ] || fail "the checker's rule did not catch the planted violation (got $caught)"
events=$(q -c "SELECT count(*) FROM eventstore.events WHERE event_type <> 'Fake'")
conds=$(q -c "SELECT count(*) FROM eventstore.events WHERE data ? 'cond' AND event_type <> 'Fake'")
echo "dcb_stress: $CLIENTS clients, ${DURATION}s, $events events ($conds conditional) checked"
[ $failed = 0 ] && echo "dcb_stress: ok"
exit $failed
