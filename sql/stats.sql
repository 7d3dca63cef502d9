--
-- stats: the counters in shared memory (src/stats.c) after a known workload
-- are exact.  Needs the library in shared_preload_libraries, as on the
-- cluster of scripts/test.sh; test/scripts/no_preload.sh checks the views
-- without it.  Counters are per database: stats_reset() clears this one's.
-- Every stream of this file is in category "stq" or "stz".
--
CREATE EXTENSION IF NOT EXISTS eventstore;
\set VERBOSITY terse

CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

SELECT eventstore.stats_reset();
SELECT count(*) AS rows_after_reset FROM eventstore.stats WHERE database = current_database();

------------------------------------------------------------------------
-- Workload
------------------------------------------------------------------------
-- 4 single-event appends, one batch of 3
SELECT count(*) FROM generate_series(1, 4) i,
       eventstore.append_event('stq-' || i, 0, 'StqOpened', '{"n": 1}');
SELECT stream_version FROM eventstore.append('stq-5', 0, ARRAY[
    eventstore.event('StqOpened', '{}'), eventstore.event('StqMoved', '{}'),
    eventstore.event('StqClosed', '{}')]);
-- 2 conflicts (ES409), in two categories
SELECT pg_temp.try($$SELECT eventstore.append_event('stq-1', 0, 'StqOpened', '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('stz-1', -1, 'StzOpened', '{}')$$);
-- 1 append, then 2 idempotent retries of it
SELECT stream_version FROM eventstore.append_event('stq-6', 0, 'StqOpened', '{}', NULL,
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
SELECT stream_version FROM eventstore.append_event('stq-6', 0, 'StqOpened', '{}', NULL,
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
SELECT stream_version FROM eventstore.append_event('stq-6', NULL, 'StqOpened', '{}', NULL,
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
-- a projection that counts, one that vetoes
CREATE TABLE stq_seen (n int);
CREATE FUNCTION stq_count(e eventstore.events) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO stq_seen VALUES (1) $$;
CREATE FUNCTION stq_veto(e eventstore.events) RETURNS void LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'vetoed %', e.stream_id; END $$;
SELECT eventstore.register_projection('stq_count', 'stq_count(eventstore.events)', ARRAY['StqCounted']);
SELECT eventstore.register_projection('stq_veto', 'stq_veto(eventstore.events)', ARRAY['StqVetoed']);
SELECT stream_version FROM eventstore.append('stq-7', 0, ARRAY[
    eventstore.event('StqCounted', '{}'), eventstore.event('StqCounted', '{}')]);
-- the veto: the append wrote its row, then the handler aborted it
SELECT pg_temp.try($$SELECT eventstore.append_event('stq-8', 0, 'StqVetoed', '{}')$$);
-- an append whose transaction rolls back is counted (attempts)
BEGIN;
SELECT stream_version FROM eventstore.append_event('stz-2', 0, 'StzOpened', '{}');
ROLLBACK;
-- with eventstore.stats off nothing is counted
SET eventstore.stats = off;
SELECT stream_version FROM eventstore.append_event('stz-3', 0, 'StzOpened', '{}');
SELECT pg_temp.try($$SELECT eventstore.append_event('stz-3', 0, 'StzOpened', '{}')$$);
RESET eventstore.stats;

------------------------------------------------------------------------
-- Expected: appends 4 + 1 + 1 + 1 + 1 (vetoed) + 1 (rolled back) = 9,
-- events 4 + 3 + 1 + 2 + 1 + 1 = 12, batches 2, conflicts 2, retries 2,
-- vetoes 1; projection handler calls 2 (stq_count; the vetoing call raised).
------------------------------------------------------------------------
SELECT store, appends, events, batches, conflicts, retries, vetoes, bytes,
       projection_calls, projection_time_ms > 0 AS projection_timed,
       upcaster_calls, policy_calls, stats_since <= now() AS since_ok, stats_dropped
  FROM eventstore.stats WHERE database = current_database();

SELECT store, category, appends, events, batches, conflicts, retries, vetoes, bytes
  FROM eventstore.category_stats WHERE database = current_database() ORDER BY category;

SELECT projection, calls, total_time_ms > 0 AS timed, mean_time_ms = total_time_ms / calls AS mean_ok
  FROM eventstore.projection_stats WHERE database = current_database() ORDER BY projection;

-- bytes: type, data and metadata of each event
SELECT (SELECT bytes FROM eventstore.category_stats
         WHERE database = current_database() AND category = 'stz')
     = octet_length('StzOpened') + pg_column_size('{}'::jsonb) AS stz_bytes_exact;

------------------------------------------------------------------------
-- Upcasters and snapshot policies are timed too
------------------------------------------------------------------------
SELECT eventstore.stats_reset();
CREATE FUNCTION stq_up(e eventstore.events) RETURNS eventstore.events LANGUAGE plpgsql
    AS $$ BEGIN e.event_type := 'StqOpenedV2'; RETURN e; END $$;
SELECT eventstore.register_upcaster('StqOpened', 'stq_up(eventstore.events)');
SELECT count(*) FROM eventstore.read_stream('stq-1');
SELECT eventstore.unregister_upcaster('StqOpened');
CREATE FUNCTION stq_fold(s jsonb, e eventstore.events) RETURNS jsonb LANGUAGE sql
    AS $$ SELECT s $$;
SELECT eventstore.set_snapshot_policy('stq_snap', 'stq_fold(jsonb, eventstore.events)', 2);
SELECT stream_version FROM eventstore.append('stz-9', 0, ARRAY[
    eventstore.event('StzOpened', '{}'), eventstore.event('StzOpened', '{}')]);
SELECT eventstore.remove_snapshot_policy('stq_snap');
SELECT appends, upcaster_calls, upcaster_time_ms > 0 AS upcaster_timed,
       policy_calls, policy_time_ms > 0 AS policy_timed
  FROM eventstore.stats WHERE database = current_database();

------------------------------------------------------------------------
-- Privileges: pg_monitor reads the views; stats_reset is the owner's
------------------------------------------------------------------------
SELECT has_table_privilege('pg_monitor', 'eventstore.stats', 'SELECT') AS monitor_stats,
       has_table_privilege('pg_monitor', 'eventstore.horizon_status', 'SELECT') AS monitor_horizon,
       has_function_privilege('pg_monitor', 'eventstore.stats_reset()', 'EXECUTE') AS monitor_reset,
       has_function_privilege('public', 'eventstore._stats()', 'EXECUTE') AS public_stats;

------------------------------------------------------------------------
-- The horizon with nothing in flight: horizon = newest, gap 0
------------------------------------------------------------------------
SELECT counter, newest = coalesce(pg_sequence_last_value(CASE counter WHEN 'position'
           THEN 'eventstore.events_global_position_seq'::regclass
           ELSE 'eventstore.outbox_id_seq'::regclass END), 0) AS newest_ok,
       gap, in_flight, oldest_pid
  FROM eventstore.horizon_status ORDER BY counter;
-- our own open transaction holds the horizon back, and is named
BEGIN;
SELECT count(*) FROM eventstore.append_event('stz-4', 0, 'StzOpened', '{}');
SELECT counter, gap, in_flight, oldest_pid = pg_backend_pid() AS me,
       oldest_value = newest AS oldest_is_newest, held_for >= '0'::interval AS held
  FROM eventstore.horizon_status WHERE counter = 'position';
COMMIT;

------------------------------------------------------------------------
-- The lag views, empty outbox
------------------------------------------------------------------------
SELECT pending, oldest_pending_age FROM eventstore.relay_lag;
SELECT count(*) FROM eventstore.consumer_lag;

SELECT eventstore.unregister_projection('stq_count');
SELECT eventstore.unregister_projection('stq_veto');
DROP TABLE stq_seen;
DROP FUNCTION stq_count, stq_veto, stq_up, stq_fold;
-- A pass of the relay worker that runs just then can deadlock with DROP
-- EXTENSION (40P01); retry rather than fail the run.
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
DROP SCHEMA IF EXISTS eventstore;
