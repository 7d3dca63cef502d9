-- API contract, part 4: reads.  read_stream, read_stream_backwards,
-- stream_version and category, their arguments and errors; read_all and
-- read_category inside the appending transaction.
--
-- This file runs in one transaction that is rolled back, and the read
-- horizon excludes the reader's own in-flight appends: read_all and
-- read_category stop before this transaction's first position, so they never
-- return the events appended here.  That is asserted below as documented
-- behaviour; their content is tested in the pg_regress suite (sql/reads.sql),
-- where statements commit.
BEGIN;
SELECT plan(39);

SELECT lives_ok($$SELECT eventstore.append('tap_read-1', 0, ARRAY[
                    eventstore.event('E1', '{"n": 1}'), eventstore.event('E2', '{"n": 2}'),
                    eventstore.event('E3', '{"n": 3}')])$$, 'fixture: tap_read-1 versions 1-3');
SELECT lives_ok($$SELECT eventstore.append_event('tap_read-2', 0, 'Other', '{}')$$, 'fixture: tap_read-2');
SELECT lives_ok($$SELECT eventstore.append('tap_read-1', 3, ARRAY[
                    eventstore.event('E4', '{"n": 4}'), eventstore.event('E5', '{"n": 5}')])$$,
                'fixture: tap_read-1 versions 4-5');
SELECT lives_ok($$SELECT eventstore.append_event('tap_read', 0, 'NoDash', '{}')$$, 'fixture: tap_read');

------------------------------------------------------------------------
-- read_stream
------------------------------------------------------------------------
SELECT results_eq($$SELECT stream_version, event_type, data FROM eventstore.read_stream('tap_read-1')$$,
                  $$VALUES (1::bigint, 'E1'::text, '{"n": 1}'::jsonb), (2, 'E2', '{"n": 2}'),
                           (3, 'E3', '{"n": 3}'), (4, 'E4', '{"n": 4}'), (5, 'E5', '{"n": 5}')$$,
                  'read_stream returns the stream ascending');
SELECT results_eq($$SELECT stream_version FROM eventstore.read_stream('tap_read-1', 3)$$,
                  $$VALUES (3::bigint), (4), (5)$$, 'read_stream from_version');
SELECT results_eq($$SELECT stream_version FROM eventstore.read_stream('tap_read-1', 2, 2)$$,
                  $$VALUES (2::bigint), (3)$$, 'read_stream from_version and max_count');
SELECT results_eq($$SELECT stream_version FROM eventstore.read_stream('tap_read-1', max_count => 1)$$,
                  $$VALUES (1::bigint)$$, 'read_stream max_count by name');
SELECT is_empty($$SELECT * FROM eventstore.read_stream('tap_read-1', 6)$$, 'read_stream past the end is empty');
SELECT is_empty($$SELECT * FROM eventstore.read_stream('tap_read-1', 1, 0)$$, 'read_stream max_count 0 is empty');
SELECT is_empty($$SELECT * FROM eventstore.read_stream('tap_read-missing')$$, 'a missing stream reads empty');
SELECT results_eq($$SELECT e FROM eventstore.read_stream('tap_read-2') AS e$$,
                  $$SELECT e FROM eventstore.events AS e WHERE stream_id = 'tap_read-2'$$,
                  'read_stream returns whole rows of eventstore.events');
SELECT results_eq($$SELECT global_position FROM eventstore.read_stream('tap_read-1')$$,
                  $$SELECT global_position FROM eventstore.events WHERE stream_id = 'tap_read-1' ORDER BY global_position$$,
                  'stream order is position order');
SELECT throws_ok($$SELECT * FROM eventstore.read_stream(NULL)$$, '22004', 'stream_id must not be null',
                 'read_stream(NULL): 22004');
SELECT throws_ok($$SELECT * FROM eventstore.read_stream('tap_read-1', 1, -1)$$, '22023',
                 'max_count must not be negative', 'read_stream with a negative max_count: 22023');

------------------------------------------------------------------------
-- read_stream_backwards
------------------------------------------------------------------------
SELECT results_eq($$SELECT stream_version FROM eventstore.read_stream_backwards('tap_read-1')$$,
                  $$VALUES (5::bigint), (4), (3), (2), (1)$$, 'read_stream_backwards returns the stream descending');
SELECT results_eq($$SELECT stream_version FROM eventstore.read_stream_backwards('tap_read-1', 3)$$,
                  $$VALUES (3::bigint), (2), (1)$$, 'read_stream_backwards from_version');
SELECT results_eq($$SELECT stream_version FROM eventstore.read_stream_backwards('tap_read-1', NULL, 2)$$,
                  $$VALUES (5::bigint), (4)$$, 'read_stream_backwards: the last two events');
SELECT results_eq($$SELECT stream_version FROM eventstore.read_stream_backwards('tap_read-1', 4, 2)$$,
                  $$VALUES (4::bigint), (3)$$, 'read_stream_backwards from_version and max_count');
SELECT is_empty($$SELECT * FROM eventstore.read_stream_backwards('tap_read-1', 0)$$,
                'read_stream_backwards from 0 is empty');
SELECT throws_ok($$SELECT * FROM eventstore.read_stream_backwards(NULL)$$, '22004', 'stream_id must not be null',
                 'read_stream_backwards(NULL): 22004');
SELECT throws_ok($$SELECT * FROM eventstore.read_stream_backwards('tap_read-1', NULL, -1)$$, '22023',
                 'max_count must not be negative', 'read_stream_backwards with a negative max_count: 22023');

------------------------------------------------------------------------
-- stream_version and category
------------------------------------------------------------------------
SELECT is(eventstore.stream_version('tap_read-1'), 5::bigint, 'stream_version of a stream');
SELECT is(eventstore.stream_version('tap_read-missing'), 0::bigint, 'stream_version of a missing stream is 0');
SELECT is(eventstore.stream_version(NULL), NULL, 'stream_version(NULL) is NULL');
SELECT results_eq($$SELECT eventstore.category(s) FROM unnest(ARRAY['tap_read-1', 'tap_read', 'a-b-c', '-x']) AS s$$,
                  $$VALUES ('tap_read'::text), ('tap_read'), ('a'), ('')$$,
                  'category is the part of the stream id before the first -');

------------------------------------------------------------------------
-- read_all and read_category inside this (appending) transaction
------------------------------------------------------------------------
SELECT is_empty($$SELECT * FROM eventstore.read_all(0, NULL) WHERE stream_id LIKE 'tap_read%'$$,
                'read_all does not return the reader''s own uncommitted events');
SELECT is_empty($$SELECT * FROM eventstore.read_category('tap_read', 0, NULL)$$,
                'read_category does not return the reader''s own uncommitted events');
SELECT ok((SELECT coalesce(max(global_position), 0) FROM eventstore.read_all(0, NULL))
              < (SELECT min(global_position) FROM eventstore.events WHERE stream_id LIKE 'tap_read%'),
          'read_all stops before this transaction''s first position');
SELECT is((SELECT count(*) FROM eventstore.read_all(0, NULL)),
          (SELECT count(*) FROM eventstore.events
            WHERE global_position < (SELECT min(global_position) FROM eventstore.events
                                      WHERE stream_id LIKE 'tap_read%')),
          'read_all returns every event below that position');
SELECT is(eventstore.stream_version('tap_read-1'), 5::bigint,
          'stream_version does see the transaction''s own events');
SELECT is_empty($$SELECT * FROM eventstore.read_all(9223372036854775807)$$, 'read_all after the end is empty');
SELECT is_empty($$SELECT * FROM eventstore.read_all(0, 0)$$, 'read_all with max_count 0 is empty');
SELECT lives_ok($$SELECT * FROM eventstore.read_all()$$, 'read_all with its defaults');
SELECT lives_ok($$SELECT * FROM eventstore.read_all(NULL, NULL)$$, 'read_all with NULL arguments');
SELECT throws_ok($$SELECT * FROM eventstore.read_all(0, -1)$$, '22023', 'max_count must not be negative',
                 'read_all with a negative max_count: 22023');
SELECT throws_ok($$SELECT * FROM eventstore.read_category(NULL)$$, '22004', 'category must not be null',
                 'read_category(NULL): 22004');
SELECT throws_ok($$SELECT * FROM eventstore.read_category('')$$, '22023', 'category must not be empty',
                 'read_category(''''): 22023');
SELECT throws_ok($$SELECT * FROM eventstore.read_category('tap_read', 0, -1)$$, '22023',
                 'max_count must not be negative', 'read_category with a negative max_count: 22023');

SELECT * FROM finish();
ROLLBACK;
