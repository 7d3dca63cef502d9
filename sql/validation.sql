--
-- validation: bad input to append and append_event.  Each call fails with
-- its own SQLSTATE and writes nothing:
--   22004  NULL stream_id, events, an event, its event_type or its data
--   22023  empty stream_id, event_type or events; metadata not a JSON object;
--          expected_version < -1
--   22001  stream_id longer than 1024 bytes
--   54000  an event (type + data + metadata) over eventstore.max_event_size
--   2202E  a multi-dimensional events array
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

-- store(): the number of events and a digest of all of them.
CREATE FUNCTION pg_temp.store() RETURNS text LANGUAGE sql AS $$
    SELECT count(*) || ' events, digest ' ||
           md5(coalesce(string_agg(e::text, '|' ORDER BY e.global_position), ''))
      FROM eventstore.events e
$$;

-- One stream that exists, so that a bad call has something to leave alone.
SELECT stream_version FROM eventstore.append_event('valid-1', 0, 'T', '{}');
SELECT pg_temp.store() AS store_before \gset

------------------------------------------------------------------------
-- stream_id
------------------------------------------------------------------------
SELECT pg_temp.try($$SELECT eventstore.append_event(NULL, NULL, 'T', '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.append(NULL, NULL, ARRAY[eventstore.event('T', '{}')])$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('', NULL, 'T', '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.append('', 0, ARRAY[eventstore.event('T', '{}')])$$);
-- the limit is 1024 bytes, not characters
SELECT pg_temp.try($$SELECT eventstore.append_event(repeat('s', 1025), NULL, 'T', '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.append(repeat('s', 1025), NULL, ARRAY[eventstore.event('T', '{}')])$$);
SELECT pg_temp.try($$SELECT eventstore.append_event(repeat('é', 513), NULL, 'T', '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.append_event(repeat('s', 100000), NULL, 'T', '{}')$$);
-- the detail gives both numbers
\set VERBOSITY default
SELECT eventstore.append_event(repeat('é', 513), NULL, 'T', '{}');
\set VERBOSITY terse

------------------------------------------------------------------------
-- events array
------------------------------------------------------------------------
SELECT pg_temp.try($$SELECT eventstore.append('valid-1', NULL, NULL)$$);
SELECT pg_temp.try($$SELECT eventstore.append('valid-1', NULL, '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.append('valid-1', NULL, ARRAY[]::eventstore.new_event[])$$);
SELECT pg_temp.try($$SELECT eventstore.append('valid-1', NULL, ARRAY[NULL::eventstore.new_event])$$);
SELECT pg_temp.try($$SELECT eventstore.append('valid-1', NULL,
           ARRAY[eventstore.event('T', '{}'), NULL, eventstore.event('T', '{}')])$$);
SELECT pg_temp.try($$SELECT eventstore.append('valid-1', NULL,
           ARRAY[[eventstore.event('T', '{}')], [eventstore.event('T', '{}')]])$$);

------------------------------------------------------------------------
-- event_type
------------------------------------------------------------------------
SELECT pg_temp.try($$SELECT eventstore.append_event('valid-1', NULL, NULL, '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('valid-1', NULL, '', '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.append('valid-1', NULL, ARRAY[eventstore.event(NULL, '{}')])$$);
SELECT pg_temp.try($$SELECT eventstore.append('valid-1', NULL,
           ARRAY[eventstore.event('T', '{}'), eventstore.event('', '{}')])$$);

------------------------------------------------------------------------
-- data
------------------------------------------------------------------------
SELECT pg_temp.try($$SELECT eventstore.append_event('valid-1', NULL, 'T', NULL)$$);
SELECT pg_temp.try($$SELECT eventstore.append('valid-1', NULL,
           ARRAY[eventstore.event('T', '{}'), eventstore.event('T', '{}'), eventstore.event('T', NULL)])$$);
\set VERBOSITY default
SELECT eventstore.append_event('valid-1', NULL, 'T', NULL);
\set VERBOSITY terse

------------------------------------------------------------------------
-- metadata: NULL or a JSON object
------------------------------------------------------------------------
SELECT pg_temp.try(format($$SELECT eventstore.append_event('valid-1', NULL, 'T', '{}', %L)$$, m))
  FROM unnest(ARRAY['[]', '[{"a": 1}]', '"text"', '1', 'true', 'null']) AS m;
SELECT pg_temp.try($$SELECT eventstore.append('valid-1', NULL,
           ARRAY[eventstore.event('T', '{}', '{}'), eventstore.event('T', '{}', '[]')])$$);

------------------------------------------------------------------------
-- expected_version below -1
------------------------------------------------------------------------
SELECT pg_temp.try($$SELECT eventstore.append_event('valid-1', -2, 'T', '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.append('valid-1', -2, ARRAY[eventstore.event('T', '{}')])$$);

------------------------------------------------------------------------
-- eventstore.max_event_size: type + data + metadata, in bytes
------------------------------------------------------------------------
SET eventstore.max_event_size = '1kB';
SHOW eventstore.max_event_size;
-- data, metadata or type alone over the limit
SELECT pg_temp.try($$SELECT eventstore.append_event('valid-1', NULL, 'T',
           jsonb_build_object('pad', repeat('x', 2000)))$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('valid-1', NULL, 'T', '{}',
           jsonb_build_object('pad', repeat('x', 2000)))$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('valid-1', NULL, repeat('T', 2000), '{}')$$);
-- each under the limit, together over it
SELECT pg_temp.try($$SELECT eventstore.append_event('valid-1', NULL, repeat('T', 400),
           jsonb_build_object('pad', repeat('x', 400)),
           jsonb_build_object('pad', repeat('x', 400)))$$);
-- the message names the event of a batch that is too large
SELECT pg_temp.try($$SELECT eventstore.append('valid-1', NULL, ARRAY[
           eventstore.event('T', '{}'),
           eventstore.event('T', jsonb_build_object('pad', repeat('x', 2000)))])$$);
-- values read from a table count with their full size, however the table
-- stores them: here out of line, uncompressed
CREATE TEMP TABLE big_values (t text, j jsonb);
ALTER TABLE big_values ALTER COLUMN t SET STORAGE EXTERNAL, ALTER COLUMN j SET STORAGE EXTERNAL;
INSERT INTO big_values VALUES (repeat('T', 3000), jsonb_build_object('pad', repeat('x', 3000)));
SELECT octet_length(t) AS type_bytes, pg_column_size(t) AS type_stored_bytes FROM big_values;
SELECT pg_temp.try($$SELECT eventstore.append_event('valid-1', NULL, 'T', j) FROM big_values$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('valid-1', NULL, t, '{}') FROM big_values$$);
SELECT pg_temp.try($$SELECT eventstore.append('valid-1', NULL, ARRAY[eventstore.event(t, '{}')]) FROM big_values$$);
SELECT pg_temp.store() = :'store_before' AS nothing_written;
-- an event within the limit is fine
SELECT pg_temp.try($$SELECT eventstore.append_event('valid-2', NULL, 'T',
           jsonb_build_object('pad', repeat('x', 500)))$$);
-- the setting is in bytes, at least 1kB, and only a superuser may change it
SELECT pg_temp.try($$SET eventstore.max_event_size = 1023$$);
CREATE ROLE regress_es_plain;
SET ROLE regress_es_plain;
SELECT pg_temp.try($$SET eventstore.max_event_size = '10MB'$$);
RESET ROLE;
DROP ROLE regress_es_plain;
RESET eventstore.max_event_size;
SHOW eventstore.max_event_size;
-- the default is 1MB
SELECT pg_temp.try($$SELECT eventstore.append_event('valid-1', NULL, 'T',
           jsonb_build_object('pad', repeat('x', 1100000)))$$);
-- values read from a table count with their full size: here compressed
TRUNCATE big_values;
ALTER TABLE big_values ALTER COLUMN t SET STORAGE EXTENDED, ALTER COLUMN j SET STORAGE EXTENDED;
INSERT INTO big_values VALUES (repeat('T', 2000000), jsonb_build_object('pad', repeat('x', 2000000)));
SELECT octet_length(t) AS type_bytes, pg_column_size(t) < 100000 AS type_stored_compressed FROM big_values;
SELECT pg_temp.try($$SELECT eventstore.append_event('valid-1', NULL, 'T', j) FROM big_values$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('valid-1', NULL, t, '{}') FROM big_values$$);
SELECT pg_temp.try($$SELECT eventstore.append('valid-1', NULL, ARRAY[eventstore.event(t, '{}')]) FROM big_values$$);

------------------------------------------------------------------------
-- Nothing of the above was written: valid-1 still has its one event
------------------------------------------------------------------------
SELECT stream_id, count(*) FROM eventstore.events GROUP BY stream_id ORDER BY stream_id;

-- The limits themselves are accepted.
SELECT stream_version FROM eventstore.append_event(repeat('s', 1024), 0, 'T', '{}');
SELECT stream_version FROM eventstore.append_event(repeat('é', 512), 0, 'T', '{}');
SELECT octet_length(stream_id) AS bytes, stream_version
  FROM eventstore.events WHERE octet_length(stream_id) = 1024 ORDER BY stream_id;

------------------------------------------------------------------------
-- Clean up
------------------------------------------------------------------------
DROP TABLE big_values;
DROP EXTENSION eventstore;
DROP SCHEMA eventstore;
