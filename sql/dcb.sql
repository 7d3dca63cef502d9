--
-- dcb: dynamic consistency boundaries.  Tags on events, queries, read_query
-- and conditional appends (src/dcb.c; README "Consistency across streams").
-- Bad input fails with its own SQLSTATE and writes nothing:
--   22004  a NULL tag; a NULL query
--   22023  an empty tag; a malformed query or condition (not an object,
--          unknown key, wrong type, empty array or string); "after" not an
--          integer >= 0, or above the read horizon
--   22001  a tag (or a query string) longer than 256 bytes
--   54000  more than 64 tags on an event; more than 100 items in a query
--   2202E  a multi-dimensional tags array
--   ES412  the condition failed: an event matching the query is stored
--          after "after"; the detail names the first one's position
--
DROP EXTENSION IF EXISTS eventstore CASCADE;
CREATE EXTENSION eventstore;
\set VERBOSITY terse

CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- The error's detail too, for ES412.
CREATE FUNCTION pg_temp.detail(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    d text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || d;
END $$;

CREATE FUNCTION pg_temp.store() RETURNS text LANGUAGE sql AS $$
    SELECT count(*) || ' events, digest ' ||
           md5(coalesce(string_agg(e::text, '|' ORDER BY e.global_position), ''))
      FROM eventstore.events e
$$;

------------------------------------------------------------------------
-- Tags: given at append, stored as a sorted set, shown in every read
------------------------------------------------------------------------
SELECT * FROM eventstore.append_event('course-1', 0, 'CourseDefined', '{"capacity": 2}',
                                      tags => ARRAY['course:1']);
SELECT * FROM eventstore.append('student-1', 0, ARRAY[
    eventstore.event('StudentRegistered', '{}', tags => ARRAY['student:1', 'student:1']),
    eventstore.event('StudentSubscribed', '{}', tags => ARRAY['student:1', 'course:1'])]);
SELECT * FROM eventstore.append_event('other-1', NULL, 'Untagged', '{}');
SELECT global_position, stream_id, event_type, tags FROM eventstore.read_all();
SELECT stream_version, tags FROM eventstore.read_stream('student-1');
SELECT eventstore.event('T', '{}', tags => ARRAY['a']);
-- The column is NOT NULL with default '{}'.
SELECT a.attnotnull, pg_get_expr(d.adbin, d.adrelid) AS default
  FROM pg_attribute a JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = 'eventstore.events'::regclass AND a.attname = 'tags';

-- limits
SELECT pg_temp.try($$SELECT eventstore.append_event('bad-1', NULL, 'T', '{}', tags => ARRAY['a', NULL])$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('bad-1', NULL, 'T', '{}', tags => ARRAY[''])$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('bad-1', NULL, 'T', '{}', tags => ARRAY[repeat('x', 257)])$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('bad-1', NULL, 'T', '{}', tags => ARRAY[repeat('x', 256)])$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('bad-1', NULL, 'T', '{}',
                       tags => (SELECT array_agg('t' || i) FROM generate_series(1, 65) i))$$);
SELECT pg_temp.try($$SELECT eventstore.append('bad-1', NULL, ARRAY[eventstore.event('T', '{}',
                       tags => (SELECT array_agg('t' || i) FROM generate_series(1, 64) i))])$$);
SELECT pg_temp.try($$SELECT eventstore.append('bad-1', NULL, ARRAY[eventstore.event('T', '{}'),
                       eventstore.event('T', '{}', tags => ARRAY[ARRAY['a'], ARRAY['b']])])$$);
-- The two at the limits (256 bytes, 64 tags) were written; nothing else.
SELECT count(*) FROM eventstore.read_stream('bad-1');
SELECT max(cardinality(tags)) FROM eventstore.read_stream('bad-1');

------------------------------------------------------------------------
-- Queries: validation
------------------------------------------------------------------------
SELECT pg_temp.try($$SELECT * FROM eventstore.read_query(NULL)$$);
SELECT pg_temp.try($$SELECT * FROM eventstore.read_query('[]')$$);
SELECT pg_temp.try($$SELECT * FROM eventstore.read_query('"x"')$$);
SELECT pg_temp.try($$SELECT * FROM eventstore.read_query('{"item": []}')$$);
SELECT pg_temp.try($$SELECT * FROM eventstore.read_query('{"items": {}}')$$);
SELECT pg_temp.try($$SELECT * FROM eventstore.read_query('{"items": [1]}')$$);
SELECT pg_temp.try($$SELECT * FROM eventstore.read_query('{"items": [{"type": ["A"]}]}')$$);
SELECT pg_temp.try($$SELECT * FROM eventstore.read_query('{"items": [{"types": "A"}]}')$$);
SELECT pg_temp.try($$SELECT * FROM eventstore.read_query('{"items": [{"types": []}]}')$$);
SELECT pg_temp.try($$SELECT * FROM eventstore.read_query('{"items": [{"tags": [1]}]}')$$);
SELECT pg_temp.try($$SELECT * FROM eventstore.read_query('{"items": [{"tags": [null]}]}')$$);
SELECT pg_temp.try($$SELECT * FROM eventstore.read_query('{"items": [{"tags": [""]}]}')$$);
SELECT pg_temp.try($$SELECT * FROM eventstore.read_query('{"items": [{"tags": ["a"]}, {"types": [""]}]}')$$);
SELECT pg_temp.try(format($$SELECT * FROM eventstore.read_query('{"items": [{"tags": ["%s"]}]}')$$, repeat('x', 257)));
SELECT pg_temp.try($$SELECT * FROM eventstore.read_query(
    jsonb_build_object('items', (SELECT jsonb_agg(jsonb_build_object('tags', jsonb_build_array('t' || i)))
                                   FROM generate_series(1, 10000) i)))$$);
SELECT pg_temp.try($$SELECT * FROM eventstore.read_query(
    jsonb_build_object('items', (SELECT jsonb_agg(jsonb_build_object('tags', jsonb_build_array('t' || i)))
                                   FROM generate_series(1, 100) i)))$$);
SELECT pg_temp.try($$SELECT * FROM eventstore.read_query('{}', 0, -1)$$);

------------------------------------------------------------------------
-- read_query: items OR-ed; types AND tags within an item
------------------------------------------------------------------------
SELECT global_position, event_type, tags FROM eventstore.read_query('{}');
SELECT global_position, event_type, tags FROM eventstore.read_query('{"items": []}');
SELECT global_position, event_type, tags FROM eventstore.read_query('{"items": [{}]}', 2);
SELECT global_position FROM eventstore.read_query('{"items": [{"types": ["Untagged", "CourseDefined"]}]}');
SELECT global_position FROM eventstore.read_query('{"items": [{"tags": ["course:1"]}]}');
SELECT global_position FROM eventstore.read_query('{"items": [{"tags": ["course:1", "student:1"]}]}');
SELECT global_position FROM eventstore.read_query('{"items": [{"types": ["StudentRegistered"], "tags": ["course:1"]}]}');
SELECT global_position FROM eventstore.read_query('{"items": [{"types": ["StudentRegistered"], "tags": ["student:1"]},
                                                              {"types": ["CourseDefined"]}]}');
SELECT global_position FROM eventstore.read_query('{"items": [{"tags": ["student:1"]}]}', 0, 1);
SELECT global_position FROM eventstore.read_query('{"items": [{"tags": ["student:1"]}]}', 2, 0);
SELECT global_position FROM eventstore.read_query('{"items": [{"tags": ["nobody"]}]}');
-- the same rows as the hand-written SELECT
SELECT (SELECT array_agg(global_position) FROM eventstore.read_query('{"items": [{"tags": ["course:1"]}]}'))
     = (SELECT array_agg(global_position ORDER BY global_position) FROM eventstore.events
         WHERE tags @> ARRAY['course:1']) AS same_as_select;
-- The result goes in a context the backend keeps (its first block kept
-- across calls; README "Consistency across streams (DCB)"), one result at a
-- time: a second read_query while the first one's result is still read (a
-- join, a subquery per row, an open cursor) builds its own, and an error
-- gives the context back.
SELECT name, total_bytes BETWEEN 512 * 1024 AND 600 * 1024 AS kept_first_block
  FROM pg_backend_memory_contexts WHERE name = 'eventstore read_query result';
SELECT a.global_position, b.global_position
  FROM eventstore.read_query('{"items": [{"tags": ["course:1"]}]}') a
  JOIN eventstore.read_query('{"items": [{"tags": ["student:1"]}]}') b USING (global_position)
 ORDER BY 1;
SELECT t, (SELECT array_agg(global_position)
             FROM eventstore.read_query(jsonb_build_object('items', jsonb_build_array(
                                        jsonb_build_object('tags', jsonb_build_array(t))))))
  FROM unnest(ARRAY['course:1', 'student:1', 'nobody']) t;
SELECT (eventstore.read_query('{"items": [{"tags": ["course:1"]}]}')).global_position;
BEGIN;
DECLARE c CURSOR FOR SELECT global_position, event_type, tags FROM eventstore.read_query('{}');
FETCH 2 FROM c;
SELECT array_agg(global_position) AS meanwhile FROM eventstore.read_query('{"items": [{"tags": ["course:1"]}]}');
SELECT array_agg(event_type) AS meanwhile FROM eventstore.read_query('{"items": [{"tags": ["student:1"]}]}');
FETCH ALL FROM c;
COMMIT;
SELECT pg_temp.try($$SELECT 1 / (global_position - global_position) FROM eventstore.read_query('{}')$$);
SELECT array_agg(global_position) AS after_error FROM eventstore.read_query('{"items": [{"tags": ["course:1"]}]}');

------------------------------------------------------------------------
-- Conditional append
------------------------------------------------------------------------
-- condition validation
SELECT pg_temp.try($$SELECT eventstore.append_event('c-1', NULL, 'T', '{}', condition => '[]')$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('c-1', NULL, 'T', '{}', condition => '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('c-1', NULL, 'T', '{}',
                       condition => '{"fail_if_events_match": {}, "before": 1}')$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('c-1', NULL, 'T', '{}',
                       condition => '{"fail_if_events_match": []}')$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('c-1', NULL, 'T', '{}',
                       condition => '{"fail_if_events_match": {"items": [{"tags": [7]}]}}')$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('c-1', NULL, 'T', '{}',
                       condition => '{"fail_if_events_match": {}, "after": -1}')$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('c-1', NULL, 'T', '{}',
                       condition => '{"fail_if_events_match": {}, "after": 1.5}')$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('c-1', NULL, 'T', '{}',
                       condition => '{"fail_if_events_match": {}, "after": "4"}')$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('c-1', NULL, 'T', '{}',
                       condition => '{"fail_if_events_match": {}, "after": 1e30}')$$);
-- above the horizon: refused, not clamped
SELECT pg_temp.try($$SELECT eventstore.append_event('c-1', NULL, 'T', '{}',
                       condition => '{"fail_if_events_match": {}, "after": 1000}')$$);
SELECT count(*) AS nothing_written FROM eventstore.read_stream('c-1');

-- The course example: capacity 2 (event 1), student 1 subscribed (event 3).
-- A second student decides on what read_query returned: its last position.
SELECT max(global_position) AS pos FROM eventstore.read_query(
    '{"items": [{"types": ["CourseDefined", "StudentSubscribed"], "tags": ["course:1"]},
                {"types": ["StudentSubscribed"], "tags": ["student:2"]}]}') \gset
SELECT :pos AS consistency_position;
SELECT stream_version, global_position FROM eventstore.append('student-2', NULL, ARRAY[
    eventstore.event('StudentSubscribed', '{}', tags => ARRAY['student:2', 'course:1'])],
    condition => jsonb_build_object('fail_if_events_match',
        '{"items": [{"types": ["CourseDefined", "StudentSubscribed"], "tags": ["course:1"]},
                    {"types": ["StudentSubscribed"], "tags": ["student:2"]}]}'::jsonb, 'after', :pos));
-- A third student decided on the same position: the course moved on (ES412).
SELECT pg_temp.detail(format($$SELECT eventstore.append('student-3', NULL, ARRAY[
    eventstore.event('StudentSubscribed', '{}', tags => ARRAY['student:3', 'course:1'])],
    condition => jsonb_build_object('fail_if_events_match',
        '{"items": [{"types": ["CourseDefined", "StudentSubscribed"], "tags": ["course:1"]},
                    {"types": ["StudentSubscribed"], "tags": ["student:3"]}]}'::jsonb, 'after', %s))$$, :pos));
SELECT pg_temp.try(format($$SELECT eventstore.append('student-3', NULL, ARRAY[
    eventstore.event('StudentSubscribed', '{}', tags => ARRAY['student:3', 'course:1'])],
    condition => jsonb_build_object('fail_if_events_match', '{"items": [{"tags": ["course:1"]}]}'::jsonb,
                                    'after', %s))$$, :pos));
-- An event of another type with the course's tag does not match.
SELECT pg_temp.try(format($$SELECT eventstore.append_event('student-3', NULL, 'StudentSubscribed', '{}',
    tags => ARRAY['student:3', 'course:2'],
    condition => '{"fail_if_events_match": {"items": [{"types": ["StudentSubscribed"], "tags": ["course:2"]}]}}')$$));
-- Uniqueness: no "after", no matching event at all.
SELECT global_position FROM eventstore.append_event('user-1', 0, 'UserRegistered', '{}',
    tags => ARRAY['username:ada'],
    condition => '{"fail_if_events_match": {"items": [{"types": ["UserRegistered"], "tags": ["username:ada"]}]}}');
SELECT pg_temp.detail($$SELECT eventstore.append_event('user-2', 0, 'UserRegistered', '{}',
    tags => ARRAY['username:ada'],
    condition => '{"fail_if_events_match": {"items": [{"types": ["UserRegistered"], "tags": ["username:ada"]}]}}')$$);
-- "after": null is the same as no after; an empty query matches everything.
SELECT pg_temp.try($$SELECT eventstore.append_event('user-3', 0, 'UserRegistered', '{}',
    condition => '{"fail_if_events_match": {"items": [{"tags": ["username:ada"]}]}, "after": null}')$$);
SELECT pg_temp.detail($$SELECT eventstore.append_event('x-1', NULL, 'T', '{}',
    condition => '{"fail_if_events_match": {}, "after": 3}')$$);

-- Composition with the expected version: both are checked, the version first.
SELECT max(global_position) AS head FROM eventstore.events \gset
SELECT pg_temp.try(format($$SELECT eventstore.append_event('user-1', 0, 'Renamed', '{}',
    condition => '{"fail_if_events_match": {"items": [{"types": ["Nothing"]}]}, "after": %s}')$$, :head));
SELECT pg_temp.try(format($$SELECT eventstore.append_event('user-1', 1, 'Renamed', '{}',
    condition => '{"fail_if_events_match": {"items": [{"types": ["UserRegistered"]}]}, "after": 0}')$$));
SELECT stream_version FROM eventstore.append_event('user-1', 1, 'Renamed', '{}',
    condition => format('{"fail_if_events_match": {"items": [{"types": ["UserRegistered"]}]}, "after": %s}', :head)::jsonb);

-- Idempotent retries: a retry of a conditional append that committed
-- returns the original result, although its condition now fails.
SELECT stream_version, global_position FROM eventstore.append_event('inv-1', NULL, 'InvoiceCreated', '{"n": 1}',
    event_id => '00000000-0000-4000-8000-000000000001', tags => ARRAY['invoice'],
    condition => '{"fail_if_events_match": {"items": [{"types": ["InvoiceCreated"]}]}}') \gset first_
SELECT stream_version = :first_stream_version AND global_position = :first_global_position AS retry_same
  FROM eventstore.append_event('inv-1', NULL, 'InvoiceCreated', '{"n": 1}',
    event_id => '00000000-0000-4000-8000-000000000001', tags => ARRAY['invoice'],
    condition => '{"fail_if_events_match": {"items": [{"types": ["InvoiceCreated"]}]}}');
SELECT count(*) FROM eventstore.read_query('{"items": [{"types": ["InvoiceCreated"]}]}');

-- The condition sees this transaction's own events.
BEGIN;
SELECT stream_version FROM eventstore.append_event('own-1', NULL, 'Own', '{}', tags => ARRAY['own']);
SELECT pg_temp.try($$SELECT eventstore.append_event('own-2', NULL, 'Own', '{}',
    condition => '{"fail_if_events_match": {"items": [{"tags": ["own"]}]}}')$$);
ROLLBACK;

-- Old calls keep working: positional arguments, no tags.
SELECT stream_version FROM eventstore.append_event('plain-1', NULL, 'T', '{}', NULL, NULL);
SELECT stream_version FROM eventstore.append('plain-1', 1, ARRAY[ROW('T', '{}', NULL, NULL, NULL)::eventstore.new_event]);
SELECT tags FROM eventstore.read_stream('plain-1');

------------------------------------------------------------------------
-- Locks: a plain untagged append takes 2 consistency-boundary locks (the
-- global key and its type's); a tagged event 2 more per tag; a condition
-- one per query key plus one.  A 1,000-event batch with distinct tags
-- falls back to 2.
------------------------------------------------------------------------
CREATE FUNCTION pg_temp.dcb_locks() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 17750
       AND pid = pg_backend_pid()
$$;
BEGIN;
SELECT stream_version FROM eventstore.append_event('locks-1', NULL, 'T', '{}');
SELECT pg_temp.dcb_locks() AS plain;
ROLLBACK;
BEGIN;
SELECT stream_version FROM eventstore.append_event('locks-1', NULL, 'T', '{}', tags => ARRAY['a', 'b']);
SELECT pg_temp.dcb_locks() AS two_tags;
ROLLBACK;
BEGIN;
SELECT stream_version FROM eventstore.append_event('locks-1', NULL, 'T', '{}', tags => ARRAY['a'],
    condition => '{"fail_if_events_match": {"items": [{"types": ["U"], "tags": ["b"]}]}}');
SELECT pg_temp.dcb_locks() AS conditional;
SELECT mode, count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 17750
   AND pid = pg_backend_pid() GROUP BY mode ORDER BY mode;
ROLLBACK;
BEGIN;
SELECT stream_version FROM eventstore.append('locks-1', NULL,
    (SELECT array_agg(eventstore.event('T', '{}', tags => ARRAY['t' || i])) FROM generate_series(1, 1000) i));
SELECT pg_temp.dcb_locks() AS big_batch;
-- (read_query stops at the horizon, below this transaction's own positions)
SELECT count(*) AS in_read_query FROM eventstore.read_query('{"items": [{"tags": ["t500"]}]}');
SELECT count(*) AS stored FROM eventstore.events WHERE tags @> ARRAY['t500'];
ROLLBACK;
SELECT max(global_position) AS head FROM eventstore.events \gset
BEGIN;
SELECT stream_version FROM eventstore.append_event('locks-1', NULL, 'T', '{}',
    condition => format('{"fail_if_events_match": {}, "after": %s}', :head)::jsonb);
SELECT mode, count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 17750
   AND pid = pg_backend_pid() GROUP BY mode ORDER BY mode;
ROLLBACK;
