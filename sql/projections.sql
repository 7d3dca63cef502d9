--
-- projections: synchronous projections -- registration and its checks, the
-- registry table, dispatch order, event type filters, vetoes and rollback,
-- nested appends and their depth limit, disable/enable/unregister,
-- rebuild_projection against incremental projection, and the privileges a
-- handler runs with.
--
-- Every stream of this file starts with "proj" and every event type used by a
-- typed projection is unique to its section, so what a section counts is its
-- own.  The file creates the extension if needed and drops it at the end (the
-- events table is append-only).
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

-- Positions are shown relative to the sequence as this file found it.
SELECT coalesce(pg_sequence_last_value('eventstore.events_global_position_seq'), 0) AS base \gset

-- Handlers record their calls here; n (a sequence) gives the call order.
CREATE TABLE proj_log (
    n          bigint GENERATED ALWAYS AS IDENTITY,
    projection text   NOT NULL,
    pos        bigint NOT NULL,
    stream_id  text   NOT NULL,
    version    bigint NOT NULL,
    event_type text   NOT NULL,
    event_id   uuid,
    created_at timestamptz,
    who        name   NOT NULL DEFAULT current_user
);
-- (PL/pgSQL handlers; handlers in SQL are tested on their own below)
CREATE FUNCTION proj_log_zeta(e eventstore.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO proj_log (projection, pos, stream_id, version, event_type, event_id, created_at)
    VALUES ('Zeta', e.global_position, e.stream_id, e.stream_version, e.event_type, e.event_id, e.created_at);
END $$;
CREATE FUNCTION proj_log_alpha(e eventstore.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO proj_log (projection, pos, stream_id, version, event_type, event_id, created_at)
    VALUES ('alpha', e.global_position, e.stream_id, e.stream_version, e.event_type, e.event_id, e.created_at);
END $$;
CREATE FUNCTION proj_log_beta(e eventstore.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO proj_log (projection, pos, stream_id, version, event_type)
    VALUES ('beta', e.global_position, e.stream_id, e.stream_version, e.event_type);
END $$;
CREATE FUNCTION proj_log_typed(e eventstore.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO proj_log (projection, pos, stream_id, version, event_type)
    VALUES ('typed', e.global_position, e.stream_id, e.stream_version, e.event_type);
END $$;
-- show_log(): the calls logged since its last call, in call order, with
-- positions relative to :base
CREATE TABLE proj_log_mark (n bigint NOT NULL, base bigint NOT NULL);
INSERT INTO proj_log_mark VALUES (0, :base);
CREATE FUNCTION show_log() RETURNS TABLE (projection text, pos bigint, stream_id text,
                                          version bigint, event_type text)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
        SELECT l.projection, l.pos - m.base, l.stream_id, l.version, l.event_type
          FROM proj_log l, proj_log_mark m WHERE l.n > m.n
         ORDER BY l.n;
    UPDATE proj_log_mark m SET n = coalesce((SELECT max(l.n) FROM proj_log l), 0);
END $$;

------------------------------------------------------------------------
-- The registry: empty at first
------------------------------------------------------------------------
SELECT count(*) AS projections FROM eventstore.projections;

-- Projections are called in byte order of their name: 'Zeta' before 'alpha'
-- whatever the database's collation.  Registered in the other order.
SELECT eventstore.register_projection('alpha', 'proj_log_alpha(eventstore.events)');
SELECT eventstore.register_projection('Zeta', 'proj_log_zeta(eventstore.events)');
SELECT eventstore.register_projection('typed', 'proj_log_typed(eventstore.events)',
                                      ARRAY['ProjDeposited', 'ProjWithdrawn']);

-- The registry holds the handler's schema-qualified signature as text.
SELECT name, handler, event_types, reset_handler, enabled, registered_at <= now() AS registered_before
  FROM eventstore.projections ORDER BY name COLLATE "C";

------------------------------------------------------------------------
-- Registration errors; none of them changes the registry
------------------------------------------------------------------------
-- a taken name
SELECT pg_temp.try($$SELECT eventstore.register_projection('alpha', 'proj_log_zeta(eventstore.events)')$$);
-- names are compared exactly: 'ALPHA' is another name (registered, then removed)
SELECT pg_temp.try($$SELECT eventstore.register_projection('ALPHA', 'proj_log_zeta(eventstore.events)')$$);
SELECT eventstore.unregister_projection('ALPHA');
-- NULL and empty name
SELECT pg_temp.try($$SELECT eventstore.register_projection(NULL, 'proj_log_zeta(eventstore.events)')$$);
SELECT pg_temp.try($$SELECT eventstore.register_projection('', 'proj_log_zeta(eventstore.events)')$$);
-- NULL handler
SELECT pg_temp.try($$SELECT eventstore.register_projection('p', NULL)$$);
-- an empty event_types array, a NULL element in it
SELECT pg_temp.try($$SELECT eventstore.register_projection('p', 'proj_log_zeta(eventstore.events)', '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.register_projection('p', 'proj_log_zeta(eventstore.events)', ARRAY['A', NULL])$$);
-- handlers of the wrong signature: 42P13 (invalid_function_definition)
CREATE FUNCTION proj_bad_text(e text) RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION proj_bad_two(e eventstore.events, x int) RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION proj_bad_none() RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION proj_bad_set(e eventstore.events) RETURNS SETOF int LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION proj_bad_new(e eventstore.new_event) RETURNS void LANGUAGE sql AS $$ SELECT $$;
SELECT pg_temp.try($$SELECT eventstore.register_projection('p', 'proj_bad_text(text)')$$);
SELECT pg_temp.try($$SELECT eventstore.register_projection('p', 'proj_bad_two(eventstore.events, int)')$$);
SELECT pg_temp.try($$SELECT eventstore.register_projection('p', 'proj_bad_none()')$$);
SELECT pg_temp.try($$SELECT eventstore.register_projection('p', 'proj_bad_set(eventstore.events)')$$);
SELECT pg_temp.try($$SELECT eventstore.register_projection('p', 'proj_bad_new(eventstore.new_event)')$$);
-- a reset handler must take no arguments
SELECT pg_temp.try($$SELECT eventstore.register_projection('p', 'proj_log_zeta(eventstore.events)',
                                                           NULL, 'proj_log_zeta(eventstore.events)')$$);
-- a procedure is not a function: 42809 (wrong_object_type)
CREATE PROCEDURE proj_bad_proc(e eventstore.events) LANGUAGE sql AS $$ SELECT $$;
SELECT pg_temp.try($$SELECT eventstore.register_projection('p', 'proj_bad_proc(eventstore.events)')$$);
-- a function that does not exist: the regprocedure cast fails, 42883
SELECT pg_temp.try($$SELECT eventstore.register_projection('p', 'proj_missing(eventstore.events)')$$);
SELECT count(*) AS projections FROM eventstore.projections;

-- Registering someone else's function: 42501, for a role that may call
-- register_projection but does not own the handler.  The same role can
-- register a handler it owns.
CREATE ROLE regress_proj_admin;
GRANT USAGE ON SCHEMA eventstore TO regress_proj_admin;
GRANT EXECUTE ON FUNCTION eventstore.register_projection(text, regprocedure, text[], regprocedure, regclass),
                          eventstore.unregister_projection(text) TO regress_proj_admin;
CREATE FUNCTION proj_admin_handler(e eventstore.events) RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION proj_admin_reset() RETURNS void LANGUAGE sql AS $$ SELECT $$;
ALTER FUNCTION proj_admin_handler(eventstore.events) OWNER TO regress_proj_admin;
SET ROLE regress_proj_admin;
-- not the owner of the handler
SELECT pg_temp.try($$SELECT eventstore.register_projection('p', 'proj_log_zeta(eventstore.events)')$$);
-- owner of the handler, not of the reset handler
SELECT pg_temp.try($$SELECT eventstore.register_projection('p', 'proj_admin_handler(eventstore.events)',
                                                           NULL, 'proj_admin_reset()')$$);
-- owner of the handler: allowed, and unregistering too
SELECT pg_temp.try($$SELECT eventstore.register_projection('p_admin', 'proj_admin_handler(eventstore.events)')$$);
SELECT name, handler FROM eventstore.projections WHERE name = 'p_admin';
SELECT pg_temp.try($$SELECT eventstore.unregister_projection('p_admin')$$);
-- without EXECUTE on the management functions: 42501
SELECT pg_temp.try($$SELECT eventstore.enable_projection('alpha')$$);
SELECT pg_temp.try($$SELECT eventstore.rebuild_projection('alpha')$$);
RESET ROLE;
SELECT count(*) AS projections FROM eventstore.projections;

------------------------------------------------------------------------
-- Dispatch: every event in position order, projections in name order
------------------------------------------------------------------------
SELECT stream_version, global_position - :base AS pos
  FROM eventstore.append('proj_order-1', 0, ARRAY[
       eventstore.event('ProjA', '{}'),
       eventstore.event('ProjB', '{}'),
       eventstore.event('ProjC', '{}')]);
SELECT * FROM show_log();
-- The handler gets the stored row: its position, version, event id and created_at.
SELECT l.projection, l.version, l.event_id = e.event_id AS same_id,
       l.created_at = e.created_at AS same_created_at
  FROM proj_log l JOIN eventstore.events e ON e.global_position = l.pos
 WHERE l.stream_id = 'proj_order-1'
 ORDER BY l.n;
SELECT stream_version, global_position - :base AS pos
  FROM eventstore.append_event('proj_order-2', NULL, 'ProjA', '{}');
SELECT * FROM show_log();

------------------------------------------------------------------------
-- event_types: a typed projection sees only its types (exact match)
------------------------------------------------------------------------
SELECT stream_version
  FROM eventstore.append('proj_typed-1', 0, ARRAY[
       eventstore.event('ProjDeposited', '{}'),
       eventstore.event('ProjOther', '{}'),
       eventstore.event('projdeposited', '{}'),
       eventstore.event('ProjWithdrawn', '{}')]);
SELECT * FROM show_log() WHERE projection = 'typed';
-- the untyped projections saw all four
SELECT projection, count(*) FROM proj_log WHERE stream_id = 'proj_typed-1' GROUP BY 1 ORDER BY projection COLLATE "C";

------------------------------------------------------------------------
-- A change to the registry takes effect in the changing session at once,
-- and a rolled-back change is forgotten
------------------------------------------------------------------------
SELECT eventstore.unregister_projection('typed');
BEGIN;
SELECT eventstore.register_projection('beta', 'proj_log_beta(eventstore.events)');
SELECT stream_version FROM eventstore.append_event('proj_cache-1', 0, 'ProjA', '{}');
SELECT * FROM show_log();
ROLLBACK;
-- after the rollback: no 'beta', and its call is gone with the transaction
SELECT stream_version FROM eventstore.append_event('proj_cache-1', 0, 'ProjA', '{}');
SELECT * FROM show_log();
BEGIN;
SELECT eventstore.unregister_projection('alpha');
SELECT stream_version FROM eventstore.append_event('proj_cache-1', 1, 'ProjA', '{}');
SELECT * FROM show_log();
ROLLBACK;
-- the rollback restored 'alpha'
SELECT stream_version FROM eventstore.append_event('proj_cache-1', 1, 'ProjA', '{}');
SELECT * FROM show_log();

------------------------------------------------------------------------
-- disable / enable
------------------------------------------------------------------------
SELECT eventstore.disable_projection('alpha');
SELECT name, enabled FROM eventstore.projections ORDER BY name COLLATE "C";
SELECT stream_version FROM eventstore.append_event('proj_toggle-1', 0, 'ProjA', '{}');
SELECT * FROM show_log();
-- disabling twice is harmless
SELECT eventstore.disable_projection('alpha');
SELECT eventstore.enable_projection('alpha');
SELECT name, enabled FROM eventstore.projections ORDER BY name COLLATE "C";
SELECT stream_version FROM eventstore.append_event('proj_toggle-1', 1, 'ProjA', '{}');
SELECT * FROM show_log();
-- unknown, NULL and empty names
SELECT pg_temp.try($$SELECT eventstore.disable_projection('nope')$$);
SELECT pg_temp.try($$SELECT eventstore.enable_projection('nope')$$);
SELECT pg_temp.try($$SELECT eventstore.disable_projection(NULL)$$);
SELECT pg_temp.try($$SELECT eventstore.enable_projection('')$$);

------------------------------------------------------------------------
-- unregister
------------------------------------------------------------------------
SELECT eventstore.unregister_projection('Zeta');
SELECT name FROM eventstore.projections ORDER BY name COLLATE "C";
SELECT stream_version FROM eventstore.append_event('proj_unreg-1', 0, 'ProjA', '{}');
SELECT * FROM show_log();
SELECT pg_temp.try($$SELECT eventstore.unregister_projection('Zeta')$$);
SELECT pg_temp.try($$SELECT eventstore.unregister_projection('nope')$$);
SELECT pg_temp.try($$SELECT eventstore.unregister_projection(NULL)$$);
SELECT pg_temp.try($$SELECT eventstore.unregister_projection('')$$);
-- the name is free again
SELECT eventstore.register_projection('Zeta', 'proj_log_zeta(eventstore.events)');
SELECT stream_version FROM eventstore.append_event('proj_unreg-1', 1, 'ProjA', '{}');
SELECT * FROM show_log();
SELECT eventstore.unregister_projection('Zeta');
SELECT eventstore.unregister_projection('alpha');
SELECT count(*) AS projections FROM eventstore.projections;

------------------------------------------------------------------------
-- The worked example of the README: a balance that can never go negative
------------------------------------------------------------------------
CREATE TABLE account_balance (account text PRIMARY KEY, balance numeric NOT NULL);

CREATE FUNCTION project_balance(e eventstore.events) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    delta numeric := CASE e.event_type
                       WHEN 'Deposited' THEN (e.data->>'amount')::numeric
                       WHEN 'Withdrawn' THEN -(e.data->>'amount')::numeric END;
    new_balance numeric;
BEGIN
    INSERT INTO account_balance AS b VALUES (e.stream_id, delta)
    ON CONFLICT (account) DO UPDATE SET balance = b.balance + delta
    RETURNING balance INTO new_balance;
    IF new_balance < 0 THEN
        RAISE EXCEPTION 'insufficient funds in %', e.stream_id
            USING ERRCODE = 'check_violation';
    END IF;
END $$;

CREATE FUNCTION reset_balance() RETURNS void LANGUAGE sql AS $$ TRUNCATE account_balance $$;

SELECT eventstore.register_projection('balance', 'project_balance(eventstore.events)',
                                      ARRAY['Deposited', 'Withdrawn'], 'reset_balance()');

SELECT * FROM eventstore.append_event('proj_account-1', 0, 'Deposited', '{"amount": 100}') \gset r_
SELECT * FROM eventstore.append_event('proj_account-1', 1, 'Withdrawn', '{"amount": 30}') \gset r_
SELECT :r_stream_version AS stream_version, :r_global_position - :base AS pos;
SELECT balance FROM account_balance WHERE account = 'proj_account-1';

-- The veto: the client gets the handler's SQLSTATE (23514) and message.
\set VERBOSITY sqlstate
SELECT * FROM eventstore.append_event('proj_account-1', 2, 'Withdrawn', '{"amount": 300}');
\set VERBOSITY terse
SELECT * FROM eventstore.append_event('proj_account-1', 2, 'Withdrawn', '{"amount": 300}');
DO $$
BEGIN
    PERFORM eventstore.append_event('proj_account-1', 2, 'Withdrawn', '{"amount": 300}');
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'caught SQLSTATE %: %', SQLSTATE, SQLERRM;
END $$;
-- nothing of it remains: not the event, not the balance change
SELECT eventstore.stream_version('proj_account-1');
SELECT stream_version, event_type, data FROM eventstore.read_stream('proj_account-1');
SELECT balance FROM account_balance WHERE account = 'proj_account-1';
-- a vetoed batch leaves nothing either, not even its first event's effect
SELECT pg_temp.try($$SELECT eventstore.append('proj_account-1', 2, ARRAY[
    eventstore.event('Deposited', '{"amount": 5}'),
    eventstore.event('Withdrawn', '{"amount": 500}')])$$);
SELECT eventstore.stream_version('proj_account-1');
SELECT balance FROM account_balance WHERE account = 'proj_account-1';
-- a veto aborts the enclosing transaction; a savepoint keeps what came before
BEGIN;
SELECT stream_version FROM eventstore.append_event('proj_account-2', 0, 'Deposited', '{"amount": 10}');
SAVEPOINT s;
SELECT stream_version FROM eventstore.append_event('proj_account-2', 1, 'Withdrawn', '{"amount": 11}');
ROLLBACK TO SAVEPOINT s;
SELECT stream_version FROM eventstore.append_event('proj_account-2', 1, 'Withdrawn', '{"amount": 4}');
COMMIT;
SELECT account, balance FROM account_balance ORDER BY account;
SELECT eventstore.stream_version('proj_account-2');
-- a withdrawal that fits goes through
SELECT stream_version FROM eventstore.append_event('proj_account-1', 2, 'Withdrawn', '{"amount": 70}');
SELECT balance FROM account_balance WHERE account = 'proj_account-1';

-- rebuild: the reset handler (in SQL), then every Deposited/Withdrawn of the log
SELECT eventstore.rebuild_projection('balance') AS replayed,
       (SELECT count(*) FROM eventstore.events WHERE event_type IN ('Deposited', 'Withdrawn')) AS events;
SELECT account, balance FROM account_balance ORDER BY account;
SELECT eventstore.unregister_projection('balance');

------------------------------------------------------------------------
-- A projection that raises rolls back the other projections' effects
------------------------------------------------------------------------
CREATE FUNCTION proj_veto(e eventstore.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF e.event_type = 'ProjBoom' THEN
        RAISE EXCEPTION 'boom at version %', e.stream_version USING ERRCODE = 'P0099';
    END IF;
END $$;
-- 'a_log' runs before 'z_veto' (name order)
SELECT eventstore.register_projection('a_log', 'proj_log_alpha(eventstore.events)');
SELECT eventstore.register_projection('z_veto', 'proj_veto(eventstore.events)');
SELECT stream_version FROM eventstore.append_event('proj_veto-1', 0, 'ProjA', '{}');
SELECT * FROM show_log();
SELECT pg_temp.try($$SELECT eventstore.append_event('proj_veto-1', 1, 'ProjBoom', '{}')$$);
-- the third event of a batch is vetoed: nothing of the batch remains
SELECT pg_temp.try($$SELECT eventstore.append('proj_veto-1', 1, ARRAY[
    eventstore.event('ProjA', '{}'), eventstore.event('ProjA', '{}'),
    eventstore.event('ProjBoom', '{}')])$$);
SELECT * FROM show_log();
SELECT count(*) AS logged FROM proj_log WHERE stream_id = 'proj_veto-1';
SELECT eventstore.stream_version('proj_veto-1');
-- the error reaches the client with its own SQLSTATE
\set VERBOSITY sqlstate
SELECT stream_version FROM eventstore.append_event('proj_veto-1', 1, 'ProjBoom', '{}');
\set VERBOSITY terse
SELECT eventstore.unregister_projection('z_veto');

------------------------------------------------------------------------
-- A handler that appends: the projections of what it appends run too,
-- nested, right away
------------------------------------------------------------------------
-- for each ProjPing in stream proj_ping-X, append ProjPong to proj_pong-X
CREATE FUNCTION proj_ping(e eventstore.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF e.event_type = 'ProjPing' THEN
        PERFORM eventstore.append_event(replace(e.stream_id, 'ping', 'pong'), NULL,
                                        'ProjPong', jsonb_build_object('ping', e.stream_version));
    END IF;
END $$;
SELECT eventstore.register_projection('m_ping', 'proj_ping(eventstore.events)');
SELECT stream_version FROM eventstore.append('proj_ping-1', 0, ARRAY[
    eventstore.event('ProjPing', '{}'), eventstore.event('ProjPing', '{}')]);
-- a_log sees ping 1, then (nested, from m_ping) pong 1, then ping 2, pong 2
SELECT * FROM show_log();
SELECT stream_id, stream_version, event_type, data FROM eventstore.read_stream('proj_pong-1');
-- a veto of the nested event undoes the outer append as well
SELECT eventstore.register_projection('z_veto', 'proj_veto(eventstore.events)', ARRAY['ProjBoom']);
CREATE FUNCTION proj_ping_boom(e eventstore.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM eventstore.append_event('proj_boom-1', NULL, 'ProjBoom', '{}');
END $$;
SELECT eventstore.register_projection('n_boom', 'proj_ping_boom(eventstore.events)', ARRAY['ProjPingBoom']);
SELECT pg_temp.try($$SELECT eventstore.append_event('proj_ping-2', 0, 'ProjPingBoom', '{}')$$);
SELECT eventstore.stream_version('proj_ping-2') AS ping_2, eventstore.stream_version('proj_boom-1') AS boom_1;
SELECT * FROM show_log();
SELECT eventstore.unregister_projection('n_boom');
SELECT eventstore.unregister_projection('z_veto');
SELECT eventstore.unregister_projection('m_ping');

------------------------------------------------------------------------
-- Nesting depth: eventstore.max_projection_depth (default 16), 54001
------------------------------------------------------------------------
SHOW eventstore.max_projection_depth;
-- each ProjLoop {"tag": T, "n": N, "stop": S} in stream T-N appends
-- ProjLoop n = N + 1 to stream T-(N+1) while N < S
CREATE FUNCTION proj_loop(e eventstore.events) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    n int := (e.data->>'n')::int;
BEGIN
    IF n < (e.data->>'stop')::int THEN
        PERFORM eventstore.append_event((e.data->>'tag') || '-' || (n + 1), 0, 'ProjLoop',
                                        e.data || jsonb_build_object('n', n + 1));
    END IF;
END $$;
SELECT eventstore.register_projection('loop', 'proj_loop(eventstore.events)', ARRAY['ProjLoop']);
SET eventstore.max_projection_depth = 3;
-- three levels of projections (the top append's, and two nested): allowed
SELECT stream_version FROM eventstore.append_event('proj_loopa-1', 0, 'ProjLoop',
                                                   '{"tag": "proj_loopa", "n": 1, "stop": 3}');
SELECT stream_id, data->'n' AS n FROM eventstore.events WHERE stream_id LIKE 'proj\_loopa-%' ORDER BY global_position;
-- a fourth level: 54001 (statement_too_complex), and nothing is stored
SELECT pg_temp.try($$SELECT eventstore.append_event('proj_loopb-1', 0, 'ProjLoop',
                                                    '{"tag": "proj_loopb", "n": 1, "stop": 4}')$$);
\set VERBOSITY sqlstate
SELECT stream_version FROM eventstore.append_event('proj_loopb-1', 0, 'ProjLoop',
                                                   '{"tag": "proj_loopb", "n": 1, "stop": 4}');
\set VERBOSITY terse
-- a handler that would append forever
SELECT pg_temp.try($$SELECT eventstore.append_event('proj_loopc-1', 0, 'ProjLoop',
                                                    '{"tag": "proj_loopc", "n": 1, "stop": 1000000}')$$);
SELECT count(*) AS stored FROM eventstore.events
 WHERE stream_id LIKE 'proj\_loopb-%' OR stream_id LIKE 'proj\_loopc-%';
-- the depth is counted again from zero after an error: three levels still pass
SELECT stream_version FROM eventstore.append_event('proj_loopd-1', 0, 'ProjLoop',
                                                   '{"tag": "proj_loopd", "n": 1, "stop": 3}');
SELECT count(*) AS stored FROM eventstore.events WHERE stream_id LIKE 'proj\_loopd-%';
-- depth 1: the top append's projections run, a handler's append fails
SET eventstore.max_projection_depth = 1;
SELECT pg_temp.try($$SELECT eventstore.append_event('proj_loope-1', 0, 'ProjLoop',
                                                    '{"tag": "proj_loope", "n": 1, "stop": 2}')$$);
SELECT stream_version FROM eventstore.append_event('proj_loope-1', 0, 'ProjLoop',
                                                   '{"tag": "proj_loope", "n": 1, "stop": 1}');
RESET eventstore.max_projection_depth;
SELECT pg_temp.try($$SET eventstore.max_projection_depth = 0$$);
SELECT eventstore.unregister_projection('loop');
-- a_log saw every stored ProjLoop: 3 of proj_loopa, 3 of proj_loopd, 1 of proj_loope
SELECT stream_id, count(*) FROM show_log() GROUP BY 1 ORDER BY 1;

------------------------------------------------------------------------
-- A handler that unregisters a projection while the event is dispatched:
-- the projections after it are still called for that event
------------------------------------------------------------------------
CREATE FUNCTION proj_unsubscribe(e eventstore.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM eventstore.unregister_projection('b_unsub');
END $$;
SELECT eventstore.register_projection('b_unsub', 'proj_unsubscribe(eventstore.events)', ARRAY['ProjUnsub']);
SELECT eventstore.register_projection('c_log', 'proj_log_zeta(eventstore.events)');
SELECT stream_version FROM eventstore.append_event('proj_unsub-1', 0, 'ProjUnsub', '{}');
-- a_log and c_log (projection 'Zeta' in the log) both saw the event
SELECT * FROM show_log();
SELECT name FROM eventstore.projections ORDER BY name COLLATE "C";
SELECT eventstore.unregister_projection('c_log');
SELECT eventstore.unregister_projection('a_log');

------------------------------------------------------------------------
-- rebuild_projection equals incremental projection
------------------------------------------------------------------------
-- per stream: how many ProjTally events and the sum of their amounts;
-- ProjNoise events are not projected
CREATE TABLE proj_tally (stream_id text PRIMARY KEY, events bigint NOT NULL,
                         total numeric NOT NULL, last_pos bigint NOT NULL);
CREATE FUNCTION proj_tally(e eventstore.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO proj_tally AS t VALUES (e.stream_id, 1, (e.data->>'amount')::numeric, e.global_position)
    ON CONFLICT (stream_id) DO UPDATE
       SET events = t.events + 1, total = t.total + excluded.total, last_pos = excluded.last_pos;
END $$;
CREATE FUNCTION proj_tally_reset() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM proj_tally;
END $$;
SELECT eventstore.register_projection('tally', 'proj_tally(eventstore.events)',
                                      ARRAY['ProjTally'], 'proj_tally_reset()');
-- a rebuild with nothing to replay
SELECT eventstore.rebuild_projection('tally');
SELECT stream_version FROM eventstore.append('proj_tally-1', 0, ARRAY[
    eventstore.event('ProjTally', '{"amount": 1}'), eventstore.event('ProjNoise', '{"amount": 1000}'),
    eventstore.event('ProjTally', '{"amount": 2}')]);
SELECT stream_version FROM eventstore.append('proj_tally-2', 0, ARRAY[
    eventstore.event('ProjTally', '{"amount": 10}')]);
SELECT stream_version FROM eventstore.append_event('proj_tally-1', 3, 'ProjTally', '{"amount": 4}');
-- an append that rolls back leaves no trace in either model
BEGIN;
SELECT stream_version FROM eventstore.append_event('proj_tally-3', 0, 'ProjTally', '{"amount": 99}');
ROLLBACK;
SELECT stream_version FROM eventstore.append_event('proj_tally-3', 0, 'ProjTally', '{"amount": 20}');
CREATE TABLE proj_tally_incremental AS SELECT * FROM proj_tally;
SELECT stream_id, events, total FROM proj_tally ORDER BY stream_id;

-- TRUNCATE, then rebuild: the count returned is every ProjTally of the log
TRUNCATE proj_tally;
SELECT eventstore.rebuild_projection('tally') AS replayed,
       (SELECT count(*) FROM eventstore.events WHERE event_type = 'ProjTally') AS tally_events;
SELECT count(*) AS differences FROM (
    (TABLE proj_tally EXCEPT TABLE proj_tally_incremental)
    UNION ALL
    (TABLE proj_tally_incremental EXCEPT TABLE proj_tally)) d;
-- the reset handler runs first: a stale row does not survive a rebuild
INSERT INTO proj_tally VALUES ('proj_stale', 1, 1, 0);
SELECT eventstore.rebuild_projection('tally');
SELECT count(*) AS differences FROM (
    (TABLE proj_tally EXCEPT TABLE proj_tally_incremental)
    UNION ALL
    (TABLE proj_tally_incremental EXCEPT TABLE proj_tally)) d;
-- a rebuild that rolls back leaves the model as it was
BEGIN;
SELECT eventstore.rebuild_projection('tally');
DELETE FROM proj_tally;
ROLLBACK;
SELECT count(*) AS rows FROM proj_tally;

-- events appended while disabled are not projected; a rebuild catches up
SELECT eventstore.disable_projection('tally');
SELECT stream_version FROM eventstore.append_event('proj_tally-2', 1, 'ProjTally', '{"amount": 100}');
SELECT stream_id, events, total FROM proj_tally ORDER BY stream_id;
SELECT eventstore.rebuild_projection('tally');
SELECT stream_id, events, total FROM proj_tally ORDER BY stream_id;
SELECT eventstore.enable_projection('tally');
-- and incremental projection goes on from there: equal to a fresh rebuild
SELECT stream_version FROM eventstore.append_event('proj_tally-2', 2, 'ProjTally', '{"amount": 1000}');
DROP TABLE proj_tally_incremental;
CREATE TABLE proj_tally_incremental AS SELECT * FROM proj_tally;
SELECT eventstore.rebuild_projection('tally');
SELECT count(*) AS differences FROM (
    (TABLE proj_tally EXCEPT TABLE proj_tally_incremental)
    UNION ALL
    (TABLE proj_tally_incremental EXCEPT TABLE proj_tally)) d;
SELECT stream_id, events, total FROM proj_tally ORDER BY stream_id;

-- without a reset handler the caller clears the model
SELECT eventstore.register_projection('tally_log', 'proj_log_typed(eventstore.events)', ARRAY['ProjTally']);
DELETE FROM proj_log WHERE projection = 'typed';
SELECT eventstore.rebuild_projection('tally_log');
SELECT stream_id, version, event_type FROM proj_log WHERE projection = 'typed' ORDER BY pos;
UPDATE proj_log_mark SET n = (SELECT max(n) FROM proj_log);
SELECT eventstore.unregister_projection('tally_log');

-- errors
SELECT pg_temp.try($$SELECT eventstore.rebuild_projection('nope')$$);
SELECT pg_temp.try($$SELECT eventstore.rebuild_projection(NULL)$$);
SELECT eventstore.unregister_projection('tally');

------------------------------------------------------------------------
-- Handlers in any language; their result is ignored, NULL included
------------------------------------------------------------------------
-- A LANGUAGE sql function returning void returns a NULL void; a PL/pgSQL
-- function may return NULL; neither is an error.
CREATE FUNCTION proj_sql_void(e eventstore.events) RETURNS void LANGUAGE sql AS $$
    INSERT INTO proj_log (projection, pos, stream_id, version, event_type)
    VALUES ('sql_void', e.global_position, e.stream_id, e.stream_version, e.event_type) $$;
CREATE FUNCTION proj_returns_null(e eventstore.events) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO proj_log (projection, pos, stream_id, version, event_type)
    VALUES ('returns_null', e.global_position, e.stream_id, e.stream_version, e.event_type);
    RETURN NULL;
END $$;
CREATE FUNCTION proj_sql_reset() RETURNS void LANGUAGE sql AS $$
    DELETE FROM proj_log WHERE projection = 'sql_void' $$;
SELECT eventstore.register_projection('sql_void', 'proj_sql_void(eventstore.events)',
                                      ARRAY['ProjAnyLanguage'], 'proj_sql_reset()');
SELECT eventstore.register_projection('returns_null', 'proj_returns_null(eventstore.events)',
                                      ARRAY['ProjAnyLanguage']);
SELECT stream_version FROM eventstore.append('proj_lang-1', 0, ARRAY[
    eventstore.event('ProjAnyLanguage', '{}'), eventstore.event('ProjAnyLanguage', '{}')]);
SELECT projection, stream_id, version, event_type FROM show_log();
SELECT eventstore.stream_version('proj_lang-1');
-- rebuild calls them the same way, and the SQL reset handler first
SELECT eventstore.rebuild_projection('sql_void');
DELETE FROM proj_log WHERE projection = 'returns_null';
SELECT eventstore.rebuild_projection('returns_null');
SELECT projection, stream_id, version FROM proj_log
 WHERE projection IN ('sql_void', 'returns_null') ORDER BY n;
UPDATE proj_log_mark SET n = (SELECT max(n) FROM proj_log);
SELECT eventstore.unregister_projection('sql_void');
SELECT eventstore.unregister_projection('returns_null');

------------------------------------------------------------------------
-- A handler runs as its owner, not as the appending user (see
-- sql/registry_handlers.sql for a low-privileged owner)
------------------------------------------------------------------------
CREATE TABLE proj_secret (stream_id text, version bigint, who name DEFAULT current_user);
CREATE FUNCTION proj_secret(e eventstore.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO proj_secret (stream_id, version) VALUES (e.stream_id, e.stream_version);
END $$;
SELECT eventstore.register_projection('secret', 'proj_secret(eventstore.events)', ARRAY['ProjSecret']);
CREATE ROLE regress_proj_writer;
GRANT USAGE ON SCHEMA eventstore TO regress_proj_writer;
GRANT EXECUTE ON FUNCTION eventstore.append_event(text, bigint, text, jsonb, jsonb, uuid, text[], jsonb, regclass)
    TO regress_proj_writer;
GRANT INSERT ON eventstore.events TO regress_proj_writer;
SET ROLE regress_proj_writer;
-- the writer may append (ProjOther is not projected) ...
SELECT stream_version FROM eventstore.append_event('proj_secret-1', 0, 'ProjOther', '{}');
-- ... but not write to proj_secret itself: 42501
SELECT pg_temp.try($$INSERT INTO proj_secret VALUES ('x', 0)$$);
-- its append of a projected event runs the handler as the handler's owner,
-- with search_path = pg_catalog, pg_temp since the handler sets none: its
-- unqualified proj_secret is not found (the append fails, nothing written) ...
SELECT pg_temp.try($$SELECT stream_version FROM eventstore.append_event('proj_secret-1', 1, 'ProjSecret', '{}')$$)
       AS unpinned_handler;
RESET ROLE;
-- ... and a handler that pins its search_path resolves its names there
ALTER FUNCTION proj_secret(eventstore.events) SET search_path = public, pg_catalog;
SET ROLE regress_proj_writer;
SELECT stream_version FROM eventstore.append_event('proj_secret-1', 1, 'ProjSecret', '{}');
RESET ROLE;
-- The writer cannot steer the owner's unqualified names to its own code by
-- its search_path: a handler without a search_path of its own calls
-- proj_audit() (public's, harmless); the writer's schema has a
-- proj_audit() that would record who ran it.
CREATE TABLE proj_audit_log (who name);
GRANT INSERT ON proj_audit_log TO PUBLIC;
CREATE FUNCTION public.proj_audit() RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION proj_calls_audit(e eventstore.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM proj_audit();
END $$;
SELECT eventstore.register_projection('audit', 'proj_calls_audit(eventstore.events)', ARRAY['ProjAudit']);
CREATE SCHEMA proj_writer_s AUTHORIZATION regress_proj_writer;
SET ROLE regress_proj_writer;
CREATE FUNCTION proj_writer_s.proj_audit() RETURNS void LANGUAGE sql AS
    $$ INSERT INTO public.proj_audit_log VALUES (current_user) $$;
SET search_path = proj_writer_s, public;
SELECT pg_temp.try($$SELECT stream_version FROM eventstore.append_event('proj_audit-1', 0, 'ProjAudit', '{}')$$)
       AS writer_steered_append;
RESET search_path;
RESET ROLE;
SELECT count(*) AS writer_code_ran_as_owner FROM proj_audit_log;
SELECT eventstore.unregister_projection('audit');
DROP SCHEMA proj_writer_s CASCADE;
DROP FUNCTION proj_calls_audit(eventstore.events), public.proj_audit();
DROP TABLE proj_audit_log;
SELECT stream_id, version, who = (SELECT p.proowner::regrole::name FROM pg_proc p
                                    WHERE p.oid = 'proj_secret(eventstore.events)'::regprocedure)
       AS who_is_handler_owner,
       who = 'regress_proj_writer' AS who_is_writer
  FROM proj_secret;
SELECT eventstore.unregister_projection('secret');

------------------------------------------------------------------------
-- Clean up
------------------------------------------------------------------------
SELECT count(*) AS projections FROM eventstore.projections;
DROP FUNCTION proj_log_zeta(eventstore.events), proj_log_alpha(eventstore.events), proj_log_beta(eventstore.events),
              proj_log_typed(eventstore.events), show_log(),
              proj_bad_text(text), proj_bad_two(eventstore.events, int), proj_bad_none(),
              proj_bad_set(eventstore.events), proj_bad_new(eventstore.new_event),
              proj_admin_handler(eventstore.events), proj_admin_reset(),
              project_balance(eventstore.events), reset_balance(), proj_veto(eventstore.events),
              proj_ping(eventstore.events), proj_ping_boom(eventstore.events),
              proj_loop(eventstore.events), proj_unsubscribe(eventstore.events),
              proj_tally(eventstore.events), proj_tally_reset(), proj_secret(eventstore.events),
              proj_sql_void(eventstore.events), proj_returns_null(eventstore.events), proj_sql_reset();
DROP PROCEDURE proj_bad_proc(eventstore.events);
DROP TABLE proj_log, proj_log_mark, account_balance, proj_tally, proj_tally_incremental, proj_secret;
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
-- (the schema outlives the extension: drop the roles' privileges on it)
DROP OWNED BY regress_proj_admin, regress_proj_writer;
DROP ROLE regress_proj_admin;
DROP ROLE regress_proj_writer;
