--
-- stores_registries: projections, upcasters, snapshots, snapshot policies,
-- aggregate and the temporal reads per store.  Two stores, sr.a and sr.b,
-- hold a stream of the same id; whatever is registered on one never fires
-- for, applies to or is read from the other (nor the default store).  Then
-- who may manage and read what, bad store arguments, and drop_store, which
-- leaves no row of any eventstore table naming the dropped store.
--
-- Streams start with "sr", so what a section counts is its own.  The file
-- creates the extension if needed and drops it at the end.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS eventstore;
RESET client_min_messages;
\set VERBOSITY terse

-- try(sql): run sql; 'ok', or the SQLSTATE and message of the error it raised.
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
-- code(sql): 'ok' or the SQLSTATE alone.
CREATE FUNCTION pg_temp.code(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;

CREATE SCHEMA sr;
SELECT eventstore.create_store('sr.a') AS a, eventstore.create_store('sr.b') AS b;
SELECT 'sr.a'::regclass::oid AS a_oid, 'sr.b'::regclass::oid AS b_oid \gset

-- the same stream id in the three stores
SELECT stream_version FROM eventstore.append_event('sr_acc-1', 0, 'SrOpened', '{"n": 1}', store => 'sr.a');
SELECT stream_version FROM eventstore.append_event('sr_acc-1', 0, 'SrOpened', '{"n": 10}', store => 'sr.b');
SELECT stream_version FROM eventstore.append_event('sr_acc-1', 0, 'SrOpened', '{"n": 100}');

------------------------------------------------------------------------
-- Projections: registered on sr.a, fired by appends to sr.a only
------------------------------------------------------------------------
CREATE TABLE sr_seen (n bigint GENERATED ALWAYS AS IDENTITY, proj text, stream_id text,
                      stream_version bigint, event_type text, data jsonb);
CREATE FUNCTION sr_project_a(e eventstore.events) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO public.sr_seen (proj, stream_id, stream_version, event_type, data)
          VALUES ('a', e.stream_id, e.stream_version, e.event_type, e.data) $$;
CREATE FUNCTION sr_project_default(e eventstore.events) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO public.sr_seen (proj, stream_id, stream_version, event_type, data)
          VALUES ('default', e.stream_id, e.stream_version, e.event_type, e.data) $$;
CREATE FUNCTION sr_reset_a() RETURNS void LANGUAGE sql
    AS $$ DELETE FROM public.sr_seen WHERE proj = 'a' $$;
SELECT eventstore.register_projection('sr_proj_a', 'sr_project_a(eventstore.events)',
                                      ARRAY['SrDeposited', 'SrOpened', 'SrOpenedV2'], 'sr_reset_a()', 'sr.a');
SELECT eventstore.register_projection('sr_proj_default', 'sr_project_default(eventstore.events)',
                                      ARRAY['SrDeposited']);
SELECT name, store FROM eventstore.projections WHERE name LIKE 'sr\_%' ORDER BY name;
-- names are unique in the database, whatever the store
SELECT pg_temp.try($$SELECT eventstore.register_projection('sr_proj_a', 'sr_project_a(eventstore.events)',
                                                           store => 'sr.b')$$) AS same_name_other_store;

SELECT stream_version FROM eventstore.append_event('sr_acc-1', 1, 'SrDeposited', '{"n": 2}', store => 'sr.a');
SELECT stream_version FROM eventstore.append_event('sr_acc-1', 1, 'SrDeposited', '{"n": 20}', store => 'sr.b');
SELECT stream_version FROM eventstore.append_event('sr_acc-1', 1, 'SrDeposited', '{"n": 200}');
SELECT stream_version FROM eventstore.append('sr_acc-1', 2,
    ARRAY[eventstore.event('SrDeposited', '{"n": 30}'), eventstore.event('SrDeposited', '{"n": 40}')],
    store => 'sr.b');
-- a: only sr.a's deposit; default: only the default store's
SELECT proj, stream_version, event_type, data FROM sr_seen ORDER BY n;

-- disable/enable by name; rebuild replays sr.a's log only
SELECT eventstore.disable_projection('sr_proj_a');
SELECT stream_version FROM eventstore.append_event('sr_acc-1', 2, 'SrDeposited', '{"n": 3}', store => 'sr.a');
SELECT count(*) AS seen_while_disabled FROM sr_seen WHERE proj = 'a' AND stream_version = 3;
SELECT eventstore.enable_projection('sr_proj_a');
SELECT eventstore.rebuild_projection('sr_proj_a') AS replayed;
SELECT stream_version, event_type, data FROM sr_seen WHERE proj = 'a' ORDER BY n;

------------------------------------------------------------------------
-- Upcasters: registered on sr.a, applied to reads of sr.a only
------------------------------------------------------------------------
CREATE FUNCTION sr_up_opened(e eventstore.events) RETURNS eventstore.events LANGUAGE plpgsql AS $$
BEGIN
    e.event_type := 'SrOpenedV2';
    e.data := e.data || '{"upcast": true}';
    RETURN e;
END $$;
SELECT eventstore.register_upcaster('SrOpened', 'sr_up_opened(eventstore.events)', 'sr.a');
SELECT event_type, store FROM eventstore.upcasters WHERE event_type LIKE 'Sr%';
-- every read of sr.a sees the upcast event ...
SELECT stream_version, event_type, data FROM eventstore.read_stream('sr_acc-1', store => 'sr.a');
SELECT stream_version, event_type FROM eventstore.read_stream_backwards('sr_acc-1', store => 'sr.a');
SELECT stream_version, event_type FROM eventstore.read_all(0, NULL, 'sr.a');
SELECT stream_version, event_type FROM eventstore.read_category('sr_acc', 0, NULL, 'sr.a');
-- ... no read of sr.b or of the default store does
SELECT stream_version, event_type, data FROM eventstore.read_stream('sr_acc-1', store => 'sr.b');
SELECT stream_version, event_type FROM eventstore.read_all(0, NULL, 'sr.b');
SELECT stream_version, event_type, data FROM eventstore.read_stream('sr_acc-1');
-- a role that may read sr.a only reads its streams without any privilege on
-- the default store (the stream reads are C functions: no query of theirs
-- names a table the caller does not read)
CREATE ROLE regress_sr_tenant_reader;
GRANT USAGE ON SCHEMA eventstore, sr TO regress_sr_tenant_reader;
GRANT SELECT ON sr.a TO regress_sr_tenant_reader;
SET ROLE regress_sr_tenant_reader;
SELECT count(*) AS tenant_reads FROM eventstore.read_stream('sr_acc-1', store => 'sr.a');
SELECT count(*) AS tenant_reads_backwards FROM eventstore.read_stream_backwards('sr_acc-1', store => 'sr.a');
SELECT eventstore.stream_version('sr_acc-1', 'sr.a') AS tenant_version;
\set VERBOSITY sqlstate
SELECT count(*) FROM eventstore.read_stream('sr_acc-1');
\set VERBOSITY terse
RESET ROLE;
REVOKE ALL ON sr.a FROM regress_sr_tenant_reader;
REVOKE ALL ON SCHEMA eventstore, sr FROM regress_sr_tenant_reader;
DROP ROLE regress_sr_tenant_reader;
-- a projection of sr.a sees upcast events (rebuild)
SELECT eventstore.rebuild_projection('sr_proj_a') AS replayed;
SELECT stream_version, event_type, data FROM sr_seen WHERE proj = 'a' ORDER BY n;
-- the same event type may have an upcaster in another store; duplicates are per store
SELECT eventstore.register_upcaster('SrOpened', 'sr_up_opened(eventstore.events)', 'sr.b');
SELECT pg_temp.try($$SELECT eventstore.register_upcaster('SrOpened', 'sr_up_opened(eventstore.events)', 'sr.b')$$)
       AS duplicate;
SELECT stream_version, event_type FROM eventstore.read_stream('sr_acc-1', 1, 1, 'sr.b');
SELECT eventstore.unregister_upcaster('SrOpened', 'sr.b');
SELECT pg_temp.try($$SELECT eventstore.unregister_upcaster('SrOpened')$$) AS not_in_default;
SELECT stream_version, event_type FROM eventstore.read_stream('sr_acc-1', 1, 1, 'sr.b');
SELECT stream_version, event_type FROM eventstore.read_stream('sr_acc-1', 1, 1, 'sr.a');
-- _upcast of a row of another store: that store's upcasters, only for readers of it
SELECT (eventstore._upcast(ROW(e.*)::eventstore.events, 'sr.a')).event_type FROM sr.a e WHERE e.stream_version = 1;
SELECT (eventstore._upcast(ROW(e.*)::eventstore.events, 'sr.b')).event_type FROM sr.b e WHERE e.stream_version = 1;

------------------------------------------------------------------------
-- Aggregates, snapshots and policies per store
------------------------------------------------------------------------
CREATE FUNCTION sr_sum(s jsonb, e eventstore.events) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('sum', (s->>'sum')::int + (e.data->>'n')::int,
                              'types', (s->'types') || to_jsonb(e.event_type))
$$;
SELECT eventstore.aggregate('sr_acc-1', 'sr_sum(jsonb, eventstore.events)', '{"sum": 0, "types": []}',
                            store => 'sr.a') AS fold_a,
       eventstore.aggregate('sr_acc-1', 'sr_sum(jsonb, eventstore.events)', '{"sum": 0, "types": []}',
                            store => 'sr.b') AS fold_b,
       eventstore.aggregate('sr_acc-1', 'sr_sum(jsonb, eventstore.events)', '{"sum": 0, "types": []}') AS fold_default;
SELECT eventstore.aggregate('sr_acc-1', 'sr_sum(jsonb, eventstore.events)', '{"sum": 0, "types": []}',
                            until_version => 2, store => 'sr.b') AS fold_b_until_2;

-- a snapshot saved in sr.b is used by folds of sr.b only
SELECT pg_temp.try($$SELECT eventstore.save_snapshot('sr_acc-1', 4, '{"sum": 1000, "types": []}', 'sr_manual', 'sr.a')$$)
       AS no_version_4_in_a;
SELECT eventstore.save_snapshot('sr_acc-1', 4, '{"sum": 1000, "types": []}', 'sr_manual', 'sr.b');
SELECT stream_version, state FROM eventstore.load_snapshot('sr_acc-1', 'sr_manual', store => 'sr.b');
SELECT count(*) AS in_a FROM eventstore.load_snapshot('sr_acc-1', 'sr_manual', store => 'sr.a');
SELECT count(*) AS in_default FROM eventstore.load_snapshot('sr_acc-1', 'sr_manual');
SELECT eventstore.aggregate('sr_acc-1', 'sr_sum(jsonb, eventstore.events)', '{"sum": 0, "types": []}',
                            snapshot_type => 'sr_manual', store => 'sr.b') AS fold_b_from_snapshot,
       eventstore.aggregate('sr_acc-1', 'sr_sum(jsonb, eventstore.events)', '{"sum": 0, "types": []}',
                            snapshot_type => 'sr_manual', store => 'sr.a') AS fold_a_no_snapshot;

-- a policy set on sr.b takes snapshots of sr.b's appends only (sr.a and
-- the default store cross a multiple of 2 too); its type is the policy's in
-- sr.b, and still free in sr.a
SELECT eventstore.set_snapshot_policy('sr_every_2', 'sr_sum(jsonb, eventstore.events)', 2,
                                      '{"sum": 0, "types": []}', store => 'sr.b');
SELECT snapshot_type, every, store FROM eventstore.snapshot_policies WHERE snapshot_type LIKE 'sr\_%';
SELECT stream_version FROM eventstore.append_event('sr_acc-1', 3, 'SrDeposited', '{"n": 4}', store => 'sr.a');
SELECT stream_version FROM eventstore.append('sr_acc-1', 2,
    ARRAY[eventstore.event('SrDeposited', '{"n": 300}'), eventstore.event('SrDeposited', '{"n": 400}')]);
SELECT stream_version FROM eventstore.append_event('sr_acc-1', 4, 'SrDeposited', '{"n": 50}', store => 'sr.b');
SELECT stream_version FROM eventstore.append_event('sr_acc-1', 5, 'SrDeposited', '{"n": 60}', store => 'sr.b');
SELECT s.store, s.stream_id, s.snapshot_type, s.stream_version, s.state, s.by_policy
  FROM eventstore.snapshots s WHERE s.stream_id LIKE 'sr\_%' ORDER BY s.store::text, s.snapshot_type, s.stream_version;
SELECT pg_temp.try($$SELECT eventstore.save_snapshot('sr_acc-1', 6, '{}', 'sr_every_2', 'sr.b')$$) AS policy_type_in_b;
SELECT eventstore.save_snapshot('sr_acc-1', 4, '{"sum": -1, "types": []}', 'sr_every_2', 'sr.a');
SELECT stream_version, state FROM eventstore.load_snapshot('sr_acc-1', 'sr_every_2', store => 'sr.b');
SELECT stream_version, state FROM eventstore.load_snapshot('sr_acc-1', 'sr_every_2', store => 'sr.a');
SELECT pg_temp.try($$SELECT eventstore.remove_snapshot_policy('sr_every_2')$$) AS not_in_default;
SELECT eventstore.remove_snapshot_policy('sr_every_2', 'sr.b');

-- A snapshot names its store by name too (store_name, 0.7.0: the key on a
-- Citus cluster, where a store's OID differs between nodes).  A store that is
-- not distributed finds its snapshots by OID: a renamed store keeps them, a
-- snapshot saved again under its new name is the one used, and a store made
-- under the old name does not see them.
SELECT s.store, s.store_name, s.stream_version FROM eventstore.snapshots s
 WHERE s.stream_id = 'sr_acc-1' AND s.snapshot_type = 'sr_manual';
SELECT eventstore.create_store('sr.ren') IS NOT NULL AS created;
SELECT stream_version FROM eventstore.append_event('sr_ren-1', 0, 'SrDeposited', '{"n": 1}', store => 'sr.ren');
SELECT eventstore.save_snapshot('sr_ren-1', 1, '{"sum": 7}', 'sr_manual', 'sr.ren');
ALTER TABLE sr.ren RENAME TO ren2;
SELECT stream_version, state FROM eventstore.load_snapshot('sr_ren-1', 'sr_manual', store => 'sr.ren2') AS renamed;
SELECT eventstore.save_snapshot('sr_ren-1', 1, '{"sum": 8}', 'sr_manual', 'sr.ren2');
SELECT stream_version, state FROM eventstore.load_snapshot('sr_ren-1', 'sr_manual', store => 'sr.ren2') AS saved_again;
SELECT eventstore.create_store('sr.ren') IS NOT NULL AS created_under_old_name;
SELECT stream_version FROM eventstore.append_event('sr_ren-1', 0, 'SrDeposited', '{"n": 1}', store => 'sr.ren');
SELECT count(*) AS under_old_name FROM eventstore.load_snapshot('sr_ren-1', 'sr_manual', store => 'sr.ren');
SELECT eventstore.drop_store('sr.ren'), eventstore.drop_store('sr.ren2');
SELECT count(*) AS left_after_drop FROM eventstore.snapshots s WHERE s.stream_id = 'sr_ren-1';

------------------------------------------------------------------------
-- Temporal reads per store
------------------------------------------------------------------------
SELECT stream_version FROM eventstore.append_event('sr_time-1', 0, 'SrT', '{"n": 1}', store => 'sr.a');
SELECT stream_version FROM eventstore.append_event('sr_time-1', 0, 'SrT', '{"n": 1}', store => 'sr.b');
SELECT pg_sleep(0.01);
SELECT clock_timestamp() AS t1 \gset
SELECT pg_sleep(0.01);
SELECT stream_version FROM eventstore.append_event('sr_time-1', 1, 'SrT', '{"n": 1}', store => 'sr.a');
SELECT stream_version FROM eventstore.append_event('sr_time-1', 1, 'SrT', '{"n": 1}', store => 'sr.b');
SELECT stream_version FROM eventstore.append_event('sr_time-1', 2, 'SrT', '{"n": 1}', store => 'sr.b');
SELECT eventstore.stream_version_at('sr_time-1', :'t1', 'sr.a') AS a_at_t1,
       eventstore.stream_version_at('sr_time-1', 'infinity', 'sr.a') AS a_now,
       eventstore.stream_version_at('sr_time-1', 'infinity', 'sr.b') AS b_now,
       eventstore.stream_version_at('sr_time-1', 'infinity') AS default_now;
SELECT string_agg(stream_version::text, ',' ORDER BY stream_version) AS b_until_t1
  FROM eventstore.read_stream_until('sr_time-1', :'t1', store => 'sr.b');
SELECT string_agg(stream_version::text, ',' ORDER BY stream_version) AS b_until_now
  FROM eventstore.read_stream_until('sr_time-1', 'infinity', 2, store => 'sr.b');
SELECT string_agg(stream_version::text, ',' ORDER BY stream_version) AS default_until_now
  FROM eventstore.read_stream_until('sr_time-1', 'infinity');
SELECT string_agg(stream_id || ':' || stream_version, ',' ORDER BY global_position) AS a_log_until_t1
  FROM eventstore.read_all_until(:'t1', 0, NULL, 'sr.a') WHERE stream_id LIKE 'sr\_time%';
SELECT string_agg(stream_id || ':' || stream_version, ',' ORDER BY global_position) AS b_log_until_now
  FROM eventstore.read_all_until('infinity', 0, NULL, 'sr.b') WHERE stream_id LIKE 'sr\_time%';
SELECT eventstore.aggregate('sr_time-1', 'sr_sum(jsonb, eventstore.events)', '{"sum": 0, "types": []}',
                            until_time => :'t1', store => 'sr.b') AS b_fold_until_t1;
-- an upcaster cannot move an event in time: the upcast read is the same prefix
SELECT string_agg(event_type, ',' ORDER BY stream_version) AS a_upcast_until_t1
  FROM eventstore.read_stream_until('sr_acc-1', :'t1', store => 'sr.a');

------------------------------------------------------------------------
-- Bad store arguments
------------------------------------------------------------------------
CREATE TABLE sr_not_a_store (x int);
SELECT pg_temp.try($$SELECT eventstore.register_projection('sr_p', 'sr_project_a(eventstore.events)', store => NULL)$$) AS null_store;
SELECT pg_temp.try($$SELECT eventstore.register_upcaster('SrX', 'sr_up_opened(eventstore.events)', 'sr_not_a_store')$$) AS not_a_store;
SELECT pg_temp.try($$SELECT eventstore.register_upcaster('SrX', 'sr_up_opened(eventstore.events)', 'sr.nope')$$) AS unknown;
SELECT pg_temp.try($$SELECT eventstore.aggregate('sr_acc-1', 'sr_sum(jsonb, eventstore.events)', store => NULL)$$) AS aggregate_null;
SELECT pg_temp.try($$SELECT * FROM eventstore.load_snapshot('sr_acc-1', store => 'sr_not_a_store')$$) AS load_not_a_store;
SELECT pg_temp.try($$SELECT eventstore.save_snapshot('sr_acc-1', 1, '{}', 'x', NULL)$$) AS save_null;
SELECT pg_temp.try($$SELECT eventstore.set_snapshot_policy('x', 'sr_sum(jsonb, eventstore.events)', 1, store => NULL)$$) AS policy_null;
SELECT pg_temp.try($$SELECT eventstore.stream_version_at('sr_acc-1', now(), NULL)$$) AS version_at_null;
SELECT pg_temp.try($$SELECT eventstore.stream_version_at('sr_acc-1', now(), 'sr_not_a_store')$$) AS version_at_not_a_store;
SELECT pg_temp.try($$SELECT eventstore.stream_version_at('sr_acc-1', NULL, 'sr.a')$$) AS version_at_null_time;
SELECT pg_temp.try($$SELECT * FROM eventstore.read_all_until(now(), 0, 10, NULL)$$) AS read_all_until_null;
SELECT pg_temp.try($$SELECT eventstore._upcast(NULL::eventstore.events, NULL)$$) AS upcast_null_store;

------------------------------------------------------------------------
-- Privileges
------------------------------------------------------------------------
-- regress_sr_admin may manage registries (EXECUTE, as grant_access gives an
-- admin) and reads the default store; regress_sr_tenant owns store sr_t.c.
CREATE ROLE regress_sr_admin;
CREATE ROLE regress_sr_tenant;
CREATE ROLE regress_sr_reader;
GRANT USAGE ON SCHEMA eventstore, sr TO regress_sr_admin, regress_sr_tenant, regress_sr_reader;
GRANT SELECT, INSERT ON eventstore.events TO regress_sr_admin;
GRANT EXECUTE ON FUNCTION
    eventstore.register_projection(text, regprocedure, text[], regprocedure, regclass),
    eventstore.unregister_projection(text), eventstore.disable_projection(text),
    eventstore.enable_projection(text), eventstore.rebuild_projection(text),
    eventstore.register_upcaster(text, regprocedure, regclass),
    eventstore.unregister_upcaster(text, regclass),
    eventstore.set_snapshot_policy(text, regprocedure, bigint, jsonb, text[], regclass),
    eventstore.remove_snapshot_policy(text, regclass),
    eventstore.save_snapshot(text, bigint, jsonb, text, regclass),
    eventstore.append_event(text, bigint, text, jsonb, jsonb, uuid, text[], jsonb, regclass),
    eventstore.create_store(text)
    TO regress_sr_admin, regress_sr_tenant;
CREATE SCHEMA sr_t AUTHORIZATION regress_sr_tenant;
CREATE FUNCTION sr_admin_handler(e eventstore.events) RETURNS void LANGUAGE sql AS $$ SELECT $$;
ALTER FUNCTION sr_admin_handler(eventstore.events) OWNER TO regress_sr_admin;
-- (made by the superuser and given to the tenant: a tenant's own
-- create_store is create_store's test)
SELECT eventstore.create_store('sr_t.c');
ALTER TABLE sr_t.c OWNER TO regress_sr_tenant;
GRANT USAGE ON SCHEMA sr_t TO regress_sr_admin;
SET ROLE regress_sr_tenant;
CREATE FUNCTION sr_t.tenant_handler(e eventstore.events) RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION sr_t.tenant_up(e eventstore.events) RETURNS eventstore.events LANGUAGE plpgsql
    AS $$ BEGIN e.event_type := 'SrTenantV2'; RETURN e; END $$;
CREATE FUNCTION sr_t.tenant_sum(s jsonb, e eventstore.events) RETURNS jsonb LANGUAGE sql AS $$ SELECT s $$;
-- the owner of a store manages its registries ...
SELECT eventstore.register_projection('sr_tenant_proj', 'sr_t.tenant_handler(eventstore.events)', store => 'sr_t.c');
SELECT eventstore.register_upcaster('SrTenant', 'sr_t.tenant_up(eventstore.events)', 'sr_t.c');
SELECT eventstore.set_snapshot_policy('sr_tenant', 'sr_t.tenant_sum(jsonb, eventstore.events)', 1, store => 'sr_t.c');
SELECT stream_version FROM eventstore.append_event('sr_t-1', 0, 'SrTenant', '{}', store => 'sr_t.c');
SELECT eventstore.save_snapshot('sr_t-1', 1, '{}', 'sr_tenant_manual', 'sr_t.c');
SELECT stream_version FROM eventstore.load_snapshot('sr_t-1', 'sr_tenant', store => 'sr_t.c');
SELECT event_type FROM eventstore.read_all(0, NULL, 'sr_t.c');
-- ... but not another store's (sr.a is the superuser's)
SELECT pg_temp.try($$SELECT eventstore.register_projection('sr_t_on_a', 'sr_t.tenant_handler(eventstore.events)', store => 'sr.a')$$) AS tenant_on_a;
SELECT pg_temp.try($$SELECT eventstore.register_upcaster('SrTenant', 'sr_t.tenant_up(eventstore.events)', 'sr.a')$$) AS tenant_upcaster_on_a;
SELECT pg_temp.try($$SELECT eventstore.set_snapshot_policy('sr_t', 'sr_t.tenant_sum(jsonb, eventstore.events)', 1, store => 'sr.a')$$) AS tenant_policy_on_a;
SELECT pg_temp.try($$SELECT eventstore.disable_projection('sr_proj_a')$$) AS tenant_disables_a;
SELECT pg_temp.try($$SELECT eventstore.unregister_projection('sr_proj_a')$$) AS tenant_unregisters_a;
SELECT pg_temp.try($$SELECT eventstore.rebuild_projection('sr_proj_a')$$) AS tenant_rebuilds_a;
SELECT pg_temp.try($$SELECT eventstore.unregister_upcaster('SrOpened', 'sr.a')$$) AS tenant_unregisters_a_upcaster;
-- reading another store's snapshots or folding it takes SELECT on it
SELECT pg_temp.try($$SELECT * FROM eventstore.load_snapshot('sr_acc-1', 'sr_manual', store => 'sr.b')$$) AS tenant_loads_b;
SELECT pg_temp.try($$SELECT eventstore.aggregate('sr_acc-1', 'sr_t.tenant_sum(jsonb, eventstore.events)', store => 'sr.b')$$) AS tenant_folds_b;
SELECT pg_temp.try($$SELECT eventstore.stream_version_at('sr_acc-1', 'infinity', 'sr.b')$$) AS tenant_version_at_b;
SELECT pg_temp.try($$SELECT eventstore.save_snapshot('sr_acc-1', 1, '{}', 'sr_forged', 'sr.b')$$) AS tenant_saves_in_b;
SELECT pg_temp.code($$SELECT * FROM eventstore.read_stream_until('sr_acc-1', 'infinity', store => 'sr.b')$$) AS tenant_reads_b_until;
SELECT pg_temp.try($$SELECT * FROM eventstore.read_all_until('infinity', 0, 10, 'sr.b')$$) AS tenant_reads_b_log_until;
RESET ROLE;
-- the admin: EXECUTE is enough on the default store, not on a store it does not own
SET ROLE regress_sr_admin;
SELECT pg_temp.try($$SELECT eventstore.register_projection('sr_admin_default', 'sr_admin_handler(eventstore.events)')$$) AS admin_on_default;
SELECT pg_temp.try($$SELECT eventstore.unregister_projection('sr_admin_default')$$) AS admin_unregisters_default;
SELECT pg_temp.try($$SELECT eventstore.register_projection('sr_admin_c', 'sr_admin_handler(eventstore.events)', store => 'sr_t.c')$$) AS admin_on_c;
SELECT pg_temp.try($$SELECT eventstore.disable_projection('sr_tenant_proj')$$) AS admin_disables_tenant;
SELECT pg_temp.try($$SELECT eventstore.remove_snapshot_policy('sr_tenant', 'sr_t.c')$$) AS admin_removes_tenant_policy;
RESET ROLE;
-- a member of the store's owner counts as its owner
GRANT regress_sr_tenant TO regress_sr_admin;
SET ROLE regress_sr_admin;
SELECT pg_temp.try($$SELECT eventstore.disable_projection('sr_tenant_proj')$$) AS member_disables_tenant;
RESET ROLE;
REVOKE regress_sr_tenant FROM regress_sr_admin;
-- a reader with SELECT on sr.b alone: folds and loads sr.b, saves nothing
GRANT SELECT ON sr.b TO regress_sr_reader;
GRANT EXECUTE ON FUNCTION eventstore.save_snapshot(text, bigint, jsonb, text, regclass) TO regress_sr_reader;
SET ROLE regress_sr_reader;
SELECT stream_version, state FROM eventstore.load_snapshot('sr_acc-1', 'sr_manual', store => 'sr.b');
SELECT eventstore.stream_version_at('sr_acc-1', 'infinity', 'sr.b') AS reader_version_at_b;
SELECT eventstore.aggregate('sr_acc-1', 'sr_sum(jsonb, eventstore.events)', '{"sum": 0, "types": []}',
                            until_version => 1, store => 'sr.b') AS reader_folds_b;
SELECT pg_temp.try($$SELECT eventstore.save_snapshot('sr_acc-1', 1, '{}', 'x', 'sr.b')$$) AS reader_saves;
SELECT pg_temp.try($$SELECT * FROM eventstore.load_snapshot('sr_acc-1', 'sr_manual', store => 'sr.a')$$) AS reader_loads_a;
RESET ROLE;

------------------------------------------------------------------------
-- drop_store removes every trace of the store
------------------------------------------------------------------------
-- rows naming each store, in every eventstore table with a store column
CREATE FUNCTION pg_temp.traces(store oid) RETURNS TABLE (tbl text, n bigint) LANGUAGE plpgsql AS $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT c.oid::regclass AS rel FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
              WHERE c.relnamespace = 'eventstore'::regnamespace AND c.relkind = 'r'
                AND a.attname = 'store' AND NOT a.attisdropped AND a.atttypid = 'regclass'::regtype
              ORDER BY c.relname LOOP
        tbl := t.rel::text;
        EXECUTE format('SELECT count(*) FROM %s WHERE store::oid = $1', t.rel) INTO n USING store;
        RETURN NEXT;
    END LOOP;
END $$;
SELECT eventstore.register_projection('sr_proj_b', 'sr_project_a(eventstore.events)', store => 'sr.b');
SELECT eventstore.register_upcaster('SrGone', 'sr_up_opened(eventstore.events)', 'sr.b');
SELECT eventstore.set_snapshot_policy('sr_gone', 'sr_sum(jsonb, eventstore.events)', 1, store => 'sr.b');
SELECT tbl, n FROM pg_temp.traces(:b_oid) WHERE n > 0 ORDER BY tbl;
SELECT eventstore.drop_store('sr.b');
SELECT count(*) AS traces_of_b FROM pg_temp.traces(:b_oid) WHERE n > 0;
-- sr.a's rows are untouched
SELECT tbl, n FROM pg_temp.traces(:a_oid) WHERE n > 0 ORDER BY tbl;
-- a plain DROP TABLE (the sql_drop trigger) and DROP SCHEMA of a tenant do the same
SELECT 'sr_t.c'::regclass::oid AS c_oid \gset
SELECT tbl, n FROM pg_temp.traces(:c_oid) WHERE n > 0 ORDER BY tbl;
DROP SCHEMA sr_t CASCADE;
SELECT count(*) AS traces_of_c FROM pg_temp.traces(:c_oid) WHERE n > 0;
DROP TABLE sr.a;
SELECT count(*) AS traces_of_a FROM pg_temp.traces(:a_oid) WHERE n > 0;
-- the default store's rows stay
SELECT name, store FROM eventstore.projections WHERE name LIKE 'sr\_%';

------------------------------------------------------------------------
-- Cleanup
------------------------------------------------------------------------
SELECT eventstore.unregister_projection('sr_proj_default');
DROP SCHEMA sr CASCADE;
DROP TABLE sr_seen, sr_not_a_store;
DROP FUNCTION sr_project_a(eventstore.events), sr_project_default(eventstore.events), sr_reset_a(),
              sr_up_opened(eventstore.events), sr_sum(jsonb, eventstore.events),
              sr_admin_handler(eventstore.events);
-- A pass of the relay worker that runs just then can deadlock with DROP
-- EXTENSION (40P01, reported); retry rather than fail the run.
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
DROP OWNED BY regress_sr_admin, regress_sr_tenant, regress_sr_reader;
DROP ROLE regress_sr_admin;
DROP ROLE regress_sr_tenant;
DROP ROLE regress_sr_reader;
