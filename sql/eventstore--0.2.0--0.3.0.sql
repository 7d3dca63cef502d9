-- eventstore 0.2.0 -> 0.3.0: transactional outbox, relay worker, durable consumers.

\echo Use "ALTER EXTENSION eventstore UPDATE TO '0.3.0'" to load this file. \quit

-- Which appended events get an outbox row, per NOTIFY channel.
CREATE TABLE eventstore.routes (
    channel     text        NOT NULL,
    event_types text[],
    categories  text[],
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT routes_pkey PRIMARY KEY (channel)
);
SELECT pg_catalog.pg_extension_config_dump('eventstore.routes', '');
GRANT SELECT ON eventstore.routes TO PUBLIC;
CREATE TRIGGER routes_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON eventstore.routes
    FOR EACH STATEMENT EXECUTE FUNCTION eventstore._registry_changed();

-- Outbox ids, like global positions, must be handed out in order (CACHE 1).
CREATE SEQUENCE eventstore.outbox_id_seq AS bigint CACHE 1;

-- An outbox row is either an appended event (global_position) or a plain
-- message (payload).  The relay publishes in id order and sets published_at.
CREATE TABLE eventstore.outbox (
    id              bigint      NOT NULL,
    channel         text        NOT NULL,
    global_position bigint,
    payload         jsonb,
    headers         jsonb,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    published_at    timestamptz,
    CONSTRAINT outbox_pkey PRIMARY KEY (id),
    CONSTRAINT outbox_event_or_message CHECK ((global_position IS NULL) OPERATOR(pg_catalog.<>) (payload IS NULL))
) WITH (fillfactor = 50);	-- room for the HOT update that sets published_at
ALTER SEQUENCE eventstore.outbox_id_seq OWNED BY eventstore.outbox.id;
CREATE INDEX outbox_channel_idx ON eventstore.outbox (channel, id);
SELECT pg_catalog.pg_extension_config_dump('eventstore.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('eventstore.outbox_id_seq', '');

-- The relay publishes in id order, so what it has published is always every
-- row up to one id: the pending rows are those above it, found through the
-- primary key (no index on published_at, which would fill with dead entries).
CREATE TABLE eventstore.relay_state (
    singleton         boolean NOT NULL DEFAULT true,
    last_published_id bigint  NOT NULL DEFAULT 0,
    CONSTRAINT relay_state_pkey PRIMARY KEY (singleton),
    CONSTRAINT relay_state_singleton CHECK (singleton)
);
INSERT INTO eventstore.relay_state DEFAULT VALUES;
SELECT pg_catalog.pg_extension_config_dump('eventstore.relay_state', '');

-- Durable consumer checkpoints.
CREATE TABLE eventstore.consumers (
    consumer   text        NOT NULL,
    channel    text        NOT NULL,
    last_id    bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT consumers_pkey PRIMARY KEY (consumer, channel)
);
SELECT pg_catalog.pg_extension_config_dump('eventstore.consumers', '');

-- Each outbox row as the JSON message the relay publishes: for an event its
-- position, stream, version, type, id and data; for a message its payload
-- and headers.
CREATE VIEW eventstore.outbox_messages AS
SELECT o.id, o.channel, o.global_position, o.created_at, o.published_at,
       CASE WHEN o.global_position IS NULL THEN
           pg_catalog.jsonb_build_object('id', o.id, 'channel', o.channel,
                                         'payload', o.payload, 'headers', o.headers)
       ELSE
           pg_catalog.jsonb_build_object('id', o.id, 'channel', o.channel,
                                         'position', e.global_position, 'stream_id', e.stream_id,
                                         'stream_version', e.stream_version, 'event_type', e.event_type,
                                         'event_id', e.event_id, 'data', e.data)
       END AS message
  FROM eventstore.outbox o
  LEFT JOIN eventstore.events e ON e.global_position OPERATOR(pg_catalog.=) o.global_position;

CREATE FUNCTION eventstore.add_route(channel text, event_types text[] DEFAULT NULL,
                                     categories text[] DEFAULT NULL)
    RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_add_route';
CREATE FUNCTION eventstore.remove_route(channel text) RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_remove_route';

-- A channel argument, checked (not NULL or empty, shorter than 64 bytes).
CREATE FUNCTION eventstore._channel_arg(channel text) RETURNS text
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'eventstore_channel_arg';

CREATE FUNCTION eventstore.enqueue(channel text, payload jsonb, headers jsonb DEFAULT NULL)
    RETURNS bigint
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_enqueue';

CREATE FUNCTION eventstore.relay_once(max_count integer DEFAULT NULL) RETURNS integer
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_relay_once';

CREATE FUNCTION eventstore.relay_status(
        OUT database text, OUT pid integer, OUT state text, OUT published_total bigint,
        OUT pending bigint, OUT oldest_pending_age interval,
        OUT last_error text, OUT last_error_at timestamptz)
    RETURNS SETOF record
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'eventstore_relay_status';
CREATE VIEW eventstore.relay_status AS SELECT * FROM eventstore.relay_status();

-- Consumers read published messages after their checkpoint.  SECURITY
-- DEFINER so a consumer role needs EXECUTE only, not rights on the tables.
CREATE FUNCTION eventstore._check_consumer(consumer text, channel text, n bigint, what text)
    RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        IF consumer IS NULL OR consumer OPERATOR(pg_catalog.=) '' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'consumer must not be null or empty';
        END IF;
        PERFORM eventstore._channel_arg(channel);
        IF what OPERATOR(pg_catalog.=) 'max_count' AND (n IS NULL OR n OPERATOR(pg_catalog.<) 0) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'max_count must be zero or more';
        ELSIF what OPERATOR(pg_catalog.=) 'id' AND (n IS NULL OR n OPERATOR(pg_catalog.<=) 0) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'id must be a positive outbox id';
        END IF;
    END
    $$;

CREATE FUNCTION eventstore.consumer_poll(consumer text, channel text, max_count integer DEFAULT 100)
    RETURNS TABLE (id bigint, channel text, global_position bigint, message jsonb,
                   created_at timestamptz, published_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT eventstore._check_consumer($1, $2, $3, 'max_count');
        SELECT m.id, m.channel, m.global_position, m.message, m.created_at, m.published_at
          FROM eventstore.outbox_messages m
         WHERE m.channel OPERATOR(pg_catalog.=) $2
           AND m.published_at IS NOT NULL
           AND m.id OPERATOR(pg_catalog.>) COALESCE(
                 (SELECT c.last_id FROM eventstore.consumers c
                   WHERE c.consumer OPERATOR(pg_catalog.=) $1
                     AND c.channel OPERATOR(pg_catalog.=) $2), 0)
         ORDER BY m.id
         LIMIT $3;
    $$;

-- An id is published when it is at or below the relay's cursor (published
-- rows may since have been deleted by retention: acking again is fine).
CREATE FUNCTION eventstore.consumer_ack(consumer text, channel text, id bigint) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM eventstore._check_consumer($1, $2, $3, 'id');
        IF $3 OPERATOR(pg_catalog.>) (SELECT s.last_published_id FROM eventstore.relay_state s) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = pg_catalog.format('message %s of channel "%s" has not been published', $3, $2);
        END IF;
        INSERT INTO eventstore.consumers AS c (consumer, channel, last_id) VALUES ($1, $2, $3)
        ON CONFLICT ON CONSTRAINT consumers_pkey DO UPDATE
            SET last_id = GREATEST(c.last_id, EXCLUDED.last_id), updated_at = pg_catalog.now();
    END
    $$;

CREATE FUNCTION eventstore._relay_wakeup() RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'eventstore_relay_wakeup';

REVOKE ALL ON FUNCTION eventstore.add_route(text, text[], text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.remove_route(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.enqueue(text, jsonb, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.relay_once(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.consumer_poll(text, text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.consumer_ack(text, text, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore._relay_wakeup() FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore._check_consumer(text, text, bigint, text) FROM PUBLIC;

-- Tell the relay launcher (if preloaded) that this database now needs a worker.
SELECT eventstore._relay_wakeup();
