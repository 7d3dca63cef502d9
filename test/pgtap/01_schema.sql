-- API contract, part 1: the objects of the core store and their shapes.
-- Run with pg_prove against a database with pgtap and eventstore created.
BEGIN;
SELECT plan(79);

-- The schema and the extension
SELECT has_schema('eventstore');
SELECT has_extension('eventstore');
SELECT is((SELECT extrelocatable FROM pg_extension WHERE extname = 'eventstore'), false,
          'eventstore is not relocatable');
SELECT is((SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'eventstore'),
          'eventstore', 'eventstore lives in schema eventstore');

-- The events table
SELECT has_table('eventstore', 'events', 'table eventstore.events exists');
SELECT columns_are('eventstore', 'events',
    ARRAY['global_position', 'stream_id', 'stream_version', 'event_id',
          'event_type', 'data', 'metadata', 'created_at', 'tags'],
    'events has exactly the documented columns');
SELECT col_type_is('eventstore', 'events', 'global_position', 'bigint', 'global_position is bigint');
SELECT col_type_is('eventstore', 'events', 'stream_id', 'text', 'stream_id is text');
SELECT col_type_is('eventstore', 'events', 'stream_version', 'bigint', 'stream_version is bigint');
SELECT col_type_is('eventstore', 'events', 'event_id', 'uuid', 'event_id is uuid');
SELECT col_type_is('eventstore', 'events', 'event_type', 'text', 'event_type is text');
SELECT col_type_is('eventstore', 'events', 'data', 'jsonb', 'data is jsonb');
SELECT col_type_is('eventstore', 'events', 'metadata', 'jsonb', 'metadata is jsonb');
SELECT col_type_is('eventstore', 'events', 'created_at', 'timestamp with time zone', 'created_at is timestamptz');
SELECT col_not_null('eventstore', 'events', 'global_position', 'global_position is NOT NULL');
SELECT col_not_null('eventstore', 'events', 'stream_id', 'stream_id is NOT NULL');
SELECT col_not_null('eventstore', 'events', 'stream_version', 'stream_version is NOT NULL');
SELECT col_not_null('eventstore', 'events', 'event_id', 'event_id is NOT NULL');
SELECT col_not_null('eventstore', 'events', 'event_type', 'event_type is NOT NULL');
SELECT col_not_null('eventstore', 'events', 'data', 'data is NOT NULL');
SELECT col_is_null('eventstore', 'events', 'metadata', 'metadata may be NULL');
SELECT col_not_null('eventstore', 'events', 'created_at', 'created_at is NOT NULL');
SELECT col_default_is('eventstore', 'events', 'created_at', 'now()', 'created_at defaults to now()');
SELECT col_is_pk('eventstore', 'events', ARRAY['stream_id', 'stream_version'],
                 'the primary key is (stream_id, stream_version)');
SELECT col_is_unique('eventstore', 'events', ARRAY['stream_id', 'event_id'],
                     'event ids are unique per stream');
SELECT col_has_check('eventstore', 'events', 'stream_version', 'stream_version has a check');
SELECT has_index('eventstore', 'events', 'events_global_position_idx', 'global_position',
                 'global_position is indexed');
SELECT has_index('eventstore', 'events', 'events_category_position_idx',
                 ARRAY['split_part(stream_id, ''-''::text, 1)', 'global_position'],
                 'category and position are indexed');
SELECT has_sequence('eventstore', 'events_global_position_seq', 'the position sequence exists');
SELECT is((SELECT seqcache FROM pg_sequence
            WHERE seqrelid = 'eventstore.events_global_position_seq'::regclass), 1::bigint,
          'the position sequence has CACHE 1');
SELECT is(pg_get_serial_sequence('eventstore.events', 'global_position'),
          'eventstore.events_global_position_seq', 'the sequence is owned by events.global_position');
SELECT has_trigger('eventstore', 'events', 'events_immutable', 'events has the immutability trigger');
SELECT trigger_is('eventstore', 'events', 'events_immutable', 'eventstore', 'refuse_change',
                  'the trigger calls eventstore.refuse_change()');
SELECT is((SELECT tgenabled FROM pg_trigger
            WHERE tgrelid = 'eventstore.events'::regclass AND tgname = 'events_immutable'),
          'A'::"char", 'the trigger is enabled ALWAYS');
SELECT ok((SELECT extconfig @> ARRAY['eventstore.events'::regclass::oid,
                                     'eventstore.events_global_position_seq'::regclass::oid]
             FROM pg_extension WHERE extname = 'eventstore'),
          'pg_dump includes the events and the sequence');

-- The type new_event
SELECT has_composite('eventstore', 'new_event', 'type eventstore.new_event exists');
SELECT columns_are('eventstore', 'new_event', ARRAY['event_type', 'data', 'metadata', 'event_id', 'tags'],
                   'new_event has the documented attributes');
SELECT col_type_is('eventstore', 'new_event', 'event_type', 'text', 'new_event.event_type is text');
SELECT col_type_is('eventstore', 'new_event', 'data', 'jsonb', 'new_event.data is jsonb');
SELECT col_type_is('eventstore', 'new_event', 'metadata', 'jsonb', 'new_event.metadata is jsonb');
SELECT col_type_is('eventstore', 'new_event', 'event_id', 'uuid', 'new_event.event_id is uuid');

-- Functions: exact signatures and return types
SELECT has_function('eventstore', 'append', ARRAY['text', 'bigint', 'eventstore.new_event[]', 'jsonb', 'regclass'],
                    'append(text, bigint, new_event[], jsonb, regclass) exists');
SELECT function_returns('eventstore', 'append', ARRAY['text', 'bigint', 'eventstore.new_event[]', 'jsonb', 'regclass'],
                        'record', 'append returns a record');
SELECT is(pg_get_function_result('eventstore.append(text,bigint,eventstore.new_event[],jsonb,regclass)'::regprocedure),
          'record', 'append has OUT parameters');
SELECT is(pg_get_function_arguments('eventstore.append(text,bigint,eventstore.new_event[],jsonb,regclass)'::regprocedure),
          'stream_id text, expected_version bigint, events eventstore.new_event[], condition jsonb DEFAULT NULL::jsonb, store regclass DEFAULT ''eventstore.events''::regclass, OUT stream_version bigint, OUT global_position bigint',
          'append: arguments and OUT (stream_version, global_position)');
SELECT has_function('eventstore', 'append_event', ARRAY['text', 'bigint', 'text', 'jsonb', 'jsonb', 'uuid', 'text[]', 'jsonb', 'regclass'],
                    'append_event(text, bigint, text, jsonb, jsonb, uuid, text[], jsonb, regclass) exists');
SELECT function_returns('eventstore', 'append_event', ARRAY['text', 'bigint', 'text', 'jsonb', 'jsonb', 'uuid', 'text[]', 'jsonb', 'regclass'],
                        'record', 'append_event returns a record');
SELECT is(pg_get_function_arguments('eventstore.append_event(text,bigint,text,jsonb,jsonb,uuid,text[],jsonb,regclass)'::regprocedure),
          'stream_id text, expected_version bigint, event_type text, data jsonb, metadata jsonb DEFAULT NULL::jsonb, event_id uuid DEFAULT NULL::uuid, tags text[] DEFAULT NULL::text[], condition jsonb DEFAULT NULL::jsonb, store regclass DEFAULT ''eventstore.events''::regclass, OUT stream_version bigint, OUT global_position bigint',
          'append_event: arguments, defaults and OUT (stream_version, global_position)');
SELECT has_function('eventstore', 'event', ARRAY['text', 'jsonb', 'jsonb', 'uuid', 'text[]'],
                    'event(text, jsonb, jsonb, uuid, text[]) exists');
SELECT function_returns('eventstore', 'event', ARRAY['text', 'jsonb', 'jsonb', 'uuid', 'text[]'],
                        'eventstore.new_event', 'event returns new_event');
SELECT has_function('eventstore', 'read_stream', ARRAY['text', 'bigint', 'integer', 'regclass'],
                    'read_stream(text, bigint, integer) exists');
SELECT function_returns('eventstore', 'read_stream', ARRAY['text', 'bigint', 'integer', 'regclass'],
                        'setof eventstore.events', 'read_stream returns setof events');
SELECT has_function('eventstore', 'read_stream_backwards', ARRAY['text', 'bigint', 'integer', 'regclass'],
                    'read_stream_backwards(text, bigint, integer) exists');
SELECT function_returns('eventstore', 'read_stream_backwards', ARRAY['text', 'bigint', 'integer', 'regclass'],
                        'setof eventstore.events', 'read_stream_backwards returns setof events');
SELECT has_function('eventstore', 'read_all', ARRAY['bigint', 'integer', 'regclass'],
                    'read_all(bigint, integer) exists');
SELECT function_returns('eventstore', 'read_all', ARRAY['bigint', 'integer', 'regclass'],
                        'setof eventstore.events', 'read_all returns setof events');
SELECT has_function('eventstore', 'read_category', ARRAY['text', 'bigint', 'integer', 'regclass'],
                    'read_category(text, bigint, integer) exists');
SELECT function_returns('eventstore', 'read_category', ARRAY['text', 'bigint', 'integer', 'regclass'],
                        'setof eventstore.events', 'read_category returns setof events');
SELECT has_function('eventstore', 'stream_version', ARRAY['text', 'regclass'], 'stream_version(text) exists');
SELECT function_returns('eventstore', 'stream_version', ARRAY['text', 'regclass'], 'bigint',
                        'stream_version returns bigint');
SELECT has_function('eventstore', 'category', ARRAY['text'], 'category(text) exists');
SELECT function_returns('eventstore', 'category', ARRAY['text'], 'text', 'category returns text');
SELECT is(pg_get_function_arguments(p.oid), d, p.proname || ': argument defaults')
  FROM (VALUES ('eventstore.read_stream(text,bigint,integer,regclass)'::regprocedure,
                'stream_id text, from_version bigint DEFAULT 1, max_count integer DEFAULT NULL::integer, store regclass DEFAULT ''eventstore.events''::regclass'),
               ('eventstore.read_stream_backwards(text,bigint,integer,regclass)'::regprocedure,
                'stream_id text, from_version bigint DEFAULT NULL::bigint, max_count integer DEFAULT NULL::integer, store regclass DEFAULT ''eventstore.events''::regclass'),
               ('eventstore.read_all(bigint,integer,regclass)'::regprocedure,
                'after_position bigint DEFAULT 0, max_count integer DEFAULT 1000, store regclass DEFAULT ''eventstore.events''::regclass'),
               ('eventstore.read_category(text,bigint,integer,regclass)'::regprocedure,
                'category text, after_position bigint DEFAULT 0, max_count integer DEFAULT 1000, store regclass DEFAULT ''eventstore.events''::regclass'),
               ('eventstore.event(text,jsonb,jsonb,uuid,text[])'::regprocedure,
                'event_type text, data jsonb, metadata jsonb DEFAULT NULL::jsonb, event_id uuid DEFAULT NULL::uuid, tags text[] DEFAULT NULL::text[]'))
       AS v(f, d)
  JOIN pg_proc p ON p.oid = v.f
 ORDER BY p.proname;

-- Function properties
SELECT volatility_is('eventstore', 'append', ARRAY['text', 'bigint', 'eventstore.new_event[]', 'jsonb', 'regclass'], 'volatile',
                     'append is VOLATILE');
SELECT volatility_is('eventstore', 'read_all', ARRAY['bigint', 'integer', 'regclass'], 'volatile',
                     'read_all is VOLATILE (a fresh snapshot per call)');
SELECT volatility_is('eventstore', 'read_stream', ARRAY['text', 'bigint', 'integer', 'regclass'], 'stable',
                     'read_stream is STABLE');
SELECT volatility_is('eventstore', 'category', ARRAY['text'], 'immutable', 'category is IMMUTABLE');
SELECT isnt_strict('eventstore', 'stream_version', ARRAY['text', 'regclass'],
                   'stream_version is not STRICT (a NULL store is an error, 22004)');
SELECT is(eventstore.stream_version(NULL), NULL::bigint, 'stream_version of a NULL stream id is NULL');
SELECT isnt_strict('eventstore', 'append', ARRAY['text', 'bigint', 'eventstore.new_event[]', 'jsonb', 'regclass'],
                   'append is not STRICT (it reports NULL arguments)');
SELECT is((SELECT count(*)::int FROM pg_proc
            WHERE pronamespace = 'eventstore'::regnamespace AND prosecdef
              AND proname IN ('append', 'append_event', 'event', 'read_stream', 'read_stream_backwards',
                              'read_all', 'read_category', 'stream_version', 'category')),
          0, 'no core function is SECURITY DEFINER');

-- The GUCs
SELECT is(current_setting('eventstore.max_event_size'), '1MB', 'eventstore.max_event_size defaults to 1MB');
SELECT is(current_setting('eventstore.correlation_id'), '', 'eventstore.correlation_id defaults to empty');
SELECT is(current_setting('eventstore.causation_id'), '', 'eventstore.causation_id defaults to empty');
SELECT throws_ok($$SET eventstore.no_such_setting = 1$$, '42602', NULL,
                 'the eventstore. prefix is reserved');

SELECT * FROM finish();
ROLLBACK;
