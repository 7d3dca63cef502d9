-- eventstore 0.1.0 -> 0.2.0: synchronous projections.

\echo Use "ALTER EXTENSION eventstore UPDATE TO '0.2.0'" to load this file. \quit

-- The registry.  Handlers are stored as their qualified signature (text, not
-- regprocedure) so pg_dump and pg_upgrade carry the table over.
CREATE TABLE eventstore.projections (
    name          text        NOT NULL,
    handler       text        NOT NULL,
    event_types   text[],
    reset_handler text,
    enabled       boolean     NOT NULL DEFAULT true,
    registered_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT projections_pkey PRIMARY KEY (name)
);
COMMENT ON TABLE eventstore.projections IS
    'Synchronous projections: handlers called inside the appending transaction. Change it with eventstore.register_projection() and friends.';
SELECT pg_catalog.pg_extension_config_dump('eventstore.projections', '');
GRANT SELECT ON eventstore.projections TO PUBLIC;

-- Every change to the registry invalidates the per-backend caches.
CREATE FUNCTION eventstore._registry_changed() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'eventstore_registry_changed';
CREATE TRIGGER projections_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON eventstore.projections
    FOR EACH STATEMENT EXECUTE FUNCTION eventstore._registry_changed();

CREATE FUNCTION eventstore._check_handler(fn regprocedure, nargs integer) RETURNS void
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'eventstore_check_handler';

CREATE FUNCTION eventstore._check_projection_name(name text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        IF name IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
                MESSAGE = 'projection name must not be null';
        ELSIF name OPERATOR(pg_catalog.=) '' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'projection name must not be empty';
        END IF;
    END
    $$;

CREATE FUNCTION eventstore.register_projection(name text, handler regprocedure,
                                               event_types text[] DEFAULT NULL,
                                               reset_handler regprocedure DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM eventstore._check_projection_name(name);
        IF handler IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
                MESSAGE = 'handler must not be null';
        END IF;
        IF event_types IS NOT NULL THEN
            IF pg_catalog.cardinality(event_types) OPERATOR(pg_catalog.=) 0 THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = 'event_types must not be empty',
                    HINT = 'Use NULL for every event type.';
            END IF;
            IF pg_catalog.array_position(event_types, NULL) IS NOT NULL THEN
                RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
                    MESSAGE = 'event_types must not contain NULL';
            END IF;
        END IF;
        PERFORM eventstore._check_handler(handler, 1);
        IF reset_handler IS NOT NULL THEN
            PERFORM eventstore._check_handler(reset_handler, 0);
        END IF;
        IF EXISTS (SELECT FROM eventstore.projections p WHERE p.name OPERATOR(pg_catalog.=) $1) THEN
            RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
                MESSAGE = pg_catalog.format('projection "%s" already exists', name);
        END IF;
        -- With search_path = pg_catalog, regprocedure prints schema-qualified.
        INSERT INTO eventstore.projections (name, handler, event_types, reset_handler)
        VALUES ($1, handler::text, event_types, reset_handler::text);
    END
    $$;

CREATE FUNCTION eventstore._set_projection(name text, enabled boolean, drop boolean)
    RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM eventstore._check_projection_name(name);
        IF drop THEN
            DELETE FROM eventstore.projections p WHERE p.name OPERATOR(pg_catalog.=) $1;
        ELSE
            UPDATE eventstore.projections p SET enabled = $2 WHERE p.name OPERATOR(pg_catalog.=) $1;
        END IF;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_object',
                MESSAGE = pg_catalog.format('projection "%s" does not exist', name);
        END IF;
    END
    $$;

CREATE FUNCTION eventstore.unregister_projection(name text) RETURNS void
    LANGUAGE sql SET search_path = pg_catalog, pg_temp
    AS $$ SELECT eventstore._set_projection($1, false, true) $$;
CREATE FUNCTION eventstore.disable_projection(name text) RETURNS void
    LANGUAGE sql SET search_path = pg_catalog, pg_temp
    AS $$ SELECT eventstore._set_projection($1, false, false) $$;
CREATE FUNCTION eventstore.enable_projection(name text) RETURNS void
    LANGUAGE sql SET search_path = pg_catalog, pg_temp
    AS $$ SELECT eventstore._set_projection($1, true, false) $$;

CREATE FUNCTION eventstore.rebuild_projection(name text) RETURNS bigint
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_rebuild_projection';

-- Managing projections is for administrators: grant these explicitly.
REVOKE ALL ON FUNCTION eventstore.register_projection(text, regprocedure, text[], regprocedure) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.unregister_projection(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.disable_projection(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.enable_projection(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.rebuild_projection(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore._set_projection(text, boolean, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore._check_handler(regprocedure, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore._registry_changed() FROM PUBLIC;
