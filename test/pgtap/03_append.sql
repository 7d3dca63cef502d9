-- API contract, part 3: appending.  Results, expected-version semantics,
-- every documented SQLSTATE of append / append_event, idempotent retries,
-- generated ids, correlation metadata, immutability (ES002) and two-phase
-- commit (ES001).
BEGIN;
SELECT plan(67);

-- Positions are not transactional (they come from a sequence), so this file
-- compares positions with each other, never with constants.
CREATE TEMP TABLE result_1 AS
    SELECT * FROM eventstore.append_event('tap_app-1', 0, 'Opened', '{"owner": "ada"}');
CREATE TEMP TABLE result_2 AS
    SELECT * FROM eventstore.append('tap_app-1', 1, ARRAY[
        eventstore.event('Deposited', '{"amount": 100}'),
        eventstore.event('Withdrawn', '{"amount": 30}', '{"by": "atm"}')]);

------------------------------------------------------------------------
-- Results
------------------------------------------------------------------------
SELECT is((SELECT stream_version FROM result_1), 1::bigint, 'append_event returns the new version');
SELECT is((SELECT global_position FROM result_1),
          (SELECT global_position FROM eventstore.events WHERE stream_id = 'tap_app-1' AND stream_version = 1),
          'append_event returns the event''s global position');
SELECT is((SELECT stream_version FROM result_2), 3::bigint, 'append returns the version of the last event');
SELECT is((SELECT global_position FROM result_2),
          (SELECT global_position FROM eventstore.events WHERE stream_id = 'tap_app-1' AND stream_version = 3),
          'append returns the position of the last event');
SELECT ok((SELECT global_position FROM result_2) > (SELECT global_position FROM result_1),
          'positions increase in append order');
SELECT results_eq(
    $$SELECT stream_version, event_type, data, metadata FROM eventstore.events
       WHERE stream_id = 'tap_app-1' ORDER BY global_position$$,
    $$VALUES (1::bigint, 'Opened'::text, '{"owner": "ada"}'::jsonb, NULL::jsonb),
             (2, 'Deposited', '{"amount": 100}', NULL),
             (3, 'Withdrawn', '{"amount": 30}', '{"by": "atm"}')$$,
    'the events are stored with consecutive versions, as given');
SELECT ok((SELECT bool_and(created_at BETWEEN now() AND clock_timestamp())
             FROM eventstore.events WHERE stream_id = 'tap_app-1'),
          'created_at is taken during the appending transaction');

------------------------------------------------------------------------
-- Expected version: NULL any, 0 new, N exact, -1 existing, < -1 invalid
------------------------------------------------------------------------
SELECT is((eventstore.append_event('tap_app-1', NULL, 'Any', '{}')).stream_version, 4::bigint,
          'NULL appends whatever the version');
SELECT is((eventstore.append_event('tap_app-1', 4, 'Exact', '{}')).stream_version, 5::bigint,
          'N appends when the stream is at N');
SELECT is((eventstore.append_event('tap_app-1', -1, 'Existing', '{}')).stream_version, 6::bigint,
          '-1 appends to an existing stream');
SELECT is((eventstore.append_event('tap_app-2', 0, 'New', '{}')).stream_version, 1::bigint,
          '0 appends to a new stream');
SELECT is((eventstore.append_event('tap_app-3', NULL, 'New', '{}')).stream_version, 1::bigint,
          'NULL appends to a new stream');
SELECT throws_ok($$SELECT eventstore.append_event('tap_app-1', 0, 'X', '{}')$$, 'ES409',
                 'wrong expected version for stream "tap_app-1": expected 0, actual 6',
                 'ES409 when expecting a new stream; the message names stream, expected and actual');
SELECT throws_ok($$SELECT eventstore.append_event('tap_app-1', 5, 'X', '{}')$$, 'ES409',
                 'wrong expected version for stream "tap_app-1": expected 5, actual 6',
                 'ES409 when expecting an older version');
SELECT throws_ok($$SELECT eventstore.append('tap_app-1', 7, ARRAY[eventstore.event('X', '{}')])$$, 'ES409',
                 'wrong expected version for stream "tap_app-1": expected 7, actual 6',
                 'ES409 from append when expecting a newer version');
SELECT throws_ok($$SELECT eventstore.append_event('tap_app-missing', -1, 'X', '{}')$$, 'ES409',
                 'wrong expected version for stream "tap_app-missing": expected an existing stream, actual 0',
                 'ES409 when expecting an existing stream that does not exist');
SELECT throws_ok($$SELECT eventstore.append_event('tap_app-missing', 2, 'X', '{}')$$, 'ES409',
                 'wrong expected version for stream "tap_app-missing": expected 2, actual 0',
                 'ES409 when expecting a version of a missing stream');
SELECT throws_ok($$SELECT eventstore.append_event('tap_app-1', -2, 'X', '{}')$$, '22023',
                 'invalid expected_version -2', 'expected_version -2 is invalid');
SELECT is(eventstore.stream_version('tap_app-1'), 6::bigint, 'a refused append wrote nothing');
SELECT is(eventstore.stream_version('tap_app-missing'), 0::bigint, 'a refused append created no stream');
SELECT ok(NOT EXISTS (SELECT FROM eventstore.events WHERE event_type = 'X'), 'no refused event was stored');

------------------------------------------------------------------------
-- Bad input: each documented SQLSTATE
------------------------------------------------------------------------
SELECT throws_ok($$SELECT eventstore.append_event(NULL, NULL, 'T', '{}')$$, '22004',
                 'stream_id must not be null', 'NULL stream_id: 22004');
SELECT throws_ok($$SELECT eventstore.append('', NULL, ARRAY[eventstore.event('T', '{}')])$$, '22023',
                 'stream_id must not be empty', 'empty stream_id: 22023');
SELECT throws_ok($$SELECT eventstore.append_event(repeat('x', 1025), NULL, 'T', '{}')$$, '22001',
                 'stream_id is too long', 'stream_id over 1024 bytes: 22001');
SELECT lives_ok($$SELECT eventstore.append_event(repeat('x', 1024), NULL, 'T', '{}')$$,
                'a stream_id of 1024 bytes is accepted');
SELECT throws_ok($$SELECT eventstore.append('tap_app-4', NULL, NULL)$$, '22004',
                 'events must not be null', 'NULL events: 22004');
SELECT throws_ok($$SELECT eventstore.append('tap_app-4', NULL, '{}')$$, '22023',
                 'events must not be empty', 'empty events: 22023');
SELECT throws_ok($$SELECT eventstore.append('tap_app-4', NULL, ARRAY[eventstore.event('T', '{}'), NULL])$$, '22004',
                 'event 2 must not be null', 'a NULL event: 22004');
SELECT throws_ok($$SELECT eventstore.append('tap_app-4', NULL, ARRAY[[eventstore.event('T', '{}')]])$$, '2202E',
                 'events must be a one-dimensional array', 'a two-dimensional events array: 2202E');
SELECT throws_ok($$SELECT eventstore.append_event('tap_app-4', NULL, NULL, '{}')$$, '22004',
                 'event_type of event 1 must not be null', 'NULL event_type: 22004');
SELECT throws_ok($$SELECT eventstore.append('tap_app-4', NULL, ARRAY[eventstore.event('T', '{}'), eventstore.event('', '{}')])$$,
                 '22023', 'event_type of event 2 must not be empty', 'empty event_type: 22023');
SELECT throws_ok($$SELECT eventstore.append_event('tap_app-4', NULL, 'T', NULL)$$, '22004',
                 'data of event 1 must not be null', 'NULL data: 22004');
SELECT throws_ok($$SELECT eventstore.append_event('tap_app-4', NULL, 'T', '{}', '["not", "an", "object"]')$$, '22023',
                 'metadata of event 1 must be a JSON object', 'metadata that is not an object: 22023');
SET LOCAL eventstore.max_event_size = '1kB';
SELECT throws_ok($$SELECT eventstore.append_event('tap_app-4', NULL, 'T', jsonb_build_object('pad', repeat('x', 2000)))$$,
                 '54000', 'event 1 is too large', 'an event over eventstore.max_event_size: 54000');
CREATE TEMP TABLE big_type (t text);
ALTER TABLE big_type ALTER COLUMN t SET STORAGE EXTERNAL;
INSERT INTO big_type VALUES (repeat('T', 3000));
SELECT throws_ok($$SELECT eventstore.append_event('tap_app-5', NULL, t, '{}') FROM big_type$$,
                 '54000', 'event 1 is too large',
                 'an event_type read from a table counts with its full size');
RESET eventstore.max_event_size;
SELECT is(eventstore.stream_version('tap_app-4'), 0::bigint, 'no bad input wrote anything');

------------------------------------------------------------------------
-- Idempotent retries
------------------------------------------------------------------------
CREATE TEMP TABLE first_attempt AS
    SELECT * FROM eventstore.append('tap_idem-1', 0, ARRAY[
        eventstore.event('A', '{}', NULL, 'b0000000-0000-4000-8000-00000000000a'),
        eventstore.event('B', '{}', NULL, 'b0000000-0000-4000-8000-00000000000b')]);
SELECT results_eq(
    $$SELECT * FROM eventstore.append('tap_idem-1', 0, ARRAY[
        eventstore.event('A', '{}', NULL, 'b0000000-0000-4000-8000-00000000000a'),
        eventstore.event('B', '{}', NULL, 'b0000000-0000-4000-8000-00000000000b')])$$,
    $$SELECT * FROM first_attempt$$,
    'an exact retry returns the original result');
SELECT results_eq(
    $$SELECT * FROM eventstore.append('tap_idem-1', 17, ARRAY[
        eventstore.event('A', '{}', NULL, 'b0000000-0000-4000-8000-00000000000a'),
        eventstore.event('B', '{}', NULL, 'b0000000-0000-4000-8000-00000000000b')])$$,
    $$SELECT * FROM first_attempt$$,
    'an exact retry succeeds whatever the expected version');
SELECT lives_ok($$SELECT eventstore.append_event('tap_idem-1', 2, 'C', '{}')$$, 'the stream moves on');
SELECT results_eq(
    $$SELECT * FROM eventstore.append('tap_idem-1', NULL, ARRAY[
        eventstore.event('A', '{}', NULL, 'b0000000-0000-4000-8000-00000000000a'),
        eventstore.event('B', '{}', NULL, 'b0000000-0000-4000-8000-00000000000b')])$$,
    $$SELECT * FROM first_attempt$$,
    'a later retry still returns the original result');
SELECT is(eventstore.stream_version('tap_idem-1'), 3::bigint, 'retries wrote nothing');
SELECT throws_ok($$SELECT eventstore.append('tap_idem-1', NULL, ARRAY[
                     eventstore.event('A', '{}', NULL, 'b0000000-0000-4000-8000-00000000000a'),
                     eventstore.event('N', '{}', NULL, 'b0000000-0000-4000-8000-00000000000e')])$$,
                 '23505', 'event b0000000-0000-4000-8000-00000000000a already exists in stream "tap_idem-1"',
                 'a partial overlap fails with 23505 naming the event id');
SELECT throws_ok($$SELECT eventstore.append('tap_idem-1', NULL, ARRAY[
                     eventstore.event('B', '{}', NULL, 'b0000000-0000-4000-8000-00000000000b'),
                     eventstore.event('A', '{}', NULL, 'b0000000-0000-4000-8000-00000000000a')])$$,
                 '23505', NULL, 'the same ids in another order fail with 23505');
SELECT throws_ok($$SELECT eventstore.append('tap_idem-1', NULL, ARRAY[
                     eventstore.event('N', '{}', NULL, 'b0000000-0000-4000-8000-00000000000e'),
                     eventstore.event('B', '{}', NULL, 'b0000000-0000-4000-8000-00000000000b')])$$,
                 '23505', NULL, 'a partial overlap after a new event fails with 23505');
SELECT throws_like($$SELECT eventstore.append('tap_idem-1', NULL, ARRAY[
                     eventstore.event('N', '{}', NULL, 'b0000000-0000-4000-8000-00000000000e'),
                     eventstore.event('B', '{}', NULL, 'b0000000-0000-4000-8000-00000000000b')])$$,
                 '%b0000000-0000-4000-8000-00000000000b%',
                 'a partial overlap after a new event names the stored event id');
SELECT is(eventstore.stream_version('tap_idem-1'), 3::bigint, 'failed retries wrote nothing');
SELECT ok(NOT EXISTS (SELECT FROM eventstore.events WHERE event_id = 'b0000000-0000-4000-8000-00000000000e'),
          'the new event of a partial overlap was not stored');
SELECT results_eq(
    $$SELECT stream_version FROM eventstore.append_event('tap_idem-2', 0, 'A', '{}', NULL,
                                                         'b0000000-0000-4000-8000-00000000000f')$$,
    $$SELECT stream_version FROM eventstore.append_event('tap_idem-2', 0, 'A', '{}', NULL,
                                                         'b0000000-0000-4000-8000-00000000000f')$$,
    'append_event retries idempotently');
SELECT lives_ok($$SELECT eventstore.append_event('tap_idem-3', 0, 'A', '{}', NULL,
                                                 'b0000000-0000-4000-8000-00000000000a')$$,
                'an event id may be reused in another stream');

------------------------------------------------------------------------
-- Generated event ids
------------------------------------------------------------------------
SELECT lives_ok($$SELECT eventstore.append('tap_ids-1', 0, ARRAY[
                    eventstore.event('T', '{}'), eventstore.event('T', '{}'), eventstore.event('T', '{}')])$$,
                'events without ids are appended');
SELECT is((SELECT count(DISTINCT event_id)::int FROM eventstore.read_stream('tap_ids-1')), 3,
          'each gets its own id');
SELECT ok((SELECT bool_and(event_id::text ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$')
             FROM eventstore.read_stream('tap_ids-1')),
          'generated ids are random (version 4) UUIDs');
SELECT is((eventstore.append_event('tap_ids-2', NULL, 'T', '{}')).stream_version, 1::bigint, 'without ids ...');
SELECT is((eventstore.append_event('tap_ids-2', NULL, 'T', '{}')).stream_version, 2::bigint,
          '... repeating a call appends again');

------------------------------------------------------------------------
-- Correlation and causation ids
------------------------------------------------------------------------
SET LOCAL eventstore.correlation_id = 'req-1';
SET LOCAL eventstore.causation_id = 'cmd-1';
SELECT lives_ok($$SELECT eventstore.append('tap_meta-1', 0, ARRAY[
                    eventstore.event('T', '{}'),
                    eventstore.event('T', '{}', '{"user": "ada"}'),
                    eventstore.event('T', '{}', '{"correlation_id": "own"}')])$$,
                'append with correlation and causation set');
RESET eventstore.correlation_id;
RESET eventstore.causation_id;
SELECT results_eq(
    $$SELECT metadata FROM eventstore.read_stream('tap_meta-1')$$,
    $$VALUES ('{"causation_id": "cmd-1", "correlation_id": "req-1"}'::jsonb),
             ('{"user": "ada", "causation_id": "cmd-1", "correlation_id": "req-1"}'),
             ('{"causation_id": "cmd-1", "correlation_id": "own"}')$$,
    'the ids are merged into the metadata unless the event sets them');
SELECT lives_ok($$SELECT eventstore.append_event('tap_meta-2', 0, 'T', '{}')$$, 'append with the ids reset');
SELECT is((SELECT metadata FROM eventstore.read_stream('tap_meta-2')), NULL, 'nothing is added when they are empty');

------------------------------------------------------------------------
-- Immutability: ES002
------------------------------------------------------------------------
SELECT throws_ok($$UPDATE eventstore.events SET data = '{}'$$, 'ES002',
                 'UPDATE of events is not allowed: events are immutable', 'UPDATE is refused with ES002');
SELECT throws_ok($$DELETE FROM eventstore.events WHERE stream_id = 'tap_app-1'$$, 'ES002',
                 'DELETE of events is not allowed: events are immutable', 'DELETE is refused with ES002');
SELECT throws_ok($$TRUNCATE eventstore.events$$, 'ES002',
                 'TRUNCATE of events is not allowed: events are immutable', 'TRUNCATE is refused with ES002');
SET LOCAL session_replication_role = replica;
SELECT throws_ok($$UPDATE eventstore.events SET data = '{}'$$, 'ES002', NULL,
                 'UPDATE is refused in replica mode');
SELECT throws_ok($$DELETE FROM eventstore.events$$, 'ES002', NULL, 'DELETE is refused in replica mode');
SELECT throws_ok($$TRUNCATE eventstore.events$$, 'ES002', NULL, 'TRUNCATE is refused in replica mode');
RESET session_replication_role;

------------------------------------------------------------------------
-- Two-phase commit: ES001.  PREPARE TRANSACTION cannot run inside this
-- file's transaction, so another session does it through dblink.
------------------------------------------------------------------------
SELECT 'CREATE EXTENSION dblink' WHERE EXISTS (SELECT FROM pg_available_extensions WHERE name = 'dblink') \gexec
CREATE TEMP TABLE other_session AS
    SELECT format('host=%s port=%s dbname=%s user=%s',
                  split_part(current_setting('unix_socket_directories'), ',', 1),
                  current_setting('port'), current_database(), current_user) AS conn;
SELECT CASE WHEN EXISTS (SELECT FROM pg_extension WHERE extname = 'dblink')
    THEN throws_ok(format($$SELECT dblink_exec(%L, 'BEGIN; SELECT eventstore.append_event(''tap_prep-1'', NULL, ''T'', ''{}''); PREPARE TRANSACTION ''es_tap_prepare''')$$,
                          (SELECT conn FROM other_session)),
                   'ES001', NULL,
                   'PREPARE TRANSACTION after an append fails with ES001')
    ELSE skip('dblink is not available', 1) END;
-- should the PREPARE have succeeded, roll it back so that nothing is left behind
SELECT dblink_exec((SELECT conn FROM other_session), format('ROLLBACK PREPARED %L', gid))
  FROM pg_prepared_xacts WHERE gid = 'es_tap_prepare' \gexec
SELECT is((SELECT count(*)::int FROM pg_prepared_xacts WHERE gid = 'es_tap_prepare'), 0,
          'the refused transaction was not prepared');
SELECT is(eventstore.stream_version('tap_prep-1'), 0::bigint, 'the refused transaction wrote nothing');

SELECT * FROM finish();
ROLLBACK;
