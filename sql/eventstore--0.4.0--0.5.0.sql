-- eventstore 0.4.0 -> 0.5.0: hardening (issue 10).
\echo Use "ALTER EXTENSION eventstore UPDATE TO '0.5.0'" to load this file. \quit

-- == Append, horizon and reads =============================================

-- == Registries and handlers ===============================================

-- == Snapshots and folds ===================================================

-- == Relay, dump and restore ===============================================

-- == Consumers, routes and enqueue =========================================

-- == Immutability ==========================================================

-- == Observability =========================================================
-- Counters in shared memory (src/stats.c), the horizon status and the lags.
-- Cluster-wide counters show every database; the lag views the current one.
-- Readable by pg_monitor (and the extension's owner); stats_reset() by the
-- owner only.

CREATE FUNCTION eventstore._stats(
        OUT dbid oid, OUT kind text, OUT store text, OUT name text,
        OUT appends bigint, OUT events bigint, OUT batches bigint,
        OUT conflicts bigint, OUT retries bigint, OUT vetoes bigint, OUT bytes bigint,
        OUT projection_calls bigint, OUT projection_time_ms double precision,
        OUT upcaster_calls bigint, OUT upcaster_time_ms double precision,
        OUT policy_calls bigint, OUT policy_time_ms double precision,
        OUT stats_since timestamptz, OUT stats_dropped bigint)
    RETURNS SETOF record
    LANGUAGE c VOLATILE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_stats';

CREATE FUNCTION eventstore.stats_reset() RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_stats_reset';

-- One row per database and store: totals since stats_since.
CREATE VIEW eventstore.stats AS
SELECT d.datname AS database, s.store, s.appends, s.events, s.batches, s.conflicts,
       s.retries, s.vetoes, s.bytes, s.projection_calls, s.projection_time_ms,
       s.upcaster_calls, s.upcaster_time_ms, s.policy_calls, s.policy_time_ms,
       s.stats_since, s.stats_dropped
  FROM eventstore._stats() s
  LEFT JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) s.dbid
 WHERE s.kind OPERATOR(pg_catalog.=) 's';

-- One row per database, store and category (bounded: see README).
CREATE VIEW eventstore.category_stats AS
SELECT d.datname AS database, s.store, s.name AS category, s.appends, s.events,
       s.batches, s.conflicts, s.retries, s.vetoes, s.bytes, s.stats_since
  FROM eventstore._stats() s
  LEFT JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) s.dbid
 WHERE s.kind OPERATOR(pg_catalog.=) 'c';

-- One row per database, store and projection: calls and time of its handler.
CREATE VIEW eventstore.projection_stats AS
SELECT d.datname AS database, s.store, s.name AS projection,
       s.projection_calls AS calls, s.projection_time_ms AS total_time_ms,
       CASE WHEN s.projection_calls OPERATOR(pg_catalog.>) 0
            THEN s.projection_time_ms OPERATOR(pg_catalog./) s.projection_calls END AS mean_time_ms,
       s.stats_since
  FROM eventstore._stats() s
  LEFT JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) s.dbid
 WHERE s.kind OPERATOR(pg_catalog.=) 'p';

CREATE FUNCTION eventstore._horizon_status(
        OUT counter text, OUT newest bigint, OUT horizon bigint, OUT in_flight integer,
        OUT oldest_pid integer, OUT oldest_value bigint)
    RETURNS SETOF record
    LANGUAGE c VOLATILE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_horizon_status';

-- Per counter (position: the log; outbox: outbox ids) the newest value handed
-- out, the read horizon, the gap, and the oldest transaction in flight.
-- Without preload there is no registry: horizon, gap and oldest_value are
-- NULL and the appenders are found through their advisory locks.
CREATE VIEW eventstore.horizon_status AS
SELECT h.counter, h.newest, h.horizon,
       h.newest OPERATOR(pg_catalog.-) h.horizon AS gap,
       COALESCE(h.in_flight, l.holders, 0) AS in_flight,
       COALESCE(h.oldest_pid, l.pid) AS oldest_pid, h.oldest_value,
       a.xact_start AS oldest_xact_start, a.query_start AS oldest_query_start,
       pg_catalog.now() OPERATOR(pg_catalog.-) a.xact_start AS held_for,
       a.state AS oldest_state, a.wait_event_type AS oldest_wait_event_type,
       a.wait_event AS oldest_wait_event
  FROM eventstore._horizon_status() h
  LEFT JOIN LATERAL (
        SELECT pg_catalog.count(*) OVER ()::integer AS holders, lk.pid
          FROM pg_catalog.pg_locks lk
          LEFT JOIN pg_catalog.pg_stat_activity la ON la.pid OPERATOR(pg_catalog.=) lk.pid
         WHERE h.horizon IS NULL AND lk.granted
           AND lk.locktype OPERATOR(pg_catalog.=) 'advisory'
           AND lk.database OPERATOR(pg_catalog.=) (SELECT db.oid FROM pg_catalog.pg_database db
                                                    WHERE db.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
           AND lk.objsubid OPERATOR(pg_catalog.=) 17748
           AND lk.objid OPERATOR(pg_catalog.=) CASE h.counter WHEN 'position' THEN 0 ELSE 1 END
         ORDER BY la.xact_start NULLS LAST
         LIMIT 1) l ON true
  LEFT JOIN pg_catalog.pg_stat_activity a
         ON a.pid OPERATOR(pg_catalog.=) COALESCE(h.oldest_pid, l.pid);

-- The relay: outbox rows not yet published, and the age of the oldest.
CREATE VIEW eventstore.relay_lag AS
SELECT pg_catalog.current_database() AS database,
       r.last_published_id,
       (SELECT pg_catalog.max(o.id) FROM eventstore.outbox o) AS newest_id,
       p.pending, p.oldest_pending_at,
       pg_catalog.now() OPERATOR(pg_catalog.-) p.oldest_pending_at AS oldest_pending_age
  FROM eventstore.relay_state r
  CROSS JOIN LATERAL (
        SELECT pg_catalog.count(*) AS pending, pg_catalog.min(o.created_at) AS oldest_pending_at
          FROM eventstore.outbox o
         WHERE o.id OPERATOR(pg_catalog.>) r.last_published_id) p;

-- Durable consumers: published messages of their channel after their
-- checkpoint, the age of the oldest, and how long since they last acked.
CREATE VIEW eventstore.consumer_lag AS
SELECT pg_catalog.current_database() AS database, c.consumer, c.channel, c.last_id,
       COALESCE(p.newest_id, c.last_id) AS newest_id, p.pending, p.oldest_pending_at,
       pg_catalog.now() OPERATOR(pg_catalog.-) p.oldest_pending_at AS oldest_pending_age,
       c.updated_at AS last_ack_at,
       pg_catalog.now() OPERATOR(pg_catalog.-) c.updated_at AS since_last_ack
  FROM eventstore.consumers c
  CROSS JOIN LATERAL (
        SELECT pg_catalog.count(*) AS pending, pg_catalog.min(o.created_at) AS oldest_pending_at,
               pg_catalog.max(o.id) AS newest_id
          FROM eventstore.outbox o, eventstore.relay_state r
         WHERE o.channel OPERATOR(pg_catalog.=) c.channel
           AND o.id OPERATOR(pg_catalog.>) c.last_id
           AND o.id OPERATOR(pg_catalog.<=) r.last_published_id) p;

REVOKE ALL ON FUNCTION eventstore._stats() FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore._horizon_status() FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.stats_reset() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eventstore._stats() TO pg_monitor;
GRANT EXECUTE ON FUNCTION eventstore._horizon_status() TO pg_monitor;
GRANT USAGE ON SCHEMA eventstore TO pg_monitor;
GRANT SELECT ON eventstore.stats, eventstore.category_stats, eventstore.projection_stats,
                eventstore.horizon_status, eventstore.relay_lag, eventstore.consumer_lag
    TO pg_monitor;
