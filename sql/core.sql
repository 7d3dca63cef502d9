--
-- core: the extension's objects, their shape and privileges, a first append.
--
-- Every file of the suite creates the extension, so it runs on its own, and
-- drops it at the end: the events table is append-only, so dropping the
-- extension is the only way to leave the database clean.
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

------------------------------------------------------------------------
-- The extension and its schema
------------------------------------------------------------------------
-- Installed at the control file's default version, in schema eventstore.
SELECT e.extname, n.nspname AS schema, e.extrelocatable,
       e.extversion = a.default_version AS default_version
  FROM pg_extension e
  JOIN pg_namespace n ON n.oid = e.extnamespace
  JOIN pg_available_extensions a ON a.name = e.extname
 WHERE e.extname = 'eventstore';

-- The core objects are members of the extension (later versions add more;
-- this suite checks the core store only).
SELECT pg_describe_object(classid, objid, objsubid) AS member
  FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'eventstore')
   AND deptype = 'e'
   AND (classid <> 'pg_proc'::regclass
        OR objid::regproc::text ~ '^eventstore\.(append|append_event|event|read_stream|read_stream_backwards|read_all|read_category|stream_version|category|refuse_change)$')
   AND (classid <> 'pg_class'::regclass
        OR objid IN ('eventstore.events'::regclass, 'eventstore.events_global_position_seq'::regclass))
 ORDER BY 1;

-- The events and the position sequence are user data: pg_dump includes them.
SELECT c::regclass AS dumped, cond
  FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS u(c, cond)
 WHERE e.extname = 'eventstore'
   AND c IN ('eventstore.events'::regclass, 'eventstore.events_global_position_seq'::regclass)
 ORDER BY 1::text;

------------------------------------------------------------------------
-- The events table: columns, constraints, indexes, trigger
------------------------------------------------------------------------
SELECT a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS "default"
  FROM pg_attribute a
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = 'eventstore.events'::regclass AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum;

SELECT conname, pg_get_constraintdef(oid) AS definition
  FROM pg_constraint
 WHERE conrelid = 'eventstore.events'::regclass
 ORDER BY conname;

SELECT pg_get_indexdef(indexrelid) AS index
  FROM pg_index
 WHERE indrelid = 'eventstore.events'::regclass
 ORDER BY indexrelid::regclass::text;

-- Statement-level, BEFORE UPDATE OR DELETE OR TRUNCATE, and row-level, BEFORE
-- UPDATE OR DELETE (the logical replication apply worker fires row triggers
-- only), both enabled ALWAYS ('A').
SELECT tgname, tgenabled, pg_get_triggerdef(oid) AS definition
  FROM pg_trigger
 WHERE tgrelid = 'eventstore.events'::regclass AND NOT tgisinternal ORDER BY tgname;

-- The position sequence: bigint, CACHE 1, owned by events.global_position.
SELECT format_type(seqtypid, NULL) AS type, seqstart, seqincrement, seqcache, seqcycle
  FROM pg_sequence
 WHERE seqrelid = 'eventstore.events_global_position_seq'::regclass;
SELECT pg_get_serial_sequence('eventstore.events', 'global_position') AS owned_sequence;
-- the read horizon relies on CACHE 1 (horizon.c): reads refuse another (55000)
ALTER SEQUENCE eventstore.events_global_position_seq CACHE 10;
\set VERBOSITY sqlstate
SELECT count(*) FROM eventstore.read_all(0);
\set VERBOSITY terse
ALTER SEQUENCE eventstore.events_global_position_seq CACHE 1;
SELECT count(*) >= 0 AS reads_again FROM eventstore.read_all(0);

------------------------------------------------------------------------
-- The type new_event
------------------------------------------------------------------------
SELECT a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS type
  FROM pg_attribute a
 WHERE a.attrelid = (SELECT typrelid FROM pg_type WHERE oid = 'eventstore.new_event'::regtype)
   AND a.attnum > 0
 ORDER BY a.attnum;

------------------------------------------------------------------------
-- The core functions, by name.
CREATE TEMP VIEW core_functions AS
SELECT p.oid, p.proname
  FROM pg_proc p
 WHERE p.pronamespace = 'eventstore'::regnamespace
   AND p.proname IN ('append', 'append_event', 'event', 'read_stream', 'read_stream_backwards',
                     'read_all', 'read_category', 'stream_version', 'category', 'refuse_change');

------------------------------------------------------------------------
-- Functions: signatures, results, volatility, strictness, security
------------------------------------------------------------------------
SELECT p.oid::regprocedure AS function,
       pg_get_function_result(p.oid) AS result,
       p.provolatile AS vol, p.proparallel AS par, p.proisstrict AS strict,
       p.prosecdef AS secdef, l.lanname AS lang
  FROM core_functions f JOIN pg_proc p ON p.oid = f.oid
  JOIN pg_language l ON l.oid = p.prolang
 ORDER BY p.proname;

-- Argument names and defaults.
SELECT f.proname, pg_get_function_arguments(f.oid) AS arguments
  FROM core_functions f
 ORDER BY f.proname;

------------------------------------------------------------------------
-- Privileges: writing is EXECUTE on the append functions, not granted to
-- PUBLIC; a fresh role may execute the read functions.
------------------------------------------------------------------------
CREATE ROLE regress_es_nobody;
SELECT f.proname,
       has_function_privilege('regress_es_nobody', f.oid, 'EXECUTE') AS fresh_role_can_execute
  FROM core_functions f
 ORDER BY f.proname;
-- Nobody but the owner may touch the table or the sequence directly.
SELECT has_table_privilege('regress_es_nobody', 'eventstore.events', 'SELECT') AS can_select,
       has_table_privilege('regress_es_nobody', 'eventstore.events', 'INSERT') AS can_insert,
       has_sequence_privilege('regress_es_nobody', 'eventstore.events_global_position_seq', 'USAGE') AS can_use_seq,
       has_schema_privilege('regress_es_nobody', 'eventstore', 'USAGE') AS schema_usage;
DROP ROLE regress_es_nobody;

-- The GUCs exist with their defaults.
SELECT name, setting, unit, context, vartype
  FROM pg_settings
 WHERE name IN ('eventstore.max_event_size', 'eventstore.correlation_id', 'eventstore.causation_id')
 ORDER BY name;
-- The prefix is reserved: an unknown eventstore.* setting is an error.
SELECT pg_temp.try($$SET eventstore.no_such_setting = 1$$);

------------------------------------------------------------------------
-- A first append, read back
------------------------------------------------------------------------
SELECT coalesce(pg_sequence_last_value('eventstore.events_global_position_seq'), 0) AS base \gset

-- created_at is taken when the append locks its stream: not before the
-- transaction's start, not after the statement.
BEGIN;
SELECT stream_version, global_position - :base AS pos
  FROM eventstore.append_event('core-1', 0, 'Opened', '{"owner": "Ada"}');
SELECT stream_version, global_position - :base AS pos
  FROM eventstore.append('core-1', 1, ARRAY[
           eventstore.event('Deposited', '{"amount": 100}'),
           eventstore.event('Withdrawn', '{"amount": 30}', '{"by": "atm"}')]);
SELECT global_position - :base AS pos, stream_id, stream_version, event_type, data, metadata,
       event_id IS NOT NULL AS has_id,
       created_at BETWEEN now() AND clock_timestamp() AS created_now
  FROM eventstore.read_stream('core-1');
COMMIT;
SELECT global_position - :base AS pos, stream_version, event_type
  FROM eventstore.read_stream('core-1');
SELECT eventstore.stream_version('core-1');

-- eventstore.event() builds a new_event.
SELECT eventstore.event('T', '{"a": 1}');
SELECT eventstore.event('T', '{}', '{"m": true}', '00000000-0000-4000-8000-000000000001');
SELECT (eventstore.event('T', '{}')).event_id IS NULL AS id_null_until_append;

-- eventstore.category(): the part of the stream id before the first '-'.
SELECT s, eventstore.category(s)
  FROM unnest(ARRAY['account-42', 'account', 'order-7-line-1', '-x', 'a-']) AS s;
SELECT eventstore.category(NULL) IS NULL AS strict;

------------------------------------------------------------------------
-- Dropping and recreating the extension in the same session: the cached
-- object ids and plans follow the new objects, positions start over.
------------------------------------------------------------------------
DROP EXTENSION eventstore;
CREATE EXTENSION eventstore;
SELECT count(*) AS events_after_recreate FROM eventstore.events;
SELECT * FROM eventstore.append_event('core-1', 0, 'Opened', '{}');
SELECT * FROM eventstore.append('core-1', 1, ARRAY[eventstore.event('A', '{}'), eventstore.event('B', '{}')]);
SELECT global_position, stream_version, event_type FROM eventstore.read_all();
SELECT global_position, stream_version, event_type FROM eventstore.read_category('core');
SELECT global_position, stream_version, event_type FROM eventstore.read_stream_backwards('core-1');

------------------------------------------------------------------------
-- Clean up
------------------------------------------------------------------------
DROP VIEW core_functions;
DROP EXTENSION eventstore;
DROP SCHEMA eventstore;

------------------------------------------------------------------------
-- In a database without the extension the C functions refuse to run
-- (55000).  A function bound to the library by hand stands in for a stale
-- reference.
------------------------------------------------------------------------
CREATE FUNCTION public.es_orphan_read_all(bigint, integer) RETURNS SETOF record
    LANGUAGE c AS 'eventstore', 'eventstore_read_all';
SELECT pg_temp.try($$SELECT * FROM public.es_orphan_read_all(0, 10) AS t(a bigint)$$);
DROP FUNCTION public.es_orphan_read_all(bigint, integer);
