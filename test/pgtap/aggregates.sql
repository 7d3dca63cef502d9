-- pgTAP: the aggregates API (0.4.0) -- signatures and return types of the
-- new functions, the registry tables, privileges (the management functions
-- are not for PUBLIC; grant_access hands them out by kind of user), and the
-- SQLSTATE of every refusal.  Runs in one transaction and rolls it back
-- (events included).
BEGIN;
SELECT plan(167);

------------------------------------------------------------------------
-- Functions and their return types
------------------------------------------------------------------------
SELECT has_function('eventstore', 'aggregate',
                    ARRAY['text', 'regprocedure', 'jsonb', 'bigint', 'timestamp with time zone', 'text', 'regclass']);
SELECT function_returns('eventstore', 'aggregate',
                        ARRAY['text', 'regprocedure', 'jsonb', 'bigint', 'timestamp with time zone', 'text', 'regclass'], 'jsonb');
SELECT has_function('eventstore', 'save_snapshot', ARRAY['text', 'bigint', 'jsonb', 'text', 'regclass']);
SELECT function_returns('eventstore', 'save_snapshot', ARRAY['text', 'bigint', 'jsonb', 'text', 'regclass'], 'void');
SELECT has_function('eventstore', 'load_snapshot', ARRAY['text', 'text', 'bigint', 'regclass']);
SELECT function_returns('eventstore', 'load_snapshot', ARRAY['text', 'text', 'bigint', 'regclass'], 'setof record');
SELECT is((SELECT pg_get_function_result('eventstore.load_snapshot(text, text, bigint, regclass)'::regprocedure)),
          'TABLE(stream_version bigint, state jsonb, created_at timestamp with time zone)',
          'load_snapshot returns (stream_version, state, created_at)');
SELECT has_function('eventstore', 'set_snapshot_policy', ARRAY['text', 'regprocedure', 'bigint', 'jsonb', 'text[]', 'regclass']);
SELECT function_returns('eventstore', 'set_snapshot_policy', ARRAY['text', 'regprocedure', 'bigint', 'jsonb', 'text[]', 'regclass'], 'void');
SELECT has_function('eventstore', 'remove_snapshot_policy', ARRAY['text', 'regclass']);
SELECT function_returns('eventstore', 'remove_snapshot_policy', ARRAY['text', 'regclass'], 'void');
SELECT has_function('eventstore', 'stream_version_at', ARRAY['text', 'timestamp with time zone', 'regclass']);
SELECT function_returns('eventstore', 'stream_version_at', ARRAY['text', 'timestamp with time zone', 'regclass'], 'bigint');
SELECT has_function('eventstore', 'read_stream_until', ARRAY['text', 'timestamp with time zone', 'bigint', 'integer', 'regclass']);
SELECT function_returns('eventstore', 'read_stream_until', ARRAY['text', 'timestamp with time zone', 'bigint', 'integer', 'regclass'],
                        'setof eventstore.events');
SELECT has_function('eventstore', 'read_all_until', ARRAY['timestamp with time zone', 'bigint', 'integer', 'regclass']);
SELECT function_returns('eventstore', 'read_all_until', ARRAY['timestamp with time zone', 'bigint', 'integer', 'regclass'],
                        'setof eventstore.events');
SELECT has_function('eventstore', 'register_upcaster', ARRAY['text', 'regprocedure', 'regclass']);
SELECT function_returns('eventstore', 'register_upcaster', ARRAY['text', 'regprocedure', 'regclass'], 'void');
SELECT has_function('eventstore', 'unregister_upcaster', ARRAY['text', 'regclass']);
SELECT function_returns('eventstore', 'unregister_upcaster', ARRAY['text', 'regclass'], 'void');
-- the defaults the README documents
SELECT is(pg_get_function_arguments('eventstore.aggregate(text, regprocedure, jsonb, bigint, timestamptz, text, regclass)'::regprocedure),
          'stream_id text, reducer regprocedure, initial jsonb DEFAULT ''{}''::jsonb, until_version bigint DEFAULT NULL::bigint, until_time timestamp with time zone DEFAULT NULL::timestamp with time zone, snapshot_type text DEFAULT NULL::text, store regclass DEFAULT ''eventstore.events''::regclass',
          'aggregate: argument names and defaults');
SELECT is(pg_get_function_arguments('eventstore.save_snapshot(text, bigint, jsonb, text, regclass)'::regprocedure),
          'stream_id text, stream_version bigint, state jsonb, snapshot_type text DEFAULT ''default''::text, store regclass DEFAULT ''eventstore.events''::regclass',
          'save_snapshot: argument names and defaults');
SELECT is(pg_get_function_arguments('eventstore.set_snapshot_policy(text, regprocedure, bigint, jsonb, text[], regclass)'::regprocedure),
          'snapshot_type text, reducer regprocedure, every bigint, initial jsonb DEFAULT ''{}''::jsonb, categories text[] DEFAULT NULL::text[], store regclass DEFAULT ''eventstore.events''::regclass',
          'set_snapshot_policy: argument names and defaults');
SELECT is(pg_get_function_arguments('eventstore.read_all_until(timestamptz, bigint, integer, regclass)'::regprocedure),
          'until_time timestamp with time zone, after_position bigint DEFAULT 0, max_count integer DEFAULT 1000, store regclass DEFAULT ''eventstore.events''::regclass',
          'read_all_until: argument names and defaults');

------------------------------------------------------------------------
-- The tables
------------------------------------------------------------------------
SELECT has_table('eventstore', 'snapshots', 'the snapshots table exists');
SELECT columns_are('eventstore', 'snapshots',
                   ARRAY['stream_id', 'snapshot_type', 'stream_version', 'state', 'created_at', 'by_policy', 'store',
                         'store_name']);
SELECT col_type_is('eventstore', 'snapshots', 'by_policy', 'boolean', 'snapshots.by_policy is boolean');
SELECT col_not_null('eventstore', 'snapshots', 'by_policy', 'snapshots.by_policy is NOT NULL');
SELECT col_default_is('eventstore', 'snapshots', 'by_policy', 'false', 'snapshots.by_policy defaults to false');
SELECT col_is_pk('eventstore', 'snapshots', ARRAY['store_name', 'stream_id', 'snapshot_type', 'stream_version'],
                 'snapshots: primary key (store_name, stream_id, snapshot_type, stream_version): the same on every Citus node');
SELECT col_not_null('eventstore', 'snapshots', 'store_name', 'snapshots.store_name is NOT NULL');
SELECT col_default_is('eventstore', 'snapshots', 'store_name', 'eventstore.events',
                      'snapshots.store_name defaults to the default store, as store does');
SELECT has_index('eventstore', 'snapshots', 'snapshots_store_idx',
                 ARRAY['store', 'stream_id', 'snapshot_type', 'stream_version'],
                 'snapshots: a store that is not distributed looks its snapshots up by OID through an index');
SELECT has_table('eventstore', 'snapshot_policies', 'the snapshot_policies table exists');
SELECT columns_are('eventstore', 'snapshot_policies',
                   ARRAY['snapshot_type', 'reducer', 'every', 'initial', 'categories', 'registered_at', 'reducer_owner', 'store']);
SELECT col_is_pk('eventstore', 'snapshot_policies', ARRAY['store', 'snapshot_type'], 'snapshot_policies: primary key (store, snapshot_type)');
SELECT has_table('eventstore', 'upcasters', 'the upcasters table exists');
SELECT columns_are('eventstore', 'upcasters', ARRAY['event_type', 'handler', 'registered_at', 'handler_owner', 'store']);
SELECT col_is_pk('eventstore', 'upcasters', ARRAY['store', 'event_type'], 'upcasters: primary key (store, event_type)');

------------------------------------------------------------------------
-- Privileges of PUBLIC
------------------------------------------------------------------------
SELECT function_privs_are('eventstore', 'register_upcaster', ARRAY['text', 'regprocedure', 'regclass'], 'public', ARRAY[]::name[]);
SELECT function_privs_are('eventstore', 'unregister_upcaster', ARRAY['text', 'regclass'], 'public', ARRAY[]::name[]);
SELECT function_privs_are('eventstore', 'set_snapshot_policy', ARRAY['text', 'regprocedure', 'bigint', 'jsonb', 'text[]', 'regclass'],
                          'public', ARRAY[]::name[]);
SELECT function_privs_are('eventstore', 'remove_snapshot_policy', ARRAY['text', 'regclass'], 'public', ARRAY[]::name[]);
SELECT function_privs_are('eventstore', 'save_snapshot', ARRAY['text', 'bigint', 'jsonb', 'text', 'regclass'], 'public', ARRAY[]::name[]);
-- reading is for everyone who may read the tables
SELECT function_privs_are('eventstore', 'aggregate',
                          ARRAY['text', 'regprocedure', 'jsonb', 'bigint', 'timestamp with time zone', 'text', 'regclass'],
                          'public', ARRAY['EXECUTE']);
SELECT function_privs_are('eventstore', 'load_snapshot', ARRAY['text', 'text', 'bigint', 'regclass'], 'public', ARRAY['EXECUTE']);
SELECT function_privs_are('eventstore', 'stream_version_at', ARRAY['text', 'timestamp with time zone', 'regclass'], 'public', ARRAY['EXECUTE']);
SELECT function_privs_are('eventstore', 'read_stream_until', ARRAY['text', 'timestamp with time zone', 'bigint', 'integer', 'regclass'],
                          'public', ARRAY['EXECUTE']);
SELECT function_privs_are('eventstore', 'read_all_until', ARRAY['timestamp with time zone', 'bigint', 'integer', 'regclass'],
                          'public', ARRAY['EXECUTE']);
SELECT table_privs_are('eventstore', 'snapshots', 'public', ARRAY[]::text[], 'snapshots: nothing for PUBLIC');
SELECT table_privs_are('eventstore', 'snapshot_policies', 'public', ARRAY['SELECT']);
SELECT table_privs_are('eventstore', 'upcasters', 'public', ARRAY['SELECT']);

------------------------------------------------------------------------
-- grant_access: what each kind of user gets of the new functions
------------------------------------------------------------------------
CREATE ROLE tap_agg_reader;
CREATE ROLE tap_agg_writer;
CREATE ROLE tap_agg_consumer;
CREATE ROLE tap_agg_admin;
SELECT lives_ok($$SELECT eventstore.grant_access('tap_agg_reader', 'reader')$$, 'grant_access reader');
SELECT lives_ok($$SELECT eventstore.grant_access('tap_agg_writer', 'writer')$$, 'grant_access writer');
SELECT lives_ok($$SELECT eventstore.grant_access('tap_agg_consumer', 'consumer')$$, 'grant_access consumer');
SELECT lives_ok($$SELECT eventstore.grant_access('tap_agg_admin', 'admin')$$, 'grant_access admin');

SELECT ok(has_function_privilege('tap_agg_writer', 'eventstore.save_snapshot(text, bigint, jsonb, text, regclass)', 'EXECUTE'),
          'writer: save_snapshot');
SELECT ok(has_function_privilege('tap_agg_admin', 'eventstore.save_snapshot(text, bigint, jsonb, text, regclass)', 'EXECUTE'),
          'admin: save_snapshot');
SELECT ok(NOT has_function_privilege('tap_agg_reader', 'eventstore.save_snapshot(text, bigint, jsonb, text, regclass)', 'EXECUTE'),
          'reader: no save_snapshot');
SELECT ok(NOT has_function_privilege('tap_agg_consumer', 'eventstore.save_snapshot(text, bigint, jsonb, text, regclass)', 'EXECUTE'),
          'consumer: no save_snapshot');
SELECT ok(has_function_privilege('tap_agg_admin', f, 'EXECUTE'), 'admin: ' || f)
  FROM unnest(ARRAY['eventstore.register_upcaster(text, regprocedure, regclass)',
                    'eventstore.unregister_upcaster(text, regclass)',
                    'eventstore.set_snapshot_policy(text, regprocedure, bigint, jsonb, text[], regclass)',
                    'eventstore.remove_snapshot_policy(text, regclass)']) f;
SELECT ok(NOT has_function_privilege(r, f, 'EXECUTE'), r || ': no ' || f)
  FROM unnest(ARRAY['tap_agg_reader', 'tap_agg_writer', 'tap_agg_consumer']) r,
       unnest(ARRAY['eventstore.register_upcaster(text, regprocedure, regclass)',
                    'eventstore.unregister_upcaster(text, regclass)',
                    'eventstore.set_snapshot_policy(text, regprocedure, bigint, jsonb, text[], regclass)',
                    'eventstore.remove_snapshot_policy(text, regclass)']) f
 ORDER BY r, f;
SELECT ok(has_table_privilege(r, 'eventstore.snapshots', 'SELECT'), r || ': SELECT on snapshots')
  FROM unnest(ARRAY['tap_agg_reader', 'tap_agg_writer', 'tap_agg_admin']) r;
SELECT ok(NOT has_table_privilege(r, 'eventstore.snapshots', p), r || ': no ' || p || ' on snapshots')
  FROM unnest(ARRAY['tap_agg_reader', 'tap_agg_writer', 'tap_agg_admin']) r,
       unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p
 WHERE r = 'tap_agg_writer' OR p = 'INSERT';

------------------------------------------------------------------------
-- Fixtures (rolled back with the rest)
------------------------------------------------------------------------
CREATE SCHEMA tap_agg;
GRANT USAGE ON SCHEMA tap_agg TO PUBLIC;
CREATE FUNCTION tap_agg.list(state jsonb, e eventstore.events) RETURNS jsonb LANGUAGE sql AS $$
    SELECT COALESCE(state, '[]'::jsonb) || to_jsonb(e.stream_version)
$$;
CREATE FUNCTION tap_agg.private_list(state jsonb, e eventstore.events) RETURNS jsonb LANGUAGE sql AS $$
    SELECT COALESCE(state, '[]'::jsonb) || to_jsonb(e.stream_version)
$$;
REVOKE EXECUTE ON FUNCTION tap_agg.private_list(jsonb, eventstore.events) FROM PUBLIC;
CREATE FUNCTION tap_agg.wrong(state jsonb, e text) RETURNS jsonb LANGUAGE sql AS $$ SELECT state $$;
CREATE FUNCTION tap_agg.up(e eventstore.events) RETURNS eventstore.events LANGUAGE plpgsql AS $$
BEGIN
    e.event_type := 'TapAggV2';
    RETURN e;
END $$;
CREATE FUNCTION tap_agg.up_wrong(e eventstore.events) RETURNS jsonb LANGUAGE sql AS $$ SELECT e.data $$;
CREATE FUNCTION tap_agg.cyc(e eventstore.events) RETURNS eventstore.events LANGUAGE plpgsql AS $$
BEGIN
    e.event_type := CASE e.event_type WHEN 'TapAggCycA' THEN 'TapAggCycB' ELSE 'TapAggCycA' END;
    RETURN e;
END $$;
CREATE FUNCTION tap_agg.renumber(e eventstore.events) RETURNS eventstore.events LANGUAGE plpgsql AS $$
BEGIN
    e.stream_version := e.stream_version + 100;
    RETURN e;
END $$;
CREATE FUNCTION tap_agg.nothing(e eventstore.events) RETURNS eventstore.events LANGUAGE sql AS $$
    SELECT NULL::eventstore.events
$$;
-- an upcaster the admin role owns
CREATE FUNCTION tap_agg.admins_up(e eventstore.events) RETURNS eventstore.events LANGUAGE plpgsql AS $$
BEGIN
    e.event_type := 'TapAggAdminV2';
    RETURN e;
END $$;
ALTER FUNCTION tap_agg.admins_up(eventstore.events) OWNER TO tap_agg_admin;
ALTER FUNCTION tap_agg.list(jsonb, eventstore.events) OWNER TO tap_agg_admin;
-- run sql as role r (throws_ok's subtransaction undoes the SET on error)
CREATE FUNCTION tap_agg.as_role(r name, sql text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', r);
    EXECUTE sql;
    RESET ROLE;
END $$;

SELECT lives_ok($$SELECT eventstore.append('tap_agg-1', 0, ARRAY[
                     eventstore.event('TapAggV1', '{}'), eventstore.event('TapAggV1', '{}'),
                     eventstore.event('TapAggV1', '{}')])$$, 'a stream of three events');

------------------------------------------------------------------------
-- Privileges at work
------------------------------------------------------------------------
SELECT lives_ok($$SELECT tap_agg.as_role('tap_agg_writer',
                    $q$SELECT eventstore.save_snapshot('tap_agg-1', 2, '[1, 2]', 'tap')$q$)$$,
                'a writer saves a snapshot');
SELECT is((SELECT state FROM eventstore.load_snapshot('tap_agg-1', 'tap')), '[1, 2]'::jsonb, 'the snapshot is stored');
SELECT throws_ok($$SELECT tap_agg.as_role('tap_agg_reader',
                     $q$SELECT eventstore.save_snapshot('tap_agg-1', 2, '[]', 'tap')$q$)$$,
                 '42501', NULL, 'a reader cannot save a snapshot: 42501');
SELECT throws_ok($$SELECT tap_agg.as_role('tap_agg_writer',
                     $q$SELECT eventstore.set_snapshot_policy('tap', 'tap_agg.list(jsonb, eventstore.events)', 2)$q$)$$,
                 '42501', NULL, 'a writer cannot set a snapshot policy: 42501');
SELECT throws_ok($$SELECT tap_agg.as_role('tap_agg_writer',
                     $q$SELECT eventstore.register_upcaster('TapAggV1', 'tap_agg.admins_up(eventstore.events)')$q$)$$,
                 '42501', NULL, 'a writer cannot register an upcaster: 42501');
-- a reader folds the stream, from the writer's snapshot ([1, 2] at 2, as
-- the writer claimed: the fold goes on from there)
SET LOCAL ROLE tap_agg_reader;
SELECT is(eventstore.aggregate('tap_agg-1', 'tap_agg.list(jsonb, eventstore.events)', '[]', snapshot_type => 'tap'),
          '[1, 2, 3]'::jsonb, 'a reader aggregates from a snapshot');
SELECT is(eventstore.aggregate('tap_agg-1', 'tap_agg.list(jsonb, eventstore.events)', '[0]'),
          '[0, 1, 2, 3]'::jsonb, 'a reader aggregates from the start');
RESET ROLE;
SELECT throws_ok($$SELECT tap_agg.as_role('tap_agg_reader',
                     $q$SELECT eventstore.aggregate('tap_agg-1', 'tap_agg.private_list(jsonb, eventstore.events)')$q$)$$,
                 '42501', NULL, 'aggregate needs EXECUTE on the reducer: 42501');
CREATE ROLE tap_agg_nobody;
GRANT USAGE ON SCHEMA eventstore TO tap_agg_nobody;
SELECT throws_ok($$SELECT tap_agg.as_role('tap_agg_nobody',
                     $q$SELECT eventstore.aggregate('tap_agg-1', 'tap_agg.list(jsonb, eventstore.events)')$q$)$$,
                 '42501', NULL, 'aggregate without SELECT on events: 42501');
SELECT throws_ok($$SELECT tap_agg.as_role('tap_agg_nobody', $q$SELECT * FROM eventstore.load_snapshot('tap_agg-1', 'tap')$q$)$$,
                 '42501', NULL, 'load_snapshot without SELECT on snapshots: 42501');
SELECT throws_ok($$SELECT tap_agg.as_role('tap_agg_nobody', $q$SELECT eventstore.stream_version_at('tap_agg-1', now())$q$)$$,
                 '42501', NULL, 'stream_version_at without SELECT on events: 42501');

-- the admin: policies and upcasters (of functions it owns)
SELECT lives_ok($$SELECT tap_agg.as_role('tap_agg_admin',
                    $q$SELECT eventstore.set_snapshot_policy('tap_every_2', 'tap_agg.list(jsonb, eventstore.events)', 2,
                                                             '[]', ARRAY['tap_agg'])$q$)$$,
                'an admin sets a snapshot policy with a reducer it owns');
SELECT throws_ok($$SELECT tap_agg.as_role('tap_agg_admin',
                     $q$SELECT eventstore.set_snapshot_policy('tap_x', 'tap_agg.private_list(jsonb, eventstore.events)', 2)$q$)$$,
                 '42501', NULL, 'a policy with a reducer the admin does not own: 42501');
SELECT lives_ok($$SELECT tap_agg.as_role('tap_agg_writer',
                    $q$SELECT eventstore.append_event('tap_agg-1', 3, 'TapAggV1', '{}')$q$)$$,
                'a writer appends across the policy''s period');
SELECT is((SELECT state FROM eventstore.load_snapshot('tap_agg-1', 'tap_every_2')), '[1, 2, 3, 4]'::jsonb,
          'the policy snapshotted the writer''s append');
-- a policy's snapshot type is the policy's alone (issue 10): nobody forges it
SELECT lives_ok($$SELECT tap_agg.as_role('tap_agg_writer', $q$SELECT eventstore.append('tap_agg-2', 0, ARRAY[
                     eventstore.event('TapAggV1', '{}'), eventstore.event('TapAggV1', '{}'),
                     eventstore.event('TapAggV1', '{}'), eventstore.event('TapAggV1', '{}')])$q$)$$,
                'a writer appends four events to another stream of the category');
SELECT is((SELECT by_policy FROM eventstore.snapshots
            WHERE stream_id = 'tap_agg-2' AND snapshot_type = 'tap_every_2' AND stream_version = 4), true,
          'the policy''s snapshot is marked by_policy');
SELECT throws_ok($$SELECT tap_agg.as_role('tap_agg_writer',
                     $q$SELECT eventstore.save_snapshot('tap_agg-2', 4, '["forged"]', 'tap_every_2')$q$)$$,
                 '42501', 'snapshot type "tap_every_2" belongs to a snapshot policy',
                 'a writer cannot save over a policy''s snapshot: 42501');
SELECT throws_ok($$SELECT tap_agg.as_role('tap_agg_writer',
                     $q$SELECT eventstore.save_snapshot('tap_agg-2', 2, '["forged"]', 'tap_every_2')$q$)$$,
                 '42501', NULL, 'nor at another version of the policy''s type: 42501');
SELECT throws_ok($$SELECT tap_agg.as_role('tap_agg_admin',
                     $q$SELECT eventstore.save_snapshot('tap_agg-2', 4, '["forged"]', 'tap_every_2')$q$)$$,
                 '42501', NULL, 'nor can an admin (only the policy writes it): 42501');
SELECT throws_ok($$SELECT eventstore.save_snapshot('tap_agg-2', 4, '["forged"]', 'tap_every_2')$$,
                 '42501', NULL, 'nor a superuser through save_snapshot: 42501');
SELECT is((SELECT state FROM eventstore.load_snapshot('tap_agg-2', 'tap_every_2')), '[1, 2, 3, 4]'::jsonb,
          'the policy''s snapshot is unchanged');
SELECT is(eventstore.aggregate('tap_agg-2', 'tap_agg.list(jsonb, eventstore.events)', '[]', snapshot_type => 'tap_every_2'),
          '[1, 2, 3, 4]'::jsonb, 'the fold from the policy''s snapshots is unchanged');
-- rows of the type not written by the policy (saved before the policy was
-- set, or before 0.5.0, or put in by hand) are not built on
INSERT INTO eventstore.snapshots (stream_id, snapshot_type, stream_version, state)
VALUES ('tap_agg-2', 'tap_every_2', 3, '["forged"]');
SELECT is(eventstore.aggregate('tap_agg-2', 'tap_agg.list(jsonb, eventstore.events)', '[]', 3, NULL, 'tap_every_2'),
          '[1, 2, 3]'::jsonb, 'aggregate of a policy''s type ignores a snapshot the policy did not write');
SELECT is((SELECT count(*) FROM eventstore.load_snapshot('tap_agg-2', 'tap_every_2', 3)), 0::bigint,
          'load_snapshot of a policy''s type ignores it too');
SELECT lives_ok($$SELECT tap_agg.as_role('tap_agg_writer', $q$SELECT eventstore.append_event('tap_agg-2', 4, 'TapAggV1', '{}')$q$)$$,
                'a writer appends (no period crossed)');
INSERT INTO eventstore.snapshots (stream_id, snapshot_type, stream_version, state)
VALUES ('tap_agg-2', 'tap_every_2', 5, '["forged"]');
SELECT is(eventstore.aggregate('tap_agg-2', 'tap_agg.list(jsonb, eventstore.events)', '[]', snapshot_type => 'tap_every_2'),
          '[1, 2, 3, 4, 5]'::jsonb, 'aggregate builds on the policy''s snapshot at 4, not on the newer foreign one at 5');
SELECT lives_ok($$SELECT tap_agg.as_role('tap_agg_writer', $q$SELECT eventstore.append_event('tap_agg-2', 5, 'TapAggV1', '{}')$q$)$$,
                'a writer appends across the next period');
SELECT is((SELECT state FROM eventstore.load_snapshot('tap_agg-2', 'tap_every_2')), '[1, 2, 3, 4, 5, 6]'::jsonb,
          'the policy builds on its own snapshot, not on the foreign one');
SELECT lives_ok($$SELECT tap_agg.as_role('tap_agg_admin', $q$SELECT eventstore.remove_snapshot_policy('tap_every_2')$q$)$$,
                'an admin removes the policy');
SELECT lives_ok($$SELECT tap_agg.as_role('tap_agg_writer',
                    $q$SELECT eventstore.save_snapshot('tap_agg-2', 5, '[5]', 'tap_every_2')$q$)$$,
                'without a policy, the type is open to writers again');
SELECT is((SELECT by_policy FROM eventstore.snapshots
            WHERE stream_id = 'tap_agg-2' AND snapshot_type = 'tap_every_2' AND stream_version = 5), false,
          'a writer''s snapshot is not marked by_policy');
SELECT lives_ok($$SELECT tap_agg.as_role('tap_agg_admin',
                    $q$SELECT eventstore.register_upcaster('TapAggAdmin', 'tap_agg.admins_up(eventstore.events)')$q$)$$,
                'an admin registers an upcaster it owns');
SELECT throws_ok($$SELECT tap_agg.as_role('tap_agg_admin',
                     $q$SELECT eventstore.register_upcaster('TapAggV1', 'tap_agg.up(eventstore.events)')$q$)$$,
                 '42501', NULL, 'an upcaster the admin does not own: 42501');
SELECT lives_ok($$SELECT tap_agg.as_role('tap_agg_admin', $q$SELECT eventstore.unregister_upcaster('TapAggAdmin')$q$)$$,
                'an admin unregisters it');
SELECT throws_ok($$SELECT tap_agg.as_role('tap_agg_nobody', $q$SELECT eventstore.remove_snapshot_policy('tap_x')$q$)$$,
                 '42501', NULL, 'remove_snapshot_policy without EXECUTE: 42501');
SELECT throws_ok($$SELECT tap_agg.as_role('tap_agg_nobody', $q$SELECT eventstore.unregister_upcaster('TapAggV1')$q$)$$,
                 '42501', NULL, 'unregister_upcaster without EXECUTE: 42501');

------------------------------------------------------------------------
-- Refusals and their SQLSTATEs
------------------------------------------------------------------------
-- save_snapshot
SELECT throws_ok($$SELECT eventstore.save_snapshot('tap_agg-1', 0, '{}')$$, '22023', NULL, 'save_snapshot at version 0: 22023');
SELECT throws_ok($$SELECT eventstore.save_snapshot('tap_agg-1', -1, '{}')$$, '22023', NULL, 'save_snapshot at a negative version: 22023');
SELECT throws_ok($$SELECT eventstore.save_snapshot('tap_agg-1', 5, '{}')$$, '22023', NULL, 'save_snapshot beyond the stream: 22023');
SELECT throws_ok($$SELECT eventstore.save_snapshot('tap_agg-nope', 1, '{}')$$, '22023', NULL, 'save_snapshot of an unknown stream: 22023');
SELECT throws_ok($$SELECT eventstore.save_snapshot(NULL, 1, '{}')$$, '22004', NULL, 'save_snapshot, NULL stream: 22004');
SELECT throws_ok($$SELECT eventstore.save_snapshot('tap_agg-1', NULL, '{}')$$, '22004', NULL, 'save_snapshot, NULL version: 22004');
SELECT throws_ok($$SELECT eventstore.save_snapshot('tap_agg-1', 1, NULL)$$, '22004', NULL, 'save_snapshot, NULL state: 22004');
SELECT throws_ok($$SELECT eventstore.save_snapshot('tap_agg-1', 1, '{}', NULL)$$, '22004', NULL, 'save_snapshot, NULL type: 22004');
SELECT throws_ok($$SELECT eventstore.save_snapshot('tap_agg-1', 1, '{}', '')$$, '22023', NULL, 'save_snapshot, empty type: 22023');
-- aggregate
SELECT throws_ok($$SELECT eventstore.aggregate('tap_agg-1', 'tap_agg.wrong(jsonb, text)')$$,
                 '42P13', NULL, 'a reducer of the wrong signature: 42P13');
SELECT throws_ok($$SELECT eventstore.aggregate('tap_agg-1', NULL)$$, '22004', NULL, 'a NULL reducer: 22004');
SELECT throws_ok($$SELECT eventstore.aggregate(NULL, 'tap_agg.list(jsonb, eventstore.events)')$$,
                 '22004', NULL, 'aggregate of a NULL stream: 22004');
SELECT throws_ok($$SELECT eventstore.aggregate('tap_agg-1', 'tap_agg.list(jsonb, eventstore.events)', '[]', -1)$$,
                 '22023', NULL, 'a negative until_version: 22023');
SELECT is(eventstore.aggregate('tap_agg-1', 'tap_agg.list(jsonb, eventstore.events)', '[]', 2),
          '[1, 2]'::jsonb, 'aggregate up to a version');
-- snapshot policies
SELECT throws_ok($$SELECT eventstore.set_snapshot_policy('tap_x', 'tap_agg.list(jsonb, eventstore.events)', 0)$$,
                 '22023', NULL, 'every 0: 22023');
SELECT throws_ok($$SELECT eventstore.set_snapshot_policy('tap_x', 'tap_agg.list(jsonb, eventstore.events)', -1)$$,
                 '22023', NULL, 'every < 0: 22023');
SELECT throws_ok($$SELECT eventstore.set_snapshot_policy('tap_x', 'tap_agg.wrong(jsonb, text)', 2)$$,
                 '42P13', NULL, 'a policy reducer of the wrong signature: 42P13');
SELECT throws_ok($$SELECT eventstore.set_snapshot_policy('tap_x', NULL, 2)$$, '22004', NULL, 'a NULL policy reducer: 22004');
SELECT throws_ok($$SELECT eventstore.remove_snapshot_policy('tap_nope')$$, '42704', NULL, 'remove an unknown policy: 42704');
-- temporal reads
SELECT throws_ok($$SELECT eventstore.stream_version_at('tap_agg-1', NULL)$$, '22004', NULL, 'stream_version_at(NULL time): 22004');
SELECT throws_ok($$SELECT * FROM eventstore.read_stream_until('tap_agg-1', NULL)$$, '22004', NULL, 'read_stream_until(NULL time): 22004');
SELECT throws_ok($$SELECT * FROM eventstore.read_all_until(NULL)$$, '22004', NULL, 'read_all_until(NULL time): 22004');
SELECT is(eventstore.stream_version_at('tap_agg-1', 'infinity'), 4::bigint, 'stream_version_at(infinity): the last version');
SELECT is(eventstore.stream_version_at('tap_agg-1', '-infinity'), 0::bigint, 'stream_version_at(-infinity): 0');
-- upcasters
SELECT lives_ok($$SELECT eventstore.register_upcaster('TapAggV1', 'tap_agg.up(eventstore.events)')$$, 'register an upcaster');
SELECT is((SELECT string_agg(event_type, ',' ORDER BY stream_version) FROM eventstore.read_stream('tap_agg-1')),
          'TapAggV2,TapAggV2,TapAggV2,TapAggV2', 'reads are upcast');
SELECT is((SELECT string_agg(event_type, ',' ORDER BY stream_version) FROM eventstore.events WHERE stream_id = 'tap_agg-1'),
          'TapAggV1,TapAggV1,TapAggV1,TapAggV1', 'the stored rows are not');
SELECT throws_ok($$SELECT eventstore.register_upcaster('TapAggV1', 'tap_agg.up(eventstore.events)')$$,
                 '42710', NULL, 'a second upcaster for a type: 42710');
SELECT throws_ok($$SELECT eventstore.register_upcaster('TapAggX', 'tap_agg.up_wrong(eventstore.events)')$$,
                 '42P13', NULL, 'an upcaster of the wrong signature: 42P13');
SELECT throws_ok($$SELECT eventstore.register_upcaster(NULL, 'tap_agg.up(eventstore.events)')$$,
                 '22004', NULL, 'an upcaster for a NULL type: 22004');
SELECT throws_ok($$SELECT eventstore.unregister_upcaster('TapAggNope')$$, '42704', NULL, 'unregister an unknown upcaster: 42704');
SELECT lives_ok($$SELECT eventstore.append('tap_agg-cyc', 0, ARRAY[eventstore.event('TapAggCycA', '{}')])$$, 'a TapAggCycA event');
SELECT lives_ok($$SELECT eventstore.append('tap_agg-ren', 0, ARRAY[eventstore.event('TapAggRenumber', '{}')])$$, 'a TapAggRenumber event');
SELECT lives_ok($$SELECT eventstore.append('tap_agg-nul', 0, ARRAY[eventstore.event('TapAggNothing', '{}')])$$, 'a TapAggNothing event');
SELECT lives_ok($$SELECT eventstore.register_upcaster('TapAggCycA', 'tap_agg.cyc(eventstore.events)')$$, 'A -> B');
SELECT lives_ok($$SELECT eventstore.register_upcaster('TapAggCycB', 'tap_agg.cyc(eventstore.events)')$$, 'B -> A');
SELECT lives_ok($$SELECT eventstore.register_upcaster('TapAggRenumber', 'tap_agg.renumber(eventstore.events)')$$, 'renumbering');
SELECT lives_ok($$SELECT eventstore.register_upcaster('TapAggNothing', 'tap_agg.nothing(eventstore.events)')$$, 'returning NULL');
SELECT throws_ok($$SELECT * FROM eventstore.read_stream('tap_agg-cyc')$$, '42P19', NULL, 'a cycle of upcasters: 42P19');
SELECT throws_ok($$SELECT * FROM eventstore.read_stream('tap_agg-ren')$$, '22000', NULL, 'an upcaster changing the version: 22000');
SELECT throws_ok($$SELECT * FROM eventstore.read_stream('tap_agg-nul')$$, '22004', NULL, 'an upcaster returning NULL: 22004');
SELECT lives_ok($$SELECT eventstore.unregister_upcaster('TapAggV1')$$, 'unregister');
SELECT is((SELECT string_agg(event_type, ',' ORDER BY stream_version) FROM eventstore.read_stream('tap_agg-1')),
          'TapAggV1,TapAggV1,TapAggV1,TapAggV1', 'reads return the stored rows again');

SELECT * FROM finish();
ROLLBACK;
