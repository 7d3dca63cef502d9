--
-- hijack: a hostile schema FIRST in search_path (before pg_catalog) shadows
-- what the store's SQL could resolve by name -- operators (=, <>, <, >, <=,
-- >=, -, ||) on the types it uses, functions (now, unnest, split_part,
-- jsonb_build_object, format, make_interval, to_regprocedure, array_length,
-- ...), aggregates (count, max, min), types (text, jsonb, uuid, oid,
-- timestamptz, regprocedure, as domains whose check raises) and the
-- collation "C" (an ICU collation that sorts 'a' before 'B').  Every hostile
-- object raises a NOTICE "hijacked: ..." and records the call, and returns
-- a wrong answer.  With that search_path, in a fresh session (so every plan
-- the C code prepares is prepared under it), the whole API is exercised:
-- append with projections, routes, an upcaster and a snapshot policy
-- present, the reads, aggregate and snapshots, enqueue, relay_once,
-- consumer_poll/ack, the management functions and grant_access.  Expected:
-- no NOTICE in this file's output, no recorded call, correct results
-- (checked afterwards with the normal search_path).  sql/search_path.sql
-- covers the core subset with a hostile events table and operators.
--
-- The relay worker is kept away from this database (as in sql/outbox.sql),
-- so relay_once is the one that publishes.
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
                    WHERE a.backend_type = 'eventstore relay' AND a.datname = current_database()) THEN
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
ALTER SYSTEM SET eventstore.relay_databases = 'eventstore_hijack_test_no_such_db';
SELECT pg_temp.wait_no_worker() AS no_worker;

SET client_min_messages = warning;
DROP EXTENSION IF EXISTS eventstore CASCADE;
RESET client_min_messages;
CREATE EXTENSION eventstore;

-- try(sql): 'ok', or the SQLSTATE and message.  Its own body qualifies its
-- one operator: it runs with the caller's (hostile) search_path.
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE OPERATOR(pg_catalog.||) ': ' OPERATOR(pg_catalog.||) SQLERRM;
END $$;

------------------------------------------------------------------------
-- The hostile schema
------------------------------------------------------------------------
CREATE SCHEMA regress_hijack;
CREATE TABLE regress_hijack.calls (what text);
CREATE FUNCTION regress_hijack.hit(what text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog AS $$
BEGIN
    RAISE NOTICE 'hijacked: %', what;
    INSERT INTO regress_hijack.calls VALUES (what);
    RETURN true;
END $$;

-- Operators: each "answers" wrongly (= is always true, < always false, ...)
DO $$
DECLARE
    t text;
    op record;
BEGIN
    FOR op IN SELECT * FROM (VALUES
        ('=', 'text', 'text', 'boolean', 'true'), ('=', 'bigint', 'bigint', 'boolean', 'true'),
        ('=', 'integer', 'integer', 'boolean', 'true'), ('=', 'uuid', 'uuid', 'boolean', 'true'),
        ('=', 'boolean', 'boolean', 'boolean', 'true'), ('=', 'jsonb', 'jsonb', 'boolean', 'true'),
        ('=', 'timestamptz', 'timestamptz', 'boolean', 'true'), ('=', 'oid', 'oid', 'boolean', 'true'),
        ('<>', 'text', 'text', 'boolean', 'false'), ('<>', 'bigint', 'bigint', 'boolean', 'false'),
        ('<', 'bigint', 'bigint', 'boolean', 'false'), ('>', 'bigint', 'bigint', 'boolean', 'true'),
        ('<=', 'bigint', 'bigint', 'boolean', 'true'), ('>=', 'bigint', 'bigint', 'boolean', 'true'),
        ('<', 'integer', 'integer', 'boolean', 'false'), ('>', 'integer', 'integer', 'boolean', 'true'),
        ('<=', 'integer', 'integer', 'boolean', 'true'), ('>=', 'integer', 'integer', 'boolean', 'true'),
        ('<', 'timestamptz', 'timestamptz', 'boolean', 'true'), ('>', 'timestamptz', 'timestamptz', 'boolean', 'true'),
        ('<=', 'timestamptz', 'timestamptz', 'boolean', 'true'), ('>=', 'timestamptz', 'timestamptz', 'boolean', 'true'),
        ('-', 'timestamptz', 'timestamptz', 'interval', '''0''::interval'),
        ('-', 'timestamptz', 'interval', 'timestamptz', '''2000-01-01''::timestamptz'),
        ('-', 'bigint', 'bigint', 'bigint', '0'),
        ('||', 'text', 'text', 'text', '''hijacked'''),
        ('||', 'text[]', 'text[]', 'text[]', '''{hijacked}''::text[]'))
        AS v(name, l, r, ret, answer)
    LOOP
        t := format('regress_hijack.op_%s_%s_%s', md5(op.name), replace(op.l, '[]', '_arr'), replace(op.r, '[]', '_arr'));
        EXECUTE format('CREATE FUNCTION %s(%s, %s) RETURNS %s
                        LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog AS $f$
                        BEGIN PERFORM regress_hijack.hit(%L); RETURN %s; END $f$',
                       t, op.l, op.r, op.ret, format('%s %s %s', op.l, op.name, op.r), op.answer);
        EXECUTE format('CREATE OPERATOR regress_hijack.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = %s)',
                       op.name, op.l, op.r, t);
    END LOOP;
END $$;

-- Functions
CREATE FUNCTION regress_hijack.now() RETURNS timestamptz LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog
    AS $$ BEGIN PERFORM regress_hijack.hit('now()'); RETURN '2000-01-01'; END $$;
CREATE FUNCTION regress_hijack.unnest(anyarray) RETURNS SETOF anyelement LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog
    AS $$ BEGIN PERFORM regress_hijack.hit('unnest(anyarray)'); END $$;
CREATE FUNCTION regress_hijack.split_part(text, text, integer) RETURNS text LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog
    AS $$ BEGIN PERFORM regress_hijack.hit('split_part'); RETURN 'hijacked'; END $$;
CREATE FUNCTION regress_hijack.jsonb_build_object(text, anyelement) RETURNS jsonb LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog
    AS $$ BEGIN PERFORM regress_hijack.hit('jsonb_build_object(2)'); RETURN '{}'; END $$;
CREATE FUNCTION regress_hijack.jsonb_build_object(VARIADIC text[]) RETURNS jsonb LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog
    AS $$ BEGIN PERFORM regress_hijack.hit('jsonb_build_object(variadic)'); RETURN '{}'; END $$;
CREATE FUNCTION regress_hijack.format(text) RETURNS text LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog
    AS $$ BEGIN PERFORM regress_hijack.hit('format(1)'); RETURN 'hijacked'; END $$;
CREATE FUNCTION regress_hijack.format(text, text) RETURNS text LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog
    AS $$ BEGIN PERFORM regress_hijack.hit('format(2)'); RETURN 'hijacked'; END $$;
CREATE FUNCTION regress_hijack.format(text, anyelement) RETURNS text LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog
    AS $$ BEGIN PERFORM regress_hijack.hit('format(text, any)'); RETURN 'hijacked'; END $$;
CREATE FUNCTION regress_hijack.make_interval(secs integer) RETURNS interval LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog
    AS $$ BEGIN PERFORM regress_hijack.hit('make_interval'); RETURN '0'; END $$;
CREATE FUNCTION regress_hijack.to_regprocedure(text) RETURNS regprocedure LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog
    AS $$ BEGIN PERFORM regress_hijack.hit('to_regprocedure'); RETURN NULL; END $$;
CREATE FUNCTION regress_hijack.array_length(anyarray, integer) RETURNS integer LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog
    AS $$ BEGIN PERFORM regress_hijack.hit('array_length'); RETURN 0; END $$;
CREATE FUNCTION regress_hijack.pg_notify(text, text) RETURNS void LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog
    AS $$ BEGIN PERFORM regress_hijack.hit('pg_notify'); END $$;
CREATE FUNCTION regress_hijack.current_setting(text) RETURNS text LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog
    AS $$ BEGIN PERFORM regress_hijack.hit('current_setting'); RETURN ''; END $$;
CREATE FUNCTION regress_hijack.pg_advisory_xact_lock(bigint) RETURNS void LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog
    AS $$ BEGIN PERFORM regress_hijack.hit('pg_advisory_xact_lock'); END $$;
CREATE FUNCTION regress_hijack.gen_random_uuid() RETURNS uuid LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog
    AS $$ BEGIN PERFORM regress_hijack.hit('gen_random_uuid'); RETURN '00000000-0000-0000-0000-000000000000'; END $$;
CREATE FUNCTION regress_hijack.to_jsonb(anyelement) RETURNS jsonb LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog
    AS $$ BEGIN PERFORM regress_hijack.hit('to_jsonb'); RETURN '{}'; END $$;
CREATE FUNCTION regress_hijack.length(text) RETURNS integer LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog
    AS $$ BEGIN PERFORM regress_hijack.hit('length'); RETURN 0; END $$;
-- Aggregates
CREATE FUNCTION regress_hijack.agg_star(bigint) RETURNS bigint LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog
    AS $$ BEGIN PERFORM regress_hijack.hit('count(*)'); RETURN 42; END $$;
CREATE AGGREGATE regress_hijack.count(*) (SFUNC = regress_hijack.agg_star, STYPE = bigint, INITCOND = '0');
CREATE FUNCTION regress_hijack.agg_max(bigint, bigint) RETURNS bigint LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog
    AS $$ BEGIN PERFORM regress_hijack.hit('max(bigint)'); RETURN 0; END $$;
CREATE AGGREGATE regress_hijack.max(bigint) (SFUNC = regress_hijack.agg_max, STYPE = bigint);
CREATE FUNCTION regress_hijack.agg_min(timestamptz, timestamptz) RETURNS timestamptz LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog
    AS $$ BEGIN PERFORM regress_hijack.hit('min(timestamptz)'); RETURN '2000-01-01'; END $$;
CREATE AGGREGATE regress_hijack.min(timestamptz) (SFUNC = regress_hijack.agg_min, STYPE = timestamptz);
-- Types: domains over the real ones whose check raises
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['text', 'jsonb', 'uuid', 'oid', 'timestamptz', 'regprocedure', 'int8', 'int4'] LOOP
        EXECUTE format('CREATE DOMAIN regress_hijack.%I AS pg_catalog.%I CHECK (regress_hijack.hit(%L))',
                       t, t, 'type ' || t);
    END LOOP;
END $$;
-- The collation "C": ICU root, which sorts 'a' before 'B' (C sorts 'B' first)
CREATE COLLATION regress_hijack."C" (provider = icu, locale = 'und');

-- Handlers, reducers and upcasters are the application's code: they pin
-- their own search_path, so a NOTICE below can only come from the store.
CREATE TABLE hj_log (seq bigserial, projection text, stream_version bigint, event_type text);
CREATE FUNCTION hj_proj_upper(e eventstore.events) RETURNS void LANGUAGE sql SET search_path = pg_catalog, public
    AS $$ INSERT INTO hj_log (projection, stream_version, event_type) VALUES ('B_proj', e.stream_version, e.event_type) $$;
CREATE FUNCTION hj_proj_lower(e eventstore.events) RETURNS void LANGUAGE sql SET search_path = pg_catalog, public
    AS $$ INSERT INTO hj_log (projection, stream_version, event_type) VALUES ('a_proj', e.stream_version, e.event_type) $$;
CREATE FUNCTION hj_reset() RETURNS void LANGUAGE sql SET search_path = pg_catalog, public
    AS $$ INSERT INTO hj_log (projection) VALUES ('reset') $$;
CREATE FUNCTION hj_count(s jsonb, e eventstore.events) RETURNS jsonb LANGUAGE sql SET search_path = pg_catalog, public
    AS $$ SELECT jsonb_build_object('n', coalesce((s->>'n')::int, 0) + 1, 'last', e.event_type) $$;
CREATE FUNCTION hj_upcast(e eventstore.events) RETURNS eventstore.events LANGUAGE plpgsql SET search_path = pg_catalog, public
    AS $$ BEGIN e.event_type := 'HjNew'; RETURN e; END $$;
CREATE ROLE regress_hijack_reader;

-- The hostile objects work: with the hostile path, 'a' = 'b' is "true"
SET search_path = regress_hijack, pg_catalog, public;
SELECT 'a'::pg_catalog.text = 'b'::pg_catalog.text AS hostile_equals;
RESET search_path;
TRUNCATE regress_hijack.calls;

------------------------------------------------------------------------
-- Everything, with the hostile schema first
------------------------------------------------------------------------
SET search_path = regress_hijack, pg_catalog, public;

-- management: two projections and two routes whose names sort differently
-- in C and in the hostile "C", an upcaster, a snapshot policy
SELECT eventstore.register_projection('B_proj', 'public.hj_proj_upper(eventstore.events)', NULL, 'public.hj_reset()');
SELECT eventstore.register_projection('a_proj', 'public.hj_proj_lower(eventstore.events)');
SELECT eventstore.add_route('B_route', categories => ARRAY['hj']);
SELECT eventstore.add_route('a_route', categories => ARRAY['hj']);
SELECT eventstore.add_route('typed_route', ARRAY['HjB']);
SELECT eventstore.register_upcaster('HjOld', 'public.hj_upcast(eventstore.events)');
SELECT eventstore.set_snapshot_policy('hj_policy', 'public.hj_count(pg_catalog.jsonb, eventstore.events)', 2, '{}', ARRAY['hj']);
SELECT pg_temp.try($$SELECT eventstore.register_projection('a_proj', 'public.hj_proj_lower(eventstore.events)')$$) AS taken_name;
SELECT pg_temp.try($$SELECT eventstore.add_route('a_route')$$) AS taken_channel;

-- appends: a batch, a single event, any version, an idempotent retry, a conflict
SELECT stream_version, global_position FROM eventstore.append('hj-1', 0, ARRAY[
    eventstore.event('HjA', '{"n": 1}', NULL, 'a0000000-0000-4000-8000-000000000001'),
    eventstore.event('HjB', '{"n": 2}', '{"m": 1}', 'a0000000-0000-4000-8000-000000000002'),
    eventstore.event('HjOld', '{"n": 3}', NULL, 'a0000000-0000-4000-8000-000000000003')]);
SELECT stream_version, global_position FROM eventstore.append_event('hj-1', 3, 'HjA', '{"n": 4}', NULL,
                                                                    'a0000000-0000-4000-8000-000000000004');
SELECT stream_version, global_position FROM eventstore.append_event('other-1', NULL, 'HjB', '{}');
SELECT stream_version, global_position FROM eventstore.append('hj-1', 0, ARRAY[
    eventstore.event('HjA', '{"n": 1}', NULL, 'a0000000-0000-4000-8000-000000000001'),
    eventstore.event('HjB', '{"n": 2}', '{"m": 1}', 'a0000000-0000-4000-8000-000000000002'),
    eventstore.event('HjOld', '{"n": 3}', NULL, 'a0000000-0000-4000-8000-000000000003')]);
SELECT pg_temp.try($$SELECT eventstore.append_event('hj-1', 2, 'HjA', '{}')$$) AS conflict;
SELECT pg_temp.try($$SELECT eventstore.append('hj-1', NULL, ARRAY[
    eventstore.event('HjA', '{}', NULL, 'a0000000-0000-4000-8000-000000000004'),
    eventstore.event('HjA', '{}', NULL, 'a0000000-0000-4000-8000-000000000009')])$$) AS partial_retry;
SELECT pg_temp.try($$SELECT eventstore.append_event('hj-2', 0, 'HjA', '[]', '"not an object"')$$) AS bad_metadata;
SELECT eventstore.enqueue('B_route', '{"plain": true}', '{"h": 1}') AS message_id;

-- reads
SELECT stream_id, stream_version, global_position, event_type, data, metadata FROM eventstore.read_stream('hj-1');
SELECT stream_version, event_type FROM eventstore.read_stream('hj-1', 2, 2);
SELECT stream_version, event_type FROM eventstore.read_stream_backwards('hj-1', 3, 2);
SELECT global_position, stream_id, event_type FROM eventstore.read_all(0, 100);
SELECT global_position, stream_id FROM eventstore.read_all(2, 2);
SELECT global_position, stream_id, event_type FROM eventstore.read_category('hj');
SELECT eventstore.stream_version('hj-1') AS hj_1, eventstore.stream_version('hj-9') AS hj_9,
       eventstore.category('hj-1') AS category;
SELECT eventstore.stream_version_at('hj-1', 'infinity') AS at_infinity,
       eventstore.stream_version_at('hj-1', '-infinity') AS at_minus_infinity;
SELECT stream_version FROM eventstore.read_stream_until('hj-1', 'infinity');
SELECT global_position FROM eventstore.read_all_until('infinity', 0, 100);

-- aggregates and snapshots
SELECT stream_version, state FROM eventstore.load_snapshot('hj-1', 'hj_policy');
SELECT eventstore.aggregate('hj-1', 'public.hj_count(pg_catalog.jsonb, eventstore.events)') AS folded;
SELECT eventstore.aggregate('hj-1', 'public.hj_count(pg_catalog.jsonb, eventstore.events)', '{}', NULL, NULL, 'hj_policy') AS from_snapshot;
SELECT eventstore.aggregate('hj-1', 'public.hj_count(pg_catalog.jsonb, eventstore.events)', '{}', 2) AS until_2;
SELECT eventstore.save_snapshot('hj-1', 1, '{"n": 1, "by": "hand"}', 'hj_manual');
SELECT stream_version, state FROM eventstore.load_snapshot('hj-1', 'hj_manual', 3);

-- the relay and consumers
SELECT eventstore.relay_once() AS published;
SELECT eventstore.relay_once() AS published_again;
SELECT id, channel, global_position, message FROM eventstore.consumer_poll('hj_consumer', 'B_route', 10);
SELECT eventstore.consumer_ack('hj_consumer', 'B_route', 3);
SELECT id, channel FROM eventstore.consumer_poll('hj_consumer', 'B_route', 10);
SELECT pg_temp.try($$SELECT eventstore.consumer_ack('hj_consumer', 'B_route', 1000)$$) AS ack_unpublished;
SELECT pending FROM eventstore.relay_status() WHERE database OPERATOR(pg_catalog.=) current_database();

-- more management
SELECT eventstore.disable_projection('a_proj');
SELECT stream_version FROM eventstore.append_event('hj-1', 4, 'HjC', '{"n": 5}');
SELECT eventstore.enable_projection('a_proj');
SELECT eventstore.rebuild_projection('B_proj') AS rebuilt;
SELECT eventstore.unregister_projection('a_proj');
SELECT eventstore.remove_route('a_route');
SELECT eventstore.unregister_upcaster('HjOld');
SELECT eventstore.remove_snapshot_policy('hj_policy');
SELECT pg_temp.try($$SELECT eventstore.unregister_projection('a_proj')$$) AS unknown_projection;
SELECT pg_temp.try($$SELECT eventstore.remove_route('a_route')$$) AS unknown_route;
SELECT eventstore.grant_access('regress_hijack_reader', 'reader');
SELECT pg_temp.try($$SELECT eventstore.grant_access('regress_hijack_reader', 'nonsense')$$) AS bad_access;
SELECT stream_version FROM eventstore.append_event('hj-1', 5, 'HjOld', '{"n": 6}');

RESET search_path;

------------------------------------------------------------------------
-- Afterwards, with the normal search_path: nothing was hijacked, and
-- every result is what it must be
------------------------------------------------------------------------
SELECT count(*) AS hijacked_calls FROM regress_hijack.calls;
-- projections in byte order of their names (B_proj before a_proj), a_proj
-- not called while disabled; the rebuild's reset and replay (upcast types
-- until the upcaster was unregistered)
SELECT projection, stream_version, event_type FROM hj_log ORDER BY seq;
-- outbox rows: per event, one per matching route, in byte order of the
-- channel (B_route before a_route); the plain message; all published
SELECT o.id, o.channel, e.stream_id, e.stream_version, o.payload, o.published_at IS NOT NULL AS published
  FROM eventstore.outbox o LEFT JOIN eventstore.events e USING (global_position) ORDER BY o.id;
-- the snapshot policy took snapshots when hj-1 crossed versions 2 and 4
SELECT stream_id, snapshot_type, stream_version, state FROM eventstore.snapshots ORDER BY stream_id, snapshot_type, stream_version;
SELECT stream_id, stream_version, event_type FROM eventstore.events ORDER BY global_position;
SELECT name, handler, enabled FROM eventstore.projections ORDER BY name COLLATE "C";
SELECT channel, event_types, categories FROM eventstore.routes ORDER BY channel COLLATE "C";
SELECT consumer, channel, last_id FROM eventstore.consumers;
SELECT has_table_privilege('regress_hijack_reader', 'eventstore.events', 'SELECT') AS reader_selects,
       has_table_privilege('regress_hijack_reader', 'eventstore.events', 'INSERT') AS reader_inserts,
       has_function_privilege('regress_hijack_reader', 'eventstore.append(text, bigint, eventstore.new_event[], jsonb, regclass)', 'EXECUTE') AS reader_appends;
-- the hostile objects were there all along
SET search_path = regress_hijack, pg_catalog, public;
SELECT 'a'::pg_catalog.text = 'b'::pg_catalog.text AS hostile_equals_still_active;
RESET search_path;
SELECT count(*) AS hijacked_calls FROM regress_hijack.calls;

------------------------------------------------------------------------
-- Clean up: the extension, the schema, the role; the relay worker back
------------------------------------------------------------------------
DROP FUNCTION hj_proj_upper(eventstore.events), hj_proj_lower(eventstore.events), hj_reset(),
              hj_count(jsonb, eventstore.events), hj_upcast(eventstore.events);
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
SET client_min_messages = warning;
DROP SCHEMA regress_hijack CASCADE;
RESET client_min_messages;
DROP TABLE hj_log;
-- (the schema outlives the extension: drop the role's privileges on it)
DROP OWNED BY regress_hijack_reader;
DROP ROLE regress_hijack_reader;
DROP SCHEMA eventstore;
ALTER SYSTEM RESET eventstore.relay_databases;
SELECT pg_reload_conf();
