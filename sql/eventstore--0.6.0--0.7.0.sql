-- eventstore 0.6.0 -> 0.7.0
\echo Use "ALTER EXTENSION eventstore UPDATE TO '0.7.0'" to load this file. \quit

-- == Subscriptions ==========================================================

-- == Lifecycle ==============================================================

-- The outbox publishes what reads return (relay.c): an event that the
-- store's metadata or a deletion hides is not shown by outbox_messages (nor
-- published by the relay), and in its data the envelopes of forgotten keys
-- show the marker {"$es_forgotten": true} (those of live keys stay sealed).
-- Whoever may read outbox_messages or the store may call them.
CREATE FUNCTION eventstore._outbox_shown(store regclass, stream_id text, stream_version bigint,
                                         created_at timestamptz)
    RETURNS boolean
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_outbox_shown';
CREATE FUNCTION eventstore._outbox_data(data jsonb, store regclass)
    RETURNS jsonb
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_outbox_data';
CREATE OR REPLACE VIEW eventstore.outbox_messages AS
SELECT o.id, o.channel, o.global_position, o.created_at, o.published_at,
       CASE WHEN o.global_position IS NULL THEN
           pg_catalog.jsonb_build_object('id', o.id, 'channel', o.channel,
                                         'payload', o.payload, 'headers', o.headers)
       ELSE
           pg_catalog.jsonb_build_object('id', o.id, 'channel', o.channel,
                                         'position', e.global_position, 'stream_id', e.stream_id,
                                         'stream_version', e.stream_version, 'event_type', e.event_type,
                                         'event_id', e.event_id, 'data', eventstore._outbox_data(e.data, o.store))
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
         WHERE o.store OPERATOR(pg_catalog.<>) 'eventstore.events'::pg_catalog.regclass) e ON true
 WHERE eventstore._outbox_shown(o.store, e.stream_id, e.stream_version, e.created_at);

-- == Consistency across streams (DCB) =======================================

-- == Append path ============================================================
