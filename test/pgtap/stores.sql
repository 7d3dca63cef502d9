-- Stores: tables of type eventstore.event_store besides the default store
-- eventstore.events.  Two stores with the same stream id hold independent
-- streams; reads of one never return another's events; positions are unique
-- across stores and increase within each; drop_store; bad store arguments
-- and their SQLSTATEs; privileges per store (INSERT is the append privilege,
-- SELECT the read privilege, USAGE on the store's schema); a renamed store
-- keeps working.
--
-- read_all and read_category return only committed events (below the read
-- horizon), so this file commits its appends, in a database of its own
-- (es_tap_stores), created here and dropped at the end with its roles
-- (tap_st_*).  Privileges are given with plain GRANTs (not grant_access),
-- so the checks are about the store mechanism alone.
SET client_min_messages = warning;
SELECT current_database() AS st_home \gset
DROP DATABASE IF EXISTS es_tap_stores WITH (FORCE);
DROP ROLE IF EXISTS tap_st_writer_a, tap_st_reader_b, tap_st_owner, tap_st_other;
CREATE DATABASE es_tap_stores;
\c es_tap_stores
SET client_min_messages = warning;
CREATE EXTENSION pgtap;
CREATE EXTENSION eventstore;
SELECT plan(72);

-- err(sql): run sql in a subtransaction; 'ok' or '<SQLSTATE>|<hint>'.
CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text;
    h text;
BEGIN
    BEGIN
        EXECUTE sql;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, h = PG_EXCEPTION_HINT;
        RETURN st || '|' || coalesce(h, '');
    END;
    RETURN 'ok';
END $$;
-- as_role(role, sql): sql as role, in a subtransaction always rolled back
-- ('ok <first column>' or 'error <SQLSTATE>').
CREATE FUNCTION pg_temp.as_role(role text, sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r text;
    res text;
BEGIN
    BEGIN
        EXECUTE format('SET LOCAL ROLE %I', role);
        EXECUTE sql INTO r;
        RAISE EXCEPTION USING ERRCODE = 'ZZ999';
    EXCEPTION
        WHEN SQLSTATE 'ZZ999' THEN res := 'ok ' || coalesce(r, '<null>');
        WHEN OTHERS THEN res := 'error ' || SQLSTATE;
    END;
    RETURN res;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.as_role(text, text) TO PUBLIC;

CREATE SCHEMA tap_st_a;
CREATE SCHEMA tap_st_b;
SELECT is(eventstore.create_store('tap_st_a.events')::text, 'tap_st_a.events',
          'create_store makes a store in a named schema and returns it');
SET search_path = tap_st_b, public;
SELECT is(eventstore.create_store('events')::oid, to_regclass('tap_st_b.events')::oid,
          'an unqualified name goes to the first schema of the caller''s search_path');
RESET search_path;
SELECT is((SELECT reloftype::regtype FROM pg_class WHERE oid = 'tap_st_b.events'::regclass),
          'eventstore.event_store'::regtype, 'a store is a table of type eventstore.event_store');

------------------------------------------------------------------------
-- Same stream id, independent streams
------------------------------------------------------------------------
-- one statement per append, alternating stores: positions interleave
CREATE TEMP TABLE appended (store text, stream_version bigint, global_position bigint);
INSERT INTO appended SELECT 'default', * FROM eventstore.append_event('tap_st-1', 0, 'Opened', '{"s": "d"}');
INSERT INTO appended SELECT 'a', * FROM eventstore.append_event('tap_st-1', 0, 'Opened', '{"s": "a"}', store => 'tap_st_a.events');
INSERT INTO appended SELECT 'b', * FROM eventstore.append_event('tap_st-1', 0, 'Opened', '{"s": "b"}', store => 'tap_st_b.events');
INSERT INTO appended SELECT 'a', * FROM eventstore.append_event('tap_st-1', 1, 'Deposited', '{"s": "a"}', store => 'tap_st_a.events');
INSERT INTO appended SELECT 'a', * FROM eventstore.append('tap_st-1', 2,
    ARRAY[eventstore.event('Deposited', '{"s": "a"}'), eventstore.event('Withdrawn', '{"s": "a"}')], store => 'tap_st_a.events');
INSERT INTO appended SELECT 'default', * FROM eventstore.append_event('tap_st-1', 1, 'Closed', '{"s": "d"}');
INSERT INTO appended SELECT 'b', * FROM eventstore.append_event('tap_st-2', NULL, 'Opened', '{"s": "b"}', store => 'tap_st_b.events');
INSERT INTO appended SELECT 'a', * FROM eventstore.append_event('tap_other-1', NULL, 'Noted', '{"s": "a"}', store => 'tap_st_a.events');

SELECT is(eventstore.stream_version('tap_st-1'), 2::bigint, 'the default store''s tap_st-1 is at version 2');
SELECT is(eventstore.stream_version('tap_st-1', 'tap_st_a.events'), 4::bigint, 'store a''s tap_st-1 is at version 4');
SELECT is(eventstore.stream_version('tap_st-1', store => 'tap_st_b.events'), 1::bigint, 'store b''s tap_st-1 is at version 1');
SELECT results_eq(
    $$SELECT stream_version, event_type, data->>'s' FROM eventstore.read_stream('tap_st-1', store => 'tap_st_a.events')$$,
    $$VALUES (1::bigint, 'Opened'::text, 'a'::text), (2, 'Deposited', 'a'), (3, 'Deposited', 'a'), (4, 'Withdrawn', 'a')$$,
    'read_stream of store a returns its stream only, versions 1..4');
SELECT results_eq(
    $$SELECT stream_version, event_type, data->>'s' FROM eventstore.read_stream('tap_st-1')$$,
    $$VALUES (1::bigint, 'Opened'::text, 'd'::text), (2, 'Closed', 'd')$$,
    'read_stream of the default store returns its own stream, versions 1..2');
SELECT results_eq(
    $$SELECT stream_version, data->>'s' FROM eventstore.read_stream_backwards('tap_st-1', store => 'tap_st_a.events', max_count => 2)$$,
    $$VALUES (4::bigint, 'a'::text), (3, 'a')$$,
    'read_stream_backwards of store a');
SELECT results_eq(
    $$SELECT stream_version, data->>'s' FROM eventstore.read_stream('tap_st-1', 2, NULL, 'tap_st_b.events')$$,
    $$SELECT 1::bigint, 'x'::text WHERE false$$,
    'read_stream of store b from version 2 is empty (its stream has one event)');
SELECT is(split_part(pg_temp.err($$SELECT eventstore.append_event('tap_st-1', 3, 'Late', '{}')$$), '|', 1), 'ES409',
          'the default store''s tap_st-1 is not at store a''s version: ES409');
SELECT is(split_part(pg_temp.err($$SELECT eventstore.append_event('tap_st-1', 2, 'Late', '{}', store => 'tap_st_b.events')$$), '|', 1), 'ES409',
          'store b''s tap_st-1 is not at the default store''s version: ES409');
-- the same event id may be used in two stores (ids are unique per stream, per store)
SELECT is((SELECT stream_version FROM eventstore.append_event('tap_st-3', 0, 'Same', '{}', NULL,
                                                               '00000000-0000-4000-8000-0000000000aa')),
          1::bigint, 'an event id in the default store ...');
SELECT is((SELECT stream_version FROM eventstore.append_event('tap_st-3', 0, 'Same', '{}', NULL,
                                                               '00000000-0000-4000-8000-0000000000aa',
                                                               store => 'tap_st_a.events')),
          1::bigint, '... and the same id in the same stream of store a: a separate event');

------------------------------------------------------------------------
-- read_all / read_category stay in their store
------------------------------------------------------------------------
SELECT set_eq(
    $$SELECT global_position FROM eventstore.read_all(0, 1000, 'tap_st_a.events')$$,
    $$SELECT global_position FROM tap_st_a.events$$,
    'read_all of store a returns exactly store a''s events');
SELECT is((SELECT count(*) FROM eventstore.read_all(0, 1000, 'tap_st_a.events') r
            WHERE r.global_position IN (SELECT global_position FROM eventstore.events
                                        UNION ALL SELECT global_position FROM tap_st_b.events)),
          0::bigint, 'read_all of store a returns no event of another store');
SELECT is((SELECT count(*) FROM eventstore.read_all(0, 1000) r
            WHERE r.global_position IN (SELECT global_position FROM tap_st_a.events
                                        UNION ALL SELECT global_position FROM tap_st_b.events)),
          0::bigint, 'read_all of the default store returns no event of a named store');
SELECT set_eq(
    $$SELECT global_position FROM eventstore.read_category('tap_st', 0, 1000, 'tap_st_b.events')$$,
    $$SELECT global_position FROM appended WHERE store = 'b'$$,
    'read_category of store b returns exactly store b''s events of the category');
SELECT set_eq(
    $$SELECT global_position FROM eventstore.read_category('tap_st', 0, 1000) WHERE stream_id LIKE 'tap_st-%'$$,
    $$SELECT global_position FROM eventstore.events WHERE stream_id LIKE 'tap_st-%'$$,
    'read_category of the default store returns its own events only');
SELECT is((SELECT count(*) FROM eventstore.read_category('tap_other', 0, 1000)), 0::bigint,
          'a category that exists only in store a is empty in the default store');
SELECT is((SELECT count(*) FROM eventstore.read_category('tap_other', store => 'tap_st_a.events')), 1::bigint,
          '... and has its event in store a');
-- paging read_all of store a with a checkpoint taken from the default store skips nothing of a
SELECT is((SELECT count(*) FROM eventstore.read_all((SELECT min(global_position) FROM appended WHERE store = 'default'),
                                                    1000, 'tap_st_a.events')),
          (SELECT count(*) FROM tap_st_a.events
            WHERE global_position > (SELECT min(global_position) FROM appended WHERE store = 'default')),
          'read_all of store a after a position of another store returns every later event of a');

------------------------------------------------------------------------
-- Positions: one sequence for every store
------------------------------------------------------------------------
SELECT is((SELECT count(DISTINCT global_position) FROM appended), (SELECT count(*) FROM appended),
          'positions returned by appends to three stores are unique');
SELECT is((SELECT count(*) - count(DISTINCT global_position)
             FROM (SELECT global_position FROM eventstore.events
                   UNION ALL SELECT global_position FROM tap_st_a.events
                   UNION ALL SELECT global_position FROM tap_st_b.events) p),
          0::bigint, 'stored positions are unique across the three stores');
SELECT ok((SELECT bool_and(ok) FROM (
              SELECT global_position > lag(global_position, 1, 0::bigint) OVER (PARTITION BY store ORDER BY ord) AS ok
                FROM (SELECT *, row_number() OVER () AS ord FROM appended) x) y),
          'positions increase within each store in append order');
SELECT ok((SELECT max(global_position) FROM appended WHERE store = 'a')
              > (SELECT min(global_position) FROM appended WHERE store = 'default')
          AND (SELECT max(global_position) FROM appended WHERE store = 'default')
              > (SELECT min(global_position) FROM appended WHERE store = 'a'),
          'positions of the stores interleave (one sequence)');

------------------------------------------------------------------------
-- Bad store arguments
------------------------------------------------------------------------
CREATE TABLE tap_st_a.not_a_store (x int);
CREATE TABLE tap_st_a.lookalike (LIKE eventstore.events INCLUDING ALL);
CREATE TABLE tap_st_a.typed OF eventstore.event_store;
CREATE VIEW tap_st_a.a_view AS SELECT * FROM tap_st_a.events;
SELECT is(split_part(pg_temp.err($$SELECT eventstore.append_event('x-1', NULL, 'X', '{}', store => NULL)$$), '|', 1),
          '22004', 'append to a NULL store: 22004');
SELECT is(split_part(pg_temp.err($$SELECT * FROM eventstore.read_all(0, 10, NULL)$$), '|', 1),
          '22004', 'read_all of a NULL store: 22004');
SELECT is(split_part(pg_temp.err($$SELECT * FROM eventstore.read_stream('x-1', store => NULL)$$), '|', 1),
          '22004', 'read_stream of a NULL store: 22004');
SELECT is(split_part(pg_temp.err($$SELECT * FROM eventstore.read_category('x', 0, 10, NULL)$$), '|', 1),
          '22004', 'read_category of a NULL store: 22004');
SELECT is(split_part(pg_temp.err($$SELECT eventstore.append_event('x-1', NULL, 'X', '{}', store => 'tap_st_a.nosuch')$$), '|', 1),
          '42P01', 'append to an unknown store: 42P01');
SELECT is(split_part(pg_temp.err($$SELECT * FROM eventstore.read_all(0, 10, 'tap_st_nosuch.events')$$), '|', 1),
          '3F000', 'read_all of a store in an unknown schema: 3F000');
SELECT is(split_part(pg_temp.err($$SELECT eventstore.append_event('x-1', NULL, 'X', '{}', store => 'tap_st_a.not_a_store')$$), '|', 1),
          '42809', 'append to a table that is not a store: 42809');
SELECT is(split_part(pg_temp.err($$SELECT * FROM eventstore.read_all(0, 10, 'tap_st_a.lookalike')$$), '|', 1),
          '42809', 'read_all of a table with the columns of a store but not of its type: 42809');
SELECT is(split_part(pg_temp.err($$SELECT * FROM eventstore.read_all(0, 10, 'tap_st_a.a_view')$$), '|', 1),
          '42809', 'read_all of a view: 42809');
SELECT is(split_part(pg_temp.err($$SELECT * FROM eventstore.read_all(0, 10, 'pg_catalog.pg_class')$$), '|', 1),
          '42809', 'read_all of a catalog table: 42809');
SELECT is(pg_temp.err($$SELECT eventstore.append_event('x-1', NULL, 'X', '{}', store => 'tap_st_a.typed')$$),
          '42809|Create a store with eventstore.create_store(name); it also makes an existing table of type eventstore.event_store a store.',
          'append to a table of the type made by plain CREATE TABLE ... OF: 42809 with the hint to call create_store');
SELECT is(split_part(pg_temp.err($$SELECT * FROM eventstore.read_stream('x-1', store => 'tap_st_a.typed')$$), '|', 1),
          '42809', 'read_stream of that table: 42809');
SELECT is(eventstore.create_store('tap_st_a.typed')::text, 'tap_st_a.typed',
          'create_store adopts the existing table of the type');
SELECT is((SELECT global_position > 0 FROM eventstore.append_event('x-1', 0, 'X', '{}', store => 'tap_st_a.typed')), true,
          'the adopted table is a store: append works');
SELECT is(split_part(pg_temp.err($$SELECT eventstore.create_store('tap_st_a.not_a_store')$$), '|', 1),
          '42P07', 'create_store on an existing table of another type: 42P07');

------------------------------------------------------------------------
-- Privileges per store
------------------------------------------------------------------------
CREATE ROLE tap_st_writer_a;      -- appends to and reads store a
CREATE ROLE tap_st_reader_b;      -- reads store b
CREATE ROLE tap_st_owner;         -- owns a store of its own
CREATE ROLE tap_st_other;         -- may call drop_store, owns nothing
GRANT USAGE ON SCHEMA eventstore TO tap_st_writer_a, tap_st_reader_b, tap_st_owner, tap_st_other;
GRANT EXECUTE ON FUNCTION eventstore.append_event(text, bigint, text, jsonb, jsonb, uuid, text[], jsonb, regclass)
    TO tap_st_writer_a, tap_st_reader_b, tap_st_owner;
GRANT EXECUTE ON FUNCTION eventstore.create_store(text), eventstore.drop_store(regclass) TO tap_st_owner, tap_st_other;
GRANT USAGE ON SCHEMA tap_st_a, tap_st_b TO tap_st_writer_a, tap_st_reader_b, tap_st_other;
GRANT INSERT, SELECT ON tap_st_a.events TO tap_st_writer_a;
GRANT SELECT ON tap_st_b.events TO tap_st_reader_b;
CREATE SCHEMA tap_st_own AUTHORIZATION tap_st_owner;
GRANT USAGE ON SCHEMA tap_st_own TO tap_st_other;
CREATE SCHEMA tap_st_hidden;      -- no USAGE for anyone but the superuser
DO $$ BEGIN PERFORM eventstore.create_store('tap_st_hidden.events'); END $$;
GRANT INSERT, SELECT ON tap_st_hidden.events TO tap_st_writer_a;

SELECT is(pg_temp.as_role('tap_st_writer_a',
                          $$SELECT stream_version FROM eventstore.append_event('tap_st-9', NULL, 'W', '{}', store => 'tap_st_a.events')$$),
          'ok 1', 'a writer of store a appends to store a');
SELECT is(pg_temp.as_role('tap_st_writer_a', $$SELECT count(*) FROM eventstore.read_all(0, 1000, 'tap_st_a.events')$$),
          'ok ' || (SELECT count(*) FROM tap_st_a.events), 'a writer of store a with SELECT reads store a');
SELECT is(pg_temp.as_role('tap_st_writer_a',
                          $$SELECT stream_version FROM eventstore.append_event('tap_st-9', NULL, 'W', '{}', store => 'tap_st_b.events')$$),
          'error 42501', 'a writer of store a appending to store b: 42501');
SELECT is(pg_temp.as_role('tap_st_writer_a', $$SELECT stream_version FROM eventstore.append_event('tap_st-9', NULL, 'W', '{}')$$),
          'error 42501', 'a writer of store a appending to the default store: 42501');
SELECT is(pg_temp.as_role('tap_st_writer_a', $$SELECT count(*) FROM eventstore.read_all(0, 10, 'tap_st_b.events')$$),
          'error 42501', 'a writer of store a reading store b (no SELECT): 42501');
SELECT is(pg_temp.as_role('tap_st_reader_b', $$SELECT count(*) FROM eventstore.read_category('tap_st', 0, 1000, 'tap_st_b.events')$$),
          'ok 2', 'a reader of store b reads store b');
SELECT is(pg_temp.as_role('tap_st_reader_b',
                          $$SELECT stream_version FROM eventstore.append_event('tap_st-9', NULL, 'W', '{}', store => 'tap_st_b.events')$$),
          'error 42501', 'a reader of store b (SELECT, no INSERT) appending to it: 42501');
SELECT is(pg_temp.as_role('tap_st_writer_a',
                          $$INSERT INTO tap_st_a.events (global_position, stream_id, stream_version, event_id, event_type, data)
                            VALUES (999999999, 'tap_st-9', 2, gen_random_uuid(), 'Forged', '{}') RETURNING 1$$),
          'error 42501', 'a direct INSERT into store a by its writer is refused: 42501');
SELECT is(pg_temp.as_role('tap_st_writer_a',
                          $$SELECT stream_version FROM eventstore.append_event('tap_st-9', NULL, 'W', '{}', store => 'tap_st_hidden.events')$$),
          'error 42501', 'a store in a schema the caller cannot use, by name: 42501');
SELECT is(pg_temp.as_role('tap_st_writer_a',
                          format($$SELECT stream_version FROM eventstore.append_event('tap_st-9', NULL, 'W', '{}', store => %s::regclass)$$,
                                 'tap_st_hidden.events'::regclass::oid)),
          'error 42501', 'a store in a schema the caller cannot use, by OID: 42501');
SELECT is(pg_temp.as_role('tap_st_writer_a',
                          format($$SELECT count(*) FROM eventstore.read_all(0, 10, %s::regclass)$$,
                                 'tap_st_hidden.events'::regclass::oid)),
          'error 42501', 'read_all of a store in a schema the caller cannot use, by OID: 42501');

------------------------------------------------------------------------
-- drop_store
------------------------------------------------------------------------
SELECT is(pg_temp.as_role('tap_st_owner', $$SELECT eventstore.create_store('tap_st_own.events')::text$$),
          'ok tap_st_own.events', 'a role with CREATE on a schema makes a store there (and owns it)');
-- (as_role rolls back: make it again as that role, for good)
SET ROLE tap_st_owner;
SELECT eventstore.create_store('tap_st_own.events') IS NOT NULL AS made;
RESET ROLE;
SELECT is((SELECT relowner::regrole::text FROM pg_class WHERE oid = 'tap_st_own.events'::regclass),
          'tap_st_owner', 'the store belongs to the role that made it');
SELECT is(pg_temp.as_role('tap_st_owner',
                          $$SELECT stream_version FROM eventstore.append_event('own-1', 0, 'Mine', '{}', store => 'tap_st_own.events')$$),
          'ok 1', 'the owner of a store appends to it without a grant');
SET ROLE tap_st_owner;
DO $$ BEGIN PERFORM eventstore.append_event('own-1', 0, 'Mine', '{}', store => 'tap_st_own.events'); END $$;
RESET ROLE;
SELECT is(pg_temp.as_role('tap_st_owner',
                          $$INSERT INTO tap_st_own.events (global_position, stream_id, stream_version, event_id, event_type, data)
                            VALUES (999999998, 'own-1', 2, gen_random_uuid(), 'Forged', '{}') RETURNING 1$$),
          'ok 1', 'the owner of a store may INSERT into it directly: only non-owners are refused (rolled back)');
SELECT is(pg_temp.as_role('tap_st_other', $$SELECT eventstore.drop_store('tap_st_own.events')::text$$),
          'error 42501', 'drop_store by a role that does not own the store: 42501');
SELECT is(pg_temp.as_role('tap_st_other', $$SELECT eventstore.drop_store('tap_st_a.events')::text$$),
          'error 42501', 'drop_store of a store owned by the superuser, by another role: 42501');
SELECT has_table('tap_st_own', 'events', 'the store is still there');
SELECT is(pg_temp.err($$SELECT eventstore.drop_store('eventstore.events')$$),
          '0A000|It belongs to the extension: DROP EXTENSION eventstore removes it.',
          'drop_store of the default store: 0A000');
SELECT is(split_part(pg_temp.err($$SELECT eventstore.drop_store('tap_st_a.not_a_store')$$), '|', 1), '42809',
          'drop_store of a table that is not a store: 42809 (the table is not dropped)');
SELECT has_table('tap_st_a', 'not_a_store', 'the table that is not a store is still there');
SET ROLE tap_st_owner;
DO $$ BEGIN PERFORM eventstore.drop_store('tap_st_own.events'); END $$;
RESET ROLE;
SELECT hasnt_table('tap_st_own', 'events', 'the owner dropped its store: the table is gone');
SELECT is(split_part(pg_temp.err($$SELECT eventstore.append_event('own-1', 1, 'Mine', '{}', store => 'tap_st_own.events')$$), '|', 1),
          '42P01', 'appending to the dropped store: 42P01');
DO $$ BEGIN PERFORM eventstore.drop_store('tap_st_b.events'); END $$;
SELECT hasnt_table('tap_st_b', 'events', 'drop_store by the superuser');
SELECT is(eventstore.stream_version('tap_st-1'), 2::bigint, 'the default store is untouched by the drops');
SELECT is(eventstore.stream_version('tap_st-1', 'tap_st_a.events'), 4::bigint, 'store a is untouched by the drops');

------------------------------------------------------------------------
-- A renamed store keeps working
------------------------------------------------------------------------
ALTER TABLE tap_st_a.events RENAME TO ledger;
SELECT is((SELECT stream_version FROM eventstore.append_event('tap_st-1', 4, 'Renamed', '{}', store => 'tap_st_a.ledger')),
          5::bigint, 'after ALTER TABLE ... RENAME, appends under the new name continue the stream');
SELECT is(eventstore.stream_version('tap_st-1', 'tap_st_a.ledger'), 5::bigint, 'stream_version under the new name');
SELECT is(split_part(pg_temp.err($$SELECT eventstore.append_event('tap_st-1', 5, 'X', '{}', store => 'tap_st_a.events')$$), '|', 1),
          '42P01', 'the old name is gone: 42P01');
ALTER TABLE tap_st_a.ledger SET SCHEMA tap_st_b;
SELECT is((SELECT count(*) FROM eventstore.read_stream('tap_st-1', store => 'tap_st_b.ledger')), 5::bigint,
          'after ALTER TABLE ... SET SCHEMA, reads under the new name');
SELECT is(pg_temp.as_role('tap_st_writer_a',
                          $$SELECT stream_version FROM eventstore.append_event('tap_st-1', 5, 'Moved', '{}', store => 'tap_st_b.ledger')$$),
          'ok 6', 'its writer still appends to it (the grants move with the table)');

SELECT * FROM finish();
RESET ROLE;
DROP OWNED BY tap_st_writer_a, tap_st_reader_b, tap_st_owner, tap_st_other;
\c :st_home
SET client_min_messages = warning;
DROP DATABASE es_tap_stores WITH (FORCE);
DROP ROLE tap_st_writer_a, tap_st_reader_b, tap_st_owner, tap_st_other;
