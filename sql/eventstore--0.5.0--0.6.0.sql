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
        -- an adopted table with events: the position sequence moves past them
        -- (EXECUTE on _store_adopt, given to admins, is needed only then)
        EXECUTE pg_catalog.format('SELECT EXISTS (SELECT FROM %s)', t) INTO typed;
        IF typed THEN
            PERFORM eventstore._store_adopt(t);
        END IF;
        RETURN t;
    END
    $$;

-- Move the position sequence past an adopted store's events (store.c).
CREATE FUNCTION eventstore._store_adopt(store regclass) RETURNS bigint
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_store_adopt';
REVOKE ALL ON FUNCTION eventstore._store_adopt(regclass) FROM PUBLIC;

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

-- The stream reads and stream_version become C functions (read.c), one
-- statement prepared per store: an SQL body for every store would name the
-- default store's table, and PostgreSQL checks the caller's privileges on
-- every table a query names, even in a branch the planner removes, so a
-- tenant of one store would need SELECT on eventstore.events.
DROP FUNCTION eventstore.read_stream_until(text, timestamptz, bigint, integer);
DROP FUNCTION eventstore.read_stream(text, bigint, integer);
CREATE FUNCTION eventstore.read_stream(stream_id text, from_version bigint DEFAULT 1,
                                       max_count integer DEFAULT NULL,
                                       store regclass DEFAULT 'eventstore.events')
    RETURNS SETOF eventstore.events
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_read_stream';

DROP FUNCTION eventstore.read_stream_backwards(text, bigint, integer);
CREATE FUNCTION eventstore.read_stream_backwards(stream_id text, from_version bigint DEFAULT NULL,
                                                 max_count integer DEFAULT NULL,
                                                 store regclass DEFAULT 'eventstore.events')
    RETURNS SETOF eventstore.events
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_read_stream_backwards';

-- (read_stream_until moves with the temporal reads: section "Registries
-- and temporal reads per store".)

DROP FUNCTION eventstore.stream_version(text);
CREATE FUNCTION eventstore.stream_version(stream_id text, store regclass DEFAULT 'eventstore.events')
    RETURNS bigint
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_stream_version';

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
-- Projections, upcasters, snapshots and snapshot policies belong to a store
-- (the column store; existing rows are the default store's).  A projection
-- or policy fires only for appends to its store, upcasters apply only to
-- reads of it, a fold reads and snapshots only its store.  drop_store (and
-- the sql_drop trigger) delete the rows through eventstore._forget_store.
-- On a store other than the default one, managing these entries takes
-- owning the store (besides EXECUTE on the function); reading a store's
-- snapshots or folding it takes SELECT on the store, saving a snapshot
-- INSERT.  Projection names stay unique in the database: unregister,
-- enable, disable and rebuild_projection take the name alone.
ALTER TABLE eventstore.projections
    ADD COLUMN store regclass NOT NULL DEFAULT 'eventstore.events';
COMMENT ON COLUMN eventstore.projections.store IS
    'The store whose appends the projection sees.';

ALTER TABLE eventstore.upcasters
    ADD COLUMN store regclass NOT NULL DEFAULT 'eventstore.events';
ALTER TABLE eventstore.upcasters DROP CONSTRAINT upcasters_pkey;
ALTER TABLE eventstore.upcasters ADD CONSTRAINT upcasters_pkey PRIMARY KEY (store, event_type);
COMMENT ON COLUMN eventstore.upcasters.store IS
    'The store whose reads the upcaster applies to.';

ALTER TABLE eventstore.snapshots
    ADD COLUMN store regclass NOT NULL DEFAULT 'eventstore.events';
ALTER TABLE eventstore.snapshots DROP CONSTRAINT snapshots_pkey;
ALTER TABLE eventstore.snapshots
    ADD CONSTRAINT snapshots_pkey PRIMARY KEY (store, stream_id, snapshot_type, stream_version);
COMMENT ON COLUMN eventstore.snapshots.store IS
    'The store of the stream.';

ALTER TABLE eventstore.snapshot_policies
    ADD COLUMN store regclass NOT NULL DEFAULT 'eventstore.events';
ALTER TABLE eventstore.snapshot_policies DROP CONSTRAINT snapshot_policies_pkey;
ALTER TABLE eventstore.snapshot_policies
    ADD CONSTRAINT snapshot_policies_pkey PRIMARY KEY (store, snapshot_type);
COMMENT ON COLUMN eventstore.snapshot_policies.store IS
    'The store whose appends the policy takes snapshots of.';

DROP FUNCTION eventstore.register_projection(text, regprocedure, text[], regprocedure);
CREATE FUNCTION eventstore.register_projection(name text, handler regprocedure,
                                               event_types text[] DEFAULT NULL,
                                               reset_handler regprocedure DEFAULT NULL,
                                               store regclass DEFAULT 'eventstore.events')
    RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_register_projection';

DROP FUNCTION eventstore.register_upcaster(text, regprocedure);
CREATE FUNCTION eventstore.register_upcaster(event_type text, handler regprocedure,
                                             store regclass DEFAULT 'eventstore.events')
    RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_register_upcaster';
DROP FUNCTION eventstore.unregister_upcaster(text);
CREATE FUNCTION eventstore.unregister_upcaster(event_type text,
                                               store regclass DEFAULT 'eventstore.events')
    RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_unregister_upcaster';

-- A row of another store, as eventstore.events (same columns, same order),
-- through that store's upcasters; the reads of a store other than the
-- default one use it (upcast.c).  The caller must be able to read the store.
CREATE FUNCTION eventstore._upcast(e eventstore.events, store regclass) RETURNS eventstore.events
    LANGUAGE c STABLE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_upcast_in';

DROP FUNCTION eventstore.save_snapshot(text, bigint, jsonb, text);
CREATE FUNCTION eventstore.save_snapshot(stream_id text, stream_version bigint, state jsonb,
                                         snapshot_type text DEFAULT 'default',
                                         store regclass DEFAULT 'eventstore.events')
    RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_save_snapshot';

-- C now: the snapshots are read as the extension's owner once the caller is
-- found to have SELECT on the store.
DROP FUNCTION eventstore.load_snapshot(text, text, bigint);
CREATE FUNCTION eventstore.load_snapshot(stream_id text, snapshot_type text DEFAULT 'default',
                                         max_version bigint DEFAULT NULL,
                                         store regclass DEFAULT 'eventstore.events')
    RETURNS TABLE (stream_version bigint, state jsonb, created_at timestamptz)
    LANGUAGE c STABLE PARALLEL RESTRICTED ROWS 1
    AS 'MODULE_PATHNAME', 'eventstore_load_snapshot';

DROP FUNCTION eventstore.aggregate(text, regprocedure, jsonb, bigint, timestamptz, text);
CREATE FUNCTION eventstore.aggregate(stream_id text, reducer regprocedure, initial jsonb DEFAULT '{}',
                                     until_version bigint DEFAULT NULL, until_time timestamptz DEFAULT NULL,
                                     snapshot_type text DEFAULT NULL,
                                     store regclass DEFAULT 'eventstore.events')
    RETURNS jsonb
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_aggregate';

DROP FUNCTION eventstore.set_snapshot_policy(text, regprocedure, bigint, jsonb, text[]);
CREATE FUNCTION eventstore.set_snapshot_policy(snapshot_type text, reducer regprocedure, every bigint,
                                               initial jsonb DEFAULT '{}', categories text[] DEFAULT NULL,
                                               store regclass DEFAULT 'eventstore.events')
    RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_set_snapshot_policy';
DROP FUNCTION eventstore.remove_snapshot_policy(text);
CREATE FUNCTION eventstore.remove_snapshot_policy(snapshot_type text,
                                                  store regclass DEFAULT 'eventstore.events')
    RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_remove_snapshot_policy';

-- Temporal reads.  read_stream_until reads through read_stream, so with the
-- store a constant it inlines to the default store's bare query, as before.
CREATE FUNCTION eventstore.read_stream_until(stream_id text, until_time timestamptz,
                                             from_version bigint DEFAULT 1, max_count integer DEFAULT NULL,
                                             store regclass DEFAULT 'eventstore.events')
    RETURNS SETOF eventstore.events
    LANGUAGE sql STABLE PARALLEL UNSAFE
    AS $$
        SELECT r.* FROM eventstore.read_stream($1, $3, NULL, $5) r
         WHERE r.created_at OPERATOR(pg_catalog.<=) eventstore._time_arg($2)
         ORDER BY r.stream_version
         LIMIT eventstore._count_arg($4)
    $$;

DROP FUNCTION eventstore.read_all_until(timestamptz, bigint, integer);
CREATE FUNCTION eventstore.read_all_until(until_time timestamptz, after_position bigint DEFAULT 0,
                                          max_count integer DEFAULT 1000,
                                          store regclass DEFAULT 'eventstore.events')
    RETURNS SETOF eventstore.events
    LANGUAGE c VOLATILE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_read_all_until';

-- C now (aggregate.c), for every store: an SQL body reading the default
-- store inline would need SELECT on eventstore.events to read any store (every
-- table a query names is checked, also in a branch the planner removes).
DROP FUNCTION eventstore.stream_version_at(text, timestamptz);
CREATE FUNCTION eventstore.stream_version_at(stream_id text, at timestamptz,
                                             store regclass DEFAULT 'eventstore.events')
    RETURNS bigint
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_stream_version_at';

-- == Outbox, consumers, subscriptions, DCB, import and statistics per store ==
-- Routes, outbox rows and subscriptions belong to a store (column store:
-- eventstore._forget_store() deletes them with it); channel and
-- subscription names stay unique per database.  Consumers follow their
-- channel.  DCB conditions, read_query and import_events work on one store;
-- the statistics views name it.

-- A route matches the events of its store only.
ALTER TABLE eventstore.routes ADD COLUMN store regclass NOT NULL DEFAULT 'eventstore.events';
COMMENT ON COLUMN eventstore.routes.store IS 'The store whose events the route matches.';

-- An event's outbox row names its store; a message of enqueue() has none.
ALTER TABLE eventstore.outbox ADD COLUMN store regclass DEFAULT 'eventstore.events';
UPDATE eventstore.outbox o SET store = NULL WHERE o.global_position IS NULL;
ALTER TABLE eventstore.outbox ADD CONSTRAINT outbox_store_of_event
    CHECK ((store IS NULL) OPERATOR(pg_catalog.=) (global_position IS NULL));
COMMENT ON COLUMN eventstore.outbox.store IS 'The store of the event (NULL for a message of enqueue()).';

-- outbox_messages (consumer_poll) reads the event of another store than the
-- default one from its table (outbox.c), and names the store, as the relay does.
CREATE FUNCTION eventstore._outbox_event(store regclass, "position" bigint)
    RETURNS SETOF eventstore.events
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_outbox_event';
CREATE OR REPLACE VIEW eventstore.outbox_messages AS
SELECT o.id, o.channel, o.global_position, o.created_at, o.published_at,
       CASE WHEN o.global_position IS NULL THEN
           pg_catalog.jsonb_build_object('id', o.id, 'channel', o.channel,
                                         'payload', o.payload, 'headers', o.headers)
       ELSE
           pg_catalog.jsonb_build_object('id', o.id, 'channel', o.channel,
                                         'position', e.global_position, 'stream_id', e.stream_id,
                                         'stream_version', e.stream_version, 'event_type', e.event_type,
                                         'event_id', e.event_id, 'data', e.data)
           OPERATOR(pg_catalog.||)
           CASE WHEN o.store OPERATOR(pg_catalog.=) 'eventstore.events'::pg_catalog.regclass
                THEN '{}'::pg_catalog.jsonb
                ELSE pg_catalog.jsonb_build_object('store',
                         (SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
                            FROM pg_catalog.pg_class c
                            JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
                           WHERE c.oid OPERATOR(pg_catalog.=) o.store)) END
       END AS message
  FROM eventstore.outbox o
  LEFT JOIN LATERAL (
        SELECT x.* FROM eventstore.events x
         WHERE x.global_position OPERATOR(pg_catalog.=) o.global_position
           AND o.store OPERATOR(pg_catalog.=) 'eventstore.events'::pg_catalog.regclass
        UNION ALL
        SELECT y.* FROM eventstore._outbox_event(o.store, o.global_position) y
         WHERE o.store OPERATOR(pg_catalog.<>) 'eventstore.events'::pg_catalog.regclass) e ON true;

-- add_route gains the store (its owner registers routes on it).
DROP FUNCTION eventstore.add_route(text, text[], text[], boolean);
CREATE FUNCTION eventstore.add_route(channel text, event_types text[] DEFAULT NULL,
                                     categories text[] DEFAULT NULL, with_data boolean DEFAULT true,
                                     store regclass DEFAULT 'eventstore.events')
    RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_add_route';

-- read_query reads one store.
DROP FUNCTION eventstore.read_query(jsonb, bigint, integer);
CREATE FUNCTION eventstore.read_query(query jsonb, after_position bigint DEFAULT 0,
                                      max_count integer DEFAULT 1000,
                                      store regclass DEFAULT 'eventstore.events')
    RETURNS SETOF eventstore.events
    LANGUAGE c VOLATILE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_read_query';

-- import_events imports into one store (import.c).
DROP FUNCTION eventstore.import_events(regclass);
CREATE FUNCTION eventstore.import_events(source regclass, store regclass DEFAULT 'eventstore.events')
    RETURNS bigint
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_import_events';

-- A subscription reads one store: the bodies that read events read the
-- subscription's store with dynamic SQL (the name from regclass, quoted).
ALTER TABLE eventstore.subscriptions ADD COLUMN store regclass NOT NULL DEFAULT 'eventstore.events';
COMMENT ON COLUMN eventstore.subscriptions.store IS 'The store whose events the subscription delivers.';

DROP FUNCTION eventstore._subscription_start(text, bigint, timestamptz);
DROP FUNCTION eventstore._subscription_create(text, text[], text[], text, bigint, timestamptz, text, integer,
                                              integer, interval, interval, oid);

CREATE FUNCTION eventstore._subscription_start(start text, start_position bigint, start_time timestamptz,
                                               store regclass)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        given integer := (start IS NOT NULL)::integer OPERATOR(pg_catalog.+) (start_position IS NOT NULL)::integer
                         OPERATOR(pg_catalog.+) (start_time IS NOT NULL)::integer;
        first_after bigint;
        horizon bigint;
        top bigint;
    BEGIN
        IF given OPERATOR(pg_catalog.>) 1 THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'give at most one of start, start_position and start_time';
        END IF;
        IF given OPERATOR(pg_catalog.=) 0 THEN
            start := 'beginning';
        END IF;
        IF start_position IS NOT NULL THEN
            IF start_position OPERATOR(pg_catalog.<) 0 THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = 'start_position must not be negative';
            END IF;
            RETURN start_position;
        ELSIF start_time IS NOT NULL THEN
            IF NOT pg_catalog.isfinite(start_time) THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = 'start_time must be finite';
            END IF;
            horizon := eventstore._log_horizon();
            EXECUTE pg_catalog.format('SELECT pg_catalog.min(e.global_position) FROM %s e'
                                      ' WHERE e.created_at OPERATOR(pg_catalog.>=) $1'
                                      ' AND e.global_position OPERATOR(pg_catalog.<=) $2', store)
               INTO first_after USING start_time, horizon;
            IF first_after IS NOT NULL THEN
                RETURN first_after OPERATOR(pg_catalog.-) 1;
            END IF;
            start := 'end';
        END IF;
        IF start OPERATOR(pg_catalog.=) 'beginning' THEN
            RETURN 0;
        ELSIF start OPERATOR(pg_catalog.=) 'end' THEN
            horizon := eventstore._log_horizon();
            EXECUTE pg_catalog.format('SELECT pg_catalog.max(e.global_position) FROM %s e', store) INTO top;
            RETURN LEAST(horizon, COALESCE(top, 0));
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = pg_catalog.format('unknown start "%s"', start),
            HINT = 'Use beginning or end, or give start_position or start_time.';
    END
    $$;

CREATE FUNCTION eventstore._subscription_create(name text, categories text[], event_types text[], start text,
                                                start_position bigint, start_time timestamptz,
                                                partition_by text, partitions integer, max_attempts integer,
                                                backoff interval, lease interval, store regclass, caller oid)
    RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        cp bigint;
    BEGIN
        PERFORM eventstore._subscription_arg(name, 'subscription');
        IF partition_by IS NULL OR partition_by NOT IN ('stream', 'correlation', 'none') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = pg_catalog.format('unknown partition_by "%s"', partition_by),
                HINT = 'Use stream, correlation or none.';
        END IF;
        IF partitions IS NULL OR partitions OPERATOR(pg_catalog.<) 1 OR partitions OPERATOR(pg_catalog.>) 1024 THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'partitions must be between 1 and 1024';
        END IF;
        IF max_attempts IS NULL OR backoff IS NULL OR lease IS NULL OR store IS NULL OR caller IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
                MESSAGE = 'max_attempts, backoff, lease and store must not be null';
        END IF;
        PERFORM eventstore._subscription_check(categories, event_types, max_attempts, backoff, lease);
        cp := eventstore._subscription_start(start, start_position, start_time, store);
        INSERT INTO eventstore.subscriptions AS s (name, categories, event_types, partition_by, partitions,
                                                   max_attempts, backoff, lease, start_position, owner, store)
        VALUES ($1, NULLIF(categories, '{}'), NULLIF(event_types, '{}'), partition_by, partitions,
                max_attempts, backoff, lease, cp, caller::pg_catalog.regrole, store)
        ON CONFLICT ON CONSTRAINT subscriptions_pkey DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
                MESSAGE = pg_catalog.format('subscription "%s" already exists', $1);
        END IF;
        INSERT INTO eventstore.subscription_partitions (subscription, partition, checkpoint)
        SELECT $1, p, cp FROM pg_catalog.generate_series(0, partitions OPERATOR(pg_catalog.-) 1) p;
    END
    $$;

CREATE OR REPLACE FUNCTION eventstore._subscription_reset(name text, to_position bigint, to_time timestamptz, caller oid)
    RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        s eventstore.subscriptions := eventstore._subscription_get($1, caller, true);
        cp bigint;
    BEGIN
        IF ($2 IS NULL) OPERATOR(pg_catalog.=) ($3 IS NULL) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'give exactly one of to_position and to_time';
        END IF;
        cp := eventstore._subscription_start(NULL, $2, $3, s.store);
        PERFORM FROM eventstore.subscription_partitions p
          WHERE p.subscription OPERATOR(pg_catalog.=) s.name ORDER BY p.partition FOR UPDATE;
        UPDATE eventstore.subscription_partitions p
           SET checkpoint = cp, delivered_to = NULL, delivered_at = NULL
         WHERE p.subscription OPERATOR(pg_catalog.=) s.name;
        DELETE FROM eventstore.subscription_retries r WHERE r.subscription OPERATOR(pg_catalog.=) s.name;
    END
    $$;

CREATE OR REPLACE FUNCTION eventstore._subscription_poll(subscription text, consumer text, max_count integer, caller oid)
    RETURNS TABLE (partition integer, global_position bigint, stream_id text, stream_version bigint,
                   event_type text, data jsonb, metadata jsonb, created_at timestamptz, attempt integer)
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        s eventstore.subscriptions := eventstore._subscription_get($1, caller);
        me text := eventstore._subscription_arg($2, 'consumer');
        clock timestamptz := pg_catalog.clock_timestamp();
        live integer;
        rank integer;
        target integer;
        held integer;
        horizon bigint;
        p record;
        cps bigint[];
        replays integer[] := '{}';
        lo bigint;
        retrying boolean;
        waiting integer[];
        replaying integer[];
        renew integer[] := '{}';
    BEGIN
        IF max_count IS NULL OR max_count OPERATOR(pg_catalog.<) 0 THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'max_count must be zero or more';
        END IF;
        INSERT INTO eventstore.subscription_consumers AS c (subscription, consumer, last_seen)
        VALUES (s.name, me, clock)
        ON CONFLICT ON CONSTRAINT subscription_consumers_pkey DO UPDATE SET last_seen = EXCLUDED.last_seen;
        DELETE FROM eventstore.subscription_consumers c
         WHERE c.subscription OPERATOR(pg_catalog.=) s.name
           AND c.last_seen OPERATOR(pg_catalog.<) (clock OPERATOR(pg_catalog.-) (s.lease OPERATOR(pg_catalog.*) 10));
        SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE c.consumer OPERATOR(pg_catalog.<) me)
          INTO live, rank
          FROM eventstore.subscription_consumers c
         WHERE c.subscription OPERATOR(pg_catalog.=) s.name
           AND c.last_seen OPERATOR(pg_catalog.>=) (clock OPERATOR(pg_catalog.-) s.lease);
        target := (s.partitions OPERATOR(pg_catalog./) live)
                  OPERATOR(pg_catalog.+) (rank OPERATOR(pg_catalog.<) (s.partitions OPERATOR(pg_catalog.%) live))::integer;
        SELECT pg_catalog.count(*) INTO held FROM eventstore.subscription_partitions x
         WHERE x.subscription OPERATOR(pg_catalog.=) s.name AND x.holder OPERATOR(pg_catalog.=) me
           AND x.lease_until OPERATOR(pg_catalog.>=) clock;
        cps := pg_catalog.array_fill(NULL::bigint, ARRAY[s.partitions]);
        -- partitions whose retry is not due yet, and those with replayed parked events
        SELECT COALESCE(pg_catalog.array_agg(DISTINCT r.partition)
                            FILTER (WHERE r.next_attempt_at OPERATOR(pg_catalog.>) clock), '{}'),
               COALESCE(pg_catalog.array_agg(DISTINCT r.partition)
                            FILTER (WHERE r.global_position OPERATOR(pg_catalog.<=) x.checkpoint), '{}'),
               pg_catalog.count(*) OPERATOR(pg_catalog.>) 0
          INTO waiting, replaying, retrying
          FROM eventstore.subscription_retries r
          JOIN eventstore.subscription_partitions x
            ON x.subscription OPERATOR(pg_catalog.=) r.subscription AND x.partition OPERATOR(pg_catalog.=) r.partition
         WHERE r.subscription OPERATOR(pg_catalog.=) s.name;

        FOR p IN SELECT x.* FROM eventstore.subscription_partitions x
                  WHERE x.subscription OPERATOR(pg_catalog.=) s.name
                    AND (x.holder OPERATOR(pg_catalog.=) me OR x.holder IS NULL
                         OR x.lease_until OPERATOR(pg_catalog.<) clock)
                  ORDER BY (x.holder IS NOT DISTINCT FROM me
                            AND x.lease_until OPERATOR(pg_catalog.>=) clock) DESC,
                           x.partition
                  FOR UPDATE SKIP LOCKED LOOP
            IF p.holder IS NOT DISTINCT FROM me AND p.lease_until OPERATOR(pg_catalog.>=) clock THEN
                -- held: release the excess (nothing in flight), else renew
                IF held OPERATOR(pg_catalog.>) target AND p.delivered_to IS NULL THEN
                    UPDATE eventstore.subscription_partitions x
                       SET holder = NULL, lease_until = NULL, acquired_at = NULL
                     WHERE x.subscription OPERATOR(pg_catalog.=) s.name AND x.partition OPERATOR(pg_catalog.=) p.partition;
                    UPDATE eventstore.subscription_leases l SET ended_at = clock
                     WHERE l.subscription OPERATOR(pg_catalog.=) s.name AND l.partition OPERATOR(pg_catalog.=) p.partition
                       AND l.consumer OPERATOR(pg_catalog.=) me AND l.acquired_at OPERATOR(pg_catalog.=) p.acquired_at;
                    held := held OPERATOR(pg_catalog.-) 1;
                    CONTINUE;
                END IF;
                renew := renew OPERATOR(pg_catalog.||) p.partition;
            ELSE
                -- free or expired: take it while under the share
                IF held OPERATOR(pg_catalog.>=) target THEN
                    CONTINUE;
                END IF;
                IF p.holder IS NOT NULL THEN
                    UPDATE eventstore.subscription_leases l SET ended_at = p.lease_until
                     WHERE l.subscription OPERATOR(pg_catalog.=) s.name AND l.partition OPERATOR(pg_catalog.=) p.partition
                       AND l.consumer OPERATOR(pg_catalog.=) p.holder AND l.acquired_at OPERATOR(pg_catalog.=) p.acquired_at;
                END IF;
                UPDATE eventstore.subscription_partitions x
                   SET holder = me, lease_until = clock OPERATOR(pg_catalog.+) s.lease, acquired_at = clock,
                       delivered_to = NULL, delivered_at = NULL
                 WHERE x.subscription OPERATOR(pg_catalog.=) s.name AND x.partition OPERATOR(pg_catalog.=) p.partition;
                INSERT INTO eventstore.subscription_leases (subscription, partition, consumer, acquired_at)
                VALUES (s.name, p.partition, me, clock);
                held := held OPERATOR(pg_catalog.+) 1;
                p.delivered_to := NULL;
            END IF;
            -- deliverable: no run in flight (or one not acked within the
            -- lease), no retry waiting
            IF (p.delivered_to IS NULL OR p.delivered_at OPERATOR(pg_catalog.<) (clock OPERATOR(pg_catalog.-) s.lease))
               AND NOT p.partition OPERATOR(pg_catalog.=) ANY (waiting) THEN
                cps[p.partition OPERATOR(pg_catalog.+) 1] := p.checkpoint;
                IF p.partition OPERATOR(pg_catalog.=) ANY (replaying) THEN
                    replays := replays OPERATOR(pg_catalog.||) p.partition;
                END IF;
            END IF;
        END LOOP;
        IF pg_catalog.cardinality(renew) OPERATOR(pg_catalog.>) 0 THEN
            UPDATE eventstore.subscription_partitions x
               SET lease_until = clock OPERATOR(pg_catalog.+) s.lease
             WHERE x.subscription OPERATOR(pg_catalog.=) s.name AND x.partition OPERATOR(pg_catalog.=) ANY (renew);
        END IF;

        IF max_count OPERATOR(pg_catalog.=) 0 THEN
            RETURN;
        END IF;
        -- A partition with replayed parked events delivers only those this time.
        FOREACH rank IN ARRAY replays LOOP
            cps[rank OPERATOR(pg_catalog.+) 1] := NULL;
        END LOOP;
        SELECT pg_catalog.min(c) INTO lo FROM pg_catalog.unnest(cps) c;
        IF lo IS NULL AND pg_catalog.cardinality(replays) OPERATOR(pg_catalog.=) 0 THEN
            RETURN;
        END IF;
        horizon := CASE WHEN lo IS NULL THEN 0 ELSE eventstore._log_horizon() END;
        RETURN QUERY EXECUTE pg_catalog.format($q$
        WITH batch AS (
            SELECT b.* FROM (
                SELECT r.partition AS part, e.global_position, e.stream_id, e.stream_version, e.event_type,
                       %3$s AS data, e.metadata, e.created_at, r.attempts OPERATOR(pg_catalog.+) 1 AS attempt,
                       true AS replay
                  FROM eventstore.subscription_retries r
                  JOIN %1$s e ON e.global_position OPERATOR(pg_catalog.=) r.global_position
                 WHERE r.subscription OPERATOR(pg_catalog.=) $1
                   AND r.partition OPERATOR(pg_catalog.=) ANY ($2)
                   AND r.global_position OPERATOR(pg_catalog.<=) (SELECT x.checkpoint
                         FROM eventstore.subscription_partitions x
                        WHERE x.subscription OPERATOR(pg_catalog.=) $1
                          AND x.partition OPERATOR(pg_catalog.=) r.partition)
                   AND %2$s
                UNION ALL
                (SELECT k.part, e.global_position, e.stream_id, e.stream_version, e.event_type, %3$s AS data,
                        e.metadata, e.created_at,
                        CASE WHEN $3 THEN
                            COALESCE((SELECT r.attempts FROM eventstore.subscription_retries r
                                       WHERE r.subscription OPERATOR(pg_catalog.=) $1
                                         AND r.global_position OPERATOR(pg_catalog.=) e.global_position), 0)
                            OPERATOR(pg_catalog.+) 1
                        ELSE 1 END,
                        false
                   FROM %1$s e
                  CROSS JOIN LATERAL (SELECT eventstore._subscription_partition(
                          eventstore._subscription_key($4, e.stream_id, e.metadata, e.global_position),
                          $5) AS part) k
                  WHERE e.global_position OPERATOR(pg_catalog.>) $6
                    AND e.global_position OPERATOR(pg_catalog.<=) $7
                    AND ($8 IS NULL
                         OR pg_catalog.split_part(e.stream_id, '-', 1) OPERATOR(pg_catalog.=) ANY ($8))
                    AND ($9 IS NULL OR e.event_type OPERATOR(pg_catalog.=) ANY ($9))
                    AND e.global_position OPERATOR(pg_catalog.>) ($10)[k.part OPERATOR(pg_catalog.+) 1]
                    AND %2$s
                  ORDER BY e.global_position
                  LIMIT $11)) b
             ORDER BY b.replay DESC, b.global_position
             LIMIT $11),
        marked AS (
            UPDATE eventstore.subscription_partitions x
               SET delivered_to = m.last, delivered_at = $12
              FROM (SELECT bb.part, pg_catalog.max(bb.global_position) AS last FROM batch bb GROUP BY bb.part) m
             WHERE x.subscription OPERATOR(pg_catalog.=) $1 AND x.partition OPERATOR(pg_catalog.=) m.part
            RETURNING x.partition)
        SELECT b.part, b.global_position, b.stream_id, b.stream_version, b.event_type, b.data, b.metadata,
               b.created_at, b.attempt
          FROM batch b
         WHERE (SELECT pg_catalog.count(*) FROM marked) OPERATOR(pg_catalog.>=) 0
         ORDER BY b.replay DESC, b.global_position
        $q$, s.store,
            -- the store's lifecycle (lifecycle.c): what reads hide, a
            -- subscription never delivers; data is decrypted like a read's
            CASE WHEN eventstore._lifecycle_active(s.store)
                 THEN pg_catalog.format('eventstore._visible(%L::pg_catalog.regclass, e.stream_id, e.stream_version, e.created_at)', s.store)
                 ELSE 'true' END,
            CASE WHEN eventstore._lifecycle_active(s.store)
                 THEN pg_catalog.format('eventstore.decrypt(e.data, %L::pg_catalog.regclass)', s.store)
                 ELSE 'e.data' END)
        USING s.name, replays, retrying, s.partition_by, s.partitions, lo, horizon,
              s.categories, s.event_types, cps, max_count, clock;
    END
    $$;

CREATE OR REPLACE FUNCTION eventstore._subscription_delivered(s eventstore.subscriptions, consumer text, "position" bigint,
                                                   OUT part eventstore.subscription_partitions,
                                                   OUT replay boolean, OUT attempts integer,
                                                   OUT first_failed_at timestamptz, OUT acked boolean)
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        e eventstore.events;
        n integer;
        r eventstore.subscription_retries;
    BEGIN
        IF s.name IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed', MESSAGE = 'subscription must not be null';
        END IF;
        PERFORM eventstore._subscription_arg(consumer, 'consumer');
        IF "position" IS NULL OR "position" OPERATOR(pg_catalog.<=) 0 THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'global_position must be a positive position';
        END IF;
        EXECUTE pg_catalog.format('SELECT * FROM %s x WHERE x.global_position OPERATOR(pg_catalog.=) $1', s.store)
           INTO e USING "position";
        IF e.global_position IS NULL
           OR NOT (s.categories IS NULL OR pg_catalog.split_part(e.stream_id, '-', 1) OPERATOR(pg_catalog.=) ANY (s.categories))
           OR NOT (s.event_types IS NULL OR e.event_type OPERATOR(pg_catalog.=) ANY (s.event_types)) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = pg_catalog.format('position %s was not delivered by subscription "%s"', "position", s.name),
                DETAIL = 'There is no event of the subscription at this position.';
        END IF;
        n := eventstore._subscription_partition(
                 eventstore._subscription_key(s.partition_by, e.stream_id, e.metadata, e.global_position), s.partitions);
        SELECT * INTO part FROM eventstore.subscription_partitions x
         WHERE x.subscription OPERATOR(pg_catalog.=) s.name AND x.partition OPERATOR(pg_catalog.=) n FOR UPDATE;
        IF part.holder IS DISTINCT FROM consumer OR part.lease_until OPERATOR(pg_catalog.<) pg_catalog.clock_timestamp() THEN
            RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
                MESSAGE = pg_catalog.format('consumer "%s" does not hold partition %s of subscription "%s"',
                                            consumer, n, s.name),
                DETAIL = CASE WHEN part.holder IS DISTINCT FROM consumer
                              THEN 'Another consumer holds it, or nobody does.'
                              ELSE 'Its lease has expired.' END,
                HINT = 'Poll again: a partition is acked only by its holder, within its lease.';
        END IF;
        SELECT * INTO r FROM eventstore.subscription_retries x
         WHERE x.subscription OPERATOR(pg_catalog.=) s.name AND x.global_position OPERATOR(pg_catalog.=) "position";
        replay := r.global_position IS NOT NULL AND "position" OPERATOR(pg_catalog.<=) part.checkpoint;
        attempts := COALESCE(r.attempts, 0);
        first_failed_at := r.first_failed_at;
        acked := false;
        IF "position" OPERATOR(pg_catalog.<=) part.checkpoint AND NOT replay THEN
            acked := true;          -- acked or parked before: nothing to do
        ELSIF part.delivered_to IS NULL OR "position" OPERATOR(pg_catalog.>) part.delivered_to THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = pg_catalog.format('position %s was not delivered by subscription "%s"', "position", s.name),
                DETAIL = pg_catalog.format('Partition %s has %s in flight.', n,
                                           COALESCE('the run up to ' OPERATOR(pg_catalog.||) part.delivered_to, 'nothing'));
        END IF;
    END
    $$;

CREATE OR REPLACE FUNCTION eventstore._subscription_list_parked(subscription text, caller oid)
    RETURNS TABLE (global_position bigint, partition integer, stream_id text, stream_version bigint,
                   event_type text, attempts integer, reason text,
                   first_failed_at timestamptz, last_failed_at timestamptz)
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        s eventstore.subscriptions;
    BEGIN
        PERFORM eventstore._subscription_arg($1, 'subscription');
        SELECT * INTO s FROM eventstore.subscriptions x WHERE x.name OPERATOR(pg_catalog.=) $1;
        IF s.name IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_object',
                MESSAGE = pg_catalog.format('subscription "%s" does not exist', $1);
        END IF;
        IF NOT (pg_catalog.pg_has_role(caller, s.owner::pg_catalog.oid, 'USAGE')
                OR pg_catalog.has_table_privilege(caller, 'eventstore.subscriptions'::pg_catalog.regclass, 'UPDATE')) THEN
            RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
                MESSAGE = pg_catalog.format('subscription "%s" belongs to another role', $1);
        END IF;
        RETURN QUERY EXECUTE pg_catalog.format(
            'SELECT k.global_position, k.partition, e.stream_id, e.stream_version, e.event_type, k.attempts,'
            ' k.reason, k.first_failed_at, k.last_failed_at'
            ' FROM eventstore.subscription_parked k'
            ' LEFT JOIN %s e ON e.global_position OPERATOR(pg_catalog.=) k.global_position'
            ' WHERE k.subscription OPERATOR(pg_catalog.=) $1'
            ' ORDER BY k.global_position', s.store)
        USING s.name;
    END
    $$;

-- A partition's backlog: matching events after its checkpoint up to the
-- horizon (counted up to 10000), and the time of the oldest of them or of
-- its oldest pending retry.
CREATE FUNCTION eventstore._subscription_backlog(s eventstore.subscriptions, part integer, checkpoint bigint,
                                                 horizon bigint, OUT n bigint, OUT oldest timestamptz)
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        retry_at timestamptz;
    BEGIN
        n := 0;
        IF s.store IS NULL THEN
            RETURN;
        END IF;
        EXECUTE pg_catalog.format(
            'SELECT pg_catalog.count(*), pg_catalog.min(q.created_at) FROM ('
            ' SELECT e.created_at FROM %s e'
            ' WHERE e.global_position OPERATOR(pg_catalog.>) $1'
            ' AND e.global_position OPERATOR(pg_catalog.<=) $2'
            ' AND ($3 IS NULL OR pg_catalog.split_part(e.stream_id, ''-'', 1) OPERATOR(pg_catalog.=) ANY ($3))'
            ' AND ($4 IS NULL OR e.event_type OPERATOR(pg_catalog.=) ANY ($4))'
            ' AND eventstore._subscription_partition('
            '   eventstore._subscription_key($5, e.stream_id, e.metadata, e.global_position), $6)'
            '   OPERATOR(pg_catalog.=) $7'
            ' ORDER BY e.global_position LIMIT 10000) q', s.store)
           INTO n, oldest
           USING checkpoint, horizon, s.categories, s.event_types, s.partition_by, s.partitions, part;
        EXECUTE pg_catalog.format(
            'SELECT pg_catalog.min(e.created_at) FROM eventstore.subscription_retries r'
            ' JOIN %s e ON e.global_position OPERATOR(pg_catalog.=) r.global_position'
            ' WHERE r.subscription OPERATOR(pg_catalog.=) $1 AND r.partition OPERATOR(pg_catalog.=) $2', s.store)
           INTO retry_at USING s.name, part;
        oldest := LEAST(oldest, retry_at);
    END
    $$;

CREATE OR REPLACE FUNCTION eventstore._subscription_state(caller oid)
    RETURNS TABLE (subscription text, partition integer, holder text, lease_until timestamptz,
                   checkpoint bigint, delivered_to bigint, events_behind bigint, seconds_behind double precision,
                   retries bigint, parked bigint)
    LANGUAGE sql STABLE
    AS $$
        SELECT p.subscription, p.partition,
               CASE WHEN p.lease_until OPERATOR(pg_catalog.>=) pg_catalog.clock_timestamp() THEN p.holder END,
               p.lease_until, p.checkpoint, p.delivered_to, b.n,
               pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) b.oldest),
               (SELECT pg_catalog.count(*) FROM eventstore.subscription_retries r
                 WHERE r.subscription OPERATOR(pg_catalog.=) p.subscription AND r.partition OPERATOR(pg_catalog.=) p.partition),
               (SELECT pg_catalog.count(*) FROM eventstore.subscription_parked k
                 WHERE k.subscription OPERATOR(pg_catalog.=) p.subscription AND k.partition OPERATOR(pg_catalog.=) p.partition)
          FROM (SELECT eventstore._log_horizon() AS h OFFSET 0) hz
          CROSS JOIN eventstore.subscriptions s
          JOIN eventstore.subscription_partitions p ON p.subscription OPERATOR(pg_catalog.=) s.name
          CROSS JOIN LATERAL eventstore._subscription_backlog(s, p.partition, p.checkpoint, hz.h) b
         WHERE pg_catalog.pg_has_role($1, s.owner::pg_catalog.oid, 'USAGE')
            OR pg_catalog.has_table_privilege($1, 'eventstore.subscriptions'::pg_catalog.regclass, 'UPDATE')
         ORDER BY p.subscription, p.partition
    $$;

REVOKE ALL ON FUNCTION eventstore._subscription_backlog(eventstore.subscriptions, integer, bigint, bigint) FROM PUBLIC;

DROP FUNCTION eventstore.create_subscription(text, text[], text[], text, bigint, timestamptz, text, integer,
                                             integer, interval, interval);
CREATE FUNCTION eventstore.create_subscription(name text, categories text[] DEFAULT NULL,
        event_types text[] DEFAULT NULL, start text DEFAULT NULL, start_position bigint DEFAULT NULL,
        start_time timestamptz DEFAULT NULL, partition_by text DEFAULT 'stream', partitions integer DEFAULT 16,
        max_attempts integer DEFAULT 5, backoff interval DEFAULT '1 second', lease interval DEFAULT '30 seconds',
        store regclass DEFAULT 'eventstore.events')
    RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_create_subscription';

-- == grant_access per store ================================================
-- grant_access takes the store.  Levels map to privileges a DBA can see
-- with \dp: reader and consumer = SELECT on the store (a consumer's
-- subscriptions read it), writer = SELECT and INSERT on it
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
                              'create_store', '_store_adopt', 'drop_store'];
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
        -- a consumer reads the store's events through its subscriptions, so
        -- it may read them (SELECT on the store) like a reader
        EXECUTE pg_catalog.format('GRANT SELECT ON %s TO %s', t, role);
        IF access IN ('reader', 'writer', 'admin') THEN
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

-- == Scale-out on Citus ======================================================
-- eventstore.distribute(store): on a Citus coordinator, distribute a store by
-- stream_id (co-located with the default store), delegate the append
-- functions to the node that holds the stream (one round trip), and give
-- every node its own range of global positions.  Idempotent: run it again
-- after adding a node.  The C side (src/citus.c) appends on the local shard.
CREATE FUNCTION eventstore.distribute(store regclass DEFAULT 'eventstore.events')
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    events pg_catalog.regclass := 'eventstore.events'::pg_catalog.regclass;
BEGIN
    IF store IS NULL THEN
        RAISE EXCEPTION 'store must not be null' USING ERRCODE = '22004';
    END IF;
    IF store OPERATOR(pg_catalog.<>) events AND NOT EXISTS (
           SELECT FROM pg_catalog.pg_class c
            WHERE c.oid OPERATOR(pg_catalog.=) store
              AND c.reloftype OPERATOR(pg_catalog.=) 'eventstore.event_store'::pg_catalog.regtype) THEN
        RAISE EXCEPTION '"%" is not an event store', store
            USING ERRCODE = '42809',
                  HINT = 'Create a store with eventstore.create_store(name).';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension x
                    WHERE x.extname OPERATOR(pg_catalog.=) 'citus') THEN
        RAISE EXCEPTION 'eventstore.distribute() needs the citus extension'
            USING ERRCODE = '55000',
                  HINT = 'Preload citus first in shared_preload_libraries on every node and run CREATE EXTENSION citus.';
    END IF;
    -- row triggers (immutability, projections) must exist on every shard
    PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);
    -- every store is co-located with the default store: one delegation rule
    IF store OPERATOR(pg_catalog.<>) events AND NOT EXISTS (
           SELECT FROM pg_catalog.pg_dist_partition p
            WHERE p.logicalrelid OPERATOR(pg_catalog.=) events) THEN
        PERFORM eventstore.distribute(events);
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p
                    WHERE p.logicalrelid OPERATOR(pg_catalog.=) store) THEN
        IF store OPERATOR(pg_catalog.=) events THEN
            PERFORM pg_catalog.create_distributed_table(store, 'stream_id');
        ELSE
            PERFORM pg_catalog.create_distributed_table(store, 'stream_id',
                                                        colocate_with := 'eventstore.events');
        END IF;
    END IF;
    PERFORM pg_catalog.create_distributed_function(
        'eventstore.append(text,bigint,eventstore.new_event[],jsonb,regclass)'::pg_catalog.regprocedure,
        '$1', colocate_with := 'eventstore.events');
    PERFORM pg_catalog.create_distributed_function(
        'eventstore.append_event(text,bigint,text,jsonb,jsonb,uuid,text[],jsonb,regclass)'::pg_catalog.regprocedure,
        '$1', colocate_with := 'eventstore.events');
    -- positions of node group g start above g << 48: unique in the cluster,
    -- ordered within a node, no order across nodes
    PERFORM pg_catalog.run_command_on_all_nodes($c$
        SELECT pg_catalog.setval('eventstore.events_global_position_seq',
                                 g.groupid::pg_catalog.int8 OPERATOR(pg_catalog.<<) 48)
          FROM pg_catalog.pg_dist_local_group g, eventstore.events_global_position_seq s
         WHERE g.groupid OPERATOR(pg_catalog.>) 0
           AND s.last_value OPERATOR(pg_catalog.<) (g.groupid::pg_catalog.int8 OPERATOR(pg_catalog.<<) 48)
    $c$);
END
$$;
REVOKE ALL ON FUNCTION eventstore.distribute(regclass) FROM PUBLIC;

-- This node's log of a store: on a Citus node the shards placed here, read
-- up to this node's horizon (positions are ordered within a node only).
CREATE FUNCTION eventstore.read_node(after_position bigint DEFAULT 0,
                                     max_count integer DEFAULT 1000,
                                     store regclass DEFAULT 'eventstore.events')
    RETURNS SETOF eventstore.events
    LANGUAGE c VOLATILE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_read_node';

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

-- read_stream, read_stream_backwards and stream_version are C (section
-- Stores) and honour the lifecycle rows themselves (read.c, lifecycle.c).

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
