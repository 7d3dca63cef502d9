-- eventstore 0.4.0 -> 0.5.0: hardening (issue 10).
\echo Use "ALTER EXTENSION eventstore UPDATE TO '0.5.0'" to load this file. \quit

-- == Append, horizon and reads =============================================
-- No SQL changes: the savepoint-safe horizon lock, the LWLock that no longer
-- waits on the sequence's lock, the retry that gives back its stream lock and
-- read_all_until's prefix are all in the library (horizon.c, append.c, read.c).

-- == Registries and handlers ===============================================

-- Registered handlers run as the role that owned them when they were
-- registered (handler_owner / reducer_owner), like SECURITY DEFINER
-- functions, and a handler re-resolved from its stored name is used only
-- while that role still owns it.  Existing rows: the current owner of the
-- function the stored name resolves to, or, for a handler that does not
-- resolve (dropped), the extension's owner.
ALTER TABLE eventstore.projections ADD COLUMN handler_owner pg_catalog.regrole;
UPDATE eventstore.projections p SET handler_owner = coalesce(
    (SELECT f.proowner FROM pg_catalog.pg_proc f
      WHERE f.oid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure(p.handler)::pg_catalog.oid),
    (SELECT x.extowner FROM pg_catalog.pg_extension x
      WHERE x.extname OPERATOR(pg_catalog.=) 'eventstore'))::pg_catalog.regrole;
ALTER TABLE eventstore.projections ALTER COLUMN handler_owner SET NOT NULL;
COMMENT ON COLUMN eventstore.projections.handler_owner IS
    'The role the handler and reset handler run as: their owner when registered. A function of the stored name owned by another role is not used.';

ALTER TABLE eventstore.upcasters ADD COLUMN handler_owner pg_catalog.regrole;
UPDATE eventstore.upcasters u SET handler_owner = coalesce(
    (SELECT f.proowner FROM pg_catalog.pg_proc f
      WHERE f.oid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure(u.handler)::pg_catalog.oid),
    (SELECT x.extowner FROM pg_catalog.pg_extension x
      WHERE x.extname OPERATOR(pg_catalog.=) 'eventstore'))::pg_catalog.regrole;
ALTER TABLE eventstore.upcasters ALTER COLUMN handler_owner SET NOT NULL;
COMMENT ON COLUMN eventstore.upcasters.handler_owner IS
    'The role the upcaster runs as: its owner when registered. A function of the stored name owned by another role is not used.';

ALTER TABLE eventstore.snapshot_policies ADD COLUMN reducer_owner pg_catalog.regrole;
UPDATE eventstore.snapshot_policies p SET reducer_owner = coalesce(
    (SELECT f.proowner FROM pg_catalog.pg_proc f
      WHERE f.oid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure(p.reducer)::pg_catalog.oid),
    (SELECT x.extowner FROM pg_catalog.pg_extension x
      WHERE x.extname OPERATOR(pg_catalog.=) 'eventstore'))::pg_catalog.regrole;
ALTER TABLE eventstore.snapshot_policies ALTER COLUMN reducer_owner SET NOT NULL;
COMMENT ON COLUMN eventstore.snapshot_policies.reducer_owner IS
    'The role the reducer runs as: its owner when the policy was set. A function of the stored name owned by another role is not used.';

-- == Snapshots and folds ===================================================

-- Snapshots of a type that a snapshot policy owns are the policy's alone
-- (issue 10, item 10): by_policy says a policy wrote the row.
-- save_snapshot refuses (42501) a type that has a policy; aggregate(),
-- load_snapshot() and the policies themselves build only on by_policy rows
-- for such a type.  Rows written before 0.5.0 cannot be told apart: they
-- count as not by a policy, so folds of a policy's type ignore them until
-- the policy writes new ones (see README, "Snapshots").
ALTER TABLE eventstore.snapshots ADD COLUMN by_policy boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN eventstore.snapshots.by_policy IS
    'Written by the snapshot policy of its type; for a type that has a policy, only such rows are used.';

CREATE OR REPLACE FUNCTION eventstore.load_snapshot(stream_id text, snapshot_type text DEFAULT 'default',
                                                    max_version bigint DEFAULT NULL)
    RETURNS TABLE (stream_version bigint, state jsonb, created_at timestamptz)
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT s.stream_version, s.state, s.created_at FROM eventstore.snapshots s
         WHERE s.stream_id OPERATOR(pg_catalog.=) eventstore._stream_arg($1)
           AND s.snapshot_type OPERATOR(pg_catalog.=) $2
           AND s.stream_version OPERATOR(pg_catalog.<=) COALESCE($3, 9223372036854775807)
           AND (s.by_policy OR NOT EXISTS (SELECT FROM eventstore.snapshot_policies p
                                            WHERE p.snapshot_type OPERATOR(pg_catalog.=) $2))
         ORDER BY s.stream_version DESC
         LIMIT 1
    $$;

-- == Relay, dump and restore ===============================================

-- relay_state keeps one row, made when the extension is created, and is a
-- config table so that pg_dump carries the relay's cursor.  pg_restore runs
-- CREATE EXTENSION (which makes the row) and then COPYs the dumped row in:
-- this trigger merges an inserted row into the existing one, keeping the
-- higher cursor, instead of failing on relay_state_pkey (which aborted a
-- --single-transaction or --exit-on-error restore and left the cursor at 0,
-- so every restored row would have been published again).
CREATE FUNCTION eventstore._relay_state_merge() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        UPDATE eventstore.relay_state s
           SET last_published_id = GREATEST(s.last_published_id, NEW.last_published_id)
         WHERE s.singleton;
        IF FOUND THEN
            RETURN NULL;
        END IF;
        RETURN NEW;
    END
    $$;
REVOKE ALL ON FUNCTION eventstore._relay_state_merge() FROM PUBLIC;
CREATE TRIGGER relay_state_merge BEFORE INSERT ON eventstore.relay_state
    FOR EACH ROW EXECUTE FUNCTION eventstore._relay_state_merge();

-- relay_status gains waiting_since: when the database began waiting for a
-- background worker slot (NULL while it has a worker or needs none).  The
-- view is made again with the privileges it had (grant_access gives admins
-- SELECT on it).  Grants run by this script would count as the extension's
-- own initial privileges, which pg_dump leaves out: the last statement of
-- this script (Initial privileges) takes them out of pg_init_privs again.
DO $$
DECLARE
    grants text[] := ARRAY(
        SELECT pg_catalog.format('GRANT %s ON eventstore.relay_status TO %s%s', a.privilege_type,
                                 CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END,
                                 CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
          FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
         WHERE c.oid OPERATOR(pg_catalog.=) 'eventstore.relay_status'::regclass
           AND a.grantee OPERATOR(pg_catalog.<>) c.relowner);
    g text;
BEGIN
    DROP VIEW eventstore.relay_status;
    DROP FUNCTION eventstore.relay_status();
    CREATE FUNCTION eventstore.relay_status(
            OUT database text, OUT pid integer, OUT state text, OUT published_total bigint,
            OUT pending bigint, OUT oldest_pending_age interval,
            OUT last_error text, OUT last_error_at timestamptz, OUT waiting_since timestamptz)
        RETURNS SETOF record
        LANGUAGE c VOLATILE
        AS 'MODULE_PATHNAME', 'eventstore_relay_status';
    CREATE VIEW eventstore.relay_status AS SELECT * FROM eventstore.relay_status();
    FOREACH g IN ARRAY grants LOOP
        EXECUTE g;
    END LOOP;
END
$$;

-- == Consumers, routes and enqueue =========================================

-- Routes can publish ids only (README, "Outbox and relay"): with_data false
-- leaves an event's data, stream, type and id, and a message's payload and
-- headers, out of the NOTIFY payload, which any role that can LISTEN sees.
-- Each outbox row keeps the choice of its route when it was written.
ALTER TABLE eventstore.routes ADD COLUMN with_data boolean NOT NULL DEFAULT true;
ALTER TABLE eventstore.outbox ADD COLUMN with_data boolean NOT NULL DEFAULT true;

-- add_route gains with_data.  A new signature is a new function: the grants
-- of the old one are carried over.
DO $$
DECLARE
    old pg_catalog.regprocedure := 'eventstore.add_route(text, text[], text[])';
    acl pg_catalog.aclitem[];
    owner pg_catalog.oid;
    g record;
BEGIN
    SELECT p.proacl, p.proowner INTO acl, owner FROM pg_catalog.pg_proc p
     WHERE p.oid OPERATOR(pg_catalog.=) old::pg_catalog.oid;
    DROP FUNCTION eventstore.add_route(text, text[], text[]);
    CREATE FUNCTION eventstore.add_route(channel text, event_types text[] DEFAULT NULL,
                                         categories text[] DEFAULT NULL, with_data boolean DEFAULT true)
        RETURNS void
        LANGUAGE c VOLATILE PARALLEL UNSAFE
        AS 'MODULE_PATHNAME', 'eventstore_add_route';
    REVOKE ALL ON FUNCTION eventstore.add_route(text, text[], text[], boolean) FROM PUBLIC;
    FOR g IN SELECT a.grantee, a.is_grantable FROM pg_catalog.aclexplode(acl) a
              WHERE a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
                AND a.grantee OPERATOR(pg_catalog.<>) owner
                AND a.grantee OPERATOR(pg_catalog.<>) 0 LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION eventstore.add_route(text, text[], text[], boolean)'
                                  ' TO %s%s', g.grantee::pg_catalog.regrole,
                                  CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
END
$$;

-- Checkpoints belong to a role (README, "Durable consumers"): the role that
-- created the consumer with its first consumer_ack.  Checkpoints from before
-- 0.5.0 have no owner (NULL): any consumer role may use them, and the first
-- one to acknowledge takes them.
ALTER TABLE eventstore.consumers ADD COLUMN owner pg_catalog.regrole;

-- May role caller use a checkpoint owned by owner?  Yes if it has no owner
-- (yet), if the caller has the owner's privileges (is the owner, a member of
-- it, or a superuser), or if it may write eventstore.consumers (an admin,
-- the extension's owner).  One SQL expression, so it is inlined (no SET
-- clause; every name in it is schema-qualified).
CREATE FUNCTION eventstore._consumer_may(owner oid, caller oid) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
        SELECT $1 IS NULL
            OR pg_catalog.pg_has_role($2, $1, 'USAGE')
            OR pg_catalog.has_table_privilege($2, 'eventstore.consumers'::pg_catalog.regclass, 'UPDATE')
    $$;

-- Raise 42501 unless role caller may use the checkpoint (consumer, channel).
CREATE FUNCTION eventstore._consumer_check_owner(consumer text, channel text, caller oid)
    RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        owner pg_catalog.oid;
    BEGIN
        SELECT c.owner INTO owner FROM eventstore.consumers c
         WHERE c.consumer OPERATOR(pg_catalog.=) $1 AND c.channel OPERATOR(pg_catalog.=) $2;
        IF NOT COALESCE(eventstore._consumer_may(owner, caller), false) THEN
            RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
                MESSAGE = pg_catalog.format('consumer "%s" of channel "%s" belongs to another role', $1, $2),
                DETAIL = pg_catalog.format('It belongs to role %s.', owner::pg_catalog.regrole),
                HINT = 'Use a consumer name of your own; an eventstore admin can drop it with eventstore.drop_consumer().';
        END IF;
    END
    $$;

-- The bodies of consumer_poll, consumer_ack, drop_consumer and
-- consumer_status.  The public functions are C functions (consumer.c) that
-- pass the calling role and run these as the extension's owner; nobody else
-- may call them (a caller argument must not be forgeable).
CREATE FUNCTION eventstore._consumer_poll(of_consumer text, of_channel text, max_count integer, caller oid)
    RETURNS TABLE (id bigint, channel text, global_position bigint, message jsonb,
                   created_at timestamptz, published_at timestamptz)
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        from_id bigint;
        owner pg_catalog.oid;
    BEGIN
        PERFORM eventstore._check_consumer($1, $2, $3, 'max_count');
        SELECT c.last_id, c.owner INTO from_id, owner FROM eventstore.consumers c
         WHERE c.consumer OPERATOR(pg_catalog.=) $1 AND c.channel OPERATOR(pg_catalog.=) $2;
        IF NOT COALESCE(eventstore._consumer_may(owner, $4), false) THEN
            PERFORM eventstore._consumer_check_owner($1, $2, $4);
        END IF;
        RETURN QUERY
        SELECT m.id, m.channel, m.global_position, m.message, m.created_at, m.published_at
          FROM eventstore.outbox_messages m
         WHERE m.channel OPERATOR(pg_catalog.=) $2
           AND m.published_at IS NOT NULL
           AND m.id OPERATOR(pg_catalog.>) COALESCE(from_id, 0)
         ORDER BY m.id
         LIMIT $3;
    END
    $$;

-- An id is published when it is at or below the relay's cursor (published
-- rows may since have been deleted by retention: acking again is fine).  One
-- upsert: it creates the checkpoint owned by the caller, or locks the
-- existing one and checks its owner on the latest version (ON CONFLICT DO
-- UPDATE ... WHERE), so two roles racing for a new name cannot both pass.
CREATE FUNCTION eventstore._consumer_ack(consumer text, channel text, id bigint, caller oid)
    RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM eventstore._check_consumer($1, $2, $3, 'id');
        IF $3 OPERATOR(pg_catalog.>) (SELECT s.last_published_id FROM eventstore.relay_state s) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = pg_catalog.format('message %s of channel "%s" has not been published', $3, $2);
        END IF;
        INSERT INTO eventstore.consumers AS c (consumer, channel, last_id, owner)
        VALUES ($1, $2, $3, $4::pg_catalog.regrole)
        ON CONFLICT ON CONSTRAINT consumers_pkey DO UPDATE
            SET last_id = GREATEST(c.last_id, EXCLUDED.last_id), updated_at = pg_catalog.now(),
                owner = COALESCE(c.owner, EXCLUDED.owner)
            WHERE eventstore._consumer_may(c.owner::pg_catalog.oid, $4);
        IF NOT FOUND THEN
            PERFORM eventstore._consumer_check_owner($1, $2, $4);
        END IF;
    END
    $$;

CREATE FUNCTION eventstore._drop_consumer(consumer text, channel text, caller oid)
    RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM eventstore._check_consumer($1, $2, 0, 'consumer');
        PERFORM FROM eventstore.consumers c
          WHERE c.consumer OPERATOR(pg_catalog.=) $1 AND c.channel OPERATOR(pg_catalog.=) $2 FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_object',
                MESSAGE = pg_catalog.format('consumer "%s" of channel "%s" does not exist', $1, $2);
        END IF;
        PERFORM eventstore._consumer_check_owner($1, $2, $3);
        DELETE FROM eventstore.consumers c
         WHERE c.consumer OPERATOR(pg_catalog.=) $1 AND c.channel OPERATOR(pg_catalog.=) $2;
    END
    $$;

-- The checkpoints the caller may use: its own (and those of roles whose
-- privileges it has), those without an owner, and all of them for an admin.
-- behind: published messages of the channel after the checkpoint.
CREATE FUNCTION eventstore._consumer_status(caller oid)
    RETURNS TABLE (consumer text, channel text, owner regrole, last_id bigint,
                   last_ack_at timestamptz, behind bigint)
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT c.consumer, c.channel, c.owner, c.last_id, c.updated_at,
               (SELECT pg_catalog.count(*) FROM eventstore.outbox o
                 WHERE o.channel OPERATOR(pg_catalog.=) c.channel
                   AND o.id OPERATOR(pg_catalog.>) c.last_id
                   AND o.id OPERATOR(pg_catalog.<=) (SELECT s.last_published_id FROM eventstore.relay_state s))
          FROM eventstore.consumers c
         WHERE eventstore._consumer_may(c.owner::pg_catalog.oid, $1)
         ORDER BY c.channel, c.consumer;
    $$;

CREATE OR REPLACE FUNCTION eventstore.consumer_poll(consumer text, channel text, max_count integer DEFAULT 100)
    RETURNS TABLE (id bigint, channel text, global_position bigint, message jsonb,
                   created_at timestamptz, published_at timestamptz)
    LANGUAGE c STABLE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_consumer_poll';
CREATE OR REPLACE FUNCTION eventstore.consumer_ack(consumer text, channel text, id bigint) RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_consumer_ack';
CREATE FUNCTION eventstore.drop_consumer(consumer text, channel text) RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_drop_consumer';
CREATE FUNCTION eventstore.consumer_status(
        OUT consumer text, OUT channel text, OUT owner regrole, OUT last_id bigint,
        OUT last_ack_at timestamptz, OUT behind bigint)
    RETURNS SETOF record
    LANGUAGE c STABLE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_consumer_status';
CREATE VIEW eventstore.consumer_status AS SELECT * FROM eventstore.consumer_status();

REVOKE ALL ON FUNCTION eventstore._consumer_may(oid, oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore._consumer_check_owner(text, text, oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore._consumer_poll(text, text, integer, oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore._consumer_ack(text, text, bigint, oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore._drop_consumer(text, text, oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore._consumer_status(oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.drop_consumer(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventstore.consumer_status() FROM PUBLIC;

-- Roles that could use consumer_poll and consumer_ack get the new consumer
-- functions; admins also UPDATE on eventstore.consumers, which is what
-- lets them manage every checkpoint.
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT a.grantee FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
              WHERE p.oid OPERATOR(pg_catalog.=) 'eventstore.consumer_ack(text, text, bigint)'::pg_catalog.regprocedure
                AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
                AND a.grantee OPERATOR(pg_catalog.<>) p.proowner AND a.grantee OPERATOR(pg_catalog.<>) 0 LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION eventstore.drop_consumer(text, text),'
                                  ' eventstore.consumer_status() TO %s', g.grantee::pg_catalog.regrole);
        EXECUTE pg_catalog.format('GRANT SELECT ON eventstore.consumer_status TO %s', g.grantee::pg_catalog.regrole);
    END LOOP;
    FOR g IN SELECT a.grantee FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
              WHERE c.oid OPERATOR(pg_catalog.=) 'eventstore.consumers'::pg_catalog.regclass
                AND a.privilege_type OPERATOR(pg_catalog.=) 'SELECT'
                AND a.grantee OPERATOR(pg_catalog.<>) c.relowner AND a.grantee OPERATOR(pg_catalog.<>) 0 LOOP
        EXECUTE pg_catalog.format('GRANT UPDATE ON eventstore.consumers TO %s', g.grantee::pg_catalog.regrole);
    END LOOP;
END
$$;

-- grant_access: add_route has a new signature; consumers also get
-- drop_consumer and consumer_status; admins UPDATE on eventstore.consumers.
-- Subscriptions (section "Subscriptions" below): consumers and admins get
-- their functions and subscription_status; admins read the subscription
-- tables and have UPDATE on eventstore.subscriptions, which lets them use
-- every subscription.
CREATE OR REPLACE FUNCTION eventstore.grant_access(role regrole, access text) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        writer text[] := ARRAY['eventstore.append(text, bigint, eventstore.new_event[], jsonb)',
                               'eventstore.append_event(text, bigint, text, jsonb, jsonb, uuid, text[], jsonb)',
                               'eventstore.enqueue(text, jsonb, jsonb)',
                               'eventstore.save_snapshot(text, bigint, jsonb, text)'];
        consumer text[] := ARRAY['eventstore.consumer_poll(text, text, integer)',
                                 'eventstore.consumer_ack(text, text, bigint)',
                                 'eventstore.drop_consumer(text, text)',
                                 'eventstore.consumer_status()',
                                 'eventstore.create_subscription(text, text[], text[], text, bigint, timestamptz, text, integer, integer, interval, interval)',
                                 'eventstore.alter_subscription(text, text[], text[], integer, interval, interval)',
                                 'eventstore.drop_subscription(text)',
                                 'eventstore.reset_subscription(text, bigint, timestamptz)',
                                 'eventstore.poll(text, text, integer)',
                                 'eventstore.ack(text, text, bigint)',
                                 'eventstore.nack(text, text, bigint, interval, text)',
                                 'eventstore.parked(text)',
                                 'eventstore.replay_parked(text, bigint)',
                                 'eventstore.subscription_status()'];
        admin text[] := ARRAY['eventstore.register_projection(text, regprocedure, text[], regprocedure)',
                              'eventstore.unregister_projection(text)',
                              'eventstore.enable_projection(text)',
                              'eventstore.disable_projection(text)',
                              'eventstore.rebuild_projection(text)',
                              'eventstore.add_route(text, text[], text[], boolean)',
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
        IF access IN ('consumer', 'admin') THEN
            EXECUTE pg_catalog.format('GRANT SELECT ON eventstore.consumer_status,'
                                      ' eventstore.subscription_status TO %s', role);
        END IF;
        IF access = 'admin' THEN
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
        FOR i IN 1 .. COALESCE(pg_catalog.array_length(fns, 1), 0) LOOP
            EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s', fns[i], role);
        END LOOP;
    END
    $$;


-- == Immutability ==========================================================

-- The statement-level trigger does not fire in the logical replication apply
-- worker, which fires row triggers only: a subscriber's events table would
-- take replicated UPDATEs and DELETEs.  A row-level trigger, enabled ALWAYS
-- like the statement one (which keeps covering TRUNCATE), closes that.
CREATE TRIGGER events_immutable_row
    BEFORE UPDATE OR DELETE ON eventstore.events
    FOR EACH ROW EXECUTE FUNCTION eventstore.refuse_change();
ALTER TABLE eventstore.events ENABLE ALWAYS TRIGGER events_immutable_row;

-- == Observability ==================================================
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
 WHERE s.kind OPERATOR(pg_catalog.=) 's'
   AND (d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()
        OR pg_catalog.pg_has_role('pg_read_all_stats', 'MEMBER'));

-- Rows of other databases (their category and projection names) only for
-- members of pg_read_all_stats (pg_monitor is one), as pg_stat_statements does
-- with query texts.
-- One row per database, store and category (bounded: see README).
CREATE VIEW eventstore.category_stats AS
SELECT d.datname AS database, s.store, s.name AS category, s.appends, s.events,
       s.batches, s.conflicts, s.retries, s.vetoes, s.bytes, s.stats_since
  FROM eventstore._stats() s
  LEFT JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) s.dbid
 WHERE s.kind OPERATOR(pg_catalog.=) 'c'
   AND (d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()
        OR pg_catalog.pg_has_role('pg_read_all_stats', 'MEMBER'));

-- One row per database, store and projection: calls and time of its handler.
CREATE VIEW eventstore.projection_stats AS
SELECT d.datname AS database, s.store, s.name AS projection,
       s.projection_calls AS calls, s.projection_time_ms AS total_time_ms,
       CASE WHEN s.projection_calls OPERATOR(pg_catalog.>) 0
            THEN s.projection_time_ms OPERATOR(pg_catalog./) s.projection_calls END AS mean_time_ms,
       s.stats_since
  FROM eventstore._stats() s
  LEFT JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) s.dbid
 WHERE s.kind OPERATOR(pg_catalog.=) 'p'
   AND (d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()
        OR pg_catalog.pg_has_role('pg_read_all_stats', 'MEMBER'));

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

-- admin gains import_events: see grant_access above (Consumers, routes and
-- enqueue), which lists it.

-- == Subscriptions =========================================================
-- Consumer groups over the log (README, "Subscriptions"; issue 12).  A
-- subscription reads eventstore.events itself, at or below the read horizon:
-- nothing is written per event at append time.  Its events are split into
-- partitions by a key (the stream, the correlation id, or none); a partition
-- is held by at most one consumer at a time (a lease), and delivers its
-- events in log order, one run at a time: the next run only after the
-- previous one is acked, nacked or parked.
--
-- The public functions are C (subscription.c) that pass the calling role to
-- the bodies below, which run as the extension's owner and are executable by
-- it only.  A subscription belongs to the role that created it: members of
-- that role use it; admins (UPDATE on eventstore.subscriptions) use all.

CREATE TABLE eventstore.subscriptions (
    name          text        PRIMARY KEY,
    categories    text[],
    event_types   text[],
    partition_by  text        NOT NULL DEFAULT 'stream'
                  CHECK (partition_by IN ('stream', 'correlation', 'none')),
    partitions    integer     NOT NULL DEFAULT 16 CHECK (partitions BETWEEN 1 AND 1024),
    max_attempts  integer     NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 1000),
    backoff       interval    NOT NULL DEFAULT '1 second',
    lease         interval    NOT NULL DEFAULT '30 seconds',
    start_position bigint     NOT NULL,
    owner         pg_catalog.regrole NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE eventstore.subscriptions IS
    'Subscriptions: a filter over the log, its partitioning, retry policy and lease (README, "Subscriptions").';

-- One row per partition.  checkpoint: every event of the partition at or
-- below it is acked or parked.  delivered_to: the last position of the run
-- in flight (NULL: none); a run not acked within the lease is sent again.
CREATE TABLE eventstore.subscription_partitions (
    subscription  text        NOT NULL REFERENCES eventstore.subscriptions ON DELETE CASCADE,
    partition     integer     NOT NULL,
    checkpoint    bigint      NOT NULL,
    holder        text,
    lease_until   timestamptz,
    acquired_at   timestamptz,
    delivered_to  bigint,
    delivered_at  timestamptz,
    PRIMARY KEY (subscription, partition)
);

-- Consumers of a group: live while last_seen is within the lease.
CREATE TABLE eventstore.subscription_consumers (
    subscription  text        NOT NULL REFERENCES eventstore.subscriptions ON DELETE CASCADE,
    consumer      text        NOT NULL,
    last_seen     timestamptz NOT NULL,
    PRIMARY KEY (subscription, consumer)
);

-- Events that failed: attempts so far and when to send them again.  A row
-- at or below its partition's checkpoint is a replayed parked event.
CREATE TABLE eventstore.subscription_retries (
    subscription    text        NOT NULL REFERENCES eventstore.subscriptions ON DELETE CASCADE,
    global_position bigint      NOT NULL,
    partition       integer     NOT NULL,
    attempts        integer     NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    last_reason     text,
    first_failed_at timestamptz,
    PRIMARY KEY (subscription, global_position)
);
CREATE INDEX subscription_retries_partition_idx
    ON eventstore.subscription_retries (subscription, partition, global_position);

-- Events given up on after max_attempts: the partition moved on.
CREATE TABLE eventstore.subscription_parked (
    subscription    text        NOT NULL REFERENCES eventstore.subscriptions ON DELETE CASCADE,
    global_position bigint      NOT NULL,
    partition       integer     NOT NULL,
    attempts        integer     NOT NULL,
    reason          text,
    first_failed_at timestamptz NOT NULL,
    last_failed_at  timestamptz NOT NULL,
    PRIMARY KEY (subscription, global_position)
);

-- Who held which partition when: a row per holding, written when a consumer
-- takes a partition and closed (ended_at) when it is released or taken
-- over.  An expired holding ends at its last lease_until.
CREATE TABLE eventstore.subscription_leases (
    subscription  text        NOT NULL REFERENCES eventstore.subscriptions ON DELETE CASCADE,
    partition     integer     NOT NULL,
    consumer      text        NOT NULL,
    acquired_at   timestamptz NOT NULL,
    ended_at      timestamptz
);
CREATE INDEX subscription_leases_idx ON eventstore.subscription_leases (subscription, partition, acquired_at);

REVOKE ALL ON eventstore.subscriptions, eventstore.subscription_partitions,
              eventstore.subscription_consumers, eventstore.subscription_retries,
              eventstore.subscription_parked, eventstore.subscription_leases FROM PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('eventstore.subscriptions', '');
SELECT pg_catalog.pg_extension_config_dump('eventstore.subscription_partitions', '');
SELECT pg_catalog.pg_extension_config_dump('eventstore.subscription_retries', '');
SELECT pg_catalog.pg_extension_config_dump('eventstore.subscription_parked', '');

CREATE FUNCTION eventstore._log_horizon() RETURNS bigint
    LANGUAGE c VOLATILE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_log_horizon';

-- The partition of a key: a 64-bit hash of its bytes (hashtextextended with
-- seed 0 under the "C" collation, stable across restarts and upgrades, as
-- hash partitioning relies on), modulo the partition count.
CREATE FUNCTION eventstore._subscription_partition(key text, partitions integer) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$
        SELECT ((pg_catalog.hashtextextended($1 COLLATE "C", 0)
                 OPERATOR(pg_catalog.&) 9223372036854775807)
                OPERATOR(pg_catalog.%) $2)::integer
    $$;

-- The partition key of an event under partition_by (correlation: the
-- metadata's correlation_id, or the stream when there is none).
CREATE FUNCTION eventstore._subscription_key(partition_by text, stream_id text, metadata jsonb,
                                             global_position bigint) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
        SELECT CASE $1
            WHEN 'stream' THEN $2
            WHEN 'correlation' THEN COALESCE($3 OPERATOR(pg_catalog.->>) 'correlation_id', $2)
            ELSE $4::text
        END
    $$;

-- Argument checks: a name (subscription or consumer) is 1 to 200 characters.
CREATE FUNCTION eventstore._subscription_arg(value text, what text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        IF value IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
                MESSAGE = pg_catalog.format('%s must not be null', what);
        END IF;
        IF value OPERATOR(pg_catalog.=) '' OR pg_catalog.length(value) OPERATOR(pg_catalog.>) 200 THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = pg_catalog.format('%s must be 1 to 200 characters', what);
        END IF;
        RETURN value;
    END
    $$;

-- The subscription name (locked FOR UPDATE with for_update),
-- after checking that role caller may use it: 42704 if it does not exist,
-- 42501 if it belongs to a role whose privileges the caller lacks.
CREATE FUNCTION eventstore._subscription_get(name text, caller oid, for_update boolean DEFAULT false)
    RETURNS eventstore.subscriptions
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        s eventstore.subscriptions;
    BEGIN
        PERFORM eventstore._subscription_arg(name, 'subscription');
        IF for_update THEN
            SELECT * INTO s FROM eventstore.subscriptions x
             WHERE x.name OPERATOR(pg_catalog.=) $1 FOR UPDATE;
        ELSE
            -- no lock: the partition rows poll, ack and nack lock keep
            -- drop_subscription (which deletes them) waiting
            SELECT * INTO s FROM eventstore.subscriptions x
             WHERE x.name OPERATOR(pg_catalog.=) $1;
        END IF;
        IF s.name IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_object',
                MESSAGE = pg_catalog.format('subscription "%s" does not exist', $1);
        END IF;
        IF NOT (caller IS NOT NULL AND (pg_catalog.pg_has_role(caller, s.owner::pg_catalog.oid, 'USAGE')
                OR pg_catalog.has_table_privilege(caller, 'eventstore.subscriptions'::pg_catalog.regclass, 'UPDATE'))) THEN
            RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
                MESSAGE = pg_catalog.format('subscription "%s" belongs to another role', $1),
                DETAIL = pg_catalog.format('It belongs to role %s.', s.owner),
                HINT = 'Members of the owning role and eventstore admins may use it.';
        END IF;
        RETURN s;
    END
    $$;

-- Checks shared by create and alter.
CREATE FUNCTION eventstore._subscription_check(categories text[], event_types text[], max_attempts integer,
                                               backoff interval, lease interval)
    RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        IF pg_catalog.array_position(categories, NULL) IS NOT NULL
           OR pg_catalog.array_position(event_types, NULL) IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
                MESSAGE = 'categories and event_types must not contain null';
        END IF;
        IF max_attempts OPERATOR(pg_catalog.<) 1 OR max_attempts OPERATOR(pg_catalog.>) 1000 THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'max_attempts must be between 1 and 1000';
        END IF;
        IF backoff OPERATOR(pg_catalog.<) interval '0' OR backoff OPERATOR(pg_catalog.>) interval '1 day' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'backoff must be between 0 and 1 day';
        END IF;
        IF lease OPERATOR(pg_catalog.<) interval '100 milliseconds' OR lease OPERATOR(pg_catalog.>) interval '1 day' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'lease must be between 100 milliseconds and 1 day';
        END IF;
    END
    $$;

-- The checkpoint for a start: 'beginning' (0), 'end' (the horizon, as far
-- as the log reaches), a position, or a time (before the first event created
-- at or after it; created_at is not in position order, so every event from
-- the first such one on is delivered).
CREATE FUNCTION eventstore._subscription_start(start text, start_position bigint, start_time timestamptz)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        given integer := (start IS NOT NULL)::integer OPERATOR(pg_catalog.+) (start_position IS NOT NULL)::integer
                         OPERATOR(pg_catalog.+) (start_time IS NOT NULL)::integer;
        first_after bigint;
        horizon bigint;
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
            SELECT pg_catalog.min(e.global_position) INTO first_after FROM eventstore.events e
             WHERE e.created_at OPERATOR(pg_catalog.>=) start_time
               AND e.global_position OPERATOR(pg_catalog.<=) horizon;
            IF first_after IS NOT NULL THEN
                RETURN first_after OPERATOR(pg_catalog.-) 1;
            END IF;
            start := 'end';
        END IF;
        IF start OPERATOR(pg_catalog.=) 'beginning' THEN
            RETURN 0;
        ELSIF start OPERATOR(pg_catalog.=) 'end' THEN
            RETURN LEAST(eventstore._log_horizon(),
                         COALESCE((SELECT pg_catalog.max(e.global_position) FROM eventstore.events e), 0));
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = pg_catalog.format('unknown start "%s"', start),
            HINT = 'Use beginning or end, or give start_position or start_time.';
    END
    $$;

CREATE FUNCTION eventstore._subscription_create(name text, categories text[], event_types text[], start text,
                                                start_position bigint, start_time timestamptz,
                                                partition_by text, partitions integer, max_attempts integer,
                                                backoff interval, lease interval, caller oid)
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
        IF max_attempts IS NULL OR backoff IS NULL OR lease IS NULL OR caller IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
                MESSAGE = 'max_attempts, backoff and lease must not be null';
        END IF;
        PERFORM eventstore._subscription_check(categories, event_types, max_attempts, backoff, lease);
        cp := eventstore._subscription_start(start, start_position, start_time);
        INSERT INTO eventstore.subscriptions AS s (name, categories, event_types, partition_by, partitions,
                                                   max_attempts, backoff, lease, start_position, owner)
        VALUES ($1, NULLIF(categories, '{}'), NULLIF(event_types, '{}'), partition_by, partitions,
                max_attempts, backoff, lease, cp, caller::pg_catalog.regrole)
        ON CONFLICT ON CONSTRAINT subscriptions_pkey DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
                MESSAGE = pg_catalog.format('subscription "%s" already exists', $1);
        END IF;
        INSERT INTO eventstore.subscription_partitions (subscription, partition, checkpoint)
        SELECT $1, p, cp FROM pg_catalog.generate_series(0, partitions OPERATOR(pg_catalog.-) 1) p;
    END
    $$;

-- What may change: the filter (from the next run on; an empty array means
-- all), max_attempts, backoff and lease.  The partitioning may not: the
-- checkpoints are per partition (drop and create instead).
CREATE FUNCTION eventstore._subscription_alter(name text, categories text[], event_types text[],
                                               max_attempts integer, backoff interval, lease interval,
                                               caller oid)
    RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        s eventstore.subscriptions := eventstore._subscription_get($1, caller, true);
    BEGIN
        PERFORM eventstore._subscription_check(categories, event_types, max_attempts, backoff, lease);
        UPDATE eventstore.subscriptions x
           SET categories = CASE WHEN $2 IS NULL THEN x.categories ELSE NULLIF($2, '{}') END,
               event_types = CASE WHEN $3 IS NULL THEN x.event_types ELSE NULLIF($3, '{}') END,
               max_attempts = COALESCE($4, x.max_attempts),
               backoff = COALESCE($5, x.backoff),
               lease = COALESCE($6, x.lease)
         WHERE x.name OPERATOR(pg_catalog.=) s.name;
    END
    $$;

CREATE FUNCTION eventstore._subscription_drop(name text, caller oid)
    RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        s eventstore.subscriptions := eventstore._subscription_get($1, caller, true);
    BEGIN
        DELETE FROM eventstore.subscriptions x WHERE x.name OPERATOR(pg_catalog.=) s.name;
    END
    $$;

-- Every partition restarts after to_position (or before the first event
-- created at or after to_time): runs in flight and pending retries are dropped,
-- parked events stay parked, holders keep their leases.
CREATE FUNCTION eventstore._subscription_reset(name text, to_position bigint, to_time timestamptz, caller oid)
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
        cp := eventstore._subscription_start(NULL, $2, $3);
        PERFORM FROM eventstore.subscription_partitions p
          WHERE p.subscription OPERATOR(pg_catalog.=) s.name ORDER BY p.partition FOR UPDATE;
        UPDATE eventstore.subscription_partitions p
           SET checkpoint = cp, delivered_to = NULL, delivered_at = NULL
         WHERE p.subscription OPERATOR(pg_catalog.=) s.name;
        DELETE FROM eventstore.subscription_retries r WHERE r.subscription OPERATOR(pg_catalog.=) s.name;
    END
    $$;

-- poll: join the group, rebalance, and deliver the next runs of the
-- partitions this consumer holds.  Each partition is taken, renewed and
-- released under its row lock (FOR UPDATE SKIP LOCKED: a partition another
-- session is acking or polling is left for this time); a partition is taken
-- only when it has no holder or its lease has expired.  Share: live
-- consumers (seen within the lease) sorted by name; the first
-- partitions % live get one more than partitions / live.
CREATE FUNCTION eventstore._subscription_poll(subscription text, consumer text, max_count integer, caller oid)
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
        RETURN QUERY
        WITH batch AS (
            SELECT b.* FROM (
                SELECT r.partition AS part, e.global_position, e.stream_id, e.stream_version, e.event_type,
                       e.data, e.metadata, e.created_at, r.attempts OPERATOR(pg_catalog.+) 1 AS attempt,
                       true AS replay
                  FROM eventstore.subscription_retries r
                  JOIN eventstore.events e ON e.global_position OPERATOR(pg_catalog.=) r.global_position
                 WHERE r.subscription OPERATOR(pg_catalog.=) s.name
                   AND r.partition OPERATOR(pg_catalog.=) ANY (replays)
                   AND r.global_position OPERATOR(pg_catalog.<=) (SELECT x.checkpoint
                         FROM eventstore.subscription_partitions x
                        WHERE x.subscription OPERATOR(pg_catalog.=) s.name
                          AND x.partition OPERATOR(pg_catalog.=) r.partition)
                UNION ALL
                (SELECT k.part, e.global_position, e.stream_id, e.stream_version, e.event_type, e.data,
                        e.metadata, e.created_at,
                        CASE WHEN retrying THEN
                            COALESCE((SELECT r.attempts FROM eventstore.subscription_retries r
                                       WHERE r.subscription OPERATOR(pg_catalog.=) s.name
                                         AND r.global_position OPERATOR(pg_catalog.=) e.global_position), 0)
                            OPERATOR(pg_catalog.+) 1
                        ELSE 1 END,
                        false
                   FROM eventstore.events e
                  CROSS JOIN LATERAL (SELECT eventstore._subscription_partition(
                          eventstore._subscription_key(s.partition_by, e.stream_id, e.metadata, e.global_position),
                          s.partitions) AS part) k
                  WHERE e.global_position OPERATOR(pg_catalog.>) lo
                    AND e.global_position OPERATOR(pg_catalog.<=) horizon
                    AND (s.categories IS NULL
                         OR pg_catalog.split_part(e.stream_id, '-', 1) OPERATOR(pg_catalog.=) ANY (s.categories))
                    AND (s.event_types IS NULL OR e.event_type OPERATOR(pg_catalog.=) ANY (s.event_types))
                    AND e.global_position OPERATOR(pg_catalog.>) cps[k.part OPERATOR(pg_catalog.+) 1]
                  ORDER BY e.global_position
                  LIMIT max_count)) b
             ORDER BY b.replay DESC, b.global_position
             LIMIT max_count),
        marked AS (
            UPDATE eventstore.subscription_partitions x
               SET delivered_to = m.last, delivered_at = clock
              FROM (SELECT bb.part, pg_catalog.max(bb.global_position) AS last FROM batch bb GROUP BY bb.part) m
             WHERE x.subscription OPERATOR(pg_catalog.=) s.name AND x.partition OPERATOR(pg_catalog.=) m.part
            RETURNING x.partition)
        SELECT b.part, b.global_position, b.stream_id, b.stream_version, b.event_type, b.data, b.metadata,
               b.created_at, b.attempt
          FROM batch b
         WHERE (SELECT pg_catalog.count(*) FROM marked) OPERATOR(pg_catalog.>=) 0
         ORDER BY b.replay DESC, b.global_position;
    END
    $$;

-- The partition row of the event at position, locked, for ack and nack:
-- the event must match the subscription (22023), its partition must be held
-- by consumer with a live lease (42501: nobody acks for someone else), and
-- the position must be in the run in flight (22023).  Also says whether it
-- is a replayed parked event, and its retry row's attempts.
CREATE FUNCTION eventstore._subscription_delivered(s eventstore.subscriptions, consumer text, "position" bigint,
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
        SELECT * INTO e FROM eventstore.events x WHERE x.global_position OPERATOR(pg_catalog.=) "position";
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

-- ack: the event at position and every event of its partition delivered
-- before it are done.  Renews the lease.  Acking again is a no-op.
CREATE FUNCTION eventstore._subscription_ack(subscription text, consumer text, "position" bigint, caller oid)
    RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        s eventstore.subscriptions := eventstore._subscription_get($1, caller);
        d record;
    BEGIN
        d := eventstore._subscription_delivered(s, $2, $3);
        IF d.acked THEN
            RETURN;
        END IF;
        DELETE FROM eventstore.subscription_retries r
         WHERE r.subscription OPERATOR(pg_catalog.=) s.name AND r.partition OPERATOR(pg_catalog.=) (d.part).partition
           AND r.global_position OPERATOR(pg_catalog.<=) $3;
        UPDATE eventstore.subscription_partitions x
           SET checkpoint = GREATEST(x.checkpoint, $3),
               delivered_to = CASE WHEN $3 OPERATOR(pg_catalog.>=) x.delivered_to THEN NULL ELSE x.delivered_to END,
               delivered_at = CASE WHEN $3 OPERATOR(pg_catalog.>=) x.delivered_to THEN NULL ELSE x.delivered_at END,
               lease_until = pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) s.lease
         WHERE x.subscription OPERATOR(pg_catalog.=) s.name AND x.partition OPERATOR(pg_catalog.=) (d.part).partition;
    END
    $$;

-- nack: the events of the partition delivered before position are done;
-- the one at position failed.  It is sent again after retry_after (default:
-- backoff * 2^(attempts - 1)), and after max_attempts it is parked and the
-- partition moves on.  The rest of the run is sent again either way.
CREATE FUNCTION eventstore._subscription_nack(subscription text, consumer text, "position" bigint,
                                              retry_after interval, reason text, caller oid)
    RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        s eventstore.subscriptions := eventstore._subscription_get($1, caller);
        d record;
        clock timestamptz := pg_catalog.clock_timestamp();
        tries integer;
    BEGIN
        IF retry_after OPERATOR(pg_catalog.<) interval '0' OR retry_after OPERATOR(pg_catalog.>) interval '1 day' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'retry_after must be between 0 and 1 day';
        END IF;
        d := eventstore._subscription_delivered(s, $2, $3);
        IF d.acked THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = pg_catalog.format('position %s of subscription "%s" was acked already', $3, s.name);
        END IF;
        tries := d.attempts OPERATOR(pg_catalog.+) 1;
        DELETE FROM eventstore.subscription_retries r
         WHERE r.subscription OPERATOR(pg_catalog.=) s.name AND r.partition OPERATOR(pg_catalog.=) (d.part).partition
           AND r.global_position OPERATOR(pg_catalog.<) $3;
        IF tries OPERATOR(pg_catalog.>=) s.max_attempts THEN
            INSERT INTO eventstore.subscription_parked AS k (subscription, global_position, partition, attempts, reason,
                                                             first_failed_at, last_failed_at)
            VALUES (s.name, $3, (d.part).partition, tries, $5, COALESCE(d.first_failed_at, clock), clock)
            ON CONFLICT ON CONSTRAINT subscription_parked_pkey DO UPDATE
                SET attempts = k.attempts OPERATOR(pg_catalog.+) EXCLUDED.attempts, reason = EXCLUDED.reason,
                    last_failed_at = EXCLUDED.last_failed_at;
            DELETE FROM eventstore.subscription_retries r
             WHERE r.subscription OPERATOR(pg_catalog.=) s.name AND r.global_position OPERATOR(pg_catalog.=) $3;
            UPDATE eventstore.subscription_partitions x
               SET checkpoint = GREATEST(x.checkpoint, $3), delivered_to = NULL, delivered_at = NULL
             WHERE x.subscription OPERATOR(pg_catalog.=) s.name AND x.partition OPERATOR(pg_catalog.=) (d.part).partition;
        ELSE
            INSERT INTO eventstore.subscription_retries AS r (subscription, global_position, partition, attempts,
                                                              next_attempt_at, last_reason, first_failed_at)
            VALUES (s.name, $3, (d.part).partition, tries,
                    clock OPERATOR(pg_catalog.+) COALESCE(retry_after,
                        s.backoff OPERATOR(pg_catalog.*) pg_catalog.power(2, tries OPERATOR(pg_catalog.-) 1)),
                    $5, COALESCE(d.first_failed_at, clock))
            ON CONFLICT ON CONSTRAINT subscription_retries_pkey DO UPDATE
                SET attempts = EXCLUDED.attempts, next_attempt_at = EXCLUDED.next_attempt_at,
                    last_reason = EXCLUDED.last_reason;
            UPDATE eventstore.subscription_partitions x
               SET checkpoint = CASE WHEN d.replay THEN x.checkpoint
                                     ELSE GREATEST(x.checkpoint, $3 OPERATOR(pg_catalog.-) 1) END,
                   delivered_to = NULL, delivered_at = NULL
             WHERE x.subscription OPERATOR(pg_catalog.=) s.name AND x.partition OPERATOR(pg_catalog.=) (d.part).partition;
        END IF;
    END
    $$;

CREATE FUNCTION eventstore._subscription_list_parked(subscription text, caller oid)
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
        RETURN QUERY
        SELECT k.global_position, k.partition, e.stream_id, e.stream_version, e.event_type, k.attempts, k.reason,
               k.first_failed_at, k.last_failed_at
          FROM eventstore.subscription_parked k
          LEFT JOIN eventstore.events e ON e.global_position OPERATOR(pg_catalog.=) k.global_position
         WHERE k.subscription OPERATOR(pg_catalog.=) s.name
         ORDER BY k.global_position;
    END
    $$;

-- replay_parked: parked events (the one at position, or all when it is
-- NULL) are sent again, each before the rest of its partition, with a fresh
-- max_attempts; if they fail again they are parked again.
CREATE FUNCTION eventstore._subscription_replay(subscription text, "position" bigint, caller oid)
    RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        s eventstore.subscriptions := eventstore._subscription_get($1, caller);
    BEGIN
        IF $2 IS NOT NULL AND NOT EXISTS (SELECT FROM eventstore.subscription_parked k
                                           WHERE k.subscription OPERATOR(pg_catalog.=) s.name
                                             AND k.global_position OPERATOR(pg_catalog.=) $2) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = pg_catalog.format('position %s of subscription "%s" is not parked', $2, s.name);
        END IF;
        WITH moved AS (
            DELETE FROM eventstore.subscription_parked k
             WHERE k.subscription OPERATOR(pg_catalog.=) s.name
               AND ($2 IS NULL OR k.global_position OPERATOR(pg_catalog.=) $2)
            RETURNING k.*)
        INSERT INTO eventstore.subscription_retries AS r (subscription, global_position, partition, attempts,
                                                          next_attempt_at, last_reason, first_failed_at)
        SELECT m.subscription, m.global_position, m.partition, 0, pg_catalog.clock_timestamp(), m.reason,
               m.first_failed_at
          FROM moved m
        ON CONFLICT ON CONSTRAINT subscription_retries_pkey DO NOTHING;
    END
    $$;

-- Per subscription the caller may use and partition: the holder and its
-- lease, the checkpoint, the run in flight, events behind (matching events
-- after the checkpoint up to the horizon, counted up to 10000: 10000 means
-- at least), the age of the oldest of them (or of the oldest pending retry),
-- pending retries and parked events.
CREATE FUNCTION eventstore._subscription_state(caller oid)
    RETURNS TABLE (subscription text, partition integer, holder text, lease_until timestamptz,
                   checkpoint bigint, delivered_to bigint, events_behind bigint, seconds_behind double precision,
                   retries bigint, parked bigint)
    LANGUAGE sql STABLE
    AS $$
        SELECT p.subscription, p.partition,
               CASE WHEN p.lease_until OPERATOR(pg_catalog.>=) pg_catalog.clock_timestamp() THEN p.holder END,
               p.lease_until, p.checkpoint, p.delivered_to, b.n,
               pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-)
                   LEAST(b.oldest, (SELECT pg_catalog.min(e.created_at) FROM eventstore.subscription_retries r
                                      JOIN eventstore.events e ON e.global_position OPERATOR(pg_catalog.=) r.global_position
                                     WHERE r.subscription OPERATOR(pg_catalog.=) p.subscription
                                       AND r.partition OPERATOR(pg_catalog.=) p.partition))),
               (SELECT pg_catalog.count(*) FROM eventstore.subscription_retries r
                 WHERE r.subscription OPERATOR(pg_catalog.=) p.subscription AND r.partition OPERATOR(pg_catalog.=) p.partition),
               (SELECT pg_catalog.count(*) FROM eventstore.subscription_parked k
                 WHERE k.subscription OPERATOR(pg_catalog.=) p.subscription AND k.partition OPERATOR(pg_catalog.=) p.partition)
          FROM (SELECT eventstore._log_horizon() AS h OFFSET 0) hz
          CROSS JOIN eventstore.subscriptions s
          JOIN eventstore.subscription_partitions p ON p.subscription OPERATOR(pg_catalog.=) s.name
          CROSS JOIN LATERAL (
                SELECT pg_catalog.count(*) AS n, pg_catalog.min(q.created_at) AS oldest FROM (
                    SELECT e.created_at FROM eventstore.events e
                     WHERE e.global_position OPERATOR(pg_catalog.>) p.checkpoint
                       AND e.global_position OPERATOR(pg_catalog.<=) hz.h
                       AND (s.categories IS NULL
                            OR pg_catalog.split_part(e.stream_id, '-', 1) OPERATOR(pg_catalog.=) ANY (s.categories))
                       AND (s.event_types IS NULL OR e.event_type OPERATOR(pg_catalog.=) ANY (s.event_types))
                       AND eventstore._subscription_partition(
                             eventstore._subscription_key(s.partition_by, e.stream_id, e.metadata, e.global_position),
                             s.partitions) OPERATOR(pg_catalog.=) p.partition
                     ORDER BY e.global_position
                     LIMIT 10000) q) b
         WHERE pg_catalog.pg_has_role($1, s.owner::pg_catalog.oid, 'USAGE')
            OR pg_catalog.has_table_privilege($1, 'eventstore.subscriptions'::pg_catalog.regclass, 'UPDATE')
         ORDER BY p.subscription, p.partition
    $$;

-- The public functions (subscription.c).
CREATE FUNCTION eventstore.create_subscription(name text, categories text[] DEFAULT NULL,
        event_types text[] DEFAULT NULL, start text DEFAULT NULL, start_position bigint DEFAULT NULL,
        start_time timestamptz DEFAULT NULL, partition_by text DEFAULT 'stream', partitions integer DEFAULT 16,
        max_attempts integer DEFAULT 5, backoff interval DEFAULT '1 second', lease interval DEFAULT '30 seconds')
    RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_create_subscription';
CREATE FUNCTION eventstore.alter_subscription(name text, categories text[] DEFAULT NULL,
        event_types text[] DEFAULT NULL, max_attempts integer DEFAULT NULL, backoff interval DEFAULT NULL,
        lease interval DEFAULT NULL)
    RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_alter_subscription';
CREATE FUNCTION eventstore.drop_subscription(name text) RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_drop_subscription';
CREATE FUNCTION eventstore.reset_subscription(name text, to_position bigint DEFAULT NULL,
                                              to_time timestamptz DEFAULT NULL) RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_reset_subscription';
CREATE FUNCTION eventstore.poll(subscription text, consumer text, max_count integer DEFAULT 100)
    RETURNS TABLE (partition integer, global_position bigint, stream_id text, stream_version bigint,
                   event_type text, data jsonb, metadata jsonb, created_at timestamptz, attempt integer)
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_poll';
CREATE FUNCTION eventstore.ack(subscription text, consumer text, global_position bigint) RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_ack';
CREATE FUNCTION eventstore.nack(subscription text, consumer text, global_position bigint,
                                retry_after interval DEFAULT NULL, reason text DEFAULT NULL) RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_nack';
CREATE FUNCTION eventstore.parked(subscription text)
    RETURNS TABLE (global_position bigint, partition integer, stream_id text, stream_version bigint,
                   event_type text, attempts integer, reason text,
                   first_failed_at timestamptz, last_failed_at timestamptz)
    LANGUAGE c STABLE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_parked';
CREATE FUNCTION eventstore.replay_parked(subscription text, global_position bigint DEFAULT NULL) RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_replay_parked';
CREATE FUNCTION eventstore.subscription_status()
    RETURNS TABLE (subscription text, partition integer, holder text, lease_until timestamptz,
                   checkpoint bigint, delivered_to bigint, events_behind bigint, seconds_behind double precision,
                   retries bigint, parked bigint)
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_subscription_status';
CREATE VIEW eventstore.subscription_status AS SELECT * FROM eventstore.subscription_status();

REVOKE ALL ON FUNCTION eventstore._log_horizon(), eventstore._subscription_partition(text, integer),
    eventstore._subscription_key(text, text, jsonb, bigint), eventstore._subscription_arg(text, text),
    eventstore._subscription_get(text, oid, boolean),
    eventstore._subscription_check(text[], text[], integer, interval, interval),
    eventstore._subscription_start(text, bigint, timestamptz),
    eventstore._subscription_create(text, text[], text[], text, bigint, timestamptz, text, integer, integer,
                                    interval, interval, oid),
    eventstore._subscription_alter(text, text[], text[], integer, interval, interval, oid),
    eventstore._subscription_drop(text, oid), eventstore._subscription_reset(text, bigint, timestamptz, oid),
    eventstore._subscription_poll(text, text, integer, oid),
    eventstore._subscription_delivered(eventstore.subscriptions, text, bigint),
    eventstore._subscription_ack(text, text, bigint, oid),
    eventstore._subscription_nack(text, text, bigint, interval, text, oid),
    eventstore._subscription_list_parked(text, oid), eventstore._subscription_replay(text, bigint, oid),
    eventstore._subscription_state(oid),
    eventstore.create_subscription(text, text[], text[], text, bigint, timestamptz, text, integer, integer,
                                   interval, interval),
    eventstore.alter_subscription(text, text[], text[], integer, interval, interval),
    eventstore.drop_subscription(text), eventstore.reset_subscription(text, bigint, timestamptz),
    eventstore.poll(text, text, integer), eventstore.ack(text, text, bigint),
    eventstore.nack(text, text, bigint, interval, text), eventstore.parked(text),
    eventstore.replay_parked(text, bigint), eventstore.subscription_status()
  FROM PUBLIC;
REVOKE ALL ON eventstore.subscription_status FROM PUBLIC;
-- grant_access (section "Consumers, routes and enqueue") gives consumers
-- and admins the public functions and the view.

-- Roles given consumer (or admin) access before 0.5.0 get the subscription
-- functions; admins (UPDATE on eventstore.consumers, granted above) also
-- the subscription tables.
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT a.grantee FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
              WHERE p.oid OPERATOR(pg_catalog.=) 'eventstore.consumer_ack(text, text, bigint)'::pg_catalog.regprocedure
                AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
                AND a.grantee OPERATOR(pg_catalog.<>) p.proowner AND a.grantee OPERATOR(pg_catalog.<>) 0 LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION'
            ' eventstore.create_subscription(text, text[], text[], text, bigint, timestamptz, text, integer, integer, interval, interval),'
            ' eventstore.alter_subscription(text, text[], text[], integer, interval, interval),'
            ' eventstore.drop_subscription(text), eventstore.reset_subscription(text, bigint, timestamptz),'
            ' eventstore.poll(text, text, integer), eventstore.ack(text, text, bigint),'
            ' eventstore.nack(text, text, bigint, interval, text), eventstore.parked(text),'
            ' eventstore.replay_parked(text, bigint), eventstore.subscription_status() TO %s',
            g.grantee::pg_catalog.regrole);
        EXECUTE pg_catalog.format('GRANT SELECT ON eventstore.subscription_status TO %s', g.grantee::pg_catalog.regrole);
    END LOOP;
    FOR g IN SELECT a.grantee FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
              WHERE c.oid OPERATOR(pg_catalog.=) 'eventstore.consumers'::pg_catalog.regclass
                AND a.privilege_type OPERATOR(pg_catalog.=) 'UPDATE'
                AND a.grantee OPERATOR(pg_catalog.<>) c.relowner AND a.grantee OPERATOR(pg_catalog.<>) 0 LOOP
        EXECUTE pg_catalog.format('GRANT SELECT ON eventstore.subscriptions, eventstore.subscription_partitions,'
                                  ' eventstore.subscription_consumers, eventstore.subscription_retries,'
                                  ' eventstore.subscription_parked, eventstore.subscription_leases TO %s',
                                  g.grantee::pg_catalog.regrole);
        EXECUTE pg_catalog.format('GRANT UPDATE ON eventstore.subscriptions TO %s', g.grantee::pg_catalog.regrole);
    END LOOP;
END
$$;

-- == Dynamic consistency boundaries ========================================
-- Tags on events, read_query() and conditional appends (README, "Consistency
-- across streams (DCB)"; src/dcb.c has the lock protocol).

-- A set of strings per event, stored sorted and without duplicates.  Events
-- from before 0.5.0, and imported ones, have none.
ALTER TABLE eventstore.events ADD COLUMN tags text[] NOT NULL DEFAULT '{}';
COMMENT ON COLUMN eventstore.events.tags IS
    'Tags given at append (eventstore.event(..., tags => ...)), for read_query and append conditions.';
-- Partial: untagged events cost nothing to index.  read_query repeats the
-- predicate in every item with tags, so the planner can use it.  No pending
-- list (fastupdate off): every conditional append probes the index, and a
-- pending list is scanned whole by every probe (4 ms at its 4 MB limit).
CREATE INDEX events_tags_idx ON eventstore.events USING gin (tags)
    WITH (fastupdate = off)
    WHERE tags OPERATOR(pg_catalog.<>) '{}'::pg_catalog.text[];

-- new_event gains tags; event(), append() and append_event() gain
-- parameters.  A new signature is a new function: the grants of the old one
-- are carried over (and grant_access lists the new ones).
ALTER TYPE eventstore.new_event ADD ATTRIBUTE tags text[];

DO $$
DECLARE
    f record;
    acl pg_catalog.aclitem[];
    owner pg_catalog.oid;
    g record;
BEGIN
    FOR f IN SELECT * FROM (VALUES
        ('eventstore.event(text, jsonb, jsonb, uuid)', 'eventstore.event(text, jsonb, jsonb, uuid, text[])',
         $f$CREATE FUNCTION eventstore.event(event_type text, data jsonb, metadata jsonb DEFAULT NULL,
                                          event_id uuid DEFAULT NULL, tags text[] DEFAULT NULL)
                RETURNS eventstore.new_event
                LANGUAGE sql IMMUTABLE PARALLEL SAFE
                AS 'SELECT ROW($1, $2, $3, $4, $5)::eventstore.new_event'$f$),
        ('eventstore.append(text, bigint, eventstore.new_event[])',
         'eventstore.append(text, bigint, eventstore.new_event[], jsonb)',
         $f$CREATE FUNCTION eventstore.append(stream_id text, expected_version bigint,
                                           events eventstore.new_event[], condition jsonb DEFAULT NULL,
                                           OUT stream_version bigint, OUT global_position bigint)
                RETURNS record
                LANGUAGE c VOLATILE PARALLEL UNSAFE
                AS 'MODULE_PATHNAME', 'eventstore_append'$f$),
        ('eventstore.append_event(text, bigint, text, jsonb, jsonb, uuid)',
         'eventstore.append_event(text, bigint, text, jsonb, jsonb, uuid, text[], jsonb)',
         $f$CREATE FUNCTION eventstore.append_event(stream_id text, expected_version bigint,
                                                 event_type text, data jsonb,
                                                 metadata jsonb DEFAULT NULL, event_id uuid DEFAULT NULL,
                                                 tags text[] DEFAULT NULL, condition jsonb DEFAULT NULL,
                                                 OUT stream_version bigint, OUT global_position bigint)
                RETURNS record
                LANGUAGE c VOLATILE PARALLEL UNSAFE
                AS 'MODULE_PATHNAME', 'eventstore_append_event'$f$)) v(old, new, def) LOOP
        SELECT p.proacl, p.proowner INTO acl, owner FROM pg_catalog.pg_proc p
         WHERE p.oid OPERATOR(pg_catalog.=) f.old::pg_catalog.regprocedure::pg_catalog.oid;
        EXECUTE pg_catalog.format('DROP FUNCTION %s', f.old);
        EXECUTE f.def;
        IF acl IS NOT NULL THEN
            EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f.new);
            FOR g IN SELECT a.grantee, a.is_grantable FROM pg_catalog.aclexplode(acl) a
                      WHERE a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
                        AND a.grantee OPERATOR(pg_catalog.<>) owner LOOP
                EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s%s', f.new,
                                          CASE WHEN g.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                                               ELSE g.grantee::pg_catalog.regrole::text END,
                                          CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
            END LOOP;
        END IF;
    END LOOP;
END
$$;

-- Events matching a query, after a position, through the read horizon.
CREATE FUNCTION eventstore.read_query(query jsonb, after_position bigint DEFAULT 0,
                                      max_count integer DEFAULT 1000)
    RETURNS SETOF eventstore.events
    LANGUAGE c VOLATILE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'eventstore_read_query';

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
