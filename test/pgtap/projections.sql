-- pgTAP: the synchronous projection API -- signatures, privileges, the
-- SQLSTATE of every refusal, and a veto that leaves the stream untouched.
-- Runs in one transaction and rolls it back (events included).
BEGIN;
SELECT plan(50);

------------------------------------------------------------------------
-- The registry and the functions
------------------------------------------------------------------------
SELECT has_table('eventstore', 'projections', 'the registry table exists');
SELECT columns_are('eventstore', 'projections',
                   ARRAY['name', 'handler', 'event_types', 'reset_handler', 'enabled', 'registered_at', 'handler_owner', 'store']);
SELECT col_is_pk('eventstore', 'projections', 'name', 'name is the primary key');

SELECT has_function('eventstore', 'register_projection', ARRAY['text', 'regprocedure', 'text[]', 'regprocedure', 'regclass']);
SELECT function_returns('eventstore', 'register_projection', ARRAY['text', 'regprocedure', 'text[]', 'regprocedure', 'regclass'], 'void');
SELECT has_function('eventstore', 'unregister_projection', ARRAY['text']);
SELECT function_returns('eventstore', 'unregister_projection', ARRAY['text'], 'void');
SELECT has_function('eventstore', 'disable_projection', ARRAY['text']);
SELECT function_returns('eventstore', 'disable_projection', ARRAY['text'], 'void');
SELECT has_function('eventstore', 'enable_projection', ARRAY['text']);
SELECT function_returns('eventstore', 'enable_projection', ARRAY['text'], 'void');
SELECT has_function('eventstore', 'rebuild_projection', ARRAY['text']);
SELECT function_returns('eventstore', 'rebuild_projection', ARRAY['text'], 'bigint');

------------------------------------------------------------------------
-- Privileges: management is not for PUBLIC; the registry is readable
------------------------------------------------------------------------
SELECT function_privs_are('eventstore', 'register_projection', ARRAY['text', 'regprocedure', 'text[]', 'regprocedure', 'regclass'],
                          'public', ARRAY[]::name[]);
SELECT function_privs_are('eventstore', 'unregister_projection', ARRAY['text'], 'public', ARRAY[]::name[]);
SELECT function_privs_are('eventstore', 'disable_projection', ARRAY['text'], 'public', ARRAY[]::name[]);
SELECT function_privs_are('eventstore', 'enable_projection', ARRAY['text'], 'public', ARRAY[]::name[]);
SELECT function_privs_are('eventstore', 'rebuild_projection', ARRAY['text'], 'public', ARRAY[]::name[]);
SELECT table_privs_are('eventstore', 'projections', 'public', ARRAY['SELECT']);

------------------------------------------------------------------------
-- Fixtures (rolled back with the rest)
------------------------------------------------------------------------
CREATE SCHEMA tap_proj;
CREATE TABLE tap_proj.balance (account text PRIMARY KEY, balance numeric NOT NULL);
CREATE FUNCTION tap_proj.project_balance(e eventstore.events) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    delta numeric := CASE e.event_type WHEN 'TapDeposited' THEN (e.data->>'amount')::numeric
                                       WHEN 'TapWithdrawn' THEN -(e.data->>'amount')::numeric END;
    new_balance numeric;
BEGIN
    INSERT INTO tap_proj.balance AS b VALUES (e.stream_id, delta)
    ON CONFLICT (account) DO UPDATE SET balance = b.balance + delta
    RETURNING balance INTO new_balance;
    IF new_balance < 0 THEN
        RAISE EXCEPTION 'insufficient funds in %', e.stream_id USING ERRCODE = 'check_violation';
    END IF;
END $$;
CREATE FUNCTION tap_proj.reset_balance() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tap_proj.balance;
END $$;
CREATE FUNCTION tap_proj.veto(e eventstore.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'vetoed %', e.event_type USING ERRCODE = 'P0099';
END $$;
-- each TapLoop appends another TapLoop to a new stream: nests forever
CREATE FUNCTION tap_proj.loop(e eventstore.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM eventstore.append_event(e.stream_id || '-x', 0, 'TapLoop', '{}');
END $$;
CREATE FUNCTION tap_proj.wrong(e text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN END $$;
-- run sql as role r (throws_ok's subtransaction undoes the SET on error)
CREATE FUNCTION tap_proj.as_role(r name, sql text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', r);
    EXECUTE sql;
    RESET ROLE;
END $$;

SELECT lives_ok($$SELECT eventstore.register_projection('tap_balance', 'tap_proj.project_balance(eventstore.events)',
                                                        ARRAY['TapDeposited', 'TapWithdrawn'],
                                                        'tap_proj.reset_balance()')$$,
                'register a projection with event types and a reset handler');
SELECT is((SELECT handler || ' ' || reset_handler || ' ' || event_types::text || ' ' || enabled
             FROM eventstore.projections WHERE name = 'tap_balance'),
          'tap_proj.project_balance(eventstore.events) tap_proj.reset_balance() {TapDeposited,TapWithdrawn} true',
          'the registry row');

------------------------------------------------------------------------
-- Refusals and their SQLSTATEs
------------------------------------------------------------------------
SELECT throws_ok($$SELECT eventstore.register_projection('tap_balance', 'tap_proj.veto(eventstore.events)')$$,
                 '42710', 'projection "tap_balance" already exists', 'a taken name: 42710');
SELECT throws_ok($$SELECT eventstore.register_projection('tap_wrong', 'tap_proj.wrong(text)')$$,
                 '42P13', NULL, 'a handler of the wrong signature: 42P13');
SELECT throws_ok($$SELECT eventstore.register_projection('tap_wrong', 'tap_proj.veto(eventstore.events)',
                                                         NULL, 'tap_proj.veto(eventstore.events)')$$,
                 '42P13', NULL, 'a reset handler with arguments: 42P13');
SELECT throws_ok($$SELECT eventstore.register_projection(NULL, 'tap_proj.veto(eventstore.events)')$$,
                 '22004', NULL, 'a NULL name: 22004');
SELECT throws_ok($$SELECT eventstore.register_projection('', 'tap_proj.veto(eventstore.events)')$$,
                 '22023', NULL, 'an empty name: 22023');
SELECT throws_ok($$SELECT eventstore.register_projection('tap_x', 'tap_proj.veto(eventstore.events)', '{}')$$,
                 '22023', NULL, 'an empty event_types array: 22023');
SELECT throws_ok($$SELECT eventstore.register_projection('tap_x', 'tap_proj.veto(eventstore.events)', ARRAY[NULL::text])$$,
                 '22004', NULL, 'a NULL event type: 22004');
SELECT throws_ok($$SELECT eventstore.unregister_projection('tap_nope')$$, '42704', NULL, 'unregister an unknown projection: 42704');
SELECT throws_ok($$SELECT eventstore.disable_projection('tap_nope')$$, '42704', NULL, 'disable an unknown projection: 42704');
SELECT throws_ok($$SELECT eventstore.enable_projection('tap_nope')$$, '42704', NULL, 'enable an unknown projection: 42704');
SELECT throws_ok($$SELECT eventstore.rebuild_projection('tap_nope')$$, '42704', NULL, 'rebuild an unknown projection: 42704');

-- a role allowed to register, registering a function it does not own
CREATE ROLE tap_proj_admin;
GRANT USAGE ON SCHEMA eventstore, tap_proj TO tap_proj_admin;
GRANT EXECUTE ON FUNCTION eventstore.register_projection(text, regprocedure, text[], regprocedure, regclass) TO tap_proj_admin;
SELECT throws_ok($$SELECT tap_proj.as_role('tap_proj_admin',
                     $q$SELECT eventstore.register_projection('tap_x', 'tap_proj.veto(eventstore.events)')$q$)$$,
                 '42501', 'must be owner of function tap_proj.veto(eventstore.events) to register it',
                 'not the owner of the handler: 42501');
-- a role without EXECUTE on the management functions
CREATE ROLE tap_proj_nobody;
GRANT USAGE ON SCHEMA eventstore, tap_proj TO tap_proj_nobody;
SELECT throws_ok($$SELECT tap_proj.as_role('tap_proj_nobody', $q$SELECT eventstore.disable_projection('tap_balance')$q$)$$,
                 '42501', NULL, 'disable_projection without EXECUTE: 42501');
SELECT throws_ok($$SELECT tap_proj.as_role('tap_proj_nobody', $q$SELECT eventstore.rebuild_projection('tap_balance')$q$)$$,
                 '42501', NULL, 'rebuild_projection without EXECUTE: 42501');

------------------------------------------------------------------------
-- The veto: the handler's SQLSTATE reaches the caller, nothing is stored
------------------------------------------------------------------------
SELECT lives_ok($$SELECT eventstore.append('tap_acct-1', 0, ARRAY[
                     eventstore.event('TapDeposited', '{"amount": 100}'),
                     eventstore.event('TapWithdrawn', '{"amount": 30}')])$$, 'two events projected');
SELECT is((SELECT balance FROM tap_proj.balance WHERE account = 'tap_acct-1'), 70::numeric, 'balance 70');
SELECT throws_ok($$SELECT eventstore.append_event('tap_acct-1', 2, 'TapWithdrawn', '{"amount": 300}')$$,
                 '23514', 'insufficient funds in tap_acct-1', 'an overdraft is vetoed with the handler''s 23514');
SELECT is(eventstore.stream_version('tap_acct-1'), 2::bigint, 'the vetoed event was not stored');
SELECT is((SELECT balance FROM tap_proj.balance WHERE account = 'tap_acct-1'), 70::numeric, 'the balance is unchanged');
SELECT throws_ok($$SELECT eventstore.append('tap_acct-1', 2, ARRAY[
                      eventstore.event('TapDeposited', '{"amount": 1000}'),
                      eventstore.event('TapWithdrawn', '{"amount": 2000}')])$$,
                 '23514', NULL, 'a batch with an overdraft is vetoed whole');
SELECT is(eventstore.stream_version('tap_acct-1'), 2::bigint, 'no event of the vetoed batch was stored');
SELECT is(eventstore.rebuild_projection('tap_balance'), 2::bigint, 'rebuild replays the two stored events');
SELECT is((SELECT balance FROM tap_proj.balance WHERE account = 'tap_acct-1'), 70::numeric, 'rebuilt balance 70');

-- any SQLSTATE passes through unchanged
SELECT lives_ok($$SELECT eventstore.register_projection('tap_veto', 'tap_proj.veto(eventstore.events)', ARRAY['TapVeto'])$$,
                'register a projection that always raises');
SELECT throws_ok($$SELECT eventstore.append_event('tap_veto-1', NULL, 'TapVeto', '{}')$$,
                 'P0099', 'vetoed TapVeto', 'a custom SQLSTATE passes through');
SELECT is(eventstore.stream_version('tap_veto-1'), 0::bigint, 'the vetoed stream does not exist');

------------------------------------------------------------------------
-- Nesting deeper than eventstore.max_projection_depth: 54001
------------------------------------------------------------------------
SELECT lives_ok($$SELECT eventstore.register_projection('tap_loop', 'tap_proj.loop(eventstore.events)', ARRAY['TapLoop'])$$,
                'register a projection that appends');
SET LOCAL eventstore.max_projection_depth = 4;
SELECT throws_ok($$SELECT eventstore.append_event('tap_loop', 0, 'TapLoop', '{}')$$,
                 '54001', NULL, 'a projection cycle fails with 54001');
SELECT is((SELECT count(*) FROM eventstore.events WHERE stream_id LIKE 'tap\_loop%'), 0::bigint,
          'nothing of the cycle was stored');

SELECT * FROM finish();
ROLLBACK;
