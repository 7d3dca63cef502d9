--
-- expected_version: the optimistic concurrency check of append and
-- append_event.  NULL = any version, 0 = the stream must not exist,
-- N > 0 = exactly version N, -1 = the stream must exist; below -1 is 22023.
-- A mismatch is SQLSTATE ES409 naming stream, expected and actual version,
-- writes nothing and uses up no global position.
--
CREATE EXTENSION IF NOT EXISTS eventstore;
\set VERBOSITY terse

-- try(sql): run sql; 'ok', or the SQLSTATE and message of the error it raised.
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- store(): the number of events and a digest of all of them, to show that a
-- failed call changed nothing.
CREATE FUNCTION pg_temp.store() RETURNS text LANGUAGE sql AS $$
    SELECT count(*) || ' events, digest ' ||
           md5(coalesce(string_agg(e::text, '|' ORDER BY e.global_position), ''))
      FROM eventstore.events e
$$;

-- last_position(): the last position the sequence handed out.
CREATE FUNCTION pg_temp.last_position() RETURNS bigint LANGUAGE sql AS $$
    SELECT coalesce(pg_sequence_last_value('eventstore.events_global_position_seq'), 0)
$$;

------------------------------------------------------------------------
-- NULL: no check, on a new and on an existing stream
------------------------------------------------------------------------
SELECT stream_version FROM eventstore.append_event('ev_any-1', NULL, 'T', '{}');
SELECT stream_version FROM eventstore.append_event('ev_any-1', NULL, 'T', '{}');
SELECT stream_version FROM eventstore.append('ev_any-1', NULL,
           ARRAY[eventstore.event('T', '{}'), eventstore.event('T', '{}')]);

------------------------------------------------------------------------
-- 0: the stream must not exist yet
------------------------------------------------------------------------
SELECT stream_version FROM eventstore.append_event('ev_new-1', 0, 'T', '{}');
SELECT pg_temp.try($$SELECT eventstore.append_event('ev_new-1', 0, 'T', '{}')$$);
SELECT stream_version FROM eventstore.append('ev_new-2', 0,
           ARRAY[eventstore.event('T', '{}'), eventstore.event('T', '{}')]);
SELECT pg_temp.try($$SELECT eventstore.append('ev_new-2', 0, ARRAY[eventstore.event('T', '{}')])$$);

------------------------------------------------------------------------
-- N: the stream must be exactly at version N
------------------------------------------------------------------------
SELECT stream_version FROM eventstore.append_event('ev_exact-1', 0, 'T', '{}');
SELECT stream_version FROM eventstore.append_event('ev_exact-1', 1, 'T', '{}');
SELECT stream_version FROM eventstore.append('ev_exact-1', 2,
           ARRAY[eventstore.event('T', '{}'), eventstore.event('T', '{}')]);
SELECT stream_version FROM eventstore.append_event('ev_exact-1', 4, 'T', '{}');
-- too low, too high, on a missing stream
SELECT pg_temp.try($$SELECT eventstore.append_event('ev_exact-1', 3, 'T', '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('ev_exact-1', 6, 'T', '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.append('ev_exact-1', 1, ARRAY[eventstore.event('T', '{}')])$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('ev_exact-missing', 1, 'T', '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('ev_exact-missing', 9223372036854775807, 'T', '{}')$$);
SELECT eventstore.stream_version('ev_exact-1') AS version,
       eventstore.stream_version('ev_exact-missing') AS missing;

------------------------------------------------------------------------
-- -1: the stream must already exist
------------------------------------------------------------------------
SELECT pg_temp.try($$SELECT eventstore.append_event('ev_exists-1', -1, 'T', '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.append('ev_exists-1', -1, ARRAY[eventstore.event('T', '{}')])$$);
SELECT stream_version FROM eventstore.append_event('ev_exists-1', 0, 'T', '{}');
SELECT stream_version FROM eventstore.append_event('ev_exists-1', -1, 'T', '{}');
SELECT stream_version FROM eventstore.append('ev_exists-1', -1,
           ARRAY[eventstore.event('T', '{}'), eventstore.event('T', '{}')]);

------------------------------------------------------------------------
-- Below -1: invalid (22023), whatever the stream's state
------------------------------------------------------------------------
SELECT pg_temp.try($$SELECT eventstore.append_event('ev_exists-1', -2, 'T', '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('ev_invalid-1', -2, 'T', '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.append('ev_exists-1', -3, ARRAY[eventstore.event('T', '{}')])$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('ev_exists-1', -9223372036854775808, 'T', '{}')$$);
SELECT eventstore.stream_version('ev_exists-1') AS version,
       eventstore.stream_version('ev_invalid-1') AS invalid;

------------------------------------------------------------------------
-- A conflict: SQLSTATE ES409, the message names the stream, the expected and
-- the actual version; nothing is written and no position is used up
------------------------------------------------------------------------
SELECT stream_version FROM eventstore.append('account-42', 0, ARRAY[
           eventstore.event('AccountOpened', '{"owner": "Ada"}'),
           eventstore.event('Deposited', '{"amount": 100}')]);
SELECT pg_temp.store() AS store_before, pg_temp.last_position() AS position_before \gset

-- the error as a client sees it, with detail and hint
\set VERBOSITY default
SELECT * FROM eventstore.append_event('account-42', 1, 'Withdrawn', '{"amount": 30}');
SELECT * FROM eventstore.append_event('account-7', -1, 'Withdrawn', '{"amount": 30}');
\set VERBOSITY sqlstate
SELECT * FROM eventstore.append_event('account-42', 1, 'Withdrawn', '{"amount": 30}');
\set VERBOSITY terse
-- the whole batch is refused
SELECT pg_temp.try($$SELECT eventstore.append('account-42', 5, ARRAY[
           eventstore.event('Withdrawn', '{"amount": 1}'),
           eventstore.event('Withdrawn', '{"amount": 2}')])$$);
-- the stream id is quoted as given
SELECT pg_temp.try($$SELECT eventstore.append_event('account "quoted" ü', 3, 'T', '{}')$$);

-- The error can be caught by its SQLSTATE.
DO $$
BEGIN
    PERFORM eventstore.append_event('account-42', 0, 'Withdrawn', '{}');
EXCEPTION WHEN SQLSTATE 'ES409' THEN
    RAISE NOTICE 'caught ES409: %', SQLERRM;
END $$;

SELECT pg_temp.store() = :'store_before' AS nothing_written,
       pg_temp.last_position() = :position_before AS no_position_used;
SELECT eventstore.stream_version('account-42') AS version;

-- With the right version the append goes through, at the next position.
SELECT stream_version, global_position - :position_before AS positions_used
  FROM eventstore.append_event('account-42', 2, 'Withdrawn', '{"amount": 30}');

-- A conflict inside a transaction aborts it like any error: nothing of the
-- transaction remains.
BEGIN;
SELECT stream_version FROM eventstore.append_event('account-8', 0, 'AccountOpened', '{}');
SELECT stream_version FROM eventstore.append_event('account-42', 0, 'Withdrawn', '{}');
COMMIT;
SELECT eventstore.stream_version('account-8') AS account_8,
       eventstore.stream_version('account-42') AS account_42;

------------------------------------------------------------------------
-- Clean up
------------------------------------------------------------------------
DROP EXTENSION eventstore;
DROP SCHEMA eventstore;
