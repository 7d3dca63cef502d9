--
-- import: eventstore.import_events(source) loads a history from a staging
-- relation in one statement: given versions and times, positions in order of
-- (ord, stream_version), checked for gaps, duplicates and continuation of the
-- stored streams; bad input fails with a specific SQLSTATE and imports
-- nothing.  Concurrency is in specs/import_race.spec, scale in
-- test/scripts/import.sh.
--
CREATE EXTENSION IF NOT EXISTS eventstore;
\set VERBOSITY terse

-- try(sql): run sql; 'ok <result>', or the SQLSTATE and message of the error.
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    EXECUTE sql INTO r;
    RETURN 'ok ' || coalesce(r, '<null>');
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- store(): the number of events and a digest of all of them.
CREATE FUNCTION pg_temp.store() RETURNS text LANGUAGE sql AS $$
    SELECT count(*) || ' events, digest ' ||
           md5(coalesce(string_agg(e::text, '|' ORDER BY e.global_position), ''))
      FROM eventstore.events e
$$;

------------------------------------------------------------------------
-- A history of three streams, interleaved; one stream already exists
------------------------------------------------------------------------
SELECT stream_version, global_position FROM eventstore.append_event('acc-1', 0, 'Opened', '{"n": 0}');
SELECT created_at AS acc1_at FROM eventstore.events WHERE stream_id = 'acc-1' \gset

CREATE TEMP TABLE staging (LIKE eventstore.import_row);
INSERT INTO staging VALUES
    (10, 'acc-2', 1, 'Opened',    '{"n": 1}', NULL,                  '2020-01-01 00:00:01+00', NULL),
    (20, 'acc-1', 2, 'Deposited', '{"n": 2}', '{"source": "old"}',  :'acc1_at',                'aaaaaaaa-0000-4000-8000-000000000002'),
    (30, 'acc-2', 2, 'Deposited', '{"n": 3}', NULL,                  '2020-01-01 00:00:01+00', 'aaaaaaaa-0000-4000-8000-000000000003'),
    (40, 'acc-3', 1, 'Opened',    '{"n": 4}', NULL,                  '2020-01-01 00:00:04+00', NULL),
    (50, 'acc-1', 3, 'Withdrawn', '{"n": 5}', NULL,                  :'acc1_at',                NULL);
SELECT eventstore.import_events('staging');
-- positions in order of ord, after the appended event; versions and times as given
SELECT global_position, stream_id, stream_version, event_type, data, metadata,
       CASE WHEN created_at = :'acc1_at' THEN 'acc-1''s first' ELSE created_at::text END AS created_at
  FROM eventstore.events ORDER BY global_position;
SELECT event_id FROM eventstore.events WHERE data->>'n' IN ('2', '3') ORDER BY global_position;
SELECT count(DISTINCT event_id) = count(*) AS ids_distinct FROM eventstore.events;
-- the streams read as usual and appends continue them
SELECT eventstore.stream_version('acc-1'), eventstore.stream_version('acc-2'), eventstore.stream_version('acc-3');
SELECT stream_version FROM eventstore.append_event('acc-2', 2, 'Closed', '{}');
SELECT count(*) FROM eventstore.read_all(0, 100);
-- 2,500 events of 250 streams, stored in import order and then in the
-- reverse order: either way positions follow (ord, stream_version), every
-- event once (rows are inserted 1,000 at a time, so this crosses batches)
TRUNCATE staging;
INSERT INTO staging SELECT i, 'bulk-' || (i % 250), i / 250 + 1, 'T', jsonb_build_object('i', i), NULL,
                           '2020-01-01', NULL FROM generate_series(0, 2499) i ORDER BY i;
SELECT eventstore.import_events('staging');
TRUNCATE staging;
INSERT INTO staging SELECT 2500 - i, 'bulk-' || (i % 250), 10 - i / 250 + 10, 'T', jsonb_build_object('i', 4999 - i), NULL,
                           '2020-01-01', NULL FROM generate_series(0, 2499) i ORDER BY i;
SELECT eventstore.import_events('staging');
SELECT count(*), count(DISTINCT global_position), max(global_position) - min(global_position) + 1 AS span,
       bool_and((data->>'i')::int = rn - 1) AS positions_in_ord_order
  FROM (SELECT data, global_position, row_number() OVER (ORDER BY global_position) AS rn
          FROM eventstore.events WHERE stream_id LIKE 'bulk-%') b;
SELECT count(*) AS streams, bool_and(v = 20) AS all_at_20
  FROM (SELECT stream_id, max(stream_version) AS v FROM eventstore.events
         WHERE stream_id LIKE 'bulk-%' GROUP BY stream_id) s;
-- More streams than maintenance_work_mem keeps (1 MB: about 15,000 of
-- them): the import forgets the streams met so far and finds each again in
-- the store, where its last event is one this import inserted.  Versions and
-- times still continue there, and a gap or a step back is still reported as
-- one (not as a stream starting at the wrong version).
SET maintenance_work_mem = '1MB';
TRUNCATE staging;
INSERT INTO staging SELECT i, 'many-' || (i % 20000), i / 20000 + 1, 'T', '{}', NULL,
                           '2020-01-01'::timestamptz + i / 20000 * interval '1 day', NULL
                      FROM generate_series(0, 59999) i;
SET client_min_messages = debug1;
SELECT eventstore.import_events('staging');
RESET client_min_messages;
SELECT count(*), count(DISTINCT stream_id) AS streams, min(stream_version), max(stream_version),
       bool_and(created_at = '2020-01-01'::timestamptz + (stream_version - 1) * interval '1 day') AS times_kept
  FROM eventstore.events WHERE stream_id LIKE 'many-%';
TRUNCATE staging;
INSERT INTO staging SELECT i, 'many-' || (i % 20000), i / 20000 + 4, 'T', '{}', NULL, '2020-01-04', NULL
                      FROM generate_series(0, 39999) i;
UPDATE staging SET stream_version = 7 WHERE stream_id = 'many-7' AND stream_version = 5;
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$) AS gap_after_forgetting;
UPDATE staging SET stream_version = 5, created_at = '2020-01-03' WHERE stream_id = 'many-7' AND stream_version = 7;
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$) AS time_back_after_forgetting;
UPDATE staging SET created_at = '2020-01-04' WHERE stream_id = 'many-7';
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$) AS continued;
SELECT count(*), max(stream_version) FROM eventstore.events WHERE stream_id LIKE 'many-%';
RESET maintenance_work_mem;
TRUNCATE staging;
-- an empty source imports nothing
TRUNCATE staging;
SELECT eventstore.import_events('staging');

------------------------------------------------------------------------
-- Continuation of stored streams (the stream is at acc-1 3, acc-2 3)
------------------------------------------------------------------------
SELECT pg_temp.store() AS store_before \gset
-- the first imported version must be current + 1
INSERT INTO staging VALUES (1, 'acc-1', 5, 'T', '{}', NULL, now(), NULL);
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
TRUNCATE staging;
INSERT INTO staging VALUES (1, 'acc-1', 3, 'T', '{}', NULL, now(), NULL);
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
TRUNCATE staging;
-- a new stream starts at 1
INSERT INTO staging VALUES (1, 'acc-9', 2, 'T', '{}', NULL, now(), NULL);
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
TRUNCATE staging;
-- created_at must not go back before the stream's last stored event
INSERT INTO staging VALUES (1, 'acc-1', 4, 'T', '{}', NULL, '2000-01-01', NULL);
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
TRUNCATE staging;

------------------------------------------------------------------------
-- Gaps and duplicates within the source
------------------------------------------------------------------------
-- a gap
INSERT INTO staging VALUES (1, 'new-1', 1, 'T', '{}', NULL, now(), NULL),
                           (2, 'new-1', 3, 'T', '{}', NULL, now(), NULL);
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
TRUNCATE staging;
-- a version twice
INSERT INTO staging VALUES (1, 'new-1', 1, 'T', '{}', NULL, now(), NULL),
                           (2, 'new-1', 2, 'T', '{}', NULL, now(), NULL),
                           (3, 'new-1', 2, 'T', '{}', NULL, now(), NULL);
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
TRUNCATE staging;
-- versions against the order: version 2 before version 1
INSERT INTO staging VALUES (1, 'new-1', 2, 'T', '{}', NULL, now(), NULL),
                           (2, 'new-1', 1, 'T', '{}', NULL, now(), NULL);
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
TRUNCATE staging;
-- created_at going back within the source
INSERT INTO staging VALUES (1, 'new-1', 1, 'T', '{}', NULL, '2020-01-02', NULL),
                           (2, 'new-1', 2, 'T', '{}', NULL, '2020-01-01', NULL);
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
TRUNCATE staging;
-- an event id twice in a stream (the (stream_id, event_id) key)
INSERT INTO staging VALUES (1, 'new-1', 1, 'T', '{}', NULL, now(), 'bbbbbbbb-0000-4000-8000-000000000001'),
                           (2, 'new-1', 2, 'T', '{}', NULL, now(), 'bbbbbbbb-0000-4000-8000-000000000001');
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
TRUNCATE staging;
-- an event id the stream already has
INSERT INTO staging VALUES (1, 'acc-1', 4, 'T', '{}', NULL, now(), 'aaaaaaaa-0000-4000-8000-000000000002');
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
TRUNCATE staging;
-- the same id in two streams is fine; equal ord in one stream goes by version
INSERT INTO staging VALUES (1, 'new-1', 2, 'T', '{}', NULL, now(), 'cccccccc-0000-4000-8000-000000000001'),
                           (1, 'new-1', 1, 'T', '{}', NULL, now(), NULL),
                           (1, 'new-2', 1, 'T', '{}', NULL, now(), 'cccccccc-0000-4000-8000-000000000001');
BEGIN;
SELECT eventstore.import_events('staging');
SELECT stream_id, stream_version FROM eventstore.events WHERE stream_id LIKE 'new-%'
 ORDER BY global_position;
ROLLBACK;
TRUNCATE staging;
SELECT pg_temp.store() = :'store_before' AS unchanged;

------------------------------------------------------------------------
-- Bad rows
------------------------------------------------------------------------
INSERT INTO staging VALUES (NULL, 'bad-1', 1, 'T', '{}', NULL, now(), NULL);
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
TRUNCATE staging;
INSERT INTO staging VALUES (1, NULL, 1, 'T', '{}', NULL, now(), NULL);
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
TRUNCATE staging;
INSERT INTO staging VALUES (1, 'bad-1', NULL, 'T', '{}', NULL, now(), NULL);
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
TRUNCATE staging;
INSERT INTO staging VALUES (1, 'bad-1', 1, NULL, '{}', NULL, now(), NULL);
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
TRUNCATE staging;
INSERT INTO staging VALUES (1, 'bad-1', 1, 'T', NULL, NULL, now(), NULL);
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
TRUNCATE staging;
INSERT INTO staging VALUES (1, 'bad-1', 1, 'T', '{}', NULL, NULL, NULL);
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
TRUNCATE staging;
INSERT INTO staging VALUES (1, '', 1, 'T', '{}', NULL, now(), NULL);
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
TRUNCATE staging;
INSERT INTO staging VALUES (1, repeat('s', 1025), 1, 'T', '{}', NULL, now(), NULL);
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
TRUNCATE staging;
INSERT INTO staging VALUES (1, 'bad-1', 1, '', '{}', NULL, now(), NULL);
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
TRUNCATE staging;
INSERT INTO staging VALUES (1, 'bad-1', 1, 'T', '{}', '[1, 2]', now(), NULL);
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
TRUNCATE staging;
SET eventstore.max_event_size = 1024;
INSERT INTO staging VALUES (1, 'bad-1', 1, 'T', jsonb_build_object('x', repeat('x', 2000)), NULL, now(), NULL);
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
TRUNCATE staging;
RESET eventstore.max_event_size;
-- the first bad row in import order is reported
INSERT INTO staging VALUES (5, 'bad-1', 1, '', '{}', NULL, now(), NULL),
                           (3, 'bad-2', 7, 'T', '{}', NULL, now(), NULL);
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
TRUNCATE staging;
SELECT pg_temp.store() = :'store_before' AS unchanged;

------------------------------------------------------------------------
-- Bad sources
------------------------------------------------------------------------
SELECT pg_temp.try($$SELECT eventstore.import_events(NULL)$$);
SELECT pg_temp.try($$SELECT eventstore.import_events(0)$$);
SELECT pg_temp.try($$SELECT eventstore.import_events('eventstore.events')$$);
CREATE TEMP TABLE no_ord (stream_id text, stream_version bigint);
SELECT pg_temp.try($$SELECT eventstore.import_events('no_ord')$$);
CREATE TEMP TABLE text_version (LIKE eventstore.import_row);
ALTER TABLE text_version ALTER COLUMN stream_version TYPE text;
SELECT pg_temp.try($$SELECT eventstore.import_events('text_version')$$);
-- a table with the columns works, extra columns are ignored
CREATE TEMP TABLE staging_extra AS
    SELECT g::bigint AS ord, 'extra-1'::text AS stream_id, g::bigint AS stream_version, 'T'::text AS event_type,
           '{}'::jsonb AS data, NULL::jsonb AS metadata, now() AS created_at, NULL::uuid AS event_id,
           'extra' AS comment
      FROM generate_series(1, 3) g;
BEGIN;
SELECT eventstore.import_events('staging_extra');
SELECT eventstore.stream_version('extra-1');
ROLLBACK;
-- The source is read as the owner of eventstore.events: only a plain table,
-- without row-level security, read with ONLY (a view could run the caller's
-- functions with the owner's rights; 0.5.0 before the review accepted views)
CREATE TABLE public.import_seen (who text);
GRANT INSERT ON public.import_seen TO PUBLIC;
CREATE FUNCTION public.import_spy() RETURNS jsonb LANGUAGE sql AS
    $$ INSERT INTO public.import_seen VALUES (current_user) RETURNING '{}'::jsonb $$;
CREATE TEMP VIEW staging_view AS
    SELECT g::bigint AS ord, 'view-1'::text AS stream_id, g::bigint AS stream_version, 'T'::text AS event_type,
           public.import_spy() AS data, NULL::jsonb AS metadata, now() AS created_at, NULL::uuid AS event_id
      FROM generate_series(1, 3) g;
SELECT pg_temp.try($$SELECT eventstore.import_events('staging_view')$$) AS view_refused;
SELECT count(*) AS spy_never_ran FROM public.import_seen;
CREATE TEMP TABLE staging_rls (LIKE eventstore.import_row);
ALTER TABLE staging_rls ENABLE ROW LEVEL SECURITY;
SELECT pg_temp.try($$SELECT eventstore.import_events('staging_rls')$$) AS rls_refused;
-- rows of a child table are not read through its parent
CREATE TEMP TABLE staging_parent (LIKE eventstore.import_row);
CREATE TEMP TABLE staging_child () INHERITS (staging_parent);
INSERT INTO staging_child VALUES (1, 'child-1', 1, 'T', '{}', NULL, now(), NULL);
BEGIN;
SELECT eventstore.import_events('staging_parent') AS imported_from_parent_only;
ROLLBACK;
DROP VIEW staging_view;
DROP FUNCTION public.import_spy();
DROP TABLE public.import_seen;

------------------------------------------------------------------------
-- Privileges: EXECUTE is revoked from PUBLIC; an admin may import what it
-- may read; the events are written as the table's owner
------------------------------------------------------------------------
CREATE ROLE es_import_writer;
CREATE ROLE es_import_admin;
SELECT eventstore.grant_access('es_import_writer', 'writer');
SELECT eventstore.grant_access('es_import_admin', 'admin');
CREATE TABLE public.import_src (LIKE eventstore.import_row);
INSERT INTO public.import_src VALUES (1, 'priv-1', 1, 'T', '{}', NULL, now(), NULL);
SET ROLE es_import_writer;
SELECT pg_temp.try($$SELECT eventstore.import_events('public.import_src')$$);
SET ROLE es_import_admin;
SELECT pg_temp.try($$SELECT eventstore.import_events('public.import_src')$$);
RESET ROLE;
GRANT SELECT ON public.import_src TO es_import_admin;
SET ROLE es_import_admin;
SELECT pg_temp.try($$SELECT eventstore.import_events('public.import_src')$$);
RESET ROLE;
SELECT stream_id, stream_version FROM eventstore.events WHERE stream_id = 'priv-1';
DROP TABLE public.import_src;

------------------------------------------------------------------------
-- Clean up
------------------------------------------------------------------------
DROP EXTENSION eventstore;
DROP SCHEMA IF EXISTS eventstore;
DROP ROLE es_import_writer;
DROP ROLE es_import_admin;
