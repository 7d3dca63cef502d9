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

-- The management functions are C: they check the caller (owner of the
-- handler), then write the registry as the extension's owner.  EXECUTE on
-- them is the privilege to manage projections.
CREATE FUNCTION eventstore.register_projection(name text, handler regprocedure,
                                               event_types text[] DEFAULT NULL,
                                               reset_handler regprocedure DEFAULT NULL)
    RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_register_projection';
CREATE FUNCTION eventstore.unregister_projection(name text) RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_unregister_projection';
CREATE FUNCTION eventstore.disable_projection(name text) RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_disable_projection';
CREATE FUNCTION eventstore.enable_projection(name text) RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_enable_projection';

CREATE FUNCTION eventstore.rebuild_projection(name text) RETURNS bigint
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_rebuild_projection';

-- Managing projections is for administrators: grant these explicitly.
REVOKE ALL ON FUNCTION eventstore.register_projection(text, regprocedure, text[], regprocedure) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.unregister_projection(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.disable_projection(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.enable_projection(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.rebuild_projection(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore._registry_changed() FROM PUBLIC;
