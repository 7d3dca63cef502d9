--
-- lifecycle_derived: what derives from the log sees what reads see.
-- rebuild_projection replays what read_all returns (hidden events skipped,
-- data decrypted, the forgotten marker); relay payloads and outbox_messages
-- leave out hidden events and show the marker for forgotten keys;
-- import_events honours deletions; a retry of an append whose events were
-- purged.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS eventstore CASCADE;
CREATE EXTENSION eventstore;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
RESET client_min_messages;
\set VERBOSITY terse

CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

CREATE FUNCTION pg_temp.fill(sid text, n int, st regclass DEFAULT 'eventstore.events') RETURNS void
LANGUAGE sql AS $$
    SELECT eventstore.append(sid, NULL, ARRAY(SELECT eventstore.event('E', jsonb_build_object('n', i)) FROM generate_series(1, n) i), store => st)
$$;

------------------------------------------------------------------------
-- rebuild_projection replays what read_all returns
------------------------------------------------------------------------
CREATE TABLE lcd_seen (stream_id text, stream_version bigint, data jsonb);
CREATE FUNCTION lcd_project(e eventstore.events) RETURNS void LANGUAGE sql AS $$
    INSERT INTO lcd_seen VALUES (e.stream_id, e.stream_version, e.data) $$;
CREATE FUNCTION lcd_reset() RETURNS void LANGUAGE sql AS $$ DELETE FROM lcd_seen $$;
SELECT eventstore.register_projection('lcd', 'lcd_project(eventstore.events)',
                                      reset_handler => 'lcd_reset()');
SELECT pg_temp.fill('acct-1', 4);
SELECT pg_temp.fill('order-1', 2);
SELECT eventstore.append_event('patient-1', 0, 'Admitted', jsonb_build_object(
           'ward', 'B', 'name', eventstore.encrypt('person-1', '"Jane Roe"'))) IS NOT NULL AS appended;
SELECT eventstore.append_event('patient-2', 0, 'Admitted', jsonb_build_object(
           'ward', 'C', 'name', eventstore.encrypt('person-2', '"John Doe"'))) IS NOT NULL AS appended;
-- live: every event, data in clear
SELECT eventstore.rebuild_projection('lcd');
SELECT stream_id, stream_version, data FROM lcd_seen ORDER BY stream_id, stream_version;
-- max_count, a soft delete, a forget: the rebuild sees what read_all sees
SELECT eventstore.set_stream_metadata('acct-1', max_count => 2);
SELECT eventstore.delete_stream('order-1', 2);
SELECT eventstore.forget('person-1');
SELECT eventstore.rebuild_projection('lcd');
SELECT stream_id, stream_version, data FROM lcd_seen ORDER BY stream_id, stream_version;
SELECT (SELECT array_agg(row(stream_id, stream_version, data)::text ORDER BY stream_id, stream_version) FROM lcd_seen)
     = (SELECT array_agg(row(stream_id, stream_version, data)::text ORDER BY stream_id, stream_version)
          FROM eventstore.read_all(0, NULL)) AS same_as_read_all;
-- another store, with upcasters: decrypted before the upcaster, hidden ones skipped
SELECT eventstore.create_store('public.lcd_store');
CREATE FUNCTION lcd_up(e eventstore.events) RETURNS eventstore.events LANGUAGE sql AS $$
    SELECT (e.global_position, e.stream_id, e.stream_version, e.event_id, 'Upcast',
            e.data || '{"up": true}', e.metadata, e.created_at, e.tags)::eventstore.events $$;
SELECT eventstore.register_upcaster('E', 'lcd_up(eventstore.events)', store => 'public.lcd_store');
CREATE TABLE lcd_seen_2 (stream_id text, stream_version bigint, event_type text, data jsonb);
CREATE FUNCTION lcd_project_2(e eventstore.events) RETURNS void LANGUAGE sql AS $$
    INSERT INTO lcd_seen_2 VALUES (e.stream_id, e.stream_version, e.event_type, e.data) $$;
SELECT eventstore.register_projection('lcd_2', 'lcd_project_2(eventstore.events)', store => 'public.lcd_store');
SELECT pg_temp.fill('acct-1', 3, 'public.lcd_store');
SELECT eventstore.append_event('p-1', 0, 'E', eventstore.encrypt('person-3', '{"name": "Ann"}', 'public.lcd_store'),
                               store => 'public.lcd_store') IS NOT NULL AS appended;
SELECT eventstore.set_stream_metadata('acct-1', truncate_before => 3, store => 'public.lcd_store');
SELECT eventstore.forget('person-3', store => 'public.lcd_store');
TRUNCATE lcd_seen_2;
SELECT eventstore.rebuild_projection('lcd_2');
SELECT stream_id, stream_version, event_type, data FROM lcd_seen_2 ORDER BY stream_id, stream_version;
-- the reads of that store apply its own upcasters, also when its lifecycle
-- rows make them filter and decrypt (they applied the default store's)
SELECT stream_id, stream_version, event_type, data
  FROM eventstore.read_all(0, NULL, store => 'public.lcd_store') ORDER BY global_position;
SELECT stream_version, event_type FROM eventstore.read_stream('p-1', store => 'public.lcd_store');

------------------------------------------------------------------------
-- import_events honours deletions like append: a tombstone refuses the
-- stream (ES410); a soft-deleted (here also purged) stream continues its
-- version, and is recreated
------------------------------------------------------------------------
SELECT pg_temp.fill('user-1', 2);
SELECT eventstore.delete_stream('user-1', 2, hard => true);
CREATE TEMP TABLE staging (LIKE eventstore.import_row);
INSERT INTO staging VALUES (10, 'user-1', 3, 'E', '{"n": 3}', NULL, now(), NULL);
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
-- purged, a tombstone with no events left is a tombstone too; the other
-- rows go nowhere
SELECT eventstore.purge(1000) > 0 AS purged;
SELECT count(*) AS stored FROM eventstore.events WHERE stream_id IN ('user-1', 'order-1');
TRUNCATE staging;
INSERT INTO staging VALUES (10, 'acct-9', 1, 'E', '{}', NULL, now(), NULL),
                           (20, 'user-1', 1, 'E', '{}', NULL, now(), NULL);
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
SELECT count(*) AS imported FROM eventstore.events WHERE stream_id = 'acct-9';
-- order-1 was deleted at version 2 and purged: it continues at 3
TRUNCATE staging;
INSERT INTO staging VALUES (10, 'order-1', 1, 'Reopened', '{}', NULL, now(), NULL);
SELECT pg_temp.try($$SELECT eventstore.import_events('staging')$$);
TRUNCATE staging;
INSERT INTO staging VALUES (10, 'order-1', 3, 'Reopened', '{"n": 3}', NULL, now(), NULL),
                           (20, 'order-1', 4, 'E', '{"n": 4}', NULL, now(), NULL);
SELECT eventstore.import_events('staging');
SELECT stream_version, event_type, data FROM eventstore.read_stream('order-1');
SELECT * FROM eventstore.stream_metadata('order-1');
-- another store: the same
SELECT eventstore.delete_stream('acct-1', NULL, hard => true, store => 'public.lcd_store');
TRUNCATE staging;
INSERT INTO staging VALUES (10, 'acct-1', 4, 'E', '{}', NULL, now(), NULL);
SELECT pg_temp.try($$SELECT eventstore.import_events('staging', 'public.lcd_store')$$);

------------------------------------------------------------------------
-- A retry of an append whose events were since hidden or purged: the
-- idempotency check finds stored event ids only.  Hidden but stored, the
-- retry is recognised; purged, it is a new append, decided by its expected
-- version (README, Retention: "Retries after a purge")
------------------------------------------------------------------------
CREATE FUNCTION pg_temp.call(sid text, expected bigint, ids text[]) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    SELECT * INTO r FROM eventstore.append(sid, expected,
        ARRAY(SELECT eventstore.event('E', jsonb_build_object('id', i), event_id => ('00000000-0000-4000-8000-00000000000' || i)::uuid)
                FROM unnest(ids) i));
    RETURN 'version ' || r.stream_version;
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE FUNCTION pg_temp.stored(sid text) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(stream_version || ':' || right(event_id::text, 1), ',' ORDER BY stream_version), '-')
      FROM eventstore.events WHERE stream_id = sid $$;
-- soft-deleted, not purged: the retry is recognised and writes nothing
SELECT pg_temp.call('retry-1', 0, ARRAY['1', '2']);
SELECT eventstore.delete_stream('retry-1', 2);
SELECT pg_temp.call('retry-1', 0, ARRAY['1', '2']) AS retry_while_stored, pg_temp.stored('retry-1');
-- purged: a retry with expected version 0 recreates the stream with the
-- same events again (as any append with 0 to a deleted stream does)
SELECT eventstore.purge(1000) > 0 AS purged;
SELECT pg_temp.call('retry-1', 0, ARRAY['1', '2']) AS retry_after_purge, pg_temp.stored('retry-1');
-- max_count 1, purged: a retry of the whole call finds only its last event
-- (23505); an exact expected version conflicts (ES409); any version (NULL)
-- appends again
SELECT pg_temp.call('retry-2', 0, ARRAY['3', '4', '5']);
SELECT eventstore.set_stream_metadata('retry-2', max_count => 1);
SELECT eventstore.purge(1000) > 0 AS purged, pg_temp.stored('retry-2');
SELECT pg_temp.call('retry-2', 0, ARRAY['3', '4', '5']) AS partly_purged;
SELECT pg_temp.call('retry-2', 0, ARRAY['3']) AS exact_version;
SELECT pg_temp.call('retry-2', NULL, ARRAY['3']) AS any_version, pg_temp.stored('retry-2');
DROP FUNCTION pg_temp.call(text, bigint, text[]), pg_temp.stored(text);

------------------------------------------------------------------------
-- Clean up
------------------------------------------------------------------------
SELECT eventstore.drop_store('public.lcd_store');
DROP TABLE lcd_seen, lcd_seen_2, staging;
DROP FUNCTION pg_temp.fill(text, int, regclass);
DROP FUNCTION lcd_project(eventstore.events), lcd_project_2(eventstore.events), lcd_reset(), lcd_up(eventstore.events);
DROP EXTENSION eventstore;
DROP SCHEMA IF EXISTS eventstore;
DROP EXTENSION pgcrypto;
