--
-- registry_handlers: how registered handlers (projection handlers, reset
-- handlers, upcasters, snapshot-policy reducers) are resolved and run.
--
--  1. A handler dropped and created again with another signature (another
--     return type, a set, other arguments, a procedure) is refused when it is
--     needed, with 42P13 -- in 0.4.0 an upcaster or reducer recreated to
--     return bigint crashed the server (SIGSEGV).
--  2. Handlers run as their registered owner, like SECURITY DEFINER
--     functions: a low-privileged owner's handler cannot act with the rights
--     of the superuser who appends or reads (42501).  In 0.4.0 the same
--     handlers ran as the superuser: ALTER ROLE ... SUPERUSER succeeded.
--  3. A handler re-resolved after a DROP is not picked up from another
--     role: a same-named function of someone else is refused (42501) and
--     never runs.
--  4. A registry load that fails does not leak its memory context.
--  5. The upgrade from 0.4.0 gives existing registrations an owner.
--
\set VERBOSITY terse
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS eventstore CASCADE;
CREATE EXTENSION eventstore;
RESET client_min_messages;

-- SQLSTATE and message of a statement, or 'ok'
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN others THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

------------------------------------------------------------------------
-- 1. Recreated with another signature
------------------------------------------------------------------------
CREATE FUNCTION rh_up(e eventstore.events) RETURNS eventstore.events LANGUAGE plpgsql
    AS $$ BEGIN e.event_type := 'RhV2'; RETURN e; END $$;
SELECT eventstore.append_event('rh_up-1', 0, 'RhV1', '{}') IS NOT NULL AS appended;
SELECT eventstore.register_upcaster('RhV1', 'rh_up(eventstore.events)');
SELECT event_type FROM eventstore.read_stream('rh_up-1');
DROP FUNCTION rh_up(eventstore.events);
CREATE FUNCTION rh_up(e eventstore.events) RETURNS bigint LANGUAGE sql AS $$ SELECT 1::bigint $$;
SELECT pg_temp.try($$SELECT event_type FROM eventstore.read_stream('rh_up-1')$$);
SELECT pg_temp.try($$SELECT count(*) FROM eventstore.read_all()$$);
DROP FUNCTION rh_up(eventstore.events);
CREATE PROCEDURE rh_up(e eventstore.events) LANGUAGE sql AS $$ SELECT 1 $$;
SELECT pg_temp.try($$SELECT event_type FROM eventstore.read_stream('rh_up-1')$$);
DROP PROCEDURE rh_up(eventstore.events);
CREATE FUNCTION rh_up(e eventstore.events) RETURNS SETOF eventstore.events LANGUAGE sql AS $$ SELECT e $$;
SELECT pg_temp.try($$SELECT event_type FROM eventstore.read_stream('rh_up-1')$$);
-- fixed again: used again
DROP FUNCTION rh_up(eventstore.events);
CREATE FUNCTION rh_up(e eventstore.events) RETURNS eventstore.events LANGUAGE plpgsql
    AS $$ BEGIN e.event_type := 'RhV3'; RETURN e; END $$;
SELECT event_type FROM eventstore.read_stream('rh_up-1');
SELECT eventstore.unregister_upcaster('RhV1');

-- a policy reducer recreated to return bigint
CREATE FUNCTION rh_red(s jsonb, e eventstore.events) RETURNS jsonb LANGUAGE sql
    AS $$ SELECT jsonb_build_object('n', coalesce((s->>'n')::int, 0) + 1) $$;
SELECT eventstore.set_snapshot_policy('rh', 'rh_red(jsonb, eventstore.events)', 1, '{}', ARRAY['rh_red']);
SELECT eventstore.append_event('rh_red-1', 0, 'A', '{}') IS NOT NULL AS appended;
DROP FUNCTION rh_red(jsonb, eventstore.events);
CREATE FUNCTION rh_red(s jsonb, e eventstore.events) RETURNS bigint LANGUAGE sql AS $$ SELECT 7::bigint $$;
SELECT pg_temp.try($$SELECT eventstore.append_event('rh_red-1', 1, 'A', '{}')$$);
DROP FUNCTION rh_red(jsonb, eventstore.events);
CREATE FUNCTION rh_red(s jsonb, e eventstore.events, extra int DEFAULT 0) RETURNS jsonb LANGUAGE sql AS $$ SELECT s $$;
SELECT pg_temp.try($$SELECT eventstore.append_event('rh_red-1', 1, 'A', '{}')$$);
SELECT eventstore.stream_version('rh_red-1');
SELECT eventstore.remove_snapshot_policy('rh');

-- a projection handler recreated to return a set
CREATE FUNCTION rh_proj(e eventstore.events) RETURNS void LANGUAGE sql AS $$ SELECT $$;
SELECT eventstore.register_projection('rh', 'rh_proj(eventstore.events)', ARRAY['RhP']);
DROP FUNCTION rh_proj(eventstore.events);
CREATE FUNCTION rh_proj(e eventstore.events) RETURNS SETOF int LANGUAGE sql AS $$ SELECT 1 $$;
SELECT pg_temp.try($$SELECT eventstore.append_event('rh_proj-1', 0, 'RhP', '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.rebuild_projection('rh')$$);
SELECT eventstore.unregister_projection('rh');

------------------------------------------------------------------------
-- 2. Handlers run as their owner
------------------------------------------------------------------------
CREATE ROLE regress_rh_low;
CREATE ROLE regress_rh_other;
SELECT eventstore.grant_access('regress_rh_low', 'admin');
CREATE SCHEMA rh AUTHORIZATION regress_rh_low;
GRANT USAGE, CREATE ON SCHEMA rh TO regress_rh_other;
GRANT USAGE ON SCHEMA eventstore TO regress_rh_other;
CREATE TABLE rh_secret (v text);
INSERT INTO rh_secret VALUES ('only the superuser reads this');
REVOKE ALL ON rh_secret FROM PUBLIC;
-- an event for the upcaster below, stored before it is registered
SELECT eventstore.append_event('rh_peek-2', 0, 'RhPeek', '{}') IS NOT NULL AS appended;

SET ROLE regress_rh_low;
CREATE TABLE rh.calls (handler text, who name DEFAULT current_user);
GRANT INSERT ON rh.calls TO regress_rh_other;
-- a projection handler that tries to make its owner a superuser
CREATE FUNCTION rh.escalate(e eventstore.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rh.calls (handler) VALUES ('escalate');
    EXECUTE 'ALTER ROLE regress_rh_low SUPERUSER';
END $$;
-- an upcaster and a reducer that read what only the superuser may read
CREATE FUNCTION rh.peek(e eventstore.events) RETURNS eventstore.events LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rh.calls (handler) VALUES ('peek');
    e.event_type := 'RhPeeked';
    e.data := jsonb_build_object('secret', (SELECT v FROM public.rh_secret));
    RETURN e;
END $$;
CREATE FUNCTION rh.peek_reducer(s jsonb, e eventstore.events) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rh.calls (handler) VALUES ('peek_reducer');
    RETURN jsonb_build_object('secret', (SELECT v FROM public.rh_secret));
END $$;
-- a harmless one: who does it run as?
CREATE FUNCTION rh.whoami(e eventstore.events) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO rh.calls (handler) VALUES ('whoami') $$;
SELECT eventstore.register_projection('rh_escalate', 'rh.escalate(eventstore.events)', ARRAY['RhEscalate']);
SELECT eventstore.register_projection('rh_whoami', 'rh.whoami(eventstore.events)', ARRAY['RhWho']);
SELECT eventstore.register_upcaster('RhPeek', 'rh.peek(eventstore.events)');
SELECT eventstore.set_snapshot_policy('rh_peek', 'rh.peek_reducer(jsonb, eventstore.events)', 1, '{}', ARRAY['rh_peek']);
RESET ROLE;
SELECT handler_owner FROM eventstore.projections WHERE name LIKE 'rh\_%' ORDER BY name;
SELECT handler_owner FROM eventstore.upcasters WHERE event_type = 'RhPeek';
SELECT reducer_owner FROM eventstore.snapshot_policies WHERE snapshot_type = 'rh_peek';

-- the superuser appends and reads: the handlers run as regress_rh_low
SELECT eventstore.append_event('rh_who-1', 0, 'RhWho', '{}') IS NOT NULL AS appended;
SELECT handler, who FROM rh.calls;
SELECT pg_temp.try($$SELECT eventstore.append_event('rh_esc-1', 0, 'RhEscalate', '{}')$$);
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_rh_low';
SELECT eventstore.stream_version('rh_esc-1');
SELECT pg_temp.try($$SELECT eventstore.append_event('rh_peek-1', 0, 'Plain', '{}')$$);
SELECT count(*) AS snapshots FROM eventstore.snapshots WHERE stream_id = 'rh_peek-1';
SELECT eventstore.remove_snapshot_policy('rh_peek');
-- the upcaster, when the superuser reads
SELECT pg_temp.try($$SELECT data FROM eventstore.read_stream('rh_peek-2')$$);
-- once the owner may read the table, so may its upcaster
GRANT SELECT ON rh_secret TO regress_rh_low;
SELECT data FROM eventstore.read_stream('rh_peek-2');
REVOKE SELECT ON rh_secret FROM regress_rh_low;
-- the handler cannot SET ROLE back to the caller either
SET ROLE regress_rh_low;
CREATE OR REPLACE FUNCTION rh.escalate(e eventstore.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SET ROLE %I', session_user);
END $$;
RESET ROLE;
SELECT pg_temp.try($$SELECT eventstore.append_event('rh_esc-2', 0, 'RhEscalate', '{}')$$) LIKE '42501:%' AS set_role_refused;
SELECT current_user = session_user AS user_restored;
SELECT eventstore.unregister_upcaster('RhPeek');
SELECT eventstore.unregister_projection('rh_escalate');
TRUNCATE rh.calls;

------------------------------------------------------------------------
-- 3. Hijack: a same-named function of another role is not used
------------------------------------------------------------------------
SET ROLE regress_rh_low;
DROP FUNCTION rh.whoami(eventstore.events);
RESET ROLE;
SET ROLE regress_rh_other;
CREATE FUNCTION rh.whoami(e eventstore.events) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO rh.calls (handler) VALUES ('hijacked') $$;
RESET ROLE;
SELECT pg_temp.try($$SELECT eventstore.append_event('rh_who-1', 1, 'RhWho', '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.rebuild_projection('rh_whoami')$$);
SELECT count(*) AS hijacked_calls FROM rh.calls;
-- the registered owner creates it again: used again
SET ROLE regress_rh_other;
DROP FUNCTION rh.whoami(eventstore.events);
RESET ROLE;
SET ROLE regress_rh_low;
CREATE FUNCTION rh.whoami(e eventstore.events) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO rh.calls (handler) VALUES ('whoami again') $$;
RESET ROLE;
SELECT eventstore.append_event('rh_who-1', 1, 'RhWho', '{}') IS NOT NULL AS appended;
SELECT handler, who FROM rh.calls;
-- ownership moved away after registration: refused as well
ALTER FUNCTION rh.whoami(eventstore.events) OWNER TO regress_rh_other;
SELECT pg_temp.try($$SELECT eventstore.append_event('rh_who-1', 2, 'RhWho', '{}')$$);
SELECT eventstore.unregister_projection('rh_whoami');
-- a reset handler must have the handler's owner
CREATE FUNCTION rh_reset() RETURNS void LANGUAGE sql AS $$ SELECT $$;
SELECT pg_temp.try($$SELECT eventstore.register_projection('rh_mixed', 'rh.whoami(eventstore.events)', NULL, 'rh_reset()')$$);

------------------------------------------------------------------------
-- 4. A failing registry load does not leak its memory context
------------------------------------------------------------------------
-- a stored name that to_regprocedure cannot parse fails every load
INSERT INTO eventstore.upcasters (event_type, handler, handler_owner)
    VALUES ('RhBroken', 'a.b.c.d(integer)', current_user::regrole);
CREATE TEMP TABLE rh_cxt AS
    SELECT count(*) AS n FROM pg_backend_memory_contexts WHERE name = 'eventstore registry';
DO $$
BEGIN
    FOR i IN 1..50 LOOP
        BEGIN
            PERFORM count(*) FROM eventstore.read_all();
        EXCEPTION WHEN others THEN
            NULL;
        END;
    END LOOP;
END $$;
SELECT pg_temp.try($$SELECT count(*) FROM eventstore.read_all()$$);
SELECT count(*) - (SELECT n FROM rh_cxt) AS leaked_contexts
  FROM pg_backend_memory_contexts WHERE name = 'eventstore registry';
DELETE FROM eventstore.upcasters WHERE event_type = 'RhBroken';
SELECT count(*) > 0 AS reads_again FROM eventstore.read_all();

------------------------------------------------------------------------
-- 5. Upgrade from 0.4.0: existing rows get the current owner of the
--    function their name resolves to, or the extension's owner; before
--    the update the library reads the old tables the same way
------------------------------------------------------------------------
SET client_min_messages = warning;
DROP EXTENSION eventstore CASCADE;
RESET client_min_messages;
CREATE EXTENSION eventstore VERSION '0.4.0';
CREATE FUNCTION rh.old_up(e eventstore.events) RETURNS eventstore.events LANGUAGE plpgsql
    AS $$ BEGIN e.event_type := 'RhOld2'; RETURN e; END $$;
ALTER FUNCTION rh.old_up(eventstore.events) OWNER TO regress_rh_low;
CREATE FUNCTION rh.old_proj(e eventstore.events) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO rh.calls (handler) VALUES ('old_proj') $$;
ALTER FUNCTION rh.old_proj(eventstore.events) OWNER TO regress_rh_low;
INSERT INTO eventstore.upcasters (event_type, handler)
    VALUES ('RhOld', 'rh.old_up(eventstore.events)'), ('RhGone', 'rh.gone(eventstore.events)');
INSERT INTO eventstore.projections (name, handler) VALUES ('rh_old', 'rh.old_proj(eventstore.events)');
TRUNCATE rh.calls;
SELECT eventstore.append_event('rh_old-1', 0, 'RhOld', '{}') IS NOT NULL AS appended;
SELECT event_type FROM eventstore.read_stream('rh_old-1');
ALTER EXTENSION eventstore UPDATE TO '0.5.0';
SELECT event_type, handler_owner = (SELECT extowner FROM pg_extension WHERE extname = 'eventstore')::regrole
       AS extension_owner, handler_owner = 'regress_rh_low'::regrole AS function_owner
  FROM eventstore.upcasters ORDER BY event_type;
SELECT name, handler_owner FROM eventstore.projections;
SELECT event_type FROM eventstore.read_stream('rh_old-1');
SELECT eventstore.append_event('rh_old-1', 1, 'RhOld', '{}') IS NOT NULL AS appended;
SELECT handler, who FROM rh.calls;

------------------------------------------------------------------------
-- Clean up
------------------------------------------------------------------------
SET client_min_messages = warning;
DROP EXTENSION eventstore CASCADE;
DROP SCHEMA rh CASCADE;
DROP TABLE rh_secret;
DROP FUNCTION rh_reset();
DROP OWNED BY regress_rh_low, regress_rh_other;
DROP ROLE regress_rh_low, regress_rh_other;
