--
-- idempotency: retries by event id.  When every event id of a call already
-- exists in the stream, consecutively and in the call's order, the call
-- succeeds, writes nothing and returns the original (stream_version,
-- global_position), whatever the expected version.  When only some exist, or
-- in another order, it fails with 23505 naming the event id, and writes
-- nothing.
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

-- names(sql, id): run sql, which must fail; its SQLSTATE, and whether the
-- message names event id.
CREATE FUNCTION pg_temp.names(sql text, id uuid) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ', names ' || id || ': ' || (strpos(SQLERRM, id::text) > 0);
END $$;

-- sqlstate(sql): run sql, which must fail; its SQLSTATE.
CREATE FUNCTION pg_temp.sqlstate(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;

-- store(): the number of events and a digest of all of them.
CREATE FUNCTION pg_temp.store() RETURNS text LANGUAGE sql AS $$
    SELECT count(*) || ' events, digest ' ||
           md5(coalesce(string_agg(e::text, '|' ORDER BY e.global_position), ''))
      FROM eventstore.events e
$$;

SELECT coalesce(pg_sequence_last_value('eventstore.events_global_position_seq'), 0) AS base \gset

-- Event ids used below:
--   ...0a, ...0b  the first append to idem-1 (versions 1, 2)
--   ...0c         never appended to idem-1 before the checks
\set a '''10000000-0000-4000-8000-00000000000a'''
\set b '''10000000-0000-4000-8000-00000000000b'''
\set c '''10000000-0000-4000-8000-00000000000c'''

------------------------------------------------------------------------
-- The first attempt
------------------------------------------------------------------------
SELECT stream_version, global_position - :base AS pos
  FROM eventstore.append('idem-1', 0, ARRAY[
           eventstore.event('A', '{"n": 1}', NULL, :a),
           eventstore.event('B', '{"n": 2}', NULL, :b)]);
SELECT pg_temp.store() AS store_after_first \gset

------------------------------------------------------------------------
-- Exact retries: same ids, same order -> the original result, nothing written
------------------------------------------------------------------------
-- the same call again (its expected version 0 no longer holds)
SELECT stream_version, global_position - :base AS pos
  FROM eventstore.append('idem-1', 0, ARRAY[
           eventstore.event('A', '{"n": 1}', NULL, :a),
           eventstore.event('B', '{"n": 2}', NULL, :b)]);
-- with any other expected version
SELECT stream_version, global_position - :base AS pos
  FROM eventstore.append('idem-1', NULL, ARRAY[
           eventstore.event('A', '{"n": 1}', NULL, :a),
           eventstore.event('B', '{"n": 2}', NULL, :b)]);
SELECT stream_version, global_position - :base AS pos
  FROM eventstore.append('idem-1', 7, ARRAY[
           eventstore.event('A', '{"n": 1}', NULL, :a),
           eventstore.event('B', '{"n": 2}', NULL, :b)]);
SELECT stream_version, global_position - :base AS pos
  FROM eventstore.append('idem-1', -1, ARRAY[
           eventstore.event('A', '{"n": 1}', NULL, :a),
           eventstore.event('B', '{"n": 2}', NULL, :b)]);
SELECT pg_temp.store() = :'store_after_first' AS nothing_written;

-- Still the original result after the stream has moved on.
SELECT stream_version, global_position - :base AS pos
  FROM eventstore.append_event('idem-1', 2, 'Later', '{}');
SELECT stream_version, global_position - :base AS pos
  FROM eventstore.append('idem-1', 0, ARRAY[
           eventstore.event('A', '{"n": 1}', NULL, :a),
           eventstore.event('B', '{"n": 2}', NULL, :b)]);
SELECT stream_version, event_type,
       CASE WHEN event_type = 'Later' THEN 'generated' ELSE event_id::text END AS event_id
  FROM eventstore.read_stream('idem-1');

-- append_event retries the same way.
SELECT stream_version, global_position - :base AS pos
  FROM eventstore.append_event('idem-2', 0, 'Single', '{}', NULL, :c);
SELECT stream_version, global_position - :base AS pos
  FROM eventstore.append_event('idem-2', 0, 'Single', '{}', NULL, :c);
SELECT stream_version, global_position - :base AS pos
  FROM eventstore.append_event('idem-2', NULL, 'Single', '{}', NULL, :c);
SELECT eventstore.stream_version('idem-2') AS idem_2_version;

-- A retry inside a transaction that also does other work succeeds too.
BEGIN;
SELECT stream_version, global_position - :base AS pos
  FROM eventstore.append_event('idem-2', 0, 'Single', '{}', NULL, :c);
SELECT stream_version FROM eventstore.append_event('idem-3', 0, 'Other', '{}');
COMMIT;
SELECT eventstore.stream_version('idem-2') AS idem_2, eventstore.stream_version('idem-3') AS idem_3;

------------------------------------------------------------------------
-- Not a retry: 23505 naming the event id, nothing written
------------------------------------------------------------------------
SELECT pg_temp.store() AS store_before \gset

-- partial overlap: a stored event first, then a new one
SELECT pg_temp.try(format($$SELECT eventstore.append('idem-1', NULL, ARRAY[
           eventstore.event('A', '{}', NULL, %L), eventstore.event('C', '{}', NULL, %L)])$$, :a, :c));
SELECT pg_temp.names(format($$SELECT eventstore.append('idem-1', NULL, ARRAY[
           eventstore.event('A', '{}', NULL, %L), eventstore.event('C', '{}', NULL, %L)])$$, :a, :c), :a);
-- partial overlap: a new event first, then a stored one
SELECT pg_temp.names(format($$SELECT eventstore.append('idem-1', NULL, ARRAY[
           eventstore.event('C', '{}', NULL, %L), eventstore.event('B', '{}', NULL, %L)])$$, :c, :b), :b);
-- same ids, another order
SELECT pg_temp.try(format($$SELECT eventstore.append('idem-1', 0, ARRAY[
           eventstore.event('B', '{}', NULL, %L), eventstore.event('A', '{}', NULL, %L)])$$, :b, :a));
SELECT pg_temp.names(format($$SELECT eventstore.append('idem-1', 0, ARRAY[
           eventstore.event('B', '{}', NULL, %L), eventstore.event('A', '{}', NULL, %L)])$$, :b, :a), :b);
-- the stored ids plus one more
SELECT pg_temp.names(format($$SELECT eventstore.append('idem-1', 0, ARRAY[
           eventstore.event('A', '{}', NULL, %L), eventstore.event('B', '{}', NULL, %L),
           eventstore.event('C', '{}', NULL, %L)])$$, :a, :b, :c), :a);
-- a stored id next to an event without id
SELECT pg_temp.names(format($$SELECT eventstore.append('idem-1', NULL, ARRAY[
           eventstore.event('A', '{}', NULL, %L), eventstore.event('X', '{}')])$$, :a), :a);
-- Not an error: a call whose ids all exist, consecutively and in order, is a
-- retry even when the first attempt had more events; a single stored id
-- returns that event's own version and position.
SELECT stream_version, global_position - :base AS pos
  FROM eventstore.append_event('idem-1', NULL, 'A', '{}', NULL, :a);

SELECT pg_temp.store() = :'store_before' AS nothing_written;
SELECT eventstore.stream_version('idem-1') AS idem_1_version;

-- The error can be caught as unique_violation.
DO $$
BEGIN
    PERFORM eventstore.append('idem-1', NULL, ARRAY[
        eventstore.event('B', '{}', NULL, '10000000-0000-4000-8000-00000000000b'),
        eventstore.event('A', '{}', NULL, '10000000-0000-4000-8000-00000000000a')]);
EXCEPTION WHEN unique_violation THEN
    RAISE NOTICE 'caught unique_violation';
END $$;

------------------------------------------------------------------------
-- One id twice in a call: 23505, nothing written
------------------------------------------------------------------------
SELECT pg_temp.sqlstate($$SELECT eventstore.append('idem-4', 0, ARRAY[
           eventstore.event('D', '{}', NULL, '10000000-0000-4000-8000-00000000000d'),
           eventstore.event('D', '{}', NULL, '10000000-0000-4000-8000-00000000000d')])$$);
SELECT eventstore.stream_version('idem-4') AS idem_4_version;
SELECT pg_temp.store() = :'store_before' AS nothing_written;

------------------------------------------------------------------------
-- Event ids are unique per stream: the same ids in another stream are new
------------------------------------------------------------------------
SELECT stream_version FROM eventstore.append('idem-5', 0, ARRAY[
           eventstore.event('A', '{"n": 1}', NULL, :a),
           eventstore.event('B', '{"n": 2}', NULL, :b)]);
SELECT stream_id, stream_version FROM eventstore.events
 WHERE event_id IN (:a, :b) ORDER BY stream_id, stream_version;

------------------------------------------------------------------------
-- Clean up
------------------------------------------------------------------------
DROP EXTENSION eventstore;
DROP SCHEMA eventstore;
