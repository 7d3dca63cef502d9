--
-- stream_head: the shared cache of stream heads (src/stream_head.c).  An
-- append takes its stream's current version from the entry the previous
-- append to the stream left there, instead of looking the stream up.  Each
-- case changes a stream in a way the cache must not hide (a rollback, a
-- rolled-back savepoint, an INSERT by the owner, an import), then appends
-- with an exact expected version: a stale entry fails it with ES409, or
-- with a unique violation (23505), and the error shows here.  Needs the
-- library preloaded, as on the cluster of scripts/test.sh (without it there
-- is no cache and every case passes trivially).
--
CREATE EXTENSION IF NOT EXISTS eventstore;
\set VERBOSITY terse

-- versions(stream): the stream's versions as stored.
CREATE FUNCTION pg_temp.versions(s text) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(e.stream_version::text, ',' ORDER BY e.stream_version), '')
      FROM eventstore.events e WHERE e.stream_id = s
$$;

------------------------------------------------------------------------
-- Committed appends: each next one continues the last
------------------------------------------------------------------------
SELECT stream_version FROM eventstore.append_event('sh-1', 0, 'T', '{}');
SELECT stream_version FROM eventstore.append_event('sh-1', 1, 'T', '{}');
SELECT stream_version FROM eventstore.append_event('sh-1', NULL, 'T', '{}');
SELECT stream_version FROM eventstore.append_event('sh-1', 2, 'T', '{}');

------------------------------------------------------------------------
-- A rolled-back append leaves no head behind
------------------------------------------------------------------------
BEGIN;
SELECT stream_version FROM eventstore.append_event('sh-1', 3, 'T', '{}');
-- the transaction's own appends continue each other
SELECT stream_version FROM eventstore.append_event('sh-1', 4, 'T', '{}');
ROLLBACK;
SELECT stream_version FROM eventstore.append_event('sh-1', 3, 'T', '{}');
SELECT pg_temp.versions('sh-1');

------------------------------------------------------------------------
-- Savepoints: what a rolled-back subtransaction appended is forgotten,
-- what a released one appended is kept
------------------------------------------------------------------------
BEGIN;
SELECT stream_version FROM eventstore.append_event('sh-2', 0, 'T', '{}');
SAVEPOINT a;
SELECT stream_version FROM eventstore.append_event('sh-2', 1, 'T', '{}');
SAVEPOINT b;
SELECT stream_version FROM eventstore.append_event('sh-2', 2, 'T', '{}');
RELEASE b;
ROLLBACK TO a;
SELECT stream_version FROM eventstore.append_event('sh-2', 1, 'T', '{}');
SAVEPOINT c;
SELECT stream_version FROM eventstore.append_event('sh-2', 2, 'T', '{}');
RELEASE c;
SELECT stream_version FROM eventstore.append_event('sh-2', 3, 'T', '{}');
COMMIT;
SELECT pg_temp.versions('sh-2');
-- an error inside a PL/pgSQL block rolls back its subtransaction
DO $$
BEGIN
    BEGIN
        PERFORM eventstore.append_event('sh-2', 4, 'T', '{}');
        RAISE EXCEPTION 'undo';
    EXCEPTION WHEN raise_exception THEN
        NULL;
    END;
END $$;
SELECT stream_version FROM eventstore.append_event('sh-2', 4, 'T', '{}');
SELECT pg_temp.versions('sh-2');

------------------------------------------------------------------------
-- An INSERT by the store's owner (superuser here) writes a version no
-- append saw: the next append continues after it
------------------------------------------------------------------------
SELECT stream_version FROM eventstore.append_event('sh-3', 0, 'T', '{}');
INSERT INTO eventstore.events (global_position, stream_id, stream_version, event_id, event_type, data)
VALUES (nextval('eventstore.events_global_position_seq'), 'sh-3', 2, gen_random_uuid(), 'Direct', '{}');
SELECT stream_version FROM eventstore.append_event('sh-3', NULL, 'T', '{}');
SELECT stream_version FROM eventstore.append_event('sh-3', 3, 'T', '{}');
-- also when the INSERT comes in the same transaction as the appends
BEGIN;
SELECT stream_version FROM eventstore.append_event('sh-3', 4, 'T', '{}');
INSERT INTO eventstore.events (global_position, stream_id, stream_version, event_id, event_type, data)
VALUES (nextval('eventstore.events_global_position_seq'), 'sh-3', 6, gen_random_uuid(), 'Direct', '{}');
SELECT stream_version FROM eventstore.append_event('sh-3', 6, 'T', '{}');
COMMIT;
SELECT pg_temp.versions('sh-3');

------------------------------------------------------------------------
-- An import continuing a stream
------------------------------------------------------------------------
SELECT stream_version FROM eventstore.append_event('sh-4', 0, 'T', '{}');
CREATE TEMP TABLE staging (LIKE eventstore.import_row);
INSERT INTO staging (ord, stream_id, stream_version, event_type, data, created_at)
VALUES (1, 'sh-4', 2, 'Imported', '{}', now()), (2, 'sh-4', 3, 'Imported', '{}', now());
SELECT eventstore.import_events('staging');
SELECT stream_version FROM eventstore.append_event('sh-4', 3, 'T', '{}');
SELECT pg_temp.versions('sh-4');

------------------------------------------------------------------------
-- The same stream id in two stores, and a stream id too long to cache
------------------------------------------------------------------------
CREATE SCHEMA sh;
SELECT eventstore.create_store('sh.events');
SELECT stream_version FROM eventstore.append_event('sh-1', 0, 'T', '{}', store => 'sh.events');
SELECT stream_version FROM eventstore.append_event('sh-1', 1, 'T', '{}', store => 'sh.events');
SELECT stream_version FROM eventstore.append_event('sh-1', 4, 'T', '{}');
SELECT stream_version FROM eventstore.append_event(repeat('x', 100), 0, 'T', '{}');
SELECT stream_version FROM eventstore.append_event(repeat('x', 100), 1, 'T', '{}');

------------------------------------------------------------------------
-- Another session finds the head in the cache: its append does not scan
-- the primary key (a backend that checks the store first uses the entries
-- other backends left)
------------------------------------------------------------------------
\c
SELECT pg_stat_force_next_flush();
SELECT idx_scan AS pkey_scans FROM pg_stat_user_indexes
 WHERE indexrelid = 'eventstore.events_pkey'::regclass \gset
SELECT stream_version FROM eventstore.append_event('sh-1', 5, 'T', '{}');
SELECT pg_stat_force_next_flush();
SELECT idx_scan - :pkey_scans AS pkey_scans_of_the_append FROM pg_stat_user_indexes
 WHERE indexrelid = 'eventstore.events_pkey'::regclass;

------------------------------------------------------------------------
-- The same stream id in two stores, appended to in turn: each keeps its
-- own head.  Before, the entry was chosen by the stream id alone, so each
-- append found the other store's head there and scanned its primary key
-- (10 scans for these 10 appends; none now).
------------------------------------------------------------------------
SELECT stream_version FROM eventstore.append_event('sh-alt', 0, 'T', '{}');
SELECT stream_version FROM eventstore.append_event('sh-alt', 0, 'T', '{}', store => 'sh.events');
SELECT pg_stat_force_next_flush();
SELECT sum(idx_scan) AS pkey_scans FROM pg_stat_user_indexes
 WHERE indexrelid IN ('eventstore.events_pkey'::regclass, 'sh.events_pkey'::regclass) \gset
DO $$
BEGIN
    FOR i IN 1 .. 5 LOOP
        PERFORM eventstore.append_event('sh-alt', i, 'T', '{}');
        PERFORM eventstore.append_event('sh-alt', i, 'T', '{}', store => 'sh.events');
    END LOOP;
END $$;
SELECT pg_stat_force_next_flush();
SELECT sum(idx_scan) - :pkey_scans AS pkey_scans_of_10_appends FROM pg_stat_user_indexes
 WHERE indexrelid IN ('eventstore.events_pkey'::regclass, 'sh.events_pkey'::regclass);
SELECT (SELECT max(stream_version) FROM eventstore.events WHERE stream_id = 'sh-alt') AS default_store_head,
       (SELECT max(stream_version) FROM sh.events WHERE stream_id = 'sh-alt') AS sh_events_head;

------------------------------------------------------------------------
-- More appends in one transaction than it tracks entries (64): 70 to one
-- stream, then 70 streams twice over.  Before, the 65th write was dropped
-- and the entry kept the 64th head: the 66th append read it and failed with
-- 23505 (version 65 already there).
------------------------------------------------------------------------
DO $$
BEGIN
    FOR i IN 1 .. 70 LOOP
        PERFORM eventstore.append_event('sh-many', i - 1, 'T', '{}');
    END LOOP;
    FOR r IN 1 .. 2 LOOP
        FOR s IN 1 .. 70 LOOP
            PERFORM eventstore.append_event('sh-wide-' || s, r - 1, 'T', '{}');
        END LOOP;
    END LOOP;
END $$;
-- and the next transactions continue every stream from its real head
SELECT stream_version FROM eventstore.append_event('sh-many', 70, 'T', '{}');
SELECT count(*) AS continued
  FROM generate_series(1, 70) s, LATERAL eventstore.append_event('sh-wide-' || s, 2, 'T', '{}') a
 WHERE a.stream_version = 3;

------------------------------------------------------------------------
-- An owner's INSERT prepared for two-phase commit: it holds SHARE ROW
-- EXCLUSIVE on the store until COMMIT PREPARED, so no append caches a head
-- in between.  Before, the append in between got version 3 and cached it,
-- and after COMMIT PREPARED (stream 1, 2, 3, 4) the next append failed with
-- 23505 and one expecting 4 with ES409 "actual 3".
------------------------------------------------------------------------
SELECT stream_version FROM eventstore.append_event('sh-2pc', 0, 'T', '{}');
SELECT stream_version FROM eventstore.append_event('sh-2pc', 1, 'T', '{}');
BEGIN;
INSERT INTO eventstore.events (global_position, event_id, stream_id, stream_version, event_type, data)
VALUES (nextval('eventstore.events_global_position_seq'), gen_random_uuid(), 'sh-2pc', 4, 'T', '{}');
PREPARE TRANSACTION 'sh_2pc';
SET lock_timeout = '200ms';
SELECT stream_version FROM eventstore.append_event('sh-2pc', 2, 'T', '{}');  -- waits for the prepared INSERT
RESET lock_timeout;
COMMIT PREPARED 'sh_2pc';
SELECT stream_version FROM eventstore.append_event('sh-2pc', NULL, 'T', '{}');
SELECT stream_version FROM eventstore.append_event('sh-2pc', 5, 'T', '{}');

------------------------------------------------------------------------
-- A row inserted while the store's trigger is disabled (as pg_restore
-- --disable-triggers does) moves no entry: the append that uses the old
-- head fails once, and its abort empties the entry, so the next one looks
-- the stream up.  Before, every later append failed (23505, or ES409
-- "actual 1").
------------------------------------------------------------------------
SELECT stream_version FROM eventstore.append_event('sh-dis', 0, 'T', '{}');
ALTER TABLE eventstore.events DISABLE TRIGGER events_immutable;
INSERT INTO eventstore.events (global_position, event_id, stream_id, stream_version, event_type, data)
VALUES (nextval('eventstore.events_global_position_seq'), gen_random_uuid(), 'sh-dis', 2, 'T', '{}');
ALTER TABLE eventstore.events ENABLE ALWAYS TRIGGER events_immutable;
SELECT stream_version FROM eventstore.append_event('sh-dis', NULL, 'T', '{}');
SELECT stream_version FROM eventstore.append_event('sh-dis', NULL, 'T', '{}');
SELECT stream_version FROM eventstore.append_event('sh-dis', 3, 'T', '{}');
SELECT string_agg(stream_version::text, ',' ORDER BY stream_version) AS versions FROM eventstore.events WHERE stream_id = 'sh-dis';

DROP SCHEMA sh CASCADE;
DROP EXTENSION eventstore;
DROP SCHEMA IF EXISTS eventstore;
