--
-- stores_outbox: routes, outbox rows, the relay, subscriptions, DCB,
-- import_events and statistics per store (0.6.0).
--   - a route on store A matches A's events only, and only A's owner adds
--     one; an event of a store other than the default one is published with
--     "store": its name; the default store's payloads are unchanged;
--   - a subscription delivers its store's events only (poll, ack, nack,
--     parked, status); creating one needs SELECT on the store;
--   - read_query reads one store; a condition checks the store appended to;
--   - import_events imports into the store named (its owner's right);
--   - the statistics views count per store;
--   - drop_store leaves no route, outbox row or subscription of the store.
--
-- Like outbox_payloads.sql, the relay worker is kept away from this
-- database, and notifications are printed with the sender's PID replaced.
--
\set VERBOSITY terse

CREATE FUNCTION pg_temp.wait_no_worker() RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    stable int := 0;
BEGIN
    FOR i IN 0..400 LOOP
        IF i % 10 = 0 THEN
            PERFORM pg_reload_conf();
        END IF;
        PERFORM pg_stat_clear_snapshot();
        IF EXISTS (SELECT FROM pg_stat_activity a
                    WHERE a.backend_type = 'eventstore relay'
                      AND a.datname = current_database()) THEN
            stable := 0;
        ELSE
            stable := stable + 1;
            IF stable >= 5 THEN
                RETURN true;
            END IF;
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN false;
END $$;

ALTER SYSTEM SET eventstore.relay_databases = 'eventstore_outbox_test_no_such_db';
SELECT pg_temp.wait_no_worker() AS no_worker;

SET client_min_messages = warning;
DROP EXTENSION IF EXISTS eventstore CASCADE;
DROP TABLE IF EXISTS public.so_a, public.so_b, public.so_plain;
RESET client_min_messages;
CREATE EXTENSION eventstore;

CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

SELECT eventstore.create_store('public.so_a') AS a, eventstore.create_store('public.so_b') AS b;
CREATE TABLE public.so_plain (x int);
CREATE ROLE regress_so_admin;
CREATE ROLE regress_so_reader;
GRANT USAGE ON SCHEMA eventstore TO regress_so_admin, regress_so_reader;

------------------------------------------------------------------------
-- Routes per store
------------------------------------------------------------------------
SELECT eventstore.add_route('so_ch_a', store => 'public.so_a');
SELECT eventstore.add_route('so_ch_def');
SELECT pg_temp.try($$SELECT eventstore.add_route('so_bad', store => NULL)$$) AS null_store;
SELECT pg_temp.try($$SELECT eventstore.add_route('so_bad', store => 'public.so_plain')$$) AS not_a_store;
-- channel names stay unique across stores
SELECT pg_temp.try($$SELECT eventstore.add_route('so_ch_a', store => 'public.so_b')$$) AS same_channel;
-- EXECUTE on add_route is enough for the default store, not for another
-- store: that takes its owner's privileges
GRANT EXECUTE ON FUNCTION eventstore.add_route(text, text[], text[], boolean, regclass),
                          eventstore.remove_route(text) TO regress_so_admin;
SET ROLE regress_so_admin;
SELECT pg_temp.try($$SELECT eventstore.add_route('so_ch_b', store => 'public.so_b')$$) AS not_owner;
SELECT pg_temp.try($$SELECT eventstore.add_route('so_ch_adm')$$) AS default_store;
SELECT pg_temp.try($$SELECT eventstore.remove_route('so_ch_adm')$$) AS removed;
RESET ROLE;
SELECT channel, store, with_data FROM eventstore.routes ORDER BY channel;

-- the same stream id in the three stores; only A's event and the default
-- store's get outbox rows, each on its own store's channel
LISTEN so_ch_a;
LISTEN so_ch_def;
SELECT stream_version, global_position FROM eventstore.append_event('x-1', 0, 'T', '{"n": "a"}',
    event_id => '00000000-0000-4000-8000-00000000000a', store => 'public.so_a');
SELECT stream_version, global_position FROM eventstore.append_event('x-1', 0, 'T', '{"n": "b"}',
    event_id => '00000000-0000-4000-8000-00000000000b', store => 'public.so_b');
SELECT stream_version, global_position FROM eventstore.append_event('x-1', 0, 'T', '{"n": "d"}',
    event_id => '00000000-0000-4000-8000-00000000000d');
SELECT eventstore.enqueue('so_ch_def', '{"m": 1}') AS message;
SELECT id, channel, global_position, store FROM eventstore.outbox ORDER BY id;
SELECT count(*) AS rows_of_b FROM eventstore.outbox WHERE store = 'public.so_b'::regclass;
\o | perl -0777 -pe 's/ PID \d+\./ PID N./g'
SELECT eventstore.relay_once() AS published;
\o
UNLISTEN *;
-- the durable API reads A's event from A, and names the store too
SELECT id, message FROM eventstore.consumer_poll('so_reader', 'so_ch_a');
SELECT id, message->'data' AS data, message ? 'store' AS has_store
  FROM eventstore.consumer_poll('so_reader', 'so_ch_def');
-- reading an event of a store through _outbox_event takes SELECT on
-- outbox_messages or on the store
SET ROLE regress_so_admin;
SELECT pg_temp.try($$SELECT * FROM eventstore._outbox_event('public.so_b', 2)$$) AS no_select;
RESET ROLE;

------------------------------------------------------------------------
-- Subscriptions per store
------------------------------------------------------------------------
SELECT eventstore.create_subscription('so_sub_a', partitions => 1, max_attempts => 1, store => 'public.so_a');
SELECT eventstore.create_subscription('so_sub_b', partitions => 1, store => 'public.so_b');
SELECT eventstore.create_subscription('so_sub_d', partitions => 1);
SELECT pg_temp.try($$SELECT eventstore.create_subscription('so_bad', store => NULL)$$) AS null_store;
SELECT pg_temp.try($$SELECT eventstore.create_subscription('so_bad', store => 'public.so_plain')$$) AS not_a_store;
SELECT name, store FROM eventstore.subscriptions ORDER BY name;
SELECT stream_version FROM eventstore.append_event('x-2', 0, 'U', '{"n": "a2"}', store => 'public.so_a');
SELECT stream_version FROM eventstore.append_event('x-2', 0, 'U', '{"n": "b2"}', store => 'public.so_b');
SELECT subscription, events_behind FROM eventstore.subscription_status ORDER BY subscription;
SELECT 'a' AS sub, global_position, stream_id, data->>'n' AS n FROM eventstore.poll('so_sub_a', 'w', 10)
UNION ALL
SELECT 'b', global_position, stream_id, data->>'n' FROM eventstore.poll('so_sub_b', 'w', 10)
UNION ALL
SELECT 'd', global_position, stream_id, data->>'n' FROM eventstore.poll('so_sub_d', 'w', 10)
ORDER BY 1, 2;
-- ack and nack find the event in the subscription's store
SELECT eventstore.ack('so_sub_b', 'w', 2);
SELECT eventstore.ack('so_sub_a', 'w', 1);
SELECT eventstore.nack('so_sub_a', 'w', 4, reason => 'no');
SELECT global_position, stream_id, stream_version, event_type, reason FROM eventstore.parked('so_sub_a');
-- an event of another store is not one of the subscription's
SELECT pg_temp.try($$SELECT eventstore.ack('so_sub_b', 'w', 4)$$) AS other_store;
SELECT subscription, checkpoint, events_behind, parked FROM eventstore.subscription_status ORDER BY subscription;
-- start at the end of the store: A ends at 4, though B has 5
SELECT eventstore.create_subscription('so_sub_a_end', partitions => 1, start => 'end', store => 'public.so_a');
SELECT checkpoint FROM eventstore.subscription_partitions WHERE subscription = 'so_sub_a_end';
-- creating a subscription on a store takes SELECT on it
GRANT EXECUTE ON FUNCTION eventstore.create_subscription(text, text[], text[], text, bigint, timestamptz,
    text, integer, integer, interval, interval, regclass) TO regress_so_reader;
SET ROLE regress_so_reader;
SELECT pg_temp.try($$SELECT eventstore.create_subscription('so_sub_r', store => 'public.so_a')$$) AS no_select;
RESET ROLE;
GRANT SELECT ON public.so_a TO regress_so_reader;
SET ROLE regress_so_reader;
SELECT pg_temp.try($$SELECT eventstore.create_subscription('so_sub_r', store => 'public.so_a')$$) AS with_select;
RESET ROLE;

------------------------------------------------------------------------
-- DCB: read_query and conditions per store
------------------------------------------------------------------------
SELECT stream_version FROM eventstore.append('c-1', NULL, ARRAY[
    eventstore.event('Booked', '{"n": "a"}', tags => ARRAY['seat:1'])], store => 'public.so_a');
SELECT stream_version FROM eventstore.append('c-1', NULL, ARRAY[
    eventstore.event('Booked', '{"n": "b"}', tags => ARRAY['seat:1'])], store => 'public.so_b');
SELECT 'a' AS store, data->>'n' AS n FROM eventstore.read_query('{"items": [{"tags": ["seat:1"]}]}', 0, 10, 'public.so_a')
UNION ALL
SELECT 'b', data->>'n' FROM eventstore.read_query('{"items": [{"tags": ["seat:1"]}]}', 0, 10, 'public.so_b')
UNION ALL
SELECT 'd', data->>'n' FROM eventstore.read_query('{"items": [{"tags": ["seat:1"]}]}')
ORDER BY 1;
SELECT pg_temp.try($$SELECT * FROM eventstore.read_query('{}', 0, 10, NULL)$$) AS null_store;
SELECT pg_temp.try($$SELECT * FROM eventstore.read_query('{}', 0, 10, 'public.so_plain')$$) AS not_a_store;
-- a condition on A decided at A's last seat:1 event: B's seat:1 event after
-- it does not count ...
SELECT max(global_position) AS pos_a FROM eventstore.read_query('{"items": [{"tags": ["seat:1"]}]}', 0, 10, 'public.so_a') \gset
SELECT stream_version FROM eventstore.append('c-2', NULL, ARRAY[
    eventstore.event('Booked', '{"n": "b2"}', tags => ARRAY['seat:1'])], store => 'public.so_b');
SELECT stream_version FROM eventstore.append('c-3', NULL, ARRAY[
    eventstore.event('Booked', '{"n": "a3"}', tags => ARRAY['seat:1'])],
    condition => jsonb_build_object('fail_if_events_match', '{"items": [{"tags": ["seat:1"]}]}'::jsonb, 'after', :pos_a),
    store => 'public.so_a');
-- ... A's own does (ES412), and the same condition on B fails on B's
SELECT pg_temp.try(format($$SELECT eventstore.append('c-4', NULL, ARRAY[
    eventstore.event('Booked', '{}', tags => ARRAY['seat:1'])],
    condition => jsonb_build_object('fail_if_events_match', '{"items": [{"tags": ["seat:1"]}]}'::jsonb, 'after', %s),
    store => 'public.so_a')$$, :pos_a)) AS a_again;
SELECT pg_temp.try(format($$SELECT eventstore.append('c-4', NULL, ARRAY[
    eventstore.event('Booked', '{}', tags => ARRAY['seat:1'])],
    condition => jsonb_build_object('fail_if_events_match', '{"items": [{"tags": ["seat:1"]}]}'::jsonb, 'after', %s),
    store => 'public.so_b')$$, :pos_a)) AS on_b;

------------------------------------------------------------------------
-- import_events into a store
------------------------------------------------------------------------
CREATE TABLE public.so_staging (LIKE eventstore.import_row);
INSERT INTO public.so_staging VALUES
    (1, 'imp-1', 1, 'Imported', '{"i": 1}', NULL, '2020-01-01', NULL),
    (2, 'imp-1', 2, 'Imported', '{"i": 2}', NULL, '2020-01-02', NULL),
    (3, 'x-1', 2, 'Imported', '{"i": 3}', NULL, now(), NULL);
SELECT max(global_position) AS before_import FROM (
    SELECT global_position FROM public.so_a UNION ALL SELECT global_position FROM public.so_b
    UNION ALL SELECT global_position FROM eventstore.events) p \gset
SELECT eventstore.import_events('public.so_staging', 'public.so_b') AS imported;
SELECT stream_id, stream_version, global_position - :before_import AS after_before, data
  FROM public.so_b WHERE event_type = 'Imported' ORDER BY global_position;
SELECT count(*) AS imported_elsewhere FROM (
    SELECT FROM public.so_a WHERE event_type = 'Imported'
    UNION ALL SELECT FROM eventstore.events WHERE event_type = 'Imported') x;
-- the next append to any store takes the position after the block
SELECT global_position - :before_import AS next FROM eventstore.append_event('x-3', 0, 'T', '{}');
-- x-1 of B is at version 2 now; a second import of x-1 version 2 conflicts
SELECT pg_temp.try($$SELECT eventstore.import_events('public.so_staging', 'public.so_b')$$) AS again;
SELECT pg_temp.try($$SELECT eventstore.import_events('public.so_staging', NULL)$$) AS null_store;
SELECT pg_temp.try($$SELECT eventstore.import_events('public.so_staging', 'public.so_plain')$$) AS not_a_store;
SELECT pg_temp.try($$SELECT eventstore.import_events('public.so_b', 'public.so_b')$$) AS into_itself;
-- EXECUTE on import_events imports into the default store; into another
-- store only with its owner's privileges
DELETE FROM public.so_staging;
INSERT INTO public.so_staging VALUES (1, 'imp-2', 1, 'Imported', '{}', NULL, now(), NULL);
GRANT EXECUTE ON FUNCTION eventstore.import_events(regclass, regclass) TO regress_so_admin;
GRANT SELECT ON public.so_staging TO regress_so_admin;
SET ROLE regress_so_admin;
SELECT pg_temp.try($$SELECT eventstore.import_events('public.so_staging', 'public.so_a')$$) AS not_owner;
SELECT pg_temp.try($$SELECT eventstore.import_events('public.so_staging')$$) AS default_store;
RESET ROLE;
SELECT count(*) AS imp2 FROM eventstore.events WHERE stream_id = 'imp-2';

------------------------------------------------------------------------
-- A store owned by a role of its own: its appends run as that role, which
-- cannot write the outbox nor read the position sequence; routes and
-- conditions work all the same
------------------------------------------------------------------------
CREATE ROLE regress_so_tenant;
GRANT USAGE ON SCHEMA eventstore TO regress_so_tenant;
GRANT EXECUTE ON FUNCTION eventstore.append_event(text, bigint, text, jsonb, jsonb, uuid, text[], jsonb, regclass)
    TO regress_so_tenant;
SELECT eventstore.create_store('public.so_t') AS t;
ALTER TABLE public.so_t OWNER TO regress_so_tenant;
SELECT eventstore.add_route('so_ch_t', store => 'public.so_t');
SET ROLE regress_so_tenant;
SELECT stream_version FROM eventstore.append_event('t-1', 0, 'T', '{"n": "t"}', store => 'public.so_t');
SELECT pg_temp.try(format($$SELECT eventstore.append_event('t-1', 1, 'T', '{}', store => 'public.so_t',
    condition => jsonb_build_object('fail_if_events_match', '{"items": [{"types": ["Nothing"]}]}'::jsonb,
                                    'after', %s))$$, :pos_a)) AS conditional;
SELECT pg_temp.try($$SELECT count(*) FROM eventstore.outbox$$) AS outbox_itself;
RESET ROLE;
SELECT o.channel, o.store, e.stream_id, e.stream_version
  FROM eventstore.outbox o JOIN public.so_t e USING (global_position) ORDER BY o.id;
DROP TABLE public.so_t;
SELECT count(*) AS routes_of_t FROM eventstore.routes WHERE channel = 'so_ch_t';

------------------------------------------------------------------------
-- Statistics per store
------------------------------------------------------------------------
SELECT eventstore.stats_reset();
SELECT stream_version FROM eventstore.append_event('s-1', 0, 'T', '{}', store => 'public.so_a');
SELECT stream_version FROM eventstore.append_event('s-1', 1, 'T', '{}', store => 'public.so_a');
SELECT stream_version FROM eventstore.append_event('s-1', 0, 'T', '{}', store => 'public.so_b');
SELECT pg_temp.try($$SELECT eventstore.append_event('s-1', 0, 'T', '{}', store => 'public.so_b')$$) AS conflict;
SELECT stream_version FROM eventstore.append_event('t-1', 0, 'T', '{}');
SELECT store, appends, events, conflicts FROM eventstore.stats
 WHERE database = current_database() ORDER BY store;
SELECT store, category, appends, conflicts FROM eventstore.category_stats
 WHERE database = current_database() ORDER BY store, category;

------------------------------------------------------------------------
-- drop_store forgets the store's routes, outbox rows and subscriptions
------------------------------------------------------------------------
SELECT 'public.so_a'::regclass::oid AS so_a \gset
SELECT eventstore.drop_store('public.so_a');
-- every eventstore table with a store column: no row of A's left
SELECT c.relname,
       (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM eventstore.%I WHERE store::oid = %s',
                                                   c.relname, :so_a), false, true, '')))[1]::text::int AS rows_of_a
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
 WHERE c.relnamespace = 'eventstore'::regnamespace AND c.relkind = 'r'
   AND a.attname = 'store' AND NOT a.attisdropped
 ORDER BY 1;
SELECT count(*) AS partitions_of_a FROM eventstore.subscription_partitions
 WHERE subscription IN ('so_sub_a', 'so_sub_a_end', 'so_sub_r');
SELECT channel, store FROM eventstore.routes ORDER BY channel;
SELECT name, store FROM eventstore.subscriptions ORDER BY name;
SELECT channel, store FROM eventstore.outbox ORDER BY id;

------------------------------------------------------------------------
-- Clean up
------------------------------------------------------------------------
DROP TABLE public.so_b, public.so_plain, public.so_staging;
DROP EXTENSION eventstore;
DROP OWNED BY regress_so_admin, regress_so_reader, regress_so_tenant;
DROP ROLE regress_so_admin, regress_so_reader, regress_so_tenant;
ALTER SYSTEM RESET eventstore.relay_databases;
SELECT pg_reload_conf();
