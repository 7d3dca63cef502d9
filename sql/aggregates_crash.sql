--
-- aggregates_crash: inputs of the aggregates feature (0.4.0) that must be
-- refused or handled, not crash the backend.  Each ran into a NULL pointer
-- (signal 11, the postmaster restarting every backend) when this file was
-- written.  They run in a database of their own, so a crash leaves the
-- regression database's contents alone.
--
\set VERBOSITY terse
SELECT current_database() AS regress_db \gset
SET client_min_messages = warning;
DROP DATABASE IF EXISTS regress_agg_crash WITH (FORCE);
RESET client_min_messages;
CREATE DATABASE regress_agg_crash;
\c regress_agg_crash
CREATE EXTENSION eventstore;
\set VERBOSITY terse

CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE FUNCTION agg_list(state jsonb, e eventstore.events) RETURNS jsonb LANGUAGE sql AS $$
    SELECT COALESCE(state, '[]'::jsonb) || to_jsonb(e.stream_version)
$$;

------------------------------------------------------------------------
-- An upcaster that returns an event whose event_type is NULL: an error
-- (22004, like an upcaster returning NULL), on every read path
------------------------------------------------------------------------
CREATE FUNCTION agg_null_type(e eventstore.events) RETURNS eventstore.events LANGUAGE plpgsql AS $$
BEGIN
    e.event_type := NULL;
    RETURN e;
END $$;
SELECT stream_version FROM eventstore.append_event('aggcrash-1', 0, 'AggNullType', '{}');
SELECT eventstore.register_upcaster('AggNullType', 'agg_null_type(eventstore.events)');
SELECT left(pg_temp.try($$SELECT * FROM eventstore.read_stream('aggcrash-1')$$), 5) AS read_stream;
SELECT left(pg_temp.try($$SELECT * FROM eventstore.read_all()$$), 5) AS read_all;
SELECT left(pg_temp.try($$SELECT eventstore.aggregate('aggcrash-1', 'agg_list(jsonb, eventstore.events)')$$), 5) AS aggregate;
SELECT eventstore.unregister_upcaster('AggNullType');
SELECT stream_version, event_type FROM eventstore.read_stream('aggcrash-1');

------------------------------------------------------------------------
-- A snapshot policy with a NULL initial state (set_snapshot_policy
-- accepts and stores it): appends go on, and the policy folds from NULL
-- as aggregate(initial => NULL) does
------------------------------------------------------------------------
SELECT eventstore.set_snapshot_policy('agg_null_initial', 'agg_list(jsonb, eventstore.events)', 2, NULL,
                                      ARRAY['aggcrash']);
SELECT snapshot_type, every, initial IS NULL AS null_initial FROM eventstore.snapshot_policies;
-- an append to a stream the policy does not cover
SELECT stream_version FROM eventstore.append_event('aggother-1', 0, 'AggP', '{}');
-- and one it snapshots
SELECT stream_version FROM eventstore.append_event('aggcrash-1', 1, 'AggP', '{}');
SELECT stream_version, state,
       state = eventstore.aggregate('aggcrash-1', 'agg_list(jsonb, eventstore.events)', NULL, 2) AS as_aggregate
  FROM eventstore.snapshots WHERE stream_id = 'aggcrash-1';
SELECT eventstore.remove_snapshot_policy('agg_null_initial');

\c :regress_db
DROP DATABASE regress_agg_crash WITH (FORCE);
