-- eventstore 0.5.0 -> 0.6.0: the event_store table type (any number of
-- stores in one database).  Fresh installs run this script too, after the
-- older ones, so both end with the same catalog.
\echo Use "ALTER EXTENSION eventstore UPDATE TO '0.6.0'" to load this file. \quit

-- == Grants carried over (1 of 2) ==========================================
-- Functions that gain a store argument are new functions (a new signature);
-- the EXECUTE grants of the old ones are noted here and given to the new
-- ones of the same name at the end of the script ("Grants carried over, 2 of 2").
CREATE TABLE eventstore._grants_0_6_0 AS
SELECT p.proname::pg_catalog.text AS name, a.grantee, a.is_grantable
  FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
 WHERE p.pronamespace OPERATOR(pg_catalog.=) 'eventstore'::pg_catalog.regnamespace
   AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
   AND a.grantee OPERATOR(pg_catalog.<>) p.proowner;
CREATE TABLE eventstore._revoked_0_6_0 AS
SELECT DISTINCT p.proname::pg_catalog.text AS name
  FROM pg_catalog.pg_proc p
 WHERE p.pronamespace OPERATOR(pg_catalog.=) 'eventstore'::pg_catalog.regnamespace
   AND p.proacl IS NOT NULL;

-- == Stores ================================================================
-- The row shape of a store.  eventstore.events becomes the default store, a
-- table of this type; eventstore.create_store() makes others.  Columns are
-- added to every store at once with ALTER TYPE ... ADD ATTRIBUTE ... CASCADE.
CREATE TYPE eventstore.event_store AS (
    global_position bigint,
    stream_id       text,
    stream_version  bigint,
    event_id        uuid,
    event_type      text,
    data            jsonb,
    metadata        jsonb,
    created_at      timestamptz,
    tags            text[]
);
COMMENT ON TYPE eventstore.event_store IS
    'The row shape of an event store: eventstore.events and every table made by eventstore.create_store().';
ALTER TABLE eventstore.events OF eventstore.event_store;

-- INSERT on a store is the privilege to append to it (appends insert as the
-- store's owner).  The statement trigger now also refuses an INSERT by any
-- role that does not own the table: the only way in is append().
DROP TRIGGER events_immutable ON eventstore.events;
CREATE TRIGGER events_immutable
    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON eventstore.events
    FOR EACH STATEMENT EXECUTE FUNCTION eventstore.refuse_change();
ALTER TABLE eventstore.events ENABLE ALWAYS TRIGGER events_immutable;

-- Roles that could append (EXECUTE on append) keep that right: they get
-- INSERT on the default store.
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT DISTINCT x.grantee FROM eventstore._grants_0_6_0 x
              WHERE x.name OPERATOR(pg_catalog.=) 'append' LOOP
        EXECUTE pg_catalog.format('GRANT INSERT ON eventstore.events TO %s',
                                  CASE WHEN g.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                                       ELSE g.grantee::pg_catalog.regrole::pg_catalog.text END);
    END LOOP;
END
$$;

-- The store argument, checked: not null, a store, usable by the caller
-- (42809 for a table that is not a store, 42501 without the schema's USAGE).
CREATE FUNCTION eventstore._store_arg(store regclass) RETURNS regclass
    LANGUAGE c STABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'eventstore_store_arg';

-- Make a store: a table of type event_store with its keys, indexes and
-- triggers, owned by the caller (who needs CREATE on the schema).  An
-- existing table of the type (one restored with pg_dump -t, or made with
-- plain CREATE TABLE ... OF eventstore.event_store) gets what it lacks.
-- SECURITY INVOKER: the DDL runs as the caller.
-- No SET search_path: an unqualified name goes to the caller's schema (the
-- first of its search_path, as for CREATE TABLE); every name in the body is
-- schema-qualified, and the function runs with the caller's rights only.
CREATE FUNCTION eventstore.create_store(name text) RETURNS regclass
    LANGUAGE plpgsql
    AS $$
    DECLARE
        parts text[];
        nsp text;
        rel text;
        q text;
        t regclass;
        typed boolean;
    BEGIN
        IF name IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed', MESSAGE = 'name must not be null';
        END IF;
        parts := pg_catalog.parse_ident(name);
        IF pg_catalog.array_length(parts, 1) OPERATOR(pg_catalog.=) 1 THEN
            nsp := pg_catalog.current_schema();
            rel := parts[1];
        ELSIF pg_catalog.array_length(parts, 1) OPERATOR(pg_catalog.=) 2 THEN
            nsp := parts[1];
            rel := parts[2];
        ELSE
            RAISE EXCEPTION USING ERRCODE = 'invalid_name', MESSAGE = pg_catalog.format('invalid store name "%s"', name),
                HINT = 'Name a store as table or schema.table.';
        END IF;
        IF nsp IS NULL OR nsp OPERATOR(pg_catalog.=) '' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_schema_name', MESSAGE = 'no schema has been selected to create in';
        END IF;
        q := pg_catalog.format('%I.%I', nsp, rel);
        t := pg_catalog.to_regclass(q);
        IF t IS NULL THEN
            EXECUTE pg_catalog.format(
                'CREATE TABLE %s OF eventstore.event_store ('
                ' PRIMARY KEY (stream_id, stream_version),'
                ' UNIQUE (stream_id, event_id),'
                ' CHECK (stream_version OPERATOR(pg_catalog.>) 0))', q);
            t := q::regclass;
        ELSE
            SELECT c.reloftype OPERATOR(pg_catalog.=) 'eventstore.event_store'::regtype INTO typed
              FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) t;
            IF NOT typed THEN
                RAISE EXCEPTION USING ERRCODE = 'duplicate_table',
                    MESSAGE = pg_catalog.format('relation %s already exists and is not of type eventstore.event_store', q);
            END IF;
        END IF;
        EXECUTE pg_catalog.format(
            'ALTER TABLE %s ALTER global_position SET NOT NULL, ALTER stream_id SET NOT NULL,'
            ' ALTER stream_version SET NOT NULL, ALTER event_id SET NOT NULL,'
            ' ALTER event_type SET NOT NULL, ALTER data SET NOT NULL,'
            ' ALTER created_at SET NOT NULL, ALTER created_at SET DEFAULT pg_catalog.now(),'
            ' ALTER tags SET NOT NULL, ALTER tags SET DEFAULT ''{}''::pg_catalog.text[]', q);
        IF NOT eventstore._store_has(t, 'version_key') THEN
            EXECUTE pg_catalog.format('ALTER TABLE %s ADD UNIQUE (stream_id, stream_version)', q);
        END IF;
        IF NOT eventstore._store_has(t, 'event_id_key') THEN
            EXECUTE pg_catalog.format('ALTER TABLE %s ADD UNIQUE (stream_id, event_id)', q);
        END IF;
        IF NOT eventstore._store_has(t, 'position_index') THEN
            EXECUTE pg_catalog.format('CREATE INDEX ON %s (global_position)', q);
        END IF;
        IF NOT eventstore._store_has(t, 'category_index') THEN
            EXECUTE pg_catalog.format('CREATE INDEX ON %s ((pg_catalog.split_part(stream_id, ''-'', 1)), global_position)', q);
        END IF;
        IF NOT eventstore._store_has(t, 'tags_index') THEN
            EXECUTE pg_catalog.format('CREATE INDEX ON %s USING gin (tags) WITH (fastupdate = off)'
                                      ' WHERE tags OPERATOR(pg_catalog.<>) ''{}''::pg_catalog.text[]', q);
        END IF;
        IF NOT eventstore._store_has(t, 'statement_trigger') THEN
            EXECUTE pg_catalog.format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s'
                                      ' FOR EACH STATEMENT EXECUTE FUNCTION eventstore.refuse_change()',
                                      rel OPERATOR(pg_catalog.||) '_immutable', q);
            EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', q, rel OPERATOR(pg_catalog.||) '_immutable');
        END IF;
        IF NOT eventstore._store_has(t, 'row_trigger') THEN
            EXECUTE pg_catalog.format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %s'
                                      ' FOR EACH ROW EXECUTE FUNCTION eventstore.refuse_change()',
                                      rel OPERATOR(pg_catalog.||) '_immutable_row', q);
            EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', q, rel OPERATOR(pg_catalog.||) '_immutable_row');
        END IF;
        PERFORM eventstore._store_arg(t);
        RETURN t;
    END
    $$;

-- What create_store looks for on a table, by what it does rather than by name.
CREATE FUNCTION eventstore._store_has(store regclass, what text) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
        SELECT CASE $2
        WHEN 'version_key' THEN EXISTS (
            SELECT FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indisunique
               AND i.indnkeyatts OPERATOR(pg_catalog.=) 2 AND i.indpred IS NULL AND i.indexprs IS NULL
               AND i.indkey[0] OPERATOR(pg_catalog.=) (SELECT a.attnum FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attname OPERATOR(pg_catalog.=) 'stream_id')
               AND i.indkey[1] OPERATOR(pg_catalog.=) (SELECT a.attnum FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attname OPERATOR(pg_catalog.=) 'stream_version'))
        WHEN 'event_id_key' THEN EXISTS (
            SELECT FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indisunique
               AND i.indnkeyatts OPERATOR(pg_catalog.=) 2 AND i.indpred IS NULL AND i.indexprs IS NULL
               AND i.indkey[0] OPERATOR(pg_catalog.=) (SELECT a.attnum FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attname OPERATOR(pg_catalog.=) 'stream_id')
               AND i.indkey[1] OPERATOR(pg_catalog.=) (SELECT a.attnum FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attname OPERATOR(pg_catalog.=) 'event_id'))
        WHEN 'position_index' THEN EXISTS (
            SELECT FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) $1
               AND i.indnkeyatts OPERATOR(pg_catalog.=) 1 AND i.indpred IS NULL AND i.indexprs IS NULL
               AND i.indkey[0] OPERATOR(pg_catalog.=) (SELECT a.attnum FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attname OPERATOR(pg_catalog.=) 'global_position'))
        WHEN 'category_index' THEN EXISTS (
            SELECT FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indexprs IS NOT NULL
               AND pg_catalog.pg_get_indexdef(i.indexrelid) OPERATOR(pg_catalog.~) 'split_part\(stream_id, ''-''::text, 1\)\), global_position\)')
        WHEN 'tags_index' THEN EXISTS (
            SELECT FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) $1
               AND pg_catalog.pg_get_indexdef(i.indexrelid) OPERATOR(pg_catalog.~) 'USING gin \(tags\)')
        WHEN 'statement_trigger' THEN EXISTS (
            SELECT FROM pg_catalog.pg_trigger g WHERE g.tgrelid OPERATOR(pg_catalog.=) $1
               AND g.tgfoid OPERATOR(pg_catalog.=) 'eventstore.refuse_change()'::pg_catalog.regprocedure
               AND g.tgenabled OPERATOR(pg_catalog.=) 'A'
               AND (g.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) (1 OPERATOR(pg_catalog.|) 2 OPERATOR(pg_catalog.|) 4 OPERATOR(pg_catalog.|) 8 OPERATOR(pg_catalog.|) 16 OPERATOR(pg_catalog.|) 32))
                   OPERATOR(pg_catalog.=) (2 OPERATOR(pg_catalog.|) 4 OPERATOR(pg_catalog.|) 8 OPERATOR(pg_catalog.|) 16 OPERATOR(pg_catalog.|) 32))
        WHEN 'row_trigger' THEN EXISTS (
            SELECT FROM pg_catalog.pg_trigger g WHERE g.tgrelid OPERATOR(pg_catalog.=) $1
               AND g.tgfoid OPERATOR(pg_catalog.=) 'eventstore.refuse_change()'::pg_catalog.regprocedure
               AND g.tgenabled OPERATOR(pg_catalog.=) 'A'
               AND (g.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) (1 OPERATOR(pg_catalog.|) 2 OPERATOR(pg_catalog.|) 8 OPERATOR(pg_catalog.|) 16))
                   OPERATOR(pg_catalog.=) (1 OPERATOR(pg_catalog.|) 2 OPERATOR(pg_catalog.|) 8 OPERATOR(pg_catalog.|) 16))
        END
    $$;

-- Drop a store and everything tied to it.  The caller must own the table
-- (DROP TABLE checks, as the caller); the default store is the extension's.
CREATE FUNCTION eventstore.drop_store(store regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        t regclass := eventstore._store_arg(store);
    BEGIN
        IF t OPERATOR(pg_catalog.=) 'eventstore.events'::regclass THEN
            RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
                MESSAGE = 'the default store eventstore.events cannot be dropped',
                HINT = 'It belongs to the extension: DROP EXTENSION eventstore removes it.';
        END IF;
        -- the event trigger below forgets its registry rows
        EXECUTE pg_catalog.format('DROP TABLE %s', t);
    END
    $$;

-- Dropping a store's table forgets everything tied to it: the rows of every
-- eventstore table with a store column (registries, snapshots, outbox rows,
-- subscriptions), deleted as the extension's owner (store.c).  Fires for
-- drop_store() and for a plain DROP TABLE, DROP SCHEMA ... CASCADE or DROP
-- OWNED alike.
CREATE FUNCTION eventstore._store_dropped() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'eventstore_store_dropped';
REVOKE ALL ON FUNCTION eventstore._store_dropped() FROM PUBLIC;
CREATE EVENT TRIGGER eventstore_store_dropped ON sql_drop
    WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
    EXECUTE FUNCTION eventstore._store_dropped();

-- Stores' reads and appends take the store, the default store by default.
DROP FUNCTION eventstore.append(text, bigint, eventstore.new_event[], jsonb);
CREATE FUNCTION eventstore.append(stream_id text, expected_version bigint,
                                  events eventstore.new_event[], condition jsonb DEFAULT NULL,
                                  store regclass DEFAULT 'eventstore.events',
                                  OUT stream_version bigint, OUT global_position bigint)
    RETURNS record
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_append';

DROP FUNCTION eventstore.append_event(text, bigint, text, jsonb, jsonb, uuid, text[], jsonb);
CREATE FUNCTION eventstore.append_event(stream_id text, expected_version bigint,
                                        event_type text, data jsonb,
                                        metadata jsonb DEFAULT NULL, event_id uuid DEFAULT NULL,
                                        tags text[] DEFAULT NULL, condition jsonb DEFAULT NULL,
                                        store regclass DEFAULT 'eventstore.events',
                                        OUT stream_version bigint, OUT global_position bigint)
    RETURNS record
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_append_event';

-- read_stream of another store than the default one (read.c).
CREATE FUNCTION eventstore._read_stream(store regclass, stream_id text, from_version bigint,
                                        max_count integer, backwards boolean)
    RETURNS SETOF eventstore.events
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_read_stream_in';

-- The stream reads stay inlinable SQL: with the store a constant (the
-- default, or a literal) the planner keeps only the branch for it, so a read
-- of the default store plans exactly like the bare SELECT, as before.
DROP FUNCTION eventstore.read_stream_until(text, timestamptz, bigint, integer);
DROP FUNCTION eventstore.read_stream(text, bigint, integer);
CREATE FUNCTION eventstore.read_stream(stream_id text, from_version bigint DEFAULT 1,
                                       max_count integer DEFAULT NULL,
                                       store regclass DEFAULT 'eventstore.events')
    RETURNS SETOF eventstore.events
    LANGUAGE sql STABLE PARALLEL UNSAFE
    AS $$
        SELECT e.* FROM eventstore.events e
         WHERE $4 OPERATOR(pg_catalog.=) 'eventstore.events'::pg_catalog.regclass
           AND e.stream_id OPERATOR(pg_catalog.=) eventstore._stream_arg($1)
           AND e.stream_version OPERATOR(pg_catalog.>=) COALESCE($2, 1)
           AND NOT eventstore._upcasting()
        UNION ALL
        SELECT u.* FROM eventstore.events e CROSS JOIN LATERAL eventstore._upcast(e) u
         WHERE $4 OPERATOR(pg_catalog.=) 'eventstore.events'::pg_catalog.regclass
           AND e.stream_id OPERATOR(pg_catalog.=) eventstore._stream_arg($1)
           AND e.stream_version OPERATOR(pg_catalog.>=) COALESCE($2, 1)
           AND eventstore._upcasting()
        UNION ALL
        SELECT r.* FROM eventstore._read_stream($4, $1, COALESCE($2, 1), $3, false) r
         WHERE $4 OPERATOR(pg_catalog.<>) 'eventstore.events'::pg_catalog.regclass
        ORDER BY stream_version
        LIMIT eventstore._count_arg($3)
    $$;

DROP FUNCTION eventstore.read_stream_backwards(text, bigint, integer);
CREATE FUNCTION eventstore.read_stream_backwards(stream_id text, from_version bigint DEFAULT NULL,
                                                 max_count integer DEFAULT NULL,
                                                 store regclass DEFAULT 'eventstore.events')
    RETURNS SETOF eventstore.events
    LANGUAGE sql STABLE PARALLEL UNSAFE
    AS $$
        SELECT e.* FROM eventstore.events e
         WHERE $4 OPERATOR(pg_catalog.=) 'eventstore.events'::pg_catalog.regclass
           AND e.stream_id OPERATOR(pg_catalog.=) eventstore._stream_arg($1)
           AND e.stream_version OPERATOR(pg_catalog.<=) COALESCE($2, 9223372036854775807)
           AND NOT eventstore._upcasting()
        UNION ALL
        SELECT u.* FROM eventstore.events e CROSS JOIN LATERAL eventstore._upcast(e) u
         WHERE $4 OPERATOR(pg_catalog.=) 'eventstore.events'::pg_catalog.regclass
           AND e.stream_id OPERATOR(pg_catalog.=) eventstore._stream_arg($1)
           AND e.stream_version OPERATOR(pg_catalog.<=) COALESCE($2, 9223372036854775807)
           AND eventstore._upcasting()
        UNION ALL
        SELECT r.* FROM eventstore._read_stream($4, $1, $2, $3, true) r
         WHERE $4 OPERATOR(pg_catalog.<>) 'eventstore.events'::pg_catalog.regclass
        ORDER BY stream_version DESC
        LIMIT eventstore._count_arg($3)
    $$;

-- (read_stream_until moves with the temporal reads: section "Registries
-- and temporal reads per store".)

DROP FUNCTION eventstore.stream_version(text);
CREATE FUNCTION eventstore.stream_version(stream_id text, store regclass DEFAULT 'eventstore.events')
    RETURNS bigint
    LANGUAGE sql STABLE STRICT PARALLEL RESTRICTED
    AS $$
        SELECT COALESCE(pg_catalog.max(x.v), 0) FROM (
            SELECT e.stream_version AS v FROM eventstore.events e
             WHERE $2 OPERATOR(pg_catalog.=) 'eventstore.events'::pg_catalog.regclass
               AND e.stream_id OPERATOR(pg_catalog.=) $1
            UNION ALL
            SELECT r.stream_version FROM eventstore._read_stream($2, $1, NULL, 1, true) r
             WHERE $2 OPERATOR(pg_catalog.<>) 'eventstore.events'::pg_catalog.regclass) x
    $$;

DROP FUNCTION eventstore.read_all(bigint, integer);
CREATE FUNCTION eventstore.read_all(after_position bigint DEFAULT 0,
                                    max_count integer DEFAULT 1000,
                                    store regclass DEFAULT 'eventstore.events')
    RETURNS SETOF eventstore.events
    LANGUAGE c VOLATILE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_read_all';

DROP FUNCTION eventstore.read_category(text, bigint, integer);
CREATE FUNCTION eventstore.read_category(category text, after_position bigint DEFAULT 0,
                                         max_count integer DEFAULT 1000,
                                         store regclass DEFAULT 'eventstore.events')
    RETURNS SETOF eventstore.events
    LANGUAGE c VOLATILE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_read_category';

-- A store's owner creates its triggers, and CREATE TRIGGER needs EXECUTE on
-- the function; refuse_change only raises (39P01 when called directly), so
-- PUBLIC may have it.
GRANT EXECUTE ON FUNCTION eventstore.refuse_change() TO PUBLIC;
REVOKE ALL ON FUNCTION eventstore.create_store(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.drop_store(regclass) FROM PUBLIC;

-- == Registries and temporal reads per store ===============================
-- (projections, upcasters, snapshots and policies, aggregate, read_stream_until,
-- read_all_until, stream_version_at)

-- == Outbox, consumers, subscriptions, DCB, import and statistics per store ==

-- == grant_access per store ================================================
-- grant_access takes the store.  Levels map to privileges a DBA can see
-- with \dp: reader = SELECT on the store, writer = SELECT and INSERT on it
-- (INSERT is the right to append, through append() only) and EXECUTE on the
-- writing functions.  Functions are granted by name, so every signature of
-- a function gets the grant.  admin is for the default store: a named
-- store's admin is its owner (registering on a store needs ownership).
DROP FUNCTION eventstore.grant_access(regrole, text);
CREATE FUNCTION eventstore.grant_access(role regrole, access text,
                                        store regclass DEFAULT 'eventstore.events') RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        writer text[] := ARRAY['append', 'append_event', 'enqueue', 'save_snapshot', 'encrypt'];
        consumer text[] := ARRAY['consumer_poll', 'consumer_ack', 'drop_consumer', 'consumer_status',
                                 'create_subscription', 'alter_subscription', 'drop_subscription',
                                 'reset_subscription', 'poll', 'ack', 'nack', 'parked', 'replay_parked',
                                 'subscription_status'];
        admin text[] := ARRAY['register_projection', 'unregister_projection', 'enable_projection',
                              'disable_projection', 'rebuild_projection', 'add_route', 'remove_route',
                              'relay_once', 'register_upcaster', 'unregister_upcaster',
                              'set_snapshot_policy', 'remove_snapshot_policy', 'import_events',
                              'create_store', 'drop_store'];
        lifecycle text[] := ARRAY['set_stream_metadata', 'set_category_metadata', 'delete_stream', 'purge', 'forget'];
        names text[];
        t regclass;
        f regprocedure;
    BEGIN
        IF role IS NULL OR access IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
                MESSAGE = 'role and access must not be null';
        END IF;
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) role::pg_catalog.oid) THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_object',
                MESSAGE = pg_catalog.format('role with OID %s does not exist', role::oid);
        END IF;
        IF access NOT IN ('reader', 'writer', 'consumer', 'admin', 'lifecycle') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = pg_catalog.format('unknown access "%s"', access),
                HINT = 'Use reader, writer, consumer, admin or lifecycle.';
        END IF;
        t := eventstore._store_arg(store);
        IF access OPERATOR(pg_catalog.=) 'admin' AND t OPERATOR(pg_catalog.<>) 'eventstore.events'::regclass THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = pg_catalog.format('admin access is given for the default store only; the admin of %s is its owner', t),
                HINT = pg_catalog.format('Make the role a member of the role that owns %s, or give it writer access.', t);
        END IF;
        EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA eventstore TO %s', role);
        IF access IN ('reader', 'writer', 'admin') THEN
            EXECUTE pg_catalog.format('GRANT SELECT ON %s TO %s', t, role);
            EXECUTE pg_catalog.format('GRANT SELECT ON eventstore.projections,'
                                      ' eventstore.routes, eventstore.snapshots TO %s', role);
        END IF;
        IF access IN ('writer', 'admin') THEN
            EXECUTE pg_catalog.format('GRANT INSERT ON %s TO %s', t, role);
        END IF;
        -- lifecycle (section "Lifecycle"): DELETE on the store is the right to
        -- delete through the lifecycle functions (the triggers still refuse a
        -- DELETE statement); admin does not include it.
        IF access OPERATOR(pg_catalog.=) 'lifecycle' THEN
            EXECUTE pg_catalog.format('GRANT SELECT, DELETE ON %s TO %s', t, role);
            EXECUTE pg_catalog.format('GRANT SELECT ON eventstore.stream_lifecycle,'
                                      ' eventstore.lifecycle_log TO %s', role);
        END IF;
        names := CASE access
            WHEN 'reader' THEN ARRAY[]::text[]
            WHEN 'writer' THEN writer
            WHEN 'lifecycle' THEN lifecycle
            WHEN 'consumer' THEN consumer
            ELSE writer OPERATOR(pg_catalog.||) consumer OPERATOR(pg_catalog.||) admin
        END;
        IF access IN ('consumer', 'admin') THEN
            EXECUTE pg_catalog.format('GRANT SELECT ON eventstore.consumer_status,'
                                      ' eventstore.subscription_status TO %s', role);
        END IF;
        IF access OPERATOR(pg_catalog.=) 'admin' THEN
            EXECUTE pg_catalog.format('GRANT SELECT ON eventstore.outbox, eventstore.consumers,'
                                      ' eventstore.outbox_messages, eventstore.relay_state,'
                                      ' eventstore.relay_status TO %s', role);
            EXECUTE pg_catalog.format('GRANT UPDATE ON eventstore.consumers TO %s', role);
            EXECUTE pg_catalog.format('GRANT SELECT ON eventstore.subscriptions, eventstore.subscription_partitions,'
                                      ' eventstore.subscription_consumers, eventstore.subscription_retries,'
                                      ' eventstore.subscription_parked, eventstore.subscription_leases TO %s', role);
            EXECUTE pg_catalog.format('GRANT UPDATE ON eventstore.subscriptions TO %s', role);
            EXECUTE pg_catalog.format('GRANT SELECT ON eventstore.stats, eventstore.category_stats,'
                                      ' eventstore.projection_stats, eventstore.horizon_status,'
                                      ' eventstore.relay_lag, eventstore.consumer_lag TO %s', role);
            -- functions a view calls are checked against the view's user, not its owner
            EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION eventstore._stats(),'
                                      ' eventstore._horizon_status() TO %s', role);
        END IF;
        FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
                  WHERE p.pronamespace OPERATOR(pg_catalog.=) 'eventstore'::regnamespace
                    AND p.proname::text OPERATOR(pg_catalog.=) ANY (names)
                  ORDER BY p.oid LOOP
            EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s', f, role);
        END LOOP;
    END
    $$;

-- == Lifecycle: retention, deletion, crypto-shredding =======================
-- Stream metadata (max_age, max_count, truncate_before), per stream and as
-- defaults per category, soft and hard deletion, and the physical purge
-- (lifecycle.c).  Reads hide what the metadata hides at once; purge()
-- removes it later, in batches.  Stored events stay immutable: the store's
-- triggers refuse every DELETE except the purge's own, which only the C code
-- of purge() can make.  Every change is written to eventstore.lifecycle_log.

-- One row per stream (category false) or per category default (category
-- true) of a store.  deleted_version: a soft delete hid versions up to it;
-- tombstone: a hard delete, the stream can never be appended to again;
-- version_floor: the last version the purge removed, so a stream whose
-- events are all gone keeps counting its versions; pending: the purge has
-- work left on the row (always, while max_age or max_count is set).
CREATE TABLE eventstore.stream_lifecycle (
    store           regclass    NOT NULL,
    category        boolean     NOT NULL,
    name            text        NOT NULL,
    max_age         interval,
    max_count       bigint,
    truncate_before bigint,
    deleted_version bigint,
    tombstone       boolean     NOT NULL DEFAULT false,
    version_floor   bigint      NOT NULL DEFAULT 0,
    pending         boolean     NOT NULL DEFAULT true,
    changed_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT stream_lifecycle_pkey PRIMARY KEY (store, category, name),
    CONSTRAINT stream_lifecycle_max_age CHECK (max_age OPERATOR(pg_catalog.>) '0'::interval),
    CONSTRAINT stream_lifecycle_max_count CHECK (max_count OPERATOR(pg_catalog.>) 0),
    CONSTRAINT stream_lifecycle_truncate_before CHECK (truncate_before OPERATOR(pg_catalog.>) 0),
    CONSTRAINT stream_lifecycle_stream_only CHECK (NOT category OR
        (deleted_version IS NULL AND NOT tombstone AND version_floor OPERATOR(pg_catalog.=) 0))
);
CREATE INDEX stream_lifecycle_pending_idx ON eventstore.stream_lifecycle (store, name)
    WHERE pending AND NOT category;
SELECT pg_catalog.pg_extension_config_dump('eventstore.stream_lifecycle', '');

-- The audit log of every deletion, metadata change, purge batch and forget.
-- It holds no personal data: a stream is named by the SHA-256 of its id
-- (whoever knows the id can check that it was deleted; nobody can read the
-- id back), a subject likewise; reason is the caller's text (a ticket number,
-- not a name).  The store is its name at the time, not a regclass: the log
-- outlives a dropped store.  Rows are never updated or deleted.
CREATE TABLE eventstore.lifecycle_log (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    actor        name        NOT NULL,
    store_name   text        NOT NULL,
    action       text        NOT NULL,
    stream_hash  bytea,
    category     text,
    from_version bigint,
    to_version   bigint,
    events       bigint,
    reason       text,
    CONSTRAINT lifecycle_log_action CHECK (action IN
        ('metadata', 'delete', 'tombstone', 'purge', 'forget'))
);
SELECT pg_catalog.pg_extension_config_dump('eventstore.lifecycle_log', '');
SELECT pg_catalog.pg_extension_config_dump('eventstore.lifecycle_log_id_seq', '');
CREATE TRIGGER lifecycle_log_immutable
    BEFORE UPDATE OR DELETE OR TRUNCATE ON eventstore.lifecycle_log
    FOR EACH STATEMENT EXECUTE FUNCTION eventstore.refuse_change();
ALTER TABLE eventstore.lifecycle_log ENABLE ALWAYS TRIGGER lifecycle_log_immutable;
CREATE TRIGGER lifecycle_log_immutable_row
    BEFORE UPDATE OR DELETE ON eventstore.lifecycle_log
    FOR EACH ROW EXECUTE FUNCTION eventstore.refuse_change();
ALTER TABLE eventstore.lifecycle_log ENABLE ALWAYS TRIGGER lifecycle_log_immutable_row;

-- Metadata of one stream, or the default of a category (every stream whose
-- id starts with "category-" without a value of its own).  NULL clears a
-- value.  Needs DELETE on the store (lifecycle access).
CREATE FUNCTION eventstore.set_stream_metadata(stream_id text, max_age interval DEFAULT NULL,
                                               max_count bigint DEFAULT NULL,
                                               truncate_before bigint DEFAULT NULL,
                                               reason text DEFAULT NULL,
                                               store regclass DEFAULT 'eventstore.events')
    RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_set_stream_metadata';
CREATE FUNCTION eventstore.set_category_metadata(category text, max_age interval DEFAULT NULL,
                                                 max_count bigint DEFAULT NULL,
                                                 truncate_before bigint DEFAULT NULL,
                                                 reason text DEFAULT NULL,
                                                 store regclass DEFAULT 'eventstore.events')
    RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_set_category_metadata';

-- What a stream's metadata makes of it now (its own values, else its
-- category's): the values, the first version reads return, whether it is
-- deleted or tombstoned.  Needs SELECT on the store.
CREATE FUNCTION eventstore.stream_metadata(stream_id text, store regclass DEFAULT 'eventstore.events',
                                           OUT max_age interval, OUT max_count bigint,
                                           OUT truncate_before bigint, OUT first_version bigint,
                                           OUT deleted boolean, OUT tombstone boolean)
    RETURNS record
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_stream_metadata';

-- Soft delete (hard false): the stream's events disappear from reads; an
-- append with expected version 0 (or NULL, or the stream's version)
-- recreates it, its versions continuing.  Hard delete: a tombstone, every
-- later append is refused with ES410.  The purge removes the events.
-- Returns the stream's version.
CREATE FUNCTION eventstore.delete_stream(stream_id text, expected_version bigint,
                                         hard boolean DEFAULT false, reason text DEFAULT NULL,
                                         store regclass DEFAULT 'eventstore.events')
    RETURNS bigint
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_delete_stream';

-- Remove up to max_count events that the metadata hides, from one store,
-- with what derives from them (snapshots of the streams, outbox rows,
-- subscription retries and parked events).  Returns the number removed;
-- call again until it returns 0.
CREATE FUNCTION eventstore.purge(max_count integer DEFAULT 1000,
                                 store regclass DEFAULT 'eventstore.events')
    RETURNS bigint
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_purge';

-- Crypto-shredding (shred.c): one key per data subject and store, made by
-- encrypt() at the subject's first use, destroyed by forget().  Only the
-- extension's owner can read this table.  pgcrypto is needed by the stores
-- that encrypt, not by eventstore.  Dumps include the keys (a restore
-- without them loses every encrypted value): see the README's threat model.
-- forget() keeps the row without its key and subject (both NULL): its
-- envelopes read as the marker, and the store keeps reading through the
-- decrypting plan.
CREATE TABLE eventstore.subject_keys (
    store      regclass    NOT NULL,
    subject    text,
    key_id     uuid        NOT NULL,
    key        bytea,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT subject_keys_pkey PRIMARY KEY (key_id),
    CONSTRAINT subject_keys_subject_key UNIQUE (store, subject),
    CONSTRAINT subject_keys_forgotten CHECK ((subject IS NULL) OPERATOR(pg_catalog.=) (key IS NULL))
);
SELECT pg_catalog.pg_extension_config_dump('eventstore.subject_keys', '');

-- The envelope {"$es_enc": {"k": key id, "c": ciphertext}} of value under
-- the subject's key: put it in an event's data, whole or as chosen fields.
-- Needs INSERT on the store (writer access).
CREATE FUNCTION eventstore.encrypt(subject text, value jsonb,
                                   store regclass DEFAULT 'eventstore.events')
    RETURNS jsonb
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_encrypt';
-- value with its envelopes in clear, or {"$es_forgotten": true} where the
-- key is gone.  The reads of a store with keys apply it to data.  Needs
-- SELECT on the store.
CREATE FUNCTION eventstore.decrypt(value jsonb, store regclass DEFAULT 'eventstore.events')
    RETURNS jsonb
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_plain';
-- Destroy the subject's key: its data reads as the marker for ever.
-- Needs lifecycle access.  Returns whether the subject had a key.
CREATE FUNCTION eventstore.forget(subject text, reason text DEFAULT NULL,
                                  store regclass DEFAULT 'eventstore.events')
    RETURNS boolean
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_forget';
REVOKE ALL ON FUNCTION eventstore.encrypt(text, jsonb, regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.forget(text, text, regclass) FROM PUBLIC;

-- For the reads: does the store have any lifecycle row or key; is this event
-- visible; the stream's version kept by deletions and purges.
-- _lifecycle_active is declared IMMUTABLE on purpose, like _upcasting(): the
-- planner folds it, so a read of a store without lifecycle rows plans exactly
-- like the bare SELECT.  The functions that give a store its first row (or
-- take a category's away) invalidate the plans that read the store.
CREATE FUNCTION eventstore._lifecycle_active(store regclass) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_lifecycle_active';
CREATE FUNCTION eventstore._visible(store regclass, stream_id text, stream_version bigint,
                                    created_at timestamptz) RETURNS boolean
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_visible';
CREATE FUNCTION eventstore._version_floor(store regclass, stream_id text) RETURNS bigint
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_version_floor';

-- The stream reads honour the metadata.  With no lifecycle row for the
-- store, _lifecycle_active() is false and the branches that filter are
-- gated off (one-time filters): the default store's read plans as the bare
-- SELECT, as before.
CREATE OR REPLACE FUNCTION eventstore.read_stream(stream_id text, from_version bigint DEFAULT 1,
                                                  max_count integer DEFAULT NULL,
                                                  store regclass DEFAULT 'eventstore.events')
    RETURNS SETOF eventstore.events
    LANGUAGE sql STABLE PARALLEL UNSAFE
    AS $$
        SELECT e.* FROM eventstore.events e
         WHERE $4 OPERATOR(pg_catalog.=) 'eventstore.events'::pg_catalog.regclass
           AND e.stream_id OPERATOR(pg_catalog.=) eventstore._stream_arg($1)
           AND e.stream_version OPERATOR(pg_catalog.>=) COALESCE($2, 1)
           AND NOT eventstore._upcasting()
           AND NOT eventstore._lifecycle_active($4)
        UNION ALL
        SELECT e.global_position, e.stream_id, e.stream_version, e.event_id, e.event_type,
               eventstore.decrypt(e.data, $4), e.metadata, e.created_at, e.tags
          FROM eventstore.events e
         WHERE $4 OPERATOR(pg_catalog.=) 'eventstore.events'::pg_catalog.regclass
           AND e.stream_id OPERATOR(pg_catalog.=) eventstore._stream_arg($1)
           AND e.stream_version OPERATOR(pg_catalog.>=) COALESCE($2, 1)
           AND NOT eventstore._upcasting()
           AND eventstore._lifecycle_active($4)
           AND eventstore._visible($4, e.stream_id, e.stream_version, e.created_at)
        UNION ALL
        SELECT u.* FROM eventstore.events e
         CROSS JOIN LATERAL eventstore._upcast(CASE WHEN eventstore._lifecycle_active($4)
             THEN ROW(e.global_position, e.stream_id, e.stream_version, e.event_id, e.event_type,
                      eventstore.decrypt(e.data, $4), e.metadata, e.created_at, e.tags)::eventstore.events
             ELSE e END) u
         WHERE $4 OPERATOR(pg_catalog.=) 'eventstore.events'::pg_catalog.regclass
           AND e.stream_id OPERATOR(pg_catalog.=) eventstore._stream_arg($1)
           AND e.stream_version OPERATOR(pg_catalog.>=) COALESCE($2, 1)
           AND eventstore._upcasting()
           AND (NOT eventstore._lifecycle_active($4)
                OR eventstore._visible($4, e.stream_id, e.stream_version, e.created_at))
        UNION ALL
        SELECT r.* FROM eventstore._read_stream($4, $1, COALESCE($2, 1), $3, false) r
         WHERE $4 OPERATOR(pg_catalog.<>) 'eventstore.events'::pg_catalog.regclass
        ORDER BY stream_version
        LIMIT eventstore._count_arg($3)
    $$;

CREATE OR REPLACE FUNCTION eventstore.read_stream_backwards(stream_id text, from_version bigint DEFAULT NULL,
                                                            max_count integer DEFAULT NULL,
                                                            store regclass DEFAULT 'eventstore.events')
    RETURNS SETOF eventstore.events
    LANGUAGE sql STABLE PARALLEL UNSAFE
    AS $$
        SELECT e.* FROM eventstore.events e
         WHERE $4 OPERATOR(pg_catalog.=) 'eventstore.events'::pg_catalog.regclass
           AND e.stream_id OPERATOR(pg_catalog.=) eventstore._stream_arg($1)
           AND e.stream_version OPERATOR(pg_catalog.<=) COALESCE($2, 9223372036854775807)
           AND NOT eventstore._upcasting()
           AND NOT eventstore._lifecycle_active($4)
        UNION ALL
        SELECT e.global_position, e.stream_id, e.stream_version, e.event_id, e.event_type,
               eventstore.decrypt(e.data, $4), e.metadata, e.created_at, e.tags
          FROM eventstore.events e
         WHERE $4 OPERATOR(pg_catalog.=) 'eventstore.events'::pg_catalog.regclass
           AND e.stream_id OPERATOR(pg_catalog.=) eventstore._stream_arg($1)
           AND e.stream_version OPERATOR(pg_catalog.<=) COALESCE($2, 9223372036854775807)
           AND NOT eventstore._upcasting()
           AND eventstore._lifecycle_active($4)
           AND eventstore._visible($4, e.stream_id, e.stream_version, e.created_at)
        UNION ALL
        SELECT u.* FROM eventstore.events e
         CROSS JOIN LATERAL eventstore._upcast(CASE WHEN eventstore._lifecycle_active($4)
             THEN ROW(e.global_position, e.stream_id, e.stream_version, e.event_id, e.event_type,
                      eventstore.decrypt(e.data, $4), e.metadata, e.created_at, e.tags)::eventstore.events
             ELSE e END) u
         WHERE $4 OPERATOR(pg_catalog.=) 'eventstore.events'::pg_catalog.regclass
           AND e.stream_id OPERATOR(pg_catalog.=) eventstore._stream_arg($1)
           AND e.stream_version OPERATOR(pg_catalog.<=) COALESCE($2, 9223372036854775807)
           AND eventstore._upcasting()
           AND (NOT eventstore._lifecycle_active($4)
                OR eventstore._visible($4, e.stream_id, e.stream_version, e.created_at))
        UNION ALL
        SELECT r.* FROM eventstore._read_stream($4, $1, $2, $3, true) r
         WHERE $4 OPERATOR(pg_catalog.<>) 'eventstore.events'::pg_catalog.regclass
        ORDER BY stream_version DESC
        LIMIT eventstore._count_arg($3)
    $$;

-- The version keeps counting: a deleted, truncated or purged stream still
-- reports the last version it reached, and its next append continues from it.
CREATE OR REPLACE FUNCTION eventstore.stream_version(stream_id text, store regclass DEFAULT 'eventstore.events')
    RETURNS bigint
    LANGUAGE sql STABLE STRICT PARALLEL RESTRICTED
    AS $$
        SELECT pg_catalog.max(x.v) FROM (
            SELECT e.stream_version AS v FROM eventstore.events e
             WHERE $2 OPERATOR(pg_catalog.=) 'eventstore.events'::pg_catalog.regclass
               AND e.stream_id OPERATOR(pg_catalog.=) $1
            UNION ALL
            SELECT eventstore._version_floor($2, $1)) x
    $$;

REVOKE ALL ON FUNCTION eventstore.set_stream_metadata(text, interval, bigint, bigint, text, regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.set_category_metadata(text, interval, bigint, bigint, text, regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.delete_stream(text, bigint, boolean, text, regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.purge(integer, regclass) FROM PUBLIC;

-- == Grants carried over (2 of 2) ==========================================
-- Every function re-created above under a name that had grants gets them
-- back; a name that was revoked from PUBLIC is revoked again.
DO $$
DECLARE
    f record;
    g record;
BEGIN
    FOR f IN SELECT p.oid::pg_catalog.regprocedure AS fn, p.proname::pg_catalog.text AS name
               FROM pg_catalog.pg_proc p
              WHERE p.pronamespace OPERATOR(pg_catalog.=) 'eventstore'::pg_catalog.regnamespace
                AND p.proacl IS NULL
                AND p.proname::pg_catalog.text IN (SELECT r.name FROM eventstore._revoked_0_6_0 r) LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f.fn);
        FOR g IN SELECT x.grantee, x.is_grantable FROM eventstore._grants_0_6_0 x
                  WHERE x.name OPERATOR(pg_catalog.=) f.name LOOP
            EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s%s', f.fn,
                                      CASE WHEN g.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                                           ELSE g.grantee::pg_catalog.regrole::pg_catalog.text END,
                                      CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
    END LOOP;
END
$$;
DROP TABLE eventstore._grants_0_6_0;
DROP TABLE eventstore._revoked_0_6_0;

-- == Initial privileges ====================================================
-- GRANTs run by an extension script are recorded as the extension's initial
-- privileges (pg_init_privs), and pg_dump dumps only what differs from them.
-- This script re-grants privileges of existing roles on objects it replaces
-- or adds (add_route, relay_status, the consumer and subscription
-- functions, UPDATE on consumers): recorded as initial, they would be lost by the next dump and
-- restore (the schema's USAGE too).  A fresh install grants only to PUBLIC
-- and pg_monitor, so the
-- initial privileges keep exactly those grantees (and the owner); every
-- other role's grant is left to pg_dump, as a grant the DBA made.
DO $$
DECLARE
    ext pg_catalog.oid := (SELECT e.oid FROM pg_catalog.pg_extension e
                            WHERE e.extname OPERATOR(pg_catalog.=) 'eventstore');
    keep pg_catalog.oid[] := ARRAY[0::pg_catalog.oid, 'pg_monitor'::pg_catalog.regrole::pg_catalog.oid,
                                   (SELECT e.extowner FROM pg_catalog.pg_extension e
                                     WHERE e.extname OPERATOR(pg_catalog.=) 'eventstore')];
    r record;
    kept pg_catalog.aclitem[];
BEGIN
    FOR r IN SELECT i.objoid, i.classoid, i.objsubid, i.initprivs
               FROM pg_catalog.pg_init_privs i
              WHERE i.privtype OPERATOR(pg_catalog.=) 'e'
                AND ((i.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
                      AND i.objoid OPERATOR(pg_catalog.=) 'eventstore'::pg_catalog.regnamespace)
                     OR EXISTS (SELECT FROM pg_catalog.pg_depend d
                             WHERE d.classid OPERATOR(pg_catalog.=) i.classoid
                               AND d.objid OPERATOR(pg_catalog.=) i.objoid
                               AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
                               AND d.refobjid OPERATOR(pg_catalog.=) ext
                               AND d.deptype OPERATOR(pg_catalog.=) 'e'))
    LOOP
        kept := ARRAY(SELECT item FROM pg_catalog.unnest(r.initprivs) AS item
                       WHERE NOT EXISTS (SELECT FROM pg_catalog.aclexplode(ARRAY[item]) x
                                          WHERE x.grantee OPERATOR(pg_catalog.<>) ALL (keep)));
        IF kept IS DISTINCT FROM r.initprivs THEN
            UPDATE pg_catalog.pg_init_privs i SET initprivs = kept
             WHERE i.objoid OPERATOR(pg_catalog.=) r.objoid
               AND i.classoid OPERATOR(pg_catalog.=) r.classoid
               AND i.objsubid OPERATOR(pg_catalog.=) r.objsubid;
        END IF;
    END LOOP;
END
$$;
