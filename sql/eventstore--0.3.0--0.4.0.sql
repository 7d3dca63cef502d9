-- eventstore 0.3.0 -> 0.4.0: aggregates -- snapshots, folding, state as of
-- any time, upcasting.

\echo Use "ALTER EXTENSION eventstore UPDATE TO '0.4.0'" to load this file. \quit

-- Upcasters: one per stored event type, applied as events are read.
CREATE TABLE eventstore.upcasters (
    event_type    text        NOT NULL,
    handler       text        NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT upcasters_pkey PRIMARY KEY (event_type)
);
SELECT pg_catalog.pg_extension_config_dump('eventstore.upcasters', '');
GRANT SELECT ON eventstore.upcasters TO PUBLIC;
-- A change of upcasters also invalidates every cached plan that reads
-- eventstore.events (the trigger argument), because of _upcasting() below.
CREATE TRIGGER upcasters_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON eventstore.upcasters
    FOR EACH STATEMENT EXECUTE FUNCTION eventstore._registry_changed('events');

-- PARALLEL UNSAFE: they read the registry with a fresh snapshot.
CREATE FUNCTION eventstore._upcast(e eventstore.events) RETURNS eventstore.events
    LANGUAGE c STABLE STRICT PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_upcast';
-- "Is any upcaster registered?"  Declared IMMUTABLE on purpose, so the
-- planner folds it and a read plans exactly like the bare SELECT when there
-- is none.  That is safe because every change to the upcasters invalidates
-- the plans that read eventstore.events (see the trigger above), so no plan
-- outlives the answer it folded.
CREATE FUNCTION eventstore._upcasting() RETURNS boolean
    LANGUAGE c IMMUTABLE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_upcasting';

CREATE FUNCTION eventstore.register_upcaster(event_type text, handler regprocedure) RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_register_upcaster';
CREATE FUNCTION eventstore.unregister_upcaster(event_type text) RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_unregister_upcaster';

-- The stream reads, now through the upcasters.  The upcasting branch is
-- gated by a one-time filter: with no upcaster it is never executed, and the
-- functions are still inlined into the calling query.
CREATE OR REPLACE FUNCTION eventstore.read_stream(stream_id text, from_version bigint DEFAULT 1,
                                                  max_count integer DEFAULT NULL)
    RETURNS SETOF eventstore.events
    LANGUAGE sql STABLE PARALLEL UNSAFE
    AS $$
        SELECT e.* FROM eventstore.events e
         WHERE e.stream_id OPERATOR(pg_catalog.=) eventstore._stream_arg($1)
           AND e.stream_version OPERATOR(pg_catalog.>=) COALESCE($2, 1)
           AND NOT eventstore._upcasting()
        UNION ALL
        SELECT u.* FROM eventstore.events e CROSS JOIN LATERAL eventstore._upcast(e) u
         WHERE e.stream_id OPERATOR(pg_catalog.=) eventstore._stream_arg($1)
           AND e.stream_version OPERATOR(pg_catalog.>=) COALESCE($2, 1)
           AND eventstore._upcasting()
        ORDER BY stream_version
        LIMIT eventstore._count_arg($3)
    $$;

CREATE OR REPLACE FUNCTION eventstore.read_stream_backwards(stream_id text, from_version bigint DEFAULT NULL,
                                                            max_count integer DEFAULT NULL)
    RETURNS SETOF eventstore.events
    LANGUAGE sql STABLE PARALLEL UNSAFE
    AS $$
        SELECT e.* FROM eventstore.events e
         WHERE e.stream_id OPERATOR(pg_catalog.=) eventstore._stream_arg($1)
           AND e.stream_version OPERATOR(pg_catalog.<=) COALESCE($2, 9223372036854775807)
           AND NOT eventstore._upcasting()
        UNION ALL
        SELECT u.* FROM eventstore.events e CROSS JOIN LATERAL eventstore._upcast(e) u
         WHERE e.stream_id OPERATOR(pg_catalog.=) eventstore._stream_arg($1)
           AND e.stream_version OPERATOR(pg_catalog.<=) COALESCE($2, 9223372036854775807)
           AND eventstore._upcasting()
        ORDER BY stream_version DESC
        LIMIT eventstore._count_arg($3)
    $$;

-- Temporal reads.  created_at is when the append took its stream's lock,
-- never earlier than the stream's previous event.
CREATE FUNCTION eventstore.read_stream_until(stream_id text, until_time timestamptz,
                                             from_version bigint DEFAULT 1, max_count integer DEFAULT NULL)
    RETURNS SETOF eventstore.events
    LANGUAGE sql STABLE PARALLEL UNSAFE
    AS $$
        SELECT r.* FROM eventstore.read_stream($1, $3) r
         WHERE r.created_at OPERATOR(pg_catalog.<=) eventstore._time_arg($2)
         ORDER BY r.stream_version
         LIMIT eventstore._count_arg($4)
    $$;

CREATE FUNCTION eventstore._time_arg(at timestamptz) RETURNS timestamptz
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        IF at IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
                MESSAGE = 'the time must not be null';
        END IF;
        RETURN at;
    END
    $$;

CREATE FUNCTION eventstore.read_all_until(until_time timestamptz, after_position bigint DEFAULT 0,
                                          max_count integer DEFAULT 1000)
    RETURNS SETOF eventstore.events
    LANGUAGE c VOLATILE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_read_all_until';

CREATE FUNCTION eventstore.stream_version_at(stream_id text, at timestamptz) RETURNS bigint
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT COALESCE(pg_catalog.max(e.stream_version), 0)
          FROM eventstore.events e
         WHERE e.stream_id OPERATOR(pg_catalog.=) eventstore._stream_arg($1)
           AND e.created_at OPERATOR(pg_catalog.<=) eventstore._time_arg($2)
    $$;

-- Snapshots of a stream's folded state.
CREATE TABLE eventstore.snapshots (
    stream_id      text        NOT NULL,
    snapshot_type  text        NOT NULL,
    stream_version bigint      NOT NULL,
    state          jsonb       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT snapshots_pkey PRIMARY KEY (stream_id, snapshot_type, stream_version)
);
SELECT pg_catalog.pg_extension_config_dump('eventstore.snapshots', '');

CREATE FUNCTION eventstore.save_snapshot(stream_id text, stream_version bigint, state jsonb,
                                         snapshot_type text DEFAULT 'default')
    RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_save_snapshot';

CREATE FUNCTION eventstore.load_snapshot(stream_id text, snapshot_type text DEFAULT 'default',
                                         max_version bigint DEFAULT NULL)
    RETURNS TABLE (stream_version bigint, state jsonb, created_at timestamptz)
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT s.stream_version, s.state, s.created_at FROM eventstore.snapshots s
         WHERE s.stream_id OPERATOR(pg_catalog.=) eventstore._stream_arg($1)
           AND s.snapshot_type OPERATOR(pg_catalog.=) $2
           AND s.stream_version OPERATOR(pg_catalog.<=) COALESCE($3, 9223372036854775807)
         ORDER BY s.stream_version DESC
         LIMIT 1
    $$;

CREATE FUNCTION eventstore.aggregate(stream_id text, reducer regprocedure, initial jsonb DEFAULT '{}',
                                     until_version bigint DEFAULT NULL, until_time timestamptz DEFAULT NULL,
                                     snapshot_type text DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_aggregate';

-- Snapshot policies: take a snapshot of type snapshot_type each time a
-- stream (of the categories given, or any) crosses a multiple of every.
CREATE TABLE eventstore.snapshot_policies (
    snapshot_type text        NOT NULL,
    reducer       text        NOT NULL,
    every         bigint      NOT NULL,
    initial       jsonb,
    categories    text[],
    registered_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT snapshot_policies_pkey PRIMARY KEY (snapshot_type),
    CONSTRAINT snapshot_policies_every_check CHECK (every OPERATOR(pg_catalog.>) 0)
);
SELECT pg_catalog.pg_extension_config_dump('eventstore.snapshot_policies', '');
GRANT SELECT ON eventstore.snapshot_policies TO PUBLIC;
CREATE TRIGGER snapshot_policies_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON eventstore.snapshot_policies
    FOR EACH STATEMENT EXECUTE FUNCTION eventstore._registry_changed();

CREATE FUNCTION eventstore.set_snapshot_policy(snapshot_type text, reducer regprocedure, every bigint,
                                               initial jsonb DEFAULT '{}', categories text[] DEFAULT NULL)
    RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_set_snapshot_policy';
CREATE FUNCTION eventstore.remove_snapshot_policy(snapshot_type text) RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_remove_snapshot_policy';

REVOKE ALL ON FUNCTION eventstore.register_upcaster(text, regprocedure) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.unregister_upcaster(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.save_snapshot(text, bigint, jsonb, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.set_snapshot_policy(text, regprocedure, bigint, jsonb, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.remove_snapshot_policy(text) FROM PUBLIC;

-- The role model: one call grants a role everything one kind of user needs.
--   reader    read the store: read_* functions, SELECT on the tables
--   writer    reader + append, append_event, enqueue, save_snapshot
--   consumer  consumer_poll, consumer_ack (SECURITY DEFINER: no table rights)
--   admin     writer + consumer + projections, routes, relay_once, upcasters,
--             snapshot policies, SELECT on the outbox
-- Nobody is granted UPDATE, DELETE or TRUNCATE on eventstore.events.  The
-- caller needs the right to grant (the extension's owner or a superuser).
CREATE FUNCTION eventstore.grant_access(role regrole, access text) RETURNS void
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
                              'eventstore.remove_snapshot_policy(text)'];
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
REVOKE ALL ON FUNCTION eventstore.grant_access(regrole, text) FROM PUBLIC;

-- The log's read horizon as the primary's relay publishes it, for read_all
-- and read_category on hot standbys (see README, "Replicas").
CREATE TABLE eventstore.log_horizon (
    singleton boolean NOT NULL DEFAULT true,
    position  bigint  NOT NULL DEFAULT 0,
    CONSTRAINT log_horizon_pkey PRIMARY KEY (singleton),
    CONSTRAINT log_horizon_singleton CHECK (singleton)
);
INSERT INTO eventstore.log_horizon DEFAULT VALUES;
GRANT SELECT ON eventstore.log_horizon TO PUBLIC;
