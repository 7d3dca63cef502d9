-- eventstore 0.4.0 -> 0.5.0: hardening (issue 10).
\echo Use "ALTER EXTENSION eventstore UPDATE TO '0.5.0'" to load this file. \quit

-- == Append, horizon and reads =============================================
-- No SQL changes: the savepoint-safe horizon lock, the LWLock that no longer
-- waits on the sequence's lock, the retry that gives back its stream lock and
-- read_all_until's prefix are all in the library (horizon.c, append.c, read.c).

-- == Registries and handlers ===============================================

-- == Snapshots and folds ===================================================

-- == Relay, dump and restore ===============================================

-- == Consumers, routes and enqueue =========================================

-- == Immutability ==========================================================

-- == Import ================================================================
-- Bulk import of a history from another store (README, "Importing a
-- history"; src/import.c).  The caller fills a relation with these columns,
-- normally CREATE TEMP TABLE staging (LIKE eventstore.import_row) and COPY,
-- then calls import_events(staging) once.  One SHARE ROW EXCLUSIVE lock on
-- eventstore.events instead of a lock per stream.
CREATE TYPE eventstore.import_row AS (
    ord            bigint,
    stream_id      text,
    stream_version bigint,
    event_type     text,
    data           jsonb,
    metadata       jsonb,
    created_at     timestamptz,
    event_id       uuid
);

-- The size append() checks against eventstore.max_event_size, for the import's check.
CREATE FUNCTION eventstore._event_size(data jsonb, event_type text, metadata jsonb) RETURNS bigint
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'eventstore_event_size';

CREATE FUNCTION eventstore.import_events(source regclass) RETURNS bigint
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_import_events';
REVOKE ALL ON FUNCTION eventstore.import_events(regclass) FROM PUBLIC;

-- admin gains import_events: grant_access as in 0.4.0, one name added.
CREATE OR REPLACE FUNCTION eventstore.grant_access(role regrole, access text) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        writer text[] := ARRAY['eventstore.append(text, bigint, eventstore.new_event[])',
                               'eventstore.append_event(text, bigint, text, jsonb, jsonb, uuid)',
                               'eventstore.enqueue(text, jsonb, jsonb)',
                               'eventstore.save_snapshot(text, bigint, jsonb, text)'];
        consumer text[] := ARRAY['eventstore.consumer_poll(text, text, integer)',
                                 'eventstore.consumer_ack(text, text, bigint)'];
        admin text[] := ARRAY['eventstore.register_projection(text, regprocedure, text[], regprocedure)',
                              'eventstore.unregister_projection(text)',
                              'eventstore.enable_projection(text)',
                              'eventstore.disable_projection(text)',
                              'eventstore.rebuild_projection(text)',
                              'eventstore.add_route(text, text[], text[])',
                              'eventstore.remove_route(text)',
                              'eventstore.relay_once(integer)',
                              'eventstore.register_upcaster(text, regprocedure)',
                              'eventstore.unregister_upcaster(text)',
                              'eventstore.set_snapshot_policy(text, regprocedure, bigint, jsonb, text[])',
                              'eventstore.remove_snapshot_policy(text)',
                              'eventstore.import_events(regclass)'];
        fns text[];
    BEGIN
        IF role IS NULL OR access IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
                MESSAGE = 'role and access must not be null';
        END IF;
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) role::pg_catalog.oid) THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_object',
                MESSAGE = pg_catalog.format('role with OID %s does not exist', role::oid);
        END IF;
        IF access NOT IN ('reader', 'writer', 'consumer', 'admin') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = pg_catalog.format('unknown access "%s"', access),
                HINT = 'Use reader, writer, consumer or admin.';
        END IF;
        EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA eventstore TO %s', role);
        IF access IN ('reader', 'writer', 'admin') THEN
            EXECUTE pg_catalog.format('GRANT SELECT ON eventstore.events, eventstore.projections,'
                                      ' eventstore.routes, eventstore.snapshots TO %s', role);
        END IF;
        fns := CASE access
            WHEN 'reader' THEN ARRAY[]::text[]
            WHEN 'writer' THEN writer
            WHEN 'consumer' THEN consumer
            ELSE writer OPERATOR(pg_catalog.||) consumer OPERATOR(pg_catalog.||) admin
        END;
        IF access = 'admin' THEN
            EXECUTE pg_catalog.format('GRANT SELECT ON eventstore.outbox, eventstore.consumers,'
                                      ' eventstore.outbox_messages, eventstore.relay_state,'
                                      ' eventstore.relay_status TO %s', role);
        END IF;
        FOR i IN 1 .. COALESCE(pg_catalog.array_length(fns, 1), 0) LOOP
            EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s', fns[i], role);
        END LOOP;
    END
    $$;
