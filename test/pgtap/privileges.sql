-- The role model of eventstore.grant_access: what a reader, a writer, a
-- consumer and an admin can and cannot do, and a role with no grant at all.
-- Also: SECURITY DEFINER functions pin search_path; only SELECT is ever
-- granted on the extension's tables; session_replication_role does not get
-- past the immutability trigger.
--
-- Consumers need messages the relay has published, which takes committed
-- transactions, so this file works in a database of its own
-- (es_tap_privileges), created here and dropped at the end with its roles
-- (es_tap_pv_*; DROP OWNED BY first).
SET client_min_messages = warning;
SELECT current_database() AS pv_home \gset
DROP DATABASE IF EXISTS es_tap_privileges WITH (FORCE);
DO $$
DECLARE r text;
BEGIN
    FOR r IN SELECT rolname FROM pg_roles WHERE rolname LIKE 'es\_tap\_pv\_%' LOOP
        EXECUTE format('DROP ROLE %I', r);
    END LOOP;
END $$;
CREATE DATABASE es_tap_privileges;
\c es_tap_privileges
SET client_min_messages = warning;
CREATE EXTENSION pgtap;
CREATE EXTENSION eventstore;

SELECT plan(360);

------------------------------------------------------------------------
-- Roles
------------------------------------------------------------------------
CREATE ROLE es_tap_pv_reader;
CREATE ROLE es_tap_pv_writer;
CREATE ROLE es_tap_pv_consumer;
CREATE ROLE es_tap_pv_admin;
CREATE ROLE es_tap_pv_usage;        -- USAGE on the schema, nothing else
CREATE ROLE es_tap_pv_nobody;       -- no grant at all
DO $$
BEGIN
    PERFORM eventstore.grant_access('es_tap_pv_reader', 'reader');
    PERFORM eventstore.grant_access('es_tap_pv_writer', 'writer');
    PERFORM eventstore.grant_access('es_tap_pv_consumer', 'consumer');
    PERFORM eventstore.grant_access('es_tap_pv_admin', 'admin');
END $$;
GRANT USAGE ON SCHEMA eventstore TO es_tap_pv_usage;

-- Handlers: a schema where the admin creates its own functions and tables.
CREATE SCHEMA es_tap_pv;
GRANT USAGE ON SCHEMA es_tap_pv TO PUBLIC;
GRANT CREATE ON SCHEMA es_tap_pv TO es_tap_pv_admin;
CREATE FUNCTION es_tap_pv.super_handler(e eventstore.events) RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION es_tap_pv.super_reducer(s jsonb, e eventstore.events) RETURNS jsonb LANGUAGE sql AS $$ SELECT s $$;
CREATE FUNCTION es_tap_pv.super_upcaster(e eventstore.events) RETURNS eventstore.events LANGUAGE sql AS $$ SELECT e $$;
CREATE FUNCTION es_tap_pv.private_reducer(s jsonb, e eventstore.events) RETURNS jsonb LANGUAGE sql AS $$ SELECT s $$;
REVOKE EXECUTE ON FUNCTION es_tap_pv.private_reducer(jsonb, eventstore.events) FROM PUBLIC;
SET ROLE es_tap_pv_admin;
CREATE FUNCTION es_tap_pv.admin_handler(e eventstore.events) RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION es_tap_pv.admin_reducer(s jsonb, e eventstore.events) RETURNS jsonb LANGUAGE sql
    AS $$ SELECT jsonb_build_object('n', coalesce((s->>'n')::int, 0) + 1) $$;
CREATE FUNCTION es_tap_pv.admin_upcaster(e eventstore.events) RETURNS eventstore.events LANGUAGE plpgsql
    AS $$ BEGIN e.event_type := 'PvNew'; RETURN e; END $$;
-- a projection that writes a table only the admin may write
CREATE TABLE es_tap_pv.admin_log (position bigint);
CREATE FUNCTION es_tap_pv.log_handler(e eventstore.events) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO es_tap_pv.admin_log VALUES (e.global_position) $$;
-- an (empty) import source the admin may read
CREATE TABLE es_tap_pv.admin_import (LIKE eventstore.import_row);
RESET ROLE;

-- Committed store content: a stream, a routed channel with published
-- messages (each statement its own transaction; the last one publishes).
DO $$ BEGIN PERFORM eventstore.add_route('pv_chan', categories => ARRAY['pv']); END $$;
DO $$ BEGIN PERFORM eventstore.append('pv-1', 0, ARRAY[eventstore.event('PvA', '{"n": 1}'),
                                                     eventstore.event('PvOld', '{"n": 2}')]); END $$;
DO $$ BEGIN PERFORM eventstore.enqueue('pv_chan', '{"message": true}'); END $$;
DO $$ BEGIN PERFORM eventstore.relay_once(); END $$;

-- as_role(role, sqls): run the statements as role in a subtransaction that
-- is always rolled back; 'ok <first column of the last row>' or
-- 'error <SQLSTATE>: <message>'.  (role NULL: as the caller.)
CREATE FUNCTION pg_temp.as_role(role text, VARIADIC sqls text[]) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    stmt text;
    r text;
    res text;
BEGIN
    BEGIN
        IF role IS NOT NULL THEN
            EXECUTE format('SET LOCAL ROLE %I', role);
        END IF;
        FOREACH stmt IN ARRAY sqls LOOP
            IF stmt ~* '^\s*(SELECT|WITH|VALUES|TABLE)\M' THEN
                EXECUTE stmt INTO r;
            ELSE
                EXECUTE stmt;
                r := NULL;
            END IF;
        END LOOP;
        RAISE EXCEPTION USING ERRCODE = 'ZZ999';
    EXCEPTION
        WHEN SQLSTATE 'ZZ999' THEN res := 'ok ' || coalesce(r, '<null>');
        WHEN OTHERS THEN res := 'error ' || SQLSTATE || ': ' || SQLERRM;
    END;
    RETURN res;     -- the subtransaction's SET LOCAL ROLE is undone with it
END $$;

-- pv(role, what, want, sqls): one check.  want 'ok <value>' is compared
-- exactly, 'error <SQLSTATE>' by the code.
CREATE FUNCTION pg_temp.pv(role text, what text, want text, VARIADIC sqls text[]) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    have text := pg_temp.as_role(role, VARIADIC sqls);
    cmp text := CASE WHEN want LIKE 'error %' THEN left(have, 11) ELSE have END;
    res text;
BEGIN
    res := is(cmp, want, coalesce(replace(role, 'es_tap_pv_', ''), 'superuser') || ': ' || what || ' -> ' || want);
    IF cmp IS DISTINCT FROM want THEN
        res := res || E'\n' || diag('    got: ' || left(have, 300));
    END IF;
    RETURN res;
END $$;

-- The management functions, as calls that would succeed for the admin.
CREATE TEMP TABLE pv_manage (fn text, call text);
INSERT INTO pv_manage VALUES
    ('register_projection', $$SELECT eventstore.register_projection('pv_x', 'es_tap_pv.admin_handler(eventstore.events)')$$),
    ('unregister_projection', $$SELECT eventstore.unregister_projection('pv_proj')$$),
    ('disable_projection', $$SELECT eventstore.disable_projection('pv_proj')$$),
    ('enable_projection', $$SELECT eventstore.enable_projection('pv_proj')$$),
    ('rebuild_projection', $$SELECT eventstore.rebuild_projection('pv_proj')$$),
    ('add_route', $$SELECT eventstore.add_route('pv_x')$$),
    ('remove_route', $$SELECT eventstore.remove_route('pv_chan')$$),
    ('relay_once', $$SELECT eventstore.relay_once()$$),
    ('register_upcaster', $$SELECT eventstore.register_upcaster('PvX', 'es_tap_pv.admin_upcaster(eventstore.events)')$$),
    ('unregister_upcaster', $$SELECT eventstore.unregister_upcaster('PvOld')$$),
    ('set_snapshot_policy', $$SELECT eventstore.set_snapshot_policy('pv_x', 'es_tap_pv.admin_reducer(jsonb, eventstore.events)', 10)$$),
    ('remove_snapshot_policy', $$SELECT eventstore.remove_snapshot_policy('pv_policy')$$),
    ('import_events', $$SELECT eventstore.import_events('es_tap_pv.admin_import')$$),
    ('grant_access', $$SELECT eventstore.grant_access('es_tap_pv_nobody', 'admin')$$);

------------------------------------------------------------------------
-- The catalog: SECURITY DEFINER, search_path, PUBLIC, table privileges
------------------------------------------------------------------------
SELECT is(ARRAY(SELECT p.oid::regprocedure::text FROM pg_proc p
                 WHERE p.pronamespace = 'eventstore'::regnamespace AND p.prosecdef
                   AND NOT EXISTS (SELECT FROM unnest(coalesce(p.proconfig, '{}')) c WHERE c LIKE 'search\_path=%')),
          '{}'::text[], 'no SECURITY DEFINER function of schema eventstore without a pinned search_path');
SELECT is(ARRAY(SELECT p.proname::text FROM pg_proc p
                 WHERE p.pronamespace = 'eventstore'::regnamespace AND p.prosecdef ORDER BY 1),
          '{}'::text[],
          'no function is SECURITY DEFINER (the consumer functions pass the calling role to owner-only bodies, as the README says)');
SELECT is(ARRAY(SELECT DISTINCT c FROM pg_proc p, unnest(p.proconfig) c
                 WHERE p.pronamespace = 'eventstore'::regnamespace AND c LIKE 'search\_path=%'),
          ARRAY['search_path=pg_catalog, pg_temp'],
          'every pinned search_path is exactly pg_catalog, pg_temp (pg_temp last)');
SELECT is(ARRAY(SELECT p.proname::text FROM pg_proc p
                 WHERE p.pronamespace = 'eventstore'::regnamespace AND p.prosecdef
                   AND has_function_privilege('es_tap_pv_usage', p.oid, 'EXECUTE')),
          '{}'::text[], 'no SECURITY DEFINER function is executable by PUBLIC');
SELECT is(ARRAY(SELECT p.proname::text FROM pg_proc p
                 WHERE p.pronamespace = 'eventstore'::regnamespace
                   AND has_function_privilege('es_tap_pv_usage', p.oid, 'EXECUTE') ORDER BY 1),
          ARRAY['_channel_arg', '_count_arg', '_event_size', '_lifecycle_active', '_outbox_data', '_outbox_event', '_outbox_shown', '_store_arg', '_store_has', '_stream_arg',
                '_time_arg', '_upcast', '_upcast', '_upcasting', '_version_floor', '_visible', 'aggregate',
                'category', 'decrypt', 'event', 'load_snapshot', 'read_all', 'read_all_until', 'read_category', 'read_node', 'read_query',
                'read_stream', 'read_stream_backwards', 'read_stream_until', 'refuse_change', 'relay_status',
                'stream_metadata', 'stream_version', 'stream_version_at', 'subscription_channel'],
          'PUBLIC may execute exactly the functions that write nothing');
SELECT is(ARRAY(SELECT c.relname || ': ' || a.privilege_type || ' to ' || a.grantee::regrole::text
                  FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
                 WHERE c.relnamespace = 'eventstore'::regnamespace
                   AND a.grantee <> c.relowner AND a.privilege_type <> 'SELECT'
                 ORDER BY 1),
          ARRAY['consumers: UPDATE to es_tap_pv_admin', 'events: INSERT to es_tap_pv_admin', 'events: INSERT to es_tap_pv_writer',
                'subscriptions: UPDATE to es_tap_pv_admin'],
          'after grant_access to every kind, nobody but the owner has any privilege but SELECT on a table, view or sequence, '
          'except UPDATE on consumers and subscriptions for the admin (what lets it manage every checkpoint and subscription) '
          'and INSERT on the store for writers and admins (the right to append, through append() only)');
SELECT is(ARRAY(SELECT c.relname || ' to ' || CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
                  FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
                 WHERE c.relnamespace = 'eventstore'::regnamespace AND a.grantee <> c.relowner
                   AND c.relkind = 'S'
                 ORDER BY 1),
          '{}'::text[], 'no privilege on the sequences for anyone but the owner');
SELECT is((SELECT tgenabled FROM pg_trigger WHERE tgrelid = 'eventstore.events'::regclass AND tgname = 'events_immutable'),
          'A'::"char", 'the immutability trigger is enabled ALWAYS');
SELECT ok((SELECT rolsuper FROM pg_roles WHERE oid = (SELECT relowner FROM pg_class WHERE oid = 'eventstore.events'::regclass)),
          'the events table is owned by a superuser (the extension owner), none of the granted roles');

------------------------------------------------------------------------
-- A role with no grant at all: every function and table refused (42501)
------------------------------------------------------------------------
SELECT pg_temp.pv('es_tap_pv_nobody', 'call ' || p.oid::regprocedure::text, 'error 42501',
                  format('SELECT %s(%s)', p.oid::regproc,
                         (SELECT string_agg('NULL::' || format_type(t, NULL), ', ' ORDER BY i)
                            FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY a(t, i))))
  FROM pg_proc p WHERE p.pronamespace = 'eventstore'::regnamespace ORDER BY p.oid::regprocedure::text;
SELECT pg_temp.pv('es_tap_pv_nobody', 'SELECT ' || c.relname, 'error 42501',
                  format('SELECT count(*) FROM eventstore.%I', c.relname))
  FROM pg_class c WHERE c.relnamespace = 'eventstore'::regnamespace AND c.relkind IN ('r', 'v')
 ORDER BY c.relname;
SELECT pg_temp.pv('es_tap_pv_nobody', 'INSERT into events', 'error 42501',
    $$INSERT INTO eventstore.events (global_position, stream_id, stream_version, event_id, event_type, data)
      VALUES (999999, 'pv-1', 3, gen_random_uuid(), 'Forged', '{}')$$);

------------------------------------------------------------------------
-- Nobody but the admin manages (projections, routes, upcasters, policies,
-- the relay); nobody but the owner grants
------------------------------------------------------------------------
-- the admin's objects the management calls act on
SET ROLE es_tap_pv_admin;
SELECT lives_ok($$SELECT eventstore.register_projection('pv_proj', 'es_tap_pv.admin_handler(eventstore.events)', ARRAY['PvA'])$$,
                'admin: registers a projection with its own handler');
SELECT lives_ok($$SELECT eventstore.register_upcaster('PvOld', 'es_tap_pv.admin_upcaster(eventstore.events)')$$,
                'admin: registers an upcaster with its own function');
SELECT lives_ok($$SELECT eventstore.set_snapshot_policy('pv_policy', 'es_tap_pv.admin_reducer(jsonb, eventstore.events)', 100)$$,
                'admin: sets a snapshot policy with its own reducer');
RESET ROLE;
SELECT pg_temp.pv(r, m.fn, 'error 42501', m.call)
  FROM unnest(ARRAY['es_tap_pv_reader', 'es_tap_pv_writer', 'es_tap_pv_consumer', 'es_tap_pv_usage']) r
 CROSS JOIN pv_manage m WHERE m.fn <> 'grant_access'
 ORDER BY r, m.fn;
SELECT pg_temp.pv('es_tap_pv_admin', m.fn, CASE m.fn WHEN 'rebuild_projection' THEN 'ok 1' WHEN 'relay_once' THEN 'ok 0' WHEN 'import_events' THEN 'ok 0' ELSE 'ok ' END, m.call)
  FROM pv_manage m WHERE m.fn <> 'grant_access' ORDER BY m.fn;
SELECT pg_temp.pv(r, 'grant_access', 'error 42501', m.call)
  FROM unnest(ARRAY['es_tap_pv_reader', 'es_tap_pv_writer', 'es_tap_pv_consumer', 'es_tap_pv_admin']) r
 CROSS JOIN pv_manage m WHERE m.fn = 'grant_access' ORDER BY r;
-- Deletion is its own level (lifecycle): not the admin's, not a writer's
SELECT pg_temp.pv(r, f.fn, 'error 42501', f.call)
  FROM unnest(ARRAY['es_tap_pv_reader', 'es_tap_pv_writer', 'es_tap_pv_consumer', 'es_tap_pv_admin']) r
 CROSS JOIN (VALUES ('delete_stream', $$SELECT eventstore.delete_stream('pv-1', NULL)$$),
                    ('set_stream_metadata', $$SELECT eventstore.set_stream_metadata('pv-1', max_count => 1)$$),
                    ('set_category_metadata', $$SELECT eventstore.set_category_metadata('pv', max_count => 1)$$),
                    ('purge', $$SELECT eventstore.purge()$$),
                    ('forget', $$SELECT eventstore.forget('pv-subject')$$)) f(fn, call)
 ORDER BY r, f.fn;
SELECT pg_temp.pv('es_tap_pv_admin', 'register a projection with a handler it does not own', 'error 42501',
    $$SELECT eventstore.register_projection('pv_y', 'es_tap_pv.super_handler(eventstore.events)')$$);
SELECT pg_temp.pv('es_tap_pv_admin', 'set a policy with a reducer it does not own', 'error 42501',
    $$SELECT eventstore.set_snapshot_policy('pv_y', 'es_tap_pv.super_reducer(jsonb, eventstore.events)', 10)$$);
SELECT pg_temp.pv('es_tap_pv_admin', 'register an upcaster with a function it does not own', 'error 42501',
    $$SELECT eventstore.register_upcaster('PvY', 'es_tap_pv.super_upcaster(eventstore.events)')$$);
SELECT pg_temp.pv('es_tap_pv_admin', 'disable the immutability trigger', 'error 42501',
    $$ALTER TABLE eventstore.events DISABLE TRIGGER events_immutable$$);
SELECT pg_temp.pv('es_tap_pv_admin', 'write the projections registry directly', 'error 42501',
    $$INSERT INTO eventstore.projections (name, handler) VALUES ('pv_forged', 'es_tap_pv.super_handler(eventstore.events)')$$);
SELECT pg_temp.pv('es_tap_pv_admin', 'write the routes registry directly', 'error 42501',
    $$DELETE FROM eventstore.routes$$);
SELECT is((SELECT string_agg(name, ',' ORDER BY name) FROM eventstore.projections)
          || ' / ' || (SELECT string_agg(channel, ',' ORDER BY channel) FROM eventstore.routes),
          'pv_proj / pv_chan', 'the registries hold exactly what the admin registered');

-- The registries of a store other than the default one are its owner's: an
-- admin's EXECUTE is not enough on a store it does not own.  Reading a
-- store's snapshots or folding it takes SELECT on it, saving one INSERT.
SELECT lives_ok($$SELECT eventstore.create_store('es_tap_pv.pv_store')$$, 'superuser: makes a store of its own');
SELECT pg_temp.pv('es_tap_pv_admin', 'register a projection on a store it does not own', 'error 42501',
    $$SELECT eventstore.register_projection('pv_z', 'es_tap_pv.admin_handler(eventstore.events)', store => 'es_tap_pv.pv_store')$$);
SELECT pg_temp.pv('es_tap_pv_admin', 'register an upcaster on a store it does not own', 'error 42501',
    $$SELECT eventstore.register_upcaster('PvZ', 'es_tap_pv.admin_upcaster(eventstore.events)', 'es_tap_pv.pv_store')$$);
SELECT pg_temp.pv('es_tap_pv_admin', 'set a policy on a store it does not own', 'error 42501',
    $$SELECT eventstore.set_snapshot_policy('pv_z', 'es_tap_pv.admin_reducer(jsonb, eventstore.events)', 10,
                                            store => 'es_tap_pv.pv_store')$$);
SELECT pg_temp.pv('es_tap_pv_admin', 'stream_version_at of a store it may not read', 'error 42501',
    $$SELECT eventstore.stream_version_at('pv-1', 'infinity', 'es_tap_pv.pv_store')$$);
SELECT pg_temp.pv('es_tap_pv_reader', 'load_snapshot of a store it may not read', 'error 42501',
    $$SELECT count(*) FROM eventstore.load_snapshot('pv-1', store => 'es_tap_pv.pv_store')$$);
SELECT pg_temp.pv('es_tap_pv_reader', 'aggregate a store it may not read', 'error 42501',
    $$SELECT eventstore.aggregate('pv-1', 'es_tap_pv.admin_reducer(jsonb, eventstore.events)', store => 'es_tap_pv.pv_store')$$);
SELECT pg_temp.pv('es_tap_pv_writer', 'save_snapshot in a store it may not append to', 'error 42501',
    $$SELECT eventstore.save_snapshot('pv-1', 1, '{}', 'pv_z', 'es_tap_pv.pv_store')$$);
GRANT SELECT ON es_tap_pv.pv_store TO es_tap_pv_reader;
SELECT pg_temp.pv('es_tap_pv_reader', 'load_snapshot of a store it may read', 'ok 0',
    $$SELECT count(*) FROM eventstore.load_snapshot('pv-1', store => 'es_tap_pv.pv_store')$$);
SELECT pg_temp.pv('es_tap_pv_reader', 'aggregate a store it may read', 'ok {}',
    $$SELECT eventstore.aggregate('pv-1', 'es_tap_pv.admin_reducer(jsonb, eventstore.events)', store => 'es_tap_pv.pv_store')::text$$);

------------------------------------------------------------------------
-- reader: reads; appends, enqueues and manages nothing
------------------------------------------------------------------------
SELECT pg_temp.pv('es_tap_pv_reader', 'read_stream (upcast)', 'ok PvA,PvNew',
    $$SELECT string_agg(event_type, ',' ORDER BY stream_version) FROM eventstore.read_stream('pv-1')$$);
SELECT pg_temp.pv('es_tap_pv_reader', 'read_stream_backwards', 'ok 2',
    $$SELECT stream_version FROM eventstore.read_stream_backwards('pv-1', NULL, 1)$$);
SELECT pg_temp.pv('es_tap_pv_reader', 'read_all', 'ok 2', $$SELECT count(*) FROM eventstore.read_all(0, NULL)$$);
SELECT pg_temp.pv('es_tap_pv_reader', 'read_category', 'ok 2', $$SELECT count(*) FROM eventstore.read_category('pv')$$);
SELECT pg_temp.pv('es_tap_pv_reader', 'read_query', 'ok 2', $$SELECT count(*) FROM eventstore.read_query('{"items": [{"types": ["PvA", "PvOld"]}]}')$$);
SELECT pg_temp.pv('es_tap_pv_reader', 'read_all_until', 'ok 2', $$SELECT count(*) FROM eventstore.read_all_until('infinity')$$);
SELECT pg_temp.pv('es_tap_pv_reader', 'read_stream_until', 'ok 2', $$SELECT count(*) FROM eventstore.read_stream_until('pv-1', 'infinity')$$);
SELECT pg_temp.pv('es_tap_pv_reader', 'stream_version', 'ok 2', $$SELECT eventstore.stream_version('pv-1')$$);
SELECT pg_temp.pv('es_tap_pv_reader', 'stream_version_at', 'ok 2', $$SELECT eventstore.stream_version_at('pv-1', 'infinity')$$);
SELECT pg_temp.pv('es_tap_pv_reader', 'aggregate', 'ok {"n": 2}',
    $$SELECT eventstore.aggregate('pv-1', 'es_tap_pv.admin_reducer(jsonb, eventstore.events)')::text$$);
SELECT pg_temp.pv('es_tap_pv_reader', 'aggregate with a reducer it may not execute', 'error 42501',
    $$SELECT eventstore.aggregate('pv-1', 'es_tap_pv.private_reducer(jsonb, eventstore.events)')$$);
SELECT pg_temp.pv('es_tap_pv_reader', 'load_snapshot', 'ok 0', $$SELECT count(*) FROM eventstore.load_snapshot('pv-1')$$);
SELECT pg_temp.pv('es_tap_pv_reader', 'SELECT ' || t, 'ok true', format('SELECT count(*) >= 0 FROM eventstore.%I', t))
  FROM unnest(ARRAY['events', 'projections', 'routes', 'snapshots', 'upcasters', 'snapshot_policies']) t;
SELECT pg_temp.pv('es_tap_pv_reader', 'SELECT ' || t, 'error 42501', format('SELECT count(*) FROM eventstore.%I', t))
  FROM unnest(ARRAY['outbox', 'consumers', 'outbox_messages', 'relay_state']) t;
SELECT pg_temp.pv('es_tap_pv_reader', 'relay_status (it counts the outbox)', 'error 42501', $$SELECT count(*) FROM eventstore.relay_status$$);
SELECT pg_temp.pv('es_tap_pv_reader', 'append', 'error 42501', $$SELECT eventstore.append('pv-1', NULL, ARRAY[eventstore.event('PvA', '{}')])$$);
SELECT pg_temp.pv('es_tap_pv_reader', 'append_event', 'error 42501', $$SELECT eventstore.append_event('pv-1', NULL, 'PvA', '{}')$$);
SELECT pg_temp.pv('es_tap_pv_reader', 'enqueue', 'error 42501', $$SELECT eventstore.enqueue('pv_chan', '{}')$$);
SELECT pg_temp.pv('es_tap_pv_reader', 'save_snapshot', 'error 42501', $$SELECT eventstore.save_snapshot('pv-1', 1, '{}')$$);
SELECT pg_temp.pv('es_tap_pv_reader', 'consumer_poll', 'error 42501', $$SELECT count(*) FROM eventstore.consumer_poll('pv_k', 'pv_chan')$$);
SELECT pg_temp.pv('es_tap_pv_reader', 'consumer_ack', 'error 42501', $$SELECT eventstore.consumer_ack('pv_k', 'pv_chan', 1)$$);
SELECT pg_temp.pv('es_tap_pv_reader', 'take a position from the sequence', 'error 42501',
    $$SELECT nextval('eventstore.events_global_position_seq')$$);
SELECT pg_temp.pv('es_tap_pv_reader', op, 'error 42501', sql)
  FROM (VALUES ('INSERT into events', $$INSERT INTO eventstore.events (global_position, stream_id, stream_version, event_id, event_type, data)
                                        VALUES (999999, 'pv-1', 3, gen_random_uuid(), 'Forged', '{}')$$),
               ('UPDATE events', $$UPDATE eventstore.events SET data = '{}'$$),
               ('DELETE FROM events', $$DELETE FROM eventstore.events$$),
               ('TRUNCATE events', $$TRUNCATE eventstore.events$$)) v(op, sql);

------------------------------------------------------------------------
-- writer: appends, enqueues and snapshots; never writes the table itself
------------------------------------------------------------------------
SELECT pg_temp.pv('es_tap_pv_writer', 'append with an exact expected version', 'ok 3',
    $$SELECT stream_version FROM eventstore.append('pv-1', 2, ARRAY[eventstore.event('PvA', '{}')])$$);
SELECT pg_temp.pv('es_tap_pv_writer', 'append_event to a new stream', 'ok 1',
    $$SELECT stream_version FROM eventstore.append_event('pv-2', 0, 'PvB', '{}')$$);
SELECT pg_temp.pv('es_tap_pv_writer', 'append_event with tags and a condition', 'ok 1',
    $$SELECT stream_version FROM eventstore.append_event('pv-4', 0, 'PvB', '{}', tags => ARRAY['pv'],
        condition => '{"fail_if_events_match": {"items": [{"tags": ["pv"]}]}}')$$);
SELECT pg_temp.pv('es_tap_pv_writer', 'append with a wrong expected version', 'error ES409',
    $$SELECT eventstore.append_event('pv-1', 0, 'PvB', '{}')$$);
SELECT pg_temp.pv('es_tap_pv_writer', 'enqueue', 'ok true', $$SELECT eventstore.enqueue('pv_chan', '{"w": 1}') > 0$$);
SELECT pg_temp.pv('es_tap_pv_writer', 'save_snapshot', 'ok 1',
    $$SELECT eventstore.save_snapshot('pv-1', 2, '{"n": 2}', 'pv_w')$$,
    $$SELECT count(*) FROM eventstore.load_snapshot('pv-1', 'pv_w')$$);
SELECT pg_temp.pv('es_tap_pv_writer', 'read_stream', 'ok 2', $$SELECT count(*) FROM eventstore.read_stream('pv-1')$$);
-- 42501, not ES002: the writer has no UPDATE, DELETE, TRUNCATE or INSERT
-- privilege, so PostgreSQL refuses before the immutability trigger runs
SELECT pg_temp.pv('es_tap_pv_writer', op, 'error 42501', sql)
  FROM (VALUES ('INSERT into events (around the version check)',
                $$INSERT INTO eventstore.events (global_position, stream_id, stream_version, event_id, event_type, data)
                  VALUES (999999, 'pv-1', 3, gen_random_uuid(), 'Forged', '{}')$$),
               ('UPDATE events', $$UPDATE eventstore.events SET data = '{}'$$),
               ('UPDATE events matching no row', $$UPDATE eventstore.events SET data = '{}' WHERE false$$),
               ('DELETE FROM events', $$DELETE FROM eventstore.events$$),
               ('TRUNCATE events', $$TRUNCATE eventstore.events$$),
               ('INSERT into outbox', $$INSERT INTO eventstore.outbox (id, channel, payload) VALUES (999999, 'pv_chan', '{}')$$),
               ('UPDATE snapshots', $$UPDATE eventstore.snapshots SET state = '{}'$$),
               ('setval the position sequence', $$SELECT setval('eventstore.events_global_position_seq', 1)$$)) v(op, sql);
SELECT pg_temp.pv('es_tap_pv_writer', 'consumer_poll', 'error 42501', $$SELECT count(*) FROM eventstore.consumer_poll('pv_k', 'pv_chan')$$);
SELECT pg_temp.pv('es_tap_pv_writer', 'SELECT outbox', 'error 42501', $$SELECT count(*) FROM eventstore.outbox$$);

------------------------------------------------------------------------
-- consumer: polls and acks published messages; reads no table
------------------------------------------------------------------------
SELECT pg_temp.pv('es_tap_pv_consumer', 'consumer_poll: the published messages of the channel', 'ok 3',
    $$SELECT count(*) FROM eventstore.consumer_poll('pv_k', 'pv_chan')$$);
SELECT pg_temp.pv('es_tap_pv_consumer', 'consumer_ack, then nothing more to poll', 'ok 0',
    $$SELECT eventstore.consumer_ack('pv_k', 'pv_chan', (SELECT max(id) FROM eventstore.consumer_poll('pv_k', 'pv_chan')))$$,
    $$SELECT count(*) FROM eventstore.consumer_poll('pv_k', 'pv_chan')$$);
-- a consumer reads the store (0.6.0): its subscriptions deliver the store's
-- events, so SELECT on the store says what it can see anyway
SELECT pg_temp.pv('es_tap_pv_consumer', op, 'ok 2', sql)
  FROM (VALUES ('SELECT events', $$SELECT count(*) FROM eventstore.events WHERE stream_id = 'pv-1'$$),
               ('read_stream', $$SELECT count(*) FROM eventstore.read_stream('pv-1')$$),
               ('stream_version', $$SELECT eventstore.stream_version('pv-1')$$)) v(op, sql);
SELECT pg_temp.pv('es_tap_pv_consumer', 'aggregate', 'ok {"n": 2}',
    $$SELECT eventstore.aggregate('pv-1', 'es_tap_pv.admin_reducer(jsonb, eventstore.events)')$$);
SELECT pg_temp.pv('es_tap_pv_consumer', op, 'error 42501', sql)
  FROM (VALUES ('SELECT outbox', $$SELECT count(*) FROM eventstore.outbox$$),
               ('SELECT outbox_messages', $$SELECT count(*) FROM eventstore.outbox_messages$$),
               ('SELECT consumers', $$SELECT count(*) FROM eventstore.consumers$$),
               ('SELECT snapshots', $$SELECT count(*) FROM eventstore.snapshots$$),
               ('write its checkpoint directly', $$UPDATE eventstore.consumers SET last_id = 0$$),
               ('append', $$SELECT eventstore.append_event('pv-1', NULL, 'PvA', '{}')$$),
               ('enqueue', $$SELECT eventstore.enqueue('pv_chan', '{}')$$)) v(op, sql);

------------------------------------------------------------------------
-- admin: everything above, plus the outbox; not the events table
------------------------------------------------------------------------
SELECT pg_temp.pv('es_tap_pv_admin', 'append', 'ok 3', $$SELECT stream_version FROM eventstore.append_event('pv-1', 2, 'PvA', '{}')$$);
SELECT pg_temp.pv('es_tap_pv_admin', 'consumer_poll', 'ok 3', $$SELECT count(*) FROM eventstore.consumer_poll('pv_k2', 'pv_chan')$$);
SELECT pg_temp.pv('es_tap_pv_admin', 'SELECT ' || t, 'ok true', format('SELECT count(*) >= 0 FROM eventstore.%I', t))
  FROM unnest(ARRAY['outbox', 'consumers', 'outbox_messages', 'stats', 'category_stats', 'projection_stats',
                    'horizon_status', 'relay_lag', 'consumer_lag']) t;
SELECT pg_temp.pv('es_tap_pv_admin', 'relay_status()', 'ok 0',
    $$SELECT pending FROM eventstore.relay_status() WHERE database = current_database()$$);
SELECT pg_temp.pv('es_tap_pv_admin', 'the view relay_status (the README''s monitoring interface)', 'ok 0',
    $$SELECT pending FROM eventstore.relay_status WHERE database = current_database()$$);
SELECT pg_temp.pv('es_tap_pv_admin', op, 'error 42501', sql)
  FROM (VALUES ('UPDATE events', $$UPDATE eventstore.events SET data = '{}'$$),
               ('DELETE FROM events', $$DELETE FROM eventstore.events$$),
               ('TRUNCATE events', $$TRUNCATE eventstore.events$$),
               ('DELETE FROM outbox', $$DELETE FROM eventstore.outbox$$)) v(op, sql);

------------------------------------------------------------------------
-- Projection handlers run as their owner, not as the appending user
------------------------------------------------------------------------
SET ROLE es_tap_pv_admin;
SELECT lives_ok($$SELECT eventstore.register_projection('pv_log', 'es_tap_pv.log_handler(eventstore.events)', ARRAY['PvLogged'])$$,
                'admin: registers a projection writing a table of its own');
RESET ROLE;
SELECT pg_temp.pv('es_tap_pv_writer', 'write the handler''s table itself', 'error 42501',
    $$INSERT INTO es_tap_pv.admin_log VALUES (0)$$);
SELECT pg_temp.pv('es_tap_pv_writer', 'append an event whose handler (owned by the admin) writes that table', 'ok 1',
    $$SELECT (eventstore.append_event('pv-3', 0, 'PvLogged', '{}')).stream_version$$);
SELECT pg_temp.pv('es_tap_pv_admin', 'append the same event: the handler may write', 'ok 1',
    $$SELECT eventstore.append_event('pv-3', 0, 'PvLogged', '{}')$$,
    $$SELECT count(*) FROM es_tap_pv.admin_log$$);
SELECT is(eventstore.stream_version('pv-3'), 0::bigint, 'nothing of the vetoed or rolled-back appends remains');

------------------------------------------------------------------------
-- Immutability: session_replication_role and what a superuser can still do
------------------------------------------------------------------------
CREATE TEMP TABLE pv_store AS
SELECT md5(string_agg(e::text, '|' ORDER BY global_position)) AS digest FROM eventstore.events e;
SELECT pg_temp.pv(r, 'SET session_replication_role = replica', 'error 42501',
                  $$SELECT set_config('session_replication_role', 'replica', true)$$)
  FROM unnest(ARRAY['es_tap_pv_writer', 'es_tap_pv_admin']) r;
SELECT pg_temp.pv(NULL, op || ' with session_replication_role = replica', 'error ES002',
                  $$SELECT set_config('session_replication_role', 'replica', true)$$, sql)
  FROM (VALUES ('UPDATE', $$UPDATE eventstore.events SET data = '{}'$$),
               ('DELETE', $$DELETE FROM eventstore.events$$),
               ('TRUNCATE', $$TRUNCATE eventstore.events$$)) v(op, sql);
SELECT pg_temp.pv(NULL, op || ' as superuser', 'error ES002', sql)
  FROM (VALUES ('UPDATE', $$UPDATE eventstore.events SET data = '{}'$$),
               ('DELETE', $$DELETE FROM eventstore.events$$),
               ('TRUNCATE', $$TRUNCATE eventstore.events$$)) v(op, sql);
-- the owner (a superuser) can still switch the trigger off: shown here and rolled back
SELECT pg_temp.pv(NULL, 'DISABLE TRIGGER events_immutable and events_immutable_row, then UPDATE (rolled back)', 'ok 2',
    $$ALTER TABLE eventstore.events DISABLE TRIGGER events_immutable$$,
    $$ALTER TABLE eventstore.events DISABLE TRIGGER events_immutable_row$$,
    $$WITH u AS (UPDATE eventstore.events SET data = '{"rewritten": true}' WHERE stream_id = 'pv-1' RETURNING 1)
      SELECT count(*) FROM u$$);
SELECT pg_temp.pv(NULL, 'DROP TRIGGER events_immutable and events_immutable_row, then DELETE (rolled back)', 'ok 2',
    $$DROP TRIGGER events_immutable ON eventstore.events$$,
    $$DROP TRIGGER events_immutable_row ON eventstore.events$$,
    $$WITH d AS (DELETE FROM eventstore.events WHERE stream_id = 'pv-1' RETURNING 1) SELECT count(*) FROM d$$);
SELECT is((SELECT md5(string_agg(e::text, '|' ORDER BY global_position)) FROM eventstore.events e),
          (SELECT digest FROM pv_store), 'no event changed');
SELECT is((SELECT tgenabled FROM pg_trigger WHERE tgrelid = 'eventstore.events'::regclass AND tgname = 'events_immutable'),
          'A'::"char", 'the trigger is still there and enabled ALWAYS');
SELECT diag('session_replication_role: only a superuser may set it (42501 for the others), and even then '
            'UPDATE, DELETE and TRUNCATE of eventstore.events fail with ES002 (the trigger is ENABLE ALWAYS). '
            'What a superuser -- or the owner of eventstore.events -- can still do: ALTER TABLE eventstore.events '
            'DISABLE TRIGGER events_immutable and events_immutable_row, or DROP them, and then rewrite or delete history (shown above, '
            'rolled back). Immutability protects the events from every application role, not from the owner.');

------------------------------------------------------------------------
-- Clean up: the roles own nothing and hold nothing once the database is gone
------------------------------------------------------------------------
SELECT * FROM finish();
RESET ROLE;
DROP OWNED BY es_tap_pv_reader, es_tap_pv_writer, es_tap_pv_consumer, es_tap_pv_admin, es_tap_pv_usage, es_tap_pv_nobody;
\c :pv_home
SET client_min_messages = warning;
DROP DATABASE es_tap_privileges WITH (FORCE);
DROP ROLE es_tap_pv_reader, es_tap_pv_writer, es_tap_pv_consumer, es_tap_pv_admin, es_tap_pv_usage, es_tap_pv_nobody;
