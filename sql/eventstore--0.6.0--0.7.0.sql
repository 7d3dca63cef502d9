-- eventstore 0.6.0 -> 0.7.0
\echo Use "ALTER EXTENSION eventstore UPDATE TO '0.7.0'" to load this file. \quit

-- == Subscriptions ==========================================================

-- Wake-ups (subscription.c, relay.c): a consumer LISTENs on its
-- subscription's channel; the relay worker NOTIFYs it when events of the
-- subscription pass the read horizon.  Appends cache the subscriptions
-- (a registry, like routes) to know when to ask for the worker.
CREATE TRIGGER subscriptions_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON eventstore.subscriptions
    FOR EACH STATEMENT EXECUTE FUNCTION eventstore._registry_changed();

-- The NOTIFY channel of a subscription: eventstore_sub_<name>, or for a name
-- longer than 48 bytes eventstore_sub_<md5 of the name> (a channel has at
-- most 63 bytes).
CREATE FUNCTION eventstore.subscription_channel(name text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT 'eventstore_sub_' OPERATOR(pg_catalog.||)
               CASE WHEN pg_catalog.octet_length(name) OPERATOR(pg_catalog.<=) 48 THEN name
                    ELSE pg_catalog.md5(name) END
    $$;
COMMENT ON FUNCTION eventstore.subscription_channel(text) IS
    'The channel the relay NOTIFYs when events of the subscription pass the read horizon.';

-- Called by the relay pass (relay.c) when the log horizon it publishes moves
-- from after to upto: NOTIFY the channel of every subscription with an event
-- in (since, upto], payload upto (the horizon: poll sees every event up to
-- it).  since is after, or for a subscription in names the matching element
-- of afters when higher: the relay notified it at that horizon already (a
-- commit signalled its events), which covers every event below.  A range of
-- more than 10,000 positions (the first pass, a restore: log_horizon starts
-- at 0) wakes the subscription without looking.
CREATE FUNCTION eventstore._subscription_wake(after bigint, upto bigint,
                                             names text[] DEFAULT NULL, afters bigint[] DEFAULT NULL)
    RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        s record;
        hit boolean;
        woken integer := 0;
    BEGIN
        -- src: the store, or on a Citus worker its shards there
        FOR s IN SELECT x.name, x.categories, x.event_types, eventstore._store_local(x.store) AS src,
                        GREATEST(after, (SELECT pg_catalog.max(u.a) FROM ROWS FROM (pg_catalog.unnest(names), pg_catalog.unnest(afters)) u(n, a)
                                          WHERE u.n OPERATOR(pg_catalog.=) x.name)) AS since
                   FROM eventstore.subscriptions x
                  ORDER BY x.name COLLATE "C" LOOP
            IF s.since OPERATOR(pg_catalog.>=) upto THEN
                hit := false;
            ELSIF upto OPERATOR(pg_catalog.-) s.since OPERATOR(pg_catalog.>) 10000 THEN
                hit := true;
            ELSIF s.src OPERATOR(pg_catalog.=) 'eventstore.events' THEN
                -- the default store: a static query, planned once per session
                hit := EXISTS (SELECT FROM eventstore.events e
                                WHERE e.global_position OPERATOR(pg_catalog.>) s.since
                                  AND e.global_position OPERATOR(pg_catalog.<=) upto
                                  AND (s.categories IS NULL
                                       OR pg_catalog.split_part(e.stream_id, '-', 1) OPERATOR(pg_catalog.=) ANY (s.categories))
                                  AND (s.event_types IS NULL OR e.event_type OPERATOR(pg_catalog.=) ANY (s.event_types)));
            ELSE
                EXECUTE pg_catalog.format($q$
                    SELECT EXISTS (SELECT FROM %s e
                                    WHERE e.global_position OPERATOR(pg_catalog.>) $1
                                      AND e.global_position OPERATOR(pg_catalog.<=) $2
                                      AND ($3 IS NULL
                                           OR pg_catalog.split_part(e.stream_id, '-', 1) OPERATOR(pg_catalog.=) ANY ($3))
                                      AND ($4 IS NULL OR e.event_type OPERATOR(pg_catalog.=) ANY ($4)))
                    $q$, s.src)
                   INTO hit USING s.since, upto, s.categories, s.event_types;
            END IF;
            IF hit THEN
                PERFORM pg_catalog.pg_notify(eventstore.subscription_channel(s.name), upto::text);
                woken := woken OPERATOR(pg_catalog.+) 1;
            END IF;
        END LOOP;
        RETURN woken;
    END
    $$;
REVOKE ALL ON FUNCTION eventstore._subscription_wake(bigint, bigint, text[], bigint[]) FROM PUBLIC;

-- subscription_leases keeps the last 100 holdings of each partition: poll
-- deletes older ones when it records a new holding (below); an existing
-- history is cut to that here, once.
DELETE FROM eventstore.subscription_leases l
 USING (SELECT k.subscription, k.partition, k.acquired_at,
               pg_catalog.row_number() OVER (PARTITION BY k.subscription, k.partition
                                             ORDER BY k.acquired_at DESC) AS n
          FROM eventstore.subscription_leases k) old
 WHERE old.n OPERATOR(pg_catalog.>) 100
   AND l.subscription OPERATOR(pg_catalog.=) old.subscription AND l.partition OPERATOR(pg_catalog.=) old.partition
   AND l.acquired_at OPERATOR(pg_catalog.=) old.acquired_at;
COMMENT ON TABLE eventstore.subscription_leases IS
    'The last 100 holdings of each partition of each subscription (poll deletes older ones).';

-- ack of many positions in one call: each as ack(position) would, in
-- ascending order (so a later position of a partition's run comes after an
-- earlier one), in one statement: all or none.
--
-- The common case is C (subscription_lease.c, es_ack_many_fast): when every
-- position is an event of the subscription in the run in flight of a
-- partition the consumer holds (after its checkpoint, at or below
-- delivered_to) and those partitions have no retry or replay pending,
-- acking them one by one leaves each partition at its highest position, the
-- run done when that is the run's last: one UPDATE does that.  Anything else
-- (an error to raise, a no-op ack, a retry to delete) comes here and goes
-- one position at a time, through ack.
CREATE FUNCTION eventstore._subscription_ack_many(subscription text, consumer text, positions bigint[], caller oid)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        p bigint;
    BEGIN
        IF pg_catalog.array_ndims(positions) OPERATOR(pg_catalog.>) 1 THEN
            RAISE EXCEPTION USING ERRCODE = 'array_subscript_error',
                MESSAGE = 'global_positions must be a one-dimensional array';
        END IF;
        IF positions IS NULL OR pg_catalog.array_position(positions, NULL) IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
                MESSAGE = 'global_positions must not be null or contain NULL';
        END IF;
        PERFORM eventstore._subscription_get($1, caller);
        FOR p IN SELECT DISTINCT u.p FROM pg_catalog.unnest(positions) u(p) ORDER BY u.p LOOP
            PERFORM eventstore._subscription_ack($1, $2, p, caller);
        END LOOP;
    END
    $$;
REVOKE ALL ON FUNCTION eventstore._subscription_ack_many(text, text, bigint[], oid) FROM PUBLIC;

-- A name of its own: an overload of ack would make ack(unknown, unknown,
-- unknown) ambiguous, which is how clients that send untyped parameters
-- (node-postgres) call it.
CREATE FUNCTION eventstore.ack_many(subscription text, consumer text, global_positions bigint[]) RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'eventstore_ack_many';
REVOKE ALL ON FUNCTION eventstore.ack_many(text, text, bigint[]) FROM PUBLIC;
-- grant_access(role, 'consumer' or 'admin') gives ack_many too (the same
-- function as 0.6.0's otherwise) ...
CREATE OR REPLACE FUNCTION eventstore.grant_access(role regrole, access text,
                                        store regclass DEFAULT 'eventstore.events') RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        writer text[] := ARRAY['append', 'append_event', 'enqueue', 'save_snapshot', 'encrypt'];
        consumer text[] := ARRAY['consumer_poll', 'consumer_ack', 'drop_consumer', 'consumer_status',
                                 'create_subscription', 'alter_subscription', 'drop_subscription',
                                 'reset_subscription', 'poll', 'ack', 'ack_many', 'nack', 'parked', 'replay_parked',
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
-- ... and roles that may ack one position may ack many
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT a.grantee FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
              WHERE p.oid OPERATOR(pg_catalog.=) 'eventstore.ack(text, text, bigint)'::pg_catalog.regprocedure
                AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
                AND a.grantee OPERATOR(pg_catalog.<>) p.proowner AND a.grantee OPERATOR(pg_catalog.<>) 0 LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION eventstore.ack_many(text, text, bigint[]) TO %s',
                                  g.grantee::pg_catalog.regrole);
    END LOOP;
END
$$;
-- Those grants, run by this script, were recorded as the extension's initial
-- privileges, which pg_dump does not dump: keep there only the owner's (a
-- fresh install grants ack_many to nobody else), so that they stay grants the
-- DBA made, dumped and restored (as 0.6.0's "Initial privileges" does).
UPDATE pg_catalog.pg_init_privs i
   SET initprivs = ARRAY(SELECT item FROM pg_catalog.unnest(i.initprivs) AS item
                          WHERE NOT EXISTS (SELECT FROM pg_catalog.aclexplode(ARRAY[item]) x
                                             WHERE x.grantee OPERATOR(pg_catalog.<>) (
                                                   SELECT e.extowner FROM pg_catalog.pg_extension e
                                                    WHERE e.extname OPERATOR(pg_catalog.=) 'eventstore')))
 WHERE i.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
   AND i.objoid OPERATOR(pg_catalog.=) 'eventstore.ack_many(text, text, bigint[])'::pg_catalog.regprocedure
   AND i.objsubid OPERATOR(pg_catalog.=) 0 AND i.privtype OPERATOR(pg_catalog.=) 'e';

-- ack and nack look the event up with a static query for the default store
-- (dynamic SQL, parsed and planned at every call, made an ack cost ~0.5 ms)
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
        src text;
    BEGIN
        IF s.name IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed', MESSAGE = 'subscription must not be null';
        END IF;
        PERFORM eventstore._subscription_arg(consumer, 'consumer');
        IF "position" IS NULL OR "position" OPERATOR(pg_catalog.<=) 0 THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'global_position must be a positive position';
        END IF;
        -- what to read: the store, or on a Citus worker its shards there
        src := eventstore._store_local(s.store);
        IF src OPERATOR(pg_catalog.=) 'eventstore.events' THEN
            -- the default store: a static query, planned once per session
            SELECT * INTO e FROM eventstore.events x WHERE x.global_position OPERATOR(pg_catalog.=) "position";
        ELSE
            EXECUTE pg_catalog.format('SELECT * FROM %s x WHERE x.global_position OPERATOR(pg_catalog.=) $1', src)
               INTO e USING "position";
        END IF;
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

-- poll (subscription.c, eventstore_poll) is C: it runs _subscription_take
-- below (the leases), then delivers in C: one scan of the store's position
-- index from the lowest checkpoint of the partitions it may deliver from up
-- to the read horizon, each event's filter and partition worked out in C,
-- the rows written straight into poll's result, then one UPDATE that marks
-- each partition's run in flight and renews the leases held.  Until 0.7.0
-- poll was PL/pgSQL around a delivery query (two sorts, every row copied
-- through PL/pgSQL): 0.24-0.30x a read_all loop of the same batch size.
-- poll delivers events upcast, like the reads: the store's upcasters run on
-- each delivered event (after decryption), so only delivered events are
-- upcast.  Filters (categories, event_types) and partition keys are of the
-- stored event.
DROP FUNCTION eventstore._subscription_poll(text, text, integer, oid);

-- The lease step of poll: record the consumer, release the partitions it
-- holds beyond its share, take free or expired ones up to it, and say what
-- to deliver: the checkpoint of each partition that may deliver
-- (checkpoints[partition + 1], NULL for the others), the partitions that
-- replay parked events (they deliver only those this time), whether the
-- subscription has retries (attempt counts them), the lowest checkpoint
-- (lo; NULL: nothing to scan) and the other partitions held, whose lease
-- poll renews.  Owner-only; called as the extension's owner.
CREATE FUNCTION eventstore._subscription_take(subscription text, consumer text, max_count integer, caller oid,
                                              OUT store regclass, OUT sub_name text, OUT partition_by text,
                                              OUT partitions integer, OUT categories text[],
                                              OUT event_types text[], OUT lease interval,
                                              OUT clock timestamptz, OUT checkpoints bigint[],
                                              OUT replays integer[], OUT retrying boolean, OUT lo bigint,
                                              OUT renew integer[])
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        s eventstore.subscriptions := eventstore._subscription_get($1, caller);
        me text := eventstore._subscription_arg($2, 'consumer');
        live integer;
        rank integer;
        target integer;
        held integer;
        p record;
        waiting integer[];
        replaying integer[];
    BEGIN
        clock := pg_catalog.clock_timestamp();
        replays := '{}';
        renew := '{}';
        store := s.store;
        sub_name := s.name;
        partition_by := s.partition_by;
        partitions := s.partitions;
        categories := s.categories;
        event_types := s.event_types;
        lease := s.lease;
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
        checkpoints := pg_catalog.array_fill(NULL::bigint, ARRAY[s.partitions]);
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
                -- the history keeps the partition's last 100 holdings
                DELETE FROM eventstore.subscription_leases l
                 WHERE l.subscription OPERATOR(pg_catalog.=) s.name AND l.partition OPERATOR(pg_catalog.=) p.partition
                   AND l.acquired_at OPERATOR(pg_catalog.<) (
                       SELECT k.acquired_at FROM eventstore.subscription_leases k
                        WHERE k.subscription OPERATOR(pg_catalog.=) s.name
                          AND k.partition OPERATOR(pg_catalog.=) p.partition
                        ORDER BY k.acquired_at DESC OFFSET 99 LIMIT 1);
                held := held OPERATOR(pg_catalog.+) 1;
                p.delivered_to := NULL;
            END IF;
            -- deliverable: no run in flight (or one not acked within the
            -- lease), no retry waiting
            IF (p.delivered_to IS NULL OR p.delivered_at OPERATOR(pg_catalog.<) (clock OPERATOR(pg_catalog.-) s.lease))
               AND NOT p.partition OPERATOR(pg_catalog.=) ANY (waiting) THEN
                checkpoints[p.partition OPERATOR(pg_catalog.+) 1] := p.checkpoint;
                IF p.partition OPERATOR(pg_catalog.=) ANY (replaying) THEN
                    replays := replays OPERATOR(pg_catalog.||) p.partition;
                END IF;
            END IF;
        END LOOP;
        IF max_count OPERATOR(pg_catalog.>) 0 THEN
            -- A partition with replayed parked events delivers only those this time.
            FOREACH rank IN ARRAY replays LOOP
                checkpoints[rank OPERATOR(pg_catalog.+) 1] := NULL;
            END LOOP;
            SELECT pg_catalog.min(c) INTO lo FROM pg_catalog.unnest(checkpoints) c;
        END IF;
    END
    $$;
REVOKE ALL ON FUNCTION eventstore._subscription_take(text, text, integer, oid) FROM PUBLIC;


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

-- == Scale-out on Citus (#18) ================================================
-- Subscriptions on a cluster are consumed per node: on a worker a
-- subscription reads the node's own shards of a distributed store, up to the
-- node's horizon, with the node's checkpoints and leases (its own tables).
-- _store_local(store): what to read the store's events on this node from, as
-- SQL text to follow FROM (the store's name, or the UNION ALL of its local
-- shards); refused with 0A000 on the coordinator (citus.c).  The bodies below
-- (and _subscription_delivered, _subscription_wake above) read through it.
CREATE FUNCTION eventstore._store_local(store regclass) RETURNS text
    LANGUAGE c VOLATILE STRICT
    AS 'MODULE_PATHNAME', 'eventstore_store_local';
REVOKE ALL ON FUNCTION eventstore._store_local(regclass) FROM PUBLIC;

CREATE OR REPLACE FUNCTION eventstore._subscription_start(start text, start_position bigint, start_time timestamptz,
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
                                      ' AND e.global_position OPERATOR(pg_catalog.<=) $2', eventstore._store_local(store))
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
            EXECUTE pg_catalog.format('SELECT pg_catalog.max(e.global_position) FROM %s e', eventstore._store_local(store)) INTO top;
            RETURN LEAST(horizon, COALESCE(top, 0));
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = pg_catalog.format('unknown start "%s"', start),
            HINT = 'Use beginning or end, or give start_position or start_time.';
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
            ' ORDER BY k.global_position', eventstore._store_local(s.store))
        USING s.name;
    END
    $$;

CREATE OR REPLACE FUNCTION eventstore._subscription_backlog(s eventstore.subscriptions, part integer, checkpoint bigint,
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
            ' ORDER BY e.global_position LIMIT 10000) q', eventstore._store_local(s.store))
           INTO n, oldest
           USING checkpoint, horizon, s.categories, s.event_types, s.partition_by, s.partitions, part;
        EXECUTE pg_catalog.format(
            'SELECT pg_catalog.min(e.created_at) FROM eventstore.subscription_retries r'
            ' JOIN %s e ON e.global_position OPERATOR(pg_catalog.=) r.global_position'
            ' WHERE r.subscription OPERATOR(pg_catalog.=) $1 AND r.partition OPERATOR(pg_catalog.=) $2', eventstore._store_local(s.store))
           INTO retry_at USING s.name, part;
        oldest := LEAST(oldest, retry_at);
    END
    $$;

-- Snapshots are keyed by their store's name as well as its OID: store_name
-- (schema-qualified, quoted as in SQL text) names the same store on every
-- node, where an OID does not, and Citus copies a shard's rows in binary
-- when it moves one.  The primary key is by name, so that a snapshot moved
-- to another node stays one row of its stream there; the index by OID
-- serves a store that is not distributed, which reads its snapshots by OID
-- (a renamed store keeps them).  aggregate.c writes both columns; a row put
-- in by hand defaults to the default store in both, as before.
ALTER TABLE eventstore.snapshots ADD COLUMN store_name text;
UPDATE eventstore.snapshots s
   SET store_name = pg_catalog.format('%I.%I', n.nspname, c.relname)
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
 WHERE c.oid OPERATOR(pg_catalog.=) s.store;
DELETE FROM eventstore.snapshots s WHERE s.store_name IS NULL;
ALTER TABLE eventstore.snapshots ALTER COLUMN store_name SET NOT NULL,
                                 ALTER COLUMN store_name SET DEFAULT 'eventstore.events';
ALTER TABLE eventstore.snapshots DROP CONSTRAINT snapshots_pkey;
ALTER TABLE eventstore.snapshots
    ADD CONSTRAINT snapshots_pkey PRIMARY KEY (store_name, stream_id, snapshot_type, stream_version);
CREATE INDEX snapshots_store_idx ON eventstore.snapshots (store, stream_id, snapshot_type, stream_version);
COMMENT ON COLUMN eventstore.snapshots.store_name IS
    'The store of the stream by name (schema-qualified): the key on a Citus cluster, where the store''s OID differs between nodes.';

-- distribute() also makes the registries (projections, routes, upcasters,
-- snapshot policies) reference tables: registered once, on every node.  The
-- rows it finds there reach the other nodes with this node's OIDs of their
-- store and owner (Citus copies them in binary); it sets them again by name.  The
-- registry trigger (registry.c) invalidates the registry's caches when it
-- fires on a node's shard of it.  It refuses a store with subscriptions on
-- the coordinator (consumed per worker).  It distributes the snapshots by
-- stream, co-located with the stores (found by store_name there).
CREATE OR REPLACE FUNCTION eventstore.distribute(store regclass DEFAULT 'eventstore.events')
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    events pg_catalog.regclass := 'eventstore.events'::pg_catalog.regclass;
    registry pg_catalog.regclass;
    col pg_catalog.name;
    typ pg_catalog.regtype;
    id pg_catalog.oid;
    label pg_catalog.text;
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
    -- a subscription is consumed per worker: one on the coordinator would
    -- have no log to read once the store is distributed
    IF EXISTS (SELECT FROM eventstore.subscriptions x WHERE x.store OPERATOR(pg_catalog.=) $1)
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p
                        WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1) THEN
        RAISE EXCEPTION 'store % has subscriptions on the coordinator', $1
            USING ERRCODE = '0A000',
                  DETAIL = 'A subscription of a distributed store is consumed on each worker; the coordinator holds no log of it.',
                  HINT = 'Drop them with eventstore.drop_subscription, distribute the store, and create them on every worker with run_command_on_workers.';
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
    -- snapshots: on the shard group of their stream, so that they move with
    -- it; found by the store's name, which every node resolves alike (a
    -- moved row keeps the OID of the node that wrote it).  A store renamed
    -- since its snapshots were taken gets them under its name now.
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p
                    WHERE p.logicalrelid OPERATOR(pg_catalog.=) 'eventstore.snapshots'::pg_catalog.regclass) THEN
        DELETE FROM eventstore.snapshots s
         USING pg_catalog.pg_class c, pg_catalog.pg_namespace n
         WHERE c.oid OPERATOR(pg_catalog.=) s.store AND n.oid OPERATOR(pg_catalog.=) c.relnamespace
           AND s.store_name OPERATOR(pg_catalog.<>) pg_catalog.format('%I.%I', n.nspname, c.relname)
           AND EXISTS (SELECT FROM eventstore.snapshots t
                        WHERE t.store_name OPERATOR(pg_catalog.=) pg_catalog.format('%I.%I', n.nspname, c.relname)
                          AND t.stream_id OPERATOR(pg_catalog.=) s.stream_id
                          AND t.snapshot_type OPERATOR(pg_catalog.=) s.snapshot_type
                          AND t.stream_version OPERATOR(pg_catalog.=) s.stream_version);
        UPDATE eventstore.snapshots s SET store_name = pg_catalog.format('%I.%I', n.nspname, c.relname)
          FROM pg_catalog.pg_class c, pg_catalog.pg_namespace n
         WHERE c.oid OPERATOR(pg_catalog.=) s.store AND n.oid OPERATOR(pg_catalog.=) c.relnamespace
           AND s.store_name OPERATOR(pg_catalog.<>) pg_catalog.format('%I.%I', n.nspname, c.relname);
        PERFORM pg_catalog.create_distributed_table('eventstore.snapshots', 'stream_id',
                                                    colocate_with := 'eventstore.events');
        -- the local copy Citus leaves on disk is hidden: free it
        PERFORM pg_catalog.truncate_local_data_after_distributing_table('eventstore.snapshots');
    END IF;
    -- the registries: reference tables, so that one registration (on the
    -- coordinator) reaches every node; their triggers, which keep each
    -- backend's cache current, fire on every node's placement
    -- a node added since has no placement of the reference tables yet:
    -- Citus copies them there now (in a transaction of its own, so before
    -- this one writes any), and the registries are written again below
    IF EXISTS (SELECT FROM pg_catalog.pg_dist_partition p WHERE p.partmethod OPERATOR(pg_catalog.=) 'n') THEN
        PERFORM pg_catalog.replicate_reference_tables('block_writes');
    END IF;
    FOREACH registry IN ARRAY ARRAY['eventstore.projections', 'eventstore.routes', 'eventstore.upcasters',
                                    'eventstore.snapshot_policies']::pg_catalog.regclass[] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p
                        WHERE p.logicalrelid OPERATOR(pg_catalog.=) registry) THEN
            PERFORM pg_catalog.create_reference_table(registry);
        ELSE
            -- run again: a node added since got the rows in binary from
            -- whichever node Citus copied them from, so their OIDs are that
            -- node's.  Write every node's rows again from this node's (the
            -- coordinator's, where the OIDs are its own): Citus sends them
            -- in binary, so every node then holds this node's OIDs, set
            -- again by name below as after create_reference_table.
            EXECUTE pg_catalog.format('CREATE TEMP TABLE es_registry_rows ON COMMIT DROP AS SELECT * FROM %s', registry);
            EXECUTE pg_catalog.format('DELETE FROM %s', registry);
            EXECUTE pg_catalog.format('INSERT INTO %s SELECT * FROM pg_temp.es_registry_rows', registry);
            DROP TABLE pg_temp.es_registry_rows;
        END IF;
        -- Citus copied the rows to the other nodes in binary: a store
        -- (regclass) or owner (regrole) is this node's OID there, which may
        -- name nothing or something else.  Set each value again by name
        -- through Citus, which each node resolves to its own OID.
        FOR col, typ IN SELECT a.attname, a.atttypid::pg_catalog.regtype FROM pg_catalog.pg_attribute a
                         WHERE a.attrelid OPERATOR(pg_catalog.=) registry AND a.attnum OPERATOR(pg_catalog.>) 0
                           AND NOT a.attisdropped
                           AND a.atttypid OPERATOR(pg_catalog.=) ANY (ARRAY['pg_catalog.regclass', 'pg_catalog.regrole']::pg_catalog.regtype[])
                         ORDER BY a.attnum LOOP
            FOR id, label IN EXECUTE pg_catalog.format('SELECT DISTINCT r.%I::pg_catalog.oid, r.%I::pg_catalog.text FROM %s r',
                                                       col, col, registry) LOOP
                EXECUTE pg_catalog.format('UPDATE %s r SET %I = %L::%s WHERE r.%I::pg_catalog.oid OPERATOR(pg_catalog.=) %s',
                                          registry, col, label, typ, col, id);
            END LOOP;
        END LOOP;
    END LOOP;
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
