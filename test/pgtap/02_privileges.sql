-- API contract, part 2: roles and privileges.  Writing is EXECUTE on
-- append / append_event (revoked from PUBLIC) and INSERT on the store (0.6.0
-- on); rows are inserted as the table's owner, and a direct INSERT by anyone
-- else is refused by the store's trigger; readers need SELECT on the table.
BEGIN;
SELECT plan(47);

CREATE ROLE es_tap_nobody;
CREATE ROLE es_tap_writer;
CREATE ROLE es_tap_reader;
-- Every role below may look into the schema; what it may do is up to the grants.
GRANT USAGE ON SCHEMA eventstore TO es_tap_nobody, es_tap_writer, es_tap_reader;
GRANT EXECUTE ON FUNCTION eventstore.append(text, bigint, eventstore.new_event[], jsonb, regclass),
                          eventstore.append_event(text, bigint, text, jsonb, jsonb, uuid, text[], jsonb, regclass)
    TO es_tap_writer;
GRANT INSERT ON eventstore.events TO es_tap_writer;
GRANT SELECT ON eventstore.events TO es_tap_reader;

------------------------------------------------------------------------
-- What a fresh role may execute (PUBLIC's grants)
------------------------------------------------------------------------
SELECT ok(NOT has_function_privilege('es_tap_nobody',
              'eventstore.append(text, bigint, eventstore.new_event[], jsonb, regclass)', 'EXECUTE'),
          'a fresh role cannot execute append');
SELECT ok(NOT has_function_privilege('es_tap_nobody',
              'eventstore.append_event(text, bigint, text, jsonb, jsonb, uuid, text[], jsonb, regclass)', 'EXECUTE'),
          'a fresh role cannot execute append_event');
SELECT ok(has_function_privilege('es_tap_nobody', 'eventstore.refuse_change()', 'EXECUTE'),
          'a fresh role can execute refuse_change (a store''s owner attaches it; called directly it only raises)');
SELECT function_privs_are('eventstore', 'append', ARRAY['text', 'bigint', 'eventstore.new_event[]', 'jsonb', 'regclass'],
                          'es_tap_nobody', ARRAY[]::text[], 'append: no privilege for a fresh role');
SELECT function_privs_are('eventstore', 'append_event', ARRAY['text', 'bigint', 'text', 'jsonb', 'jsonb', 'uuid', 'text[]', 'jsonb', 'regclass'],
                          'es_tap_nobody', ARRAY[]::text[], 'append_event: no privilege for a fresh role');
SELECT ok(has_function_privilege('es_tap_nobody', f, 'EXECUTE'), 'a fresh role can execute ' || f)
  FROM unnest(ARRAY['eventstore.read_stream(text, bigint, integer, regclass)',
                    'eventstore.read_stream_backwards(text, bigint, integer, regclass)',
                    'eventstore.read_all(bigint, integer, regclass)',
                    'eventstore.read_category(text, bigint, integer, regclass)',
                    'eventstore.stream_version(text, regclass)',
                    'eventstore.event(text, jsonb, jsonb, uuid, text[])',
                    'eventstore.category(text)']) AS f;
SELECT ok(NOT has_table_privilege('es_tap_nobody', 'eventstore.events', p),
          'a fresh role has no ' || p || ' on events')
  FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) AS p;
SELECT ok(NOT has_sequence_privilege('es_tap_nobody', 'eventstore.events_global_position_seq', 'USAGE'),
          'a fresh role cannot use the position sequence');
SELECT ok(NOT has_schema_privilege('public', 'eventstore', 'USAGE'),
          'PUBLIC has no USAGE on schema eventstore');
-- the grants made above
SELECT function_privs_are('eventstore', 'append', ARRAY['text', 'bigint', 'eventstore.new_event[]', 'jsonb', 'regclass'],
                          'es_tap_writer', ARRAY['EXECUTE'], 'append: EXECUTE granted to the writer');

------------------------------------------------------------------------
-- A role without grants
------------------------------------------------------------------------
SET ROLE es_tap_nobody;
SELECT throws_ok($$SELECT eventstore.append_event('tap_priv-1', 0, 'T', '{}')$$,
                 '42501', 'permission denied for function append_event',
                 'without EXECUTE, append_event is refused');
SELECT throws_ok($$SELECT eventstore.append('tap_priv-1', 0, ARRAY[eventstore.event('T', '{}')])$$,
                 '42501', 'permission denied for function append',
                 'without EXECUTE, append is refused');
SELECT throws_ok($$SELECT * FROM eventstore.read_stream('tap_priv-1')$$,
                 '42501', 'permission denied for store eventstore.events',
                 'without SELECT on events, read_stream is refused');
SELECT throws_ok($$SELECT * FROM eventstore.read_all()$$,
                 '42501', 'permission denied for store eventstore.events',
                 'without SELECT on events, read_all is refused');
SELECT throws_ok($$SELECT * FROM eventstore.read_category('tap_priv')$$,
                 '42501', 'permission denied for store eventstore.events',
                 'without SELECT on events, read_category is refused');
SELECT throws_ok($$SELECT eventstore.stream_version('tap_priv-1')$$,
                 '42501', 'permission denied for store eventstore.events',
                 'without SELECT on events, stream_version is refused');
SELECT is(eventstore.category('tap_priv-1'), 'tap_priv', 'category() needs no table privilege');
RESET ROLE;

------------------------------------------------------------------------
-- A writer: EXECUTE on the append functions, INSERT on the table
------------------------------------------------------------------------
SET ROLE es_tap_writer;
SELECT lives_ok($$SELECT eventstore.append_event('tap_priv-1', 0, 'ByWriter', '{"n": 1}')$$,
                'the writer appends with append_event');
SELECT lives_ok($$SELECT eventstore.append('tap_priv-1', 1, ARRAY[eventstore.event('ByWriter', '{"n": 2}'),
                                                                 eventstore.event('ByWriter', '{"n": 3}')])$$,
                'the writer appends with append');
SELECT throws_ok($$SELECT eventstore.append_event('tap_priv-1', 0, 'ByWriter', '{}')$$,
                 'ES409', NULL, 'the writer gets ES409 on a conflict (its append reads the stream as the owner)');
SELECT is((eventstore.append_event('tap_priv-1', NULL, 'ByWriter', '{}', NULL,
                                   'c0000000-0000-4000-8000-000000000001')).stream_version,
          4::bigint, 'the writer appends with an event id');
SELECT is((eventstore.append_event('tap_priv-1', 0, 'ByWriter', '{}', NULL,
                                   'c0000000-0000-4000-8000-000000000001')).stream_version,
          4::bigint, 'the writer retries idempotently');
SELECT throws_ok($$INSERT INTO eventstore.events (global_position, stream_id, stream_version, event_id, event_type, data)
                   VALUES (1000000, 'tap_priv-1', 99, gen_random_uuid(), 'Forged', '{}')$$,
                 '42501', 'INSERT into events is not allowed: append with eventstore.append()',
                 'the writer cannot insert around the version check');
SELECT throws_ok($$SELECT nextval('eventstore.events_global_position_seq')$$,
                 '42501', NULL, 'the writer cannot take positions from the sequence');
SELECT throws_ok($$SELECT * FROM eventstore.read_stream('tap_priv-1')$$,
                 '42501', 'permission denied for store eventstore.events',
                 'writing does not imply reading');
SELECT throws_ok($$SET eventstore.max_event_size = '10MB'$$,
                 '42501', NULL, 'only a superuser may raise eventstore.max_event_size');
SELECT lives_ok($$SET LOCAL eventstore.correlation_id = 'writer-request'$$,
                'any role may set eventstore.correlation_id');
SELECT lives_ok($$SELECT eventstore.append_event('tap_priv-2', 0, 'Correlated', '{}')$$,
                'the writer appends with a correlation id');
RESET eventstore.correlation_id;
RESET ROLE;

------------------------------------------------------------------------
-- A reader: SELECT on the table, no EXECUTE on the append functions
------------------------------------------------------------------------
SET ROLE es_tap_reader;
SELECT results_eq(
    $$SELECT stream_version, event_type, data FROM eventstore.read_stream('tap_priv-1')$$,
    $$VALUES (1::bigint, 'ByWriter'::text, '{"n": 1}'::jsonb), (2, 'ByWriter', '{"n": 2}'),
             (3, 'ByWriter', '{"n": 3}'), (4, 'ByWriter', '{}')$$,
    'the reader reads what the writer appended');
SELECT is(eventstore.stream_version('tap_priv-1'), 4::bigint, 'the reader reads the stream version');
SELECT is((SELECT metadata FROM eventstore.read_stream('tap_priv-2')),
          '{"correlation_id": "writer-request"}'::jsonb, 'the writer''s correlation id was recorded');
SELECT lives_ok($$SELECT * FROM eventstore.read_all()$$, 'the reader may call read_all');
SELECT lives_ok($$SELECT * FROM eventstore.read_category('tap_priv')$$, 'the reader may call read_category');
SELECT throws_ok($$SELECT eventstore.append_event('tap_priv-1', NULL, 'ByReader', '{}')$$,
                 '42501', 'permission denied for function append_event',
                 'the reader cannot append');
SELECT throws_ok($$DELETE FROM eventstore.events$$,
                 '42501', 'permission denied for table events',
                 'the reader cannot delete');
RESET ROLE;

------------------------------------------------------------------------
-- The rows were written as the table's owner, nothing else changed
------------------------------------------------------------------------
SELECT is((SELECT count(*)::int FROM eventstore.events WHERE stream_id = 'tap_priv-1'), 4,
          'exactly the writer''s four events are stored');
SELECT is((SELECT tableowner::text FROM pg_tables WHERE schemaname = 'eventstore' AND tablename = 'events'),
          (SELECT extowner::regrole::text FROM pg_extension WHERE extname = 'eventstore'),
          'the events table belongs to the extension''s owner');

SELECT * FROM finish();
ROLLBACK;
