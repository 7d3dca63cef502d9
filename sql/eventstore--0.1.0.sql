-- eventstore 0.1.0: the store, append with expected version, gap-safe reads.
-- Every object lives in schema eventstore; every operator and function used
-- in a body is schema-qualified, so the caller's search_path cannot reach in.

\echo Use "CREATE EXTENSION eventstore" to load this file. \quit

-- Global positions.  CACHE 1 is required: the read horizon relies on positions
-- being handed out in increasing order across all backends.
CREATE SEQUENCE eventstore.events_global_position_seq AS bigint CACHE 1;

CREATE TABLE eventstore.events (
    global_position bigint      NOT NULL,
    stream_id       text        NOT NULL,
    stream_version  bigint      NOT NULL,
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    data            jsonb       NOT NULL,
    metadata        jsonb,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT events_pkey PRIMARY KEY (stream_id, stream_version),
    CONSTRAINT events_stream_event_id_key UNIQUE (stream_id, event_id),
    CONSTRAINT events_stream_version_check CHECK (stream_version OPERATOR(pg_catalog.>) 0)
);
ALTER SEQUENCE eventstore.events_global_position_seq OWNED BY eventstore.events.global_position;

COMMENT ON TABLE eventstore.events IS
    'The event log. Append-only: write with eventstore.append(); UPDATE, DELETE and TRUNCATE are refused.';

-- Not UNIQUE: a unique key must include stream_id to stay distributable by
-- stream on Citus.  Positions are unique because the sequence hands each out once.
CREATE INDEX events_global_position_idx ON eventstore.events (global_position);
CREATE INDEX events_category_position_idx
    ON eventstore.events ((pg_catalog.split_part(stream_id, '-', 1)), global_position);

-- Events are user data: pg_dump must include them.
SELECT pg_catalog.pg_extension_config_dump('eventstore.events', '');
SELECT pg_catalog.pg_extension_config_dump('eventstore.events_global_position_seq', '');

CREATE FUNCTION eventstore.refuse_change() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'eventstore_refuse_change';

CREATE TRIGGER events_immutable
    BEFORE UPDATE OR DELETE OR TRUNCATE ON eventstore.events
    FOR EACH STATEMENT EXECUTE FUNCTION eventstore.refuse_change();
ALTER TABLE eventstore.events ENABLE ALWAYS TRIGGER events_immutable;

-- An event to append.
CREATE TYPE eventstore.new_event AS (
    event_type text,
    data       jsonb,
    metadata   jsonb,
    event_id   uuid
);

CREATE FUNCTION eventstore.event(event_type text, data jsonb,
                                 metadata jsonb DEFAULT NULL, event_id uuid DEFAULT NULL)
    RETURNS eventstore.new_event
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT ROW($1, $2, $3, $4)::eventstore.new_event $$;

CREATE FUNCTION eventstore.append(stream_id text, expected_version bigint,
                                  events eventstore.new_event[],
                                  OUT stream_version bigint, OUT global_position bigint)
    RETURNS record
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_append';

CREATE FUNCTION eventstore.append_event(stream_id text, expected_version bigint,
                                        event_type text, data jsonb,
                                        metadata jsonb DEFAULT NULL, event_id uuid DEFAULT NULL,
                                        OUT stream_version bigint, OUT global_position bigint)
    RETURNS record
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_append_event';

-- Argument checks for the SQL read functions (they raise, or return the value).
CREATE FUNCTION eventstore._stream_arg(stream_id text) RETURNS text
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'eventstore_stream_arg';
CREATE FUNCTION eventstore._count_arg(max_count integer) RETURNS bigint
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'eventstore_count_arg';

-- Plain SQL, so the planner inlines them into the calling query.
CREATE FUNCTION eventstore.read_stream(stream_id text, from_version bigint DEFAULT 1,
                                       max_count integer DEFAULT NULL)
    RETURNS SETOF eventstore.events
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT e.* FROM eventstore.events e
         WHERE e.stream_id OPERATOR(pg_catalog.=) eventstore._stream_arg($1)
           AND e.stream_version OPERATOR(pg_catalog.>=) COALESCE($2, 1)
         ORDER BY e.stream_version
         LIMIT eventstore._count_arg($3)
    $$;

CREATE FUNCTION eventstore.read_stream_backwards(stream_id text, from_version bigint DEFAULT NULL,
                                                 max_count integer DEFAULT NULL)
    RETURNS SETOF eventstore.events
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT e.* FROM eventstore.events e
         WHERE e.stream_id OPERATOR(pg_catalog.=) eventstore._stream_arg($1)
           AND e.stream_version OPERATOR(pg_catalog.<=) COALESCE($2, 9223372036854775807)
         ORDER BY e.stream_version DESC
         LIMIT eventstore._count_arg($3)
    $$;

-- VOLATILE: each call reads with a fresh snapshot taken with its horizon.
CREATE FUNCTION eventstore.read_all(after_position bigint DEFAULT 0,
                                    max_count integer DEFAULT 1000)
    RETURNS SETOF eventstore.events
    LANGUAGE c VOLATILE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_read_all';

CREATE FUNCTION eventstore.read_category(category text, after_position bigint DEFAULT 0,
                                         max_count integer DEFAULT 1000)
    RETURNS SETOF eventstore.events
    LANGUAGE c VOLATILE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_read_category';

CREATE FUNCTION eventstore.stream_version(stream_id text)
    RETURNS bigint
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    AS $$
        SELECT COALESCE(pg_catalog.max(e.stream_version), 0)
          FROM eventstore.events e
         WHERE e.stream_id OPERATOR(pg_catalog.=) $1
    $$;

CREATE FUNCTION eventstore.category(stream_id text)
    RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT pg_catalog.split_part($1, '-', 1) $$;

-- Writing is a privilege of its own: grant EXECUTE on the append functions to
-- writer roles (see the README's "Roles and privileges").
REVOKE ALL ON FUNCTION eventstore.append(text, bigint, eventstore.new_event[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.append_event(text, bigint, text, jsonb, jsonb, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.refuse_change() FROM PUBLIC;
