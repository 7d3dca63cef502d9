--
-- search_path: every function of the store schema-qualifies its objects and
-- operators, so a caller's search_path cannot redirect them.  Here a schema
-- placed before pg_catalog shadows the table and the operators the store
-- uses with ones that would match every row.
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

SELECT coalesce(pg_sequence_last_value('eventstore.events_global_position_seq'), 0) AS base \gset

------------------------------------------------------------------------
-- A hostile schema
------------------------------------------------------------------------
CREATE SCHEMA regress_es_hostile;
CREATE TABLE regress_es_hostile.events (LIKE eventstore.events);
CREATE FUNCTION regress_es_hostile.always(text, text) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS 'SELECT true';
CREATE FUNCTION regress_es_hostile.always(uuid, uuid) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS 'SELECT true';
CREATE FUNCTION regress_es_hostile.always(bigint, bigint) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS 'SELECT true';
CREATE FUNCTION regress_es_hostile.split_part(text, text, integer) RETURNS text
    LANGUAGE sql IMMUTABLE AS 'SELECT ''hijacked''';
CREATE OPERATOR regress_es_hostile.= (LEFTARG = text, RIGHTARG = text, FUNCTION = regress_es_hostile.always);
CREATE OPERATOR regress_es_hostile.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = regress_es_hostile.always);
CREATE OPERATOR regress_es_hostile.> (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = regress_es_hostile.always);
CREATE OPERATOR regress_es_hostile.>= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = regress_es_hostile.always);
CREATE OPERATOR regress_es_hostile.<= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = regress_es_hostile.always);

-- Two streams of two categories, appended with the hostile search_path.
SET search_path = regress_es_hostile, pg_catalog;
SELECT 'a'::text = 'b'::text AS hostile_equals_is_active;
SELECT stream_version FROM eventstore.append('sp-1', 0, ARRAY[
           eventstore.event('A', '{}', NULL, '30000000-0000-4000-8000-000000000001'),
           eventstore.event('B', '{}', NULL, '30000000-0000-4000-8000-000000000002')]);
SELECT stream_version FROM eventstore.append_event('other-1', 0, 'C', '{}', NULL,
                                                   '30000000-0000-4000-8000-000000000003');
SELECT stream_version FROM eventstore.append_event('sp-1', 2, 'D', '{}');

------------------------------------------------------------------------
-- Appending: version checks and retries see the right rows
------------------------------------------------------------------------
SELECT pg_temp.try($$SELECT eventstore.append_event('sp-2', 3, 'X', '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('sp-1', 0, 'X', '{}')$$);
-- ids of another stream are not a retry; a partial overlap is still caught
SELECT stream_version FROM eventstore.append_event('sp-2', 0, 'E', '{}', NULL,
                                                   '30000000-0000-4000-8000-000000000003');
SELECT pg_temp.try($$SELECT eventstore.append('sp-1', NULL, ARRAY[
           eventstore.event('A', '{}', NULL, '30000000-0000-4000-8000-000000000001'),
           eventstore.event('Z', '{}', NULL, '30000000-0000-4000-8000-000000000009')])$$);
-- an exact retry
SELECT stream_version FROM eventstore.append('sp-1', 0, ARRAY[
           eventstore.event('A', '{}', NULL, '30000000-0000-4000-8000-000000000001'),
           eventstore.event('B', '{}', NULL, '30000000-0000-4000-8000-000000000002')]);

------------------------------------------------------------------------
-- Reading: each read returns exactly its rows
------------------------------------------------------------------------
SELECT stream_id, stream_version, event_type FROM eventstore.read_stream('sp-1', 2, 1);
SELECT stream_id, stream_version, event_type FROM eventstore.read_stream_backwards('sp-1', 2);
SELECT stream_id, stream_version, event_type FROM eventstore.read_all(:base + 3);
SELECT stream_id, stream_version, event_type FROM eventstore.read_category('sp');
SELECT eventstore.stream_version('sp-1') AS sp_1, eventstore.stream_version('sp-3') AS sp_3;
SELECT eventstore.category('sp-1') AS category;
SELECT count(*) AS hostile_table_rows FROM regress_es_hostile.events;

------------------------------------------------------------------------
-- Clean up
------------------------------------------------------------------------
RESET search_path;
DROP SCHEMA regress_es_hostile CASCADE;
DROP EXTENSION eventstore;
DROP SCHEMA eventstore;
