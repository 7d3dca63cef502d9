--
-- es_hook_test: eventstore's C hook (eventstore_event_appended_hook), seen
-- from another extension that chains onto it in its _PG_init.  The hook
-- counts every appended event it sees, remembers the last one, and vetoes
-- events of type 'HookVeto'.
--
CREATE EXTENSION IF NOT EXISTS eventstore;
LOAD 'es_hook_test';
CREATE EXTENSION es_hook_test;
\set VERBOSITY terse

SELECT es_hook_test_reset();
SELECT es_hook_test_count() AS seen, es_hook_test_last() AS last;

-- one event, then a batch: the hook sees each stored event, in order
SELECT stream_version FROM eventstore.append_event('hook-1', 0, 'Created', '{}');
SELECT es_hook_test_count() AS seen, es_hook_test_last() AS last;
SELECT stream_version FROM eventstore.append('hook-1', 1, ARRAY[
    eventstore.event('Changed', '{}'), eventstore.event('Changed', '{}'),
    eventstore.event('Closed', '{}')]);
SELECT es_hook_test_count() AS seen, es_hook_test_last() AS last;

-- an append that fails before storing anything does not reach the hook
SELECT stream_version FROM eventstore.append_event('hook-1', 1, 'Stale', '{}');
SELECT es_hook_test_count() AS seen, es_hook_test_last() AS last;
-- nor does an idempotent retry, which stores nothing
SELECT stream_version FROM eventstore.append_event('hook-2', 0, 'Created', '{}', NULL,
                                                   '00000000-0000-4000-8000-0000000000a1');
SELECT stream_version FROM eventstore.append_event('hook-2', 0, 'Created', '{}', NULL,
                                                   '00000000-0000-4000-8000-0000000000a1');
SELECT es_hook_test_count() AS seen, es_hook_test_last() AS last;

-- the hook's error vetoes the append: nothing is stored
SELECT stream_version FROM eventstore.append_event('hook-1', 4, 'HookVeto', '{}');
\set VERBOSITY sqlstate
SELECT stream_version FROM eventstore.append_event('hook-1', 4, 'HookVeto', '{}');
\set VERBOSITY terse
SELECT eventstore.stream_version('hook-1');
-- in a batch, the events before the vetoed one are undone as well
SELECT stream_version FROM eventstore.append('hook-1', 4, ARRAY[
    eventstore.event('Changed', '{}'), eventstore.event('HookVeto', '{}'),
    eventstore.event('Changed', '{}')]);
SELECT eventstore.stream_version('hook-1');
SELECT stream_version, event_type FROM eventstore.read_stream('hook-1');
-- (the counter is not transactional: it counts the vetoed attempts too)
SELECT es_hook_test_count() AS seen, es_hook_test_last() AS last;

------------------------------------------------------------------------
-- The hook runs before the SQL projections, and its veto stops them
------------------------------------------------------------------------
CREATE TABLE hook_order (stream_id text, version bigint, hook_seen bigint, hook_last text);
CREATE FUNCTION hook_order_project(e eventstore.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO hook_order VALUES (e.stream_id, e.stream_version, es_hook_test_count(), es_hook_test_last());
END $$;
SELECT eventstore.register_projection('hook_order', 'hook_order_project(eventstore.events)');
SELECT es_hook_test_reset();
SELECT stream_version FROM eventstore.append('hook-3', 0, ARRAY[
    eventstore.event('A', '{}'), eventstore.event('B', '{}')]);
-- for each event, the hook had already seen it when the projection ran
SELECT * FROM hook_order ORDER BY version;
SELECT stream_version FROM eventstore.append_event('hook-3', 2, 'HookVeto', '{}');
SELECT count(*) AS projected FROM hook_order;

------------------------------------------------------------------------
-- Events appended by a projection handler reach the hook too
------------------------------------------------------------------------
CREATE FUNCTION hook_fanout(e eventstore.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM eventstore.append_event('hook-fanned-' || e.stream_version, 0, 'FannedOut', '{}');
END $$;
SELECT eventstore.register_projection('hook_fanout', 'hook_fanout(eventstore.events)', ARRAY['Fanout']);
SELECT es_hook_test_reset();
SELECT stream_version FROM eventstore.append_event('hook-4', 0, 'Fanout', '{}');
SELECT es_hook_test_count() AS seen, es_hook_test_last() AS last;
-- and the hook's veto of a nested event undoes the outer append
CREATE FUNCTION hook_fanout_veto(e eventstore.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM eventstore.append_event('hook-vetoed', NULL, 'HookVeto', '{}');
END $$;
SELECT eventstore.register_projection('hook_fanout_veto', 'hook_fanout_veto(eventstore.events)', ARRAY['FanoutVeto']);
SELECT stream_version FROM eventstore.append_event('hook-5', 0, 'FanoutVeto', '{}');
SELECT eventstore.stream_version('hook-5') AS hook_5, eventstore.stream_version('hook-vetoed') AS vetoed;

-- clean up (the library stays loaded in this backend)
SELECT eventstore.unregister_projection('hook_order');
SELECT eventstore.unregister_projection('hook_fanout');
SELECT eventstore.unregister_projection('hook_fanout_veto');
DROP FUNCTION hook_order_project(eventstore.events), hook_fanout(eventstore.events),
              hook_fanout_veto(eventstore.events);
DROP TABLE hook_order;
------------------------------------------------------------------------
-- The hook is told the store each event went to (hook version 2, 0.6.0)
------------------------------------------------------------------------
CREATE SCHEMA hook_tenant;
SELECT eventstore.create_store('hook_tenant.events') AS store;
SELECT stream_version FROM eventstore.append_event('hook-1', 0, 'InTenant', '{}', store => 'hook_tenant.events');
SELECT es_hook_test_last() AS last;
SELECT stream_version FROM eventstore.append_event('hook-9', 0, 'InDefault', '{}');
SELECT es_hook_test_last() AS last;
SELECT eventstore.drop_store('hook_tenant.events');
DROP SCHEMA hook_tenant;
DROP EXTENSION es_hook_test;
-- A pass of the relay worker (0.3.0) that runs just then can deadlock with
-- DROP EXTENSION (40P01, reported); retry rather than fail the run.
DO $$
BEGIN
    FOR i IN 1..20 LOOP
        BEGIN
            DROP EXTENSION eventstore;
            RETURN;
        EXCEPTION WHEN deadlock_detected THEN
            PERFORM pg_sleep(0.1);
        END;
    END LOOP;
    DROP EXTENSION eventstore;
END $$;

