--
-- immutable: UPDATE, DELETE and TRUNCATE of eventstore.events are refused
-- with ES002, for every role including superusers, also with
-- session_replication_role = replica (the trigger is enabled ALWAYS).
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

SELECT stream_version FROM eventstore.append('immutable-1', 0, ARRAY[
           eventstore.event('A', '{"n": 1}'), eventstore.event('B', '{"n": 2}')]);
SELECT pg_temp.store() AS store_before \gset

------------------------------------------------------------------------
-- As the client sees it
------------------------------------------------------------------------
\set VERBOSITY default
UPDATE eventstore.events SET data = '{}';
DELETE FROM eventstore.events;
TRUNCATE eventstore.events;
\set VERBOSITY sqlstate
UPDATE eventstore.events SET data = '{}';
DELETE FROM eventstore.events;
TRUNCATE eventstore.events;
\set VERBOSITY terse

------------------------------------------------------------------------
-- Every form of UPDATE and DELETE, even one that matches no row
------------------------------------------------------------------------
SELECT pg_temp.try($$UPDATE eventstore.events SET data = '{"changed": true}' WHERE stream_id = 'immutable-1'$$);
SELECT pg_temp.try($$UPDATE eventstore.events SET stream_version = stream_version + 100$$);
SELECT pg_temp.try($$UPDATE eventstore.events SET data = data WHERE false$$);
SELECT pg_temp.try($$DELETE FROM eventstore.events WHERE stream_id = 'immutable-1'$$);
SELECT pg_temp.try($$DELETE FROM eventstore.events WHERE false$$);
SELECT pg_temp.try($$DELETE FROM ONLY eventstore.events$$);
SELECT pg_temp.try($$WITH d AS (DELETE FROM eventstore.events RETURNING *) SELECT count(*) FROM d$$);
SELECT pg_temp.try($$WITH u AS (UPDATE eventstore.events SET metadata = '{}' RETURNING *) SELECT count(*) FROM u$$);
SELECT pg_temp.try($$TRUNCATE eventstore.events$$);
SELECT pg_temp.try($$TRUNCATE ONLY eventstore.events RESTART IDENTITY CASCADE$$);
-- INSERT ... ON CONFLICT DO UPDATE and MERGE fire the UPDATE / DELETE triggers
SELECT pg_temp.try($$INSERT INTO eventstore.events (global_position, stream_id, stream_version, event_id, event_type, data)
                     VALUES (0, 'immutable-1', 1, gen_random_uuid(), 'X', '{}')
                     ON CONFLICT (stream_id, stream_version) DO UPDATE SET data = EXCLUDED.data$$);
SELECT pg_temp.try($$MERGE INTO eventstore.events e USING (VALUES ('immutable-1')) AS v(s) ON e.stream_id = v.s
                     WHEN MATCHED THEN UPDATE SET data = '{}'$$);
SELECT pg_temp.try($$MERGE INTO eventstore.events e USING (VALUES ('immutable-1')) AS v(s) ON e.stream_id = v.s
                     WHEN MATCHED THEN DELETE$$);
-- from inside a function
CREATE FUNCTION pg_temp.wipe() RETURNS void LANGUAGE sql AS $$ DELETE FROM eventstore.events $$;
SELECT pg_temp.try($$SELECT pg_temp.wipe()$$);

------------------------------------------------------------------------
-- session_replication_role = replica does not switch the trigger off
------------------------------------------------------------------------
SET session_replication_role = replica;
SELECT pg_temp.try($$UPDATE eventstore.events SET data = '{}'$$);
SELECT pg_temp.try($$DELETE FROM eventstore.events$$);
SELECT pg_temp.try($$TRUNCATE eventstore.events$$);
\set VERBOSITY sqlstate
DELETE FROM eventstore.events;
\set VERBOSITY terse
SELECT pg_temp.store() = :'store_before' AS unchanged;
-- appends still work in replica mode
SELECT stream_version FROM eventstore.append_event('immutable-2', 0, 'InReplicaMode', '{}');
RESET session_replication_role;
SELECT pg_temp.store() AS store_before \gset

-- SET LOCAL in a transaction, too
BEGIN;
SET LOCAL session_replication_role = replica;
SELECT pg_temp.try($$DELETE FROM eventstore.events$$);
SELECT pg_temp.try($$TRUNCATE eventstore.events$$);
COMMIT;

------------------------------------------------------------------------
-- A role that was granted every table privilege is refused the same way
------------------------------------------------------------------------
CREATE ROLE regress_es_admin;
GRANT USAGE ON SCHEMA eventstore TO regress_es_admin;
GRANT ALL ON eventstore.events TO regress_es_admin;
SET ROLE regress_es_admin;
SELECT pg_temp.try($$UPDATE eventstore.events SET data = '{}'$$);
SELECT pg_temp.try($$DELETE FROM eventstore.events$$);
SELECT pg_temp.try($$TRUNCATE eventstore.events$$);
-- and may not switch the trigger off: that takes ownership
SELECT pg_temp.try($$ALTER TABLE eventstore.events DISABLE TRIGGER events_immutable$$);
SELECT pg_temp.try($$DROP TRIGGER events_immutable ON eventstore.events$$);
RESET ROLE;
REVOKE ALL ON eventstore.events FROM regress_es_admin;
REVOKE ALL ON SCHEMA eventstore FROM regress_es_admin;
DROP ROLE regress_es_admin;

------------------------------------------------------------------------
-- Nothing was changed; the trigger is still enabled ALWAYS
------------------------------------------------------------------------
SELECT pg_temp.store() = :'store_before' AS unchanged;
SELECT stream_id, stream_version, event_type, data FROM eventstore.events ORDER BY global_position;
SELECT tgenabled FROM pg_trigger WHERE tgrelid = 'eventstore.events'::regclass AND tgname = 'events_immutable';

------------------------------------------------------------------------
-- Clean up
------------------------------------------------------------------------
DROP EXTENSION eventstore;
DROP SCHEMA eventstore;
