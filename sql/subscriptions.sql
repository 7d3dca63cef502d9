--
-- subscriptions: consumer groups over the log (README, "Subscriptions").
--   - create / alter / drop / reset (by position and by time);
--   - poll delivers each partition's events in log order, one run at a time;
--   - ack moves the checkpoint; nack schedules a retry; after max_attempts the
--     event is parked and the rest of its partition flows on; replay_parked;
--   - a consumer that never acks loses its lease, another takes over from
--     the checkpoint;
--   - bad input; acks of positions never delivered; acks by a non-holder;
--   - privileges: owner, members, admins; another consumer role is refused.
--
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS eventstore;
DROP ROLE IF EXISTS regress_sub_a, regress_sub_b, regress_sub_admin, regress_sub_a_member;
RESET client_min_messages;

-- the events of this test: category subt, streams subt-1 .. subt-4
SELECT count(*) FROM (
    SELECT eventstore.append_event('subt-' || (i % 4 + 1), NULL, 'T' || (i % 2), jsonb_build_object('i', i))
      FROM generate_series(1, 12) i) x;
CREATE TEMP TABLE pos AS
    SELECT global_position, stream_id, stream_version, event_type, (data ->> 'i')::int AS i
      FROM eventstore.events WHERE stream_id LIKE 'subt-%';
GRANT SELECT ON pos TO PUBLIC;
-- positions relative to the first one, so the output does not depend on earlier tests
CREATE FUNCTION pg_temp.p(i int) RETURNS bigint LANGUAGE sql AS
    $$ SELECT global_position FROM pos WHERE pos.i = $1 $$;
CREATE FUNCTION pg_temp.i(p bigint) RETURNS int LANGUAGE sql AS
    $$ SELECT i FROM pos WHERE global_position = $1 $$;
-- the partition of each stream (stable: a hash of the stream id's bytes)
SELECT s, eventstore._subscription_partition(s, 4) AS partition
  FROM unnest(ARRAY['subt-1', 'subt-2', 'subt-3', 'subt-4']) s ORDER BY s;

------------------------------------------------------------------------
-- create, one consumer, order, ack
------------------------------------------------------------------------
SELECT eventstore.create_subscription('sub_a', categories => '{subt}', partitions => 4, lease => '1 second',
                                      max_attempts => 3, backoff => '0 seconds');
SELECT name, categories, event_types, partition_by, partitions, max_attempts, backoff, lease, owner::text
  FROM eventstore.subscriptions WHERE name = 'sub_a';
CREATE TEMP TABLE got AS SELECT * FROM eventstore.poll('sub_a', 'c1', 5);
-- the first five events of the category, in log order
SELECT partition, pg_temp.i(global_position) AS i, stream_id, stream_version, event_type, attempt
  FROM got ORDER BY global_position;
-- nothing more until the runs in flight are acked
SELECT count(*) FROM eventstore.poll('sub_a', 'c1', 5);
-- ack the last event of each run: the whole run is done
SELECT eventstore.ack('sub_a', 'c1', max(global_position)) FROM got GROUP BY partition ORDER BY partition;
SELECT pg_temp.i(global_position) AS i, stream_id, stream_version, attempt
  FROM eventstore.poll('sub_a', 'c1', 100) ORDER BY global_position;
-- acking again is a no-op
SELECT eventstore.ack('sub_a', 'c1', pg_temp.p(1));
-- per partition: checkpoint at the last delivered event of the run in flight
SELECT partition, holder, pg_temp.i(delivered_to) AS in_flight_to, events_behind, retries, parked
  FROM eventstore.subscription_status WHERE subscription = 'sub_a' ORDER BY partition;

------------------------------------------------------------------------
-- nack, retry, park; the rest of the partition flows on; replay
------------------------------------------------------------------------
SELECT eventstore.reset_subscription('sub_a', to_position => pg_temp.p(1) - 1);
SELECT checkpoint = pg_temp.p(1) - 1 AS reset_ok, delivered_to FROM eventstore.subscription_status
 WHERE subscription = 'sub_a' ORDER BY partition;
-- a consumer loop: event i = 4 (stream subt-1) always fails
CREATE FUNCTION pg_temp.run(rounds int) RETURNS TABLE (round int, i int, attempt int, outcome text)
LANGUAGE plpgsql AS $$
DECLARE
    e record;
BEGIN
    FOR r IN 1 .. rounds LOOP
        FOR e IN SELECT * FROM eventstore.poll('sub_a', 'c1', 100) ORDER BY global_position LOOP
            round := r; i := pg_temp.i(e.global_position); attempt := e.attempt;
            IF i = 4 THEN
                PERFORM eventstore.nack('sub_a', 'c1', e.global_position, interval '0', 'poison ' || e.attempt);
                outcome := 'nack';
                RETURN NEXT;
                EXIT;       -- the rest of this run comes again
            END IF;
            PERFORM eventstore.ack('sub_a', 'c1', e.global_position);
            outcome := 'ack';
            RETURN NEXT;
        END LOOP;
    END LOOP;
END $$;
-- events of subt-1 after i = 4 (8 and 12) are delivered only after it is parked
SELECT * FROM pg_temp.run(5) ORDER BY round, i;
SELECT pg_temp.i(global_position) AS i, stream_id, stream_version, event_type, attempts, reason,
       first_failed_at <= last_failed_at AS times_ok
  FROM eventstore.parked('sub_a');
SELECT sum(events_behind) AS behind, sum(retries) AS retries, sum(parked) AS parked
  FROM eventstore.subscription_status WHERE subscription = 'sub_a';
-- replay: it comes again (attempt 1, fresh max_attempts), is nacked 3 times and parked again
SELECT eventstore.replay_parked('sub_a', pg_temp.p(4));
SELECT count(*) FROM eventstore.parked('sub_a');
SELECT * FROM pg_temp.run(4) ORDER BY round, i;
SELECT pg_temp.i(global_position) AS i, attempts, reason FROM eventstore.parked('sub_a');
-- replay all, and this time ack it
SELECT eventstore.replay_parked('sub_a');
SELECT pg_temp.i(global_position) AS i, attempt FROM eventstore.poll('sub_a', 'c1', 100);
SELECT eventstore.ack('sub_a', 'c1', pg_temp.p(4));
SELECT count(*) AS parked, (SELECT count(*) FROM eventstore.poll('sub_a', 'c1', 100)) AS more
  FROM eventstore.parked('sub_a');
-- nack with the default backoff (2 s here): not delivered again before
SELECT eventstore.alter_subscription('sub_a', backoff => '2 seconds');
SELECT stream_version FROM eventstore.append_event('subt-1', NULL, 'T9', '{"i": 13}');
INSERT INTO pos SELECT global_position, stream_id, stream_version, event_type, 13
  FROM eventstore.events WHERE stream_id = 'subt-1' AND event_type = 'T9';
SELECT pg_temp.i(global_position) AS i, attempt FROM eventstore.poll('sub_a', 'c1', 100);
SELECT eventstore.nack('sub_a', 'c1', pg_temp.p(13), NULL, 'later');
SELECT count(*) FROM eventstore.poll('sub_a', 'c1', 100);
SELECT retries, seconds_behind > 0 AS lagging FROM eventstore.subscription_status
 WHERE subscription = 'sub_a' AND retries > 0;
SELECT pg_sleep(2.1);
SELECT pg_temp.i(global_position) AS i, attempt FROM eventstore.poll('sub_a', 'c1', 100);
SELECT eventstore.ack('sub_a', 'c1', pg_temp.p(13));

------------------------------------------------------------------------
-- leases: a consumer that never acks; sharing; takeover from the checkpoint
------------------------------------------------------------------------
SELECT eventstore.reset_subscription('sub_a', to_position => pg_temp.p(1) - 1);
SELECT count(*) FROM eventstore.poll('sub_a', 'c1', 100);   -- c1 holds all four, acks nothing
-- c2 joins: every partition is leased, so it gets nothing yet
SELECT count(*) FROM eventstore.poll('sub_a', 'c2', 100);
SELECT holder, count(*) FROM eventstore.subscription_status WHERE subscription = 'sub_a' GROUP BY holder;
-- c1 never comes back; after its lease (1 s) c2 takes over all, from the checkpoint
SELECT pg_sleep(1.2);
SELECT pg_temp.i(global_position) AS i, attempt FROM eventstore.poll('sub_a', 'c2', 100) ORDER BY 1;
SELECT holder, count(*) FROM eventstore.subscription_status WHERE subscription = 'sub_a' GROUP BY holder;
-- the old holder cannot ack any more
SELECT eventstore.ack('sub_a', 'c1', pg_temp.p(1));
-- nor can a consumer that does not hold the partition
SELECT eventstore.ack('sub_a', 'c3', pg_temp.p(1));
-- c1 comes back while c2 polls: c2 releases its excess (partitions with
-- nothing in flight) and c1 takes them: two each
SELECT count(eventstore.ack('sub_a', 'c2', delivered_to)) AS acked FROM eventstore.subscription_status
 WHERE subscription = 'sub_a' AND delivered_to IS NOT NULL;
SELECT count(*) FROM eventstore.poll('sub_a', 'c1', 0);
SELECT count(*) FROM eventstore.poll('sub_a', 'c2', 0);
SELECT count(*) FROM eventstore.poll('sub_a', 'c1', 0);
SELECT holder, count(*) FROM eventstore.subscription_status WHERE subscription = 'sub_a' GROUP BY holder ORDER BY 1;
-- the lease log: per partition, holdings never overlap
SELECT count(*) AS overlaps FROM eventstore.subscription_leases a JOIN eventstore.subscription_leases b
    ON a.subscription = b.subscription AND a.partition = b.partition AND a.acquired_at < b.acquired_at
 WHERE a.subscription = 'sub_a' AND (a.ended_at IS NULL OR a.ended_at > b.acquired_at);
SELECT count(*) > 4 AS takeovers_logged FROM eventstore.subscription_leases WHERE subscription = 'sub_a';

------------------------------------------------------------------------
-- start and reset by time, event type filter, end, partition_by
------------------------------------------------------------------------
SELECT eventstore.create_subscription('sub_end', start => 'end', categories => '{subt}');
SELECT count(*) FROM eventstore.poll('sub_end', 'c', 100);
SELECT stream_version FROM eventstore.append_event('subt-9', NULL, 'Late', '{"i": 14}');
SELECT stream_id, event_type FROM eventstore.poll('sub_end', 'c', 100);
SELECT eventstore.create_subscription('sub_t', event_types => '{T1}', categories => '{subt}', partitions => 1,
                                      start_time => (SELECT created_at FROM eventstore.events
                                                      WHERE global_position = pg_temp.p(6)));
SELECT pg_temp.i(global_position) AS i, event_type FROM eventstore.poll('sub_t', 'c', 100);
SELECT eventstore.reset_subscription('sub_t', to_time => (SELECT created_at FROM eventstore.events
                                                      WHERE global_position = pg_temp.p(10)));
SELECT pg_temp.i(global_position) AS i, event_type FROM eventstore.poll('sub_t', 'c', 100);
SELECT eventstore.reset_subscription('sub_t', to_time => 'infinity'::timestamptz);
SELECT eventstore.reset_subscription('sub_t', to_time => now() + interval '1 hour');
SELECT count(*) FROM eventstore.poll('sub_t', 'c', 100);
-- alter the filter: both types from the next run on
SELECT eventstore.alter_subscription('sub_t', event_types => '{}');
SELECT event_types FROM eventstore.subscriptions WHERE name = 'sub_t';
SELECT eventstore.create_subscription('sub_c', categories => '{subc}', partition_by => 'correlation',
                                      partitions => 8);
SET eventstore.correlation_id = 'req-1';
SELECT count(*) FROM (SELECT eventstore.append_event('subc-' || i, NULL, 'X', '{}') FROM generate_series(1, 3) i) x;
RESET eventstore.correlation_id;
SELECT count(DISTINCT partition) AS partitions_used, count(*) FROM eventstore.poll('sub_c', 'c', 100);
SELECT eventstore.create_subscription('sub_n', categories => '{subc}', partition_by => 'none', partitions => 1);
SELECT count(*) FROM eventstore.poll('sub_n', 'c', 2);

------------------------------------------------------------------------
-- bad input
------------------------------------------------------------------------
SELECT eventstore.poll('no_such_sub', 'c', 1);
SELECT eventstore.poll(NULL, 'c', 1);
SELECT eventstore.poll('sub_a', NULL, 1);
SELECT eventstore.poll('sub_a', '', 1);
SELECT eventstore.poll('sub_a', repeat('c', 201), 1);
SELECT eventstore.poll('sub_a', 'c1', -1);
SELECT eventstore.poll('sub_a', 'c1', NULL);
SELECT eventstore.ack('sub_a', 'c1', NULL);
SELECT eventstore.ack('sub_a', 'c1', 0);
-- a position of another category, and one past the log
SELECT eventstore.ack('sub_a', 'c2', (SELECT min(global_position) FROM eventstore.events WHERE stream_id LIKE 'subc-%'));
SELECT eventstore.ack('sub_a', 'c1', 9223372036854775807);
-- a position of the subscription, never delivered (c holds its partition, nothing in flight)
SELECT holder, count(*), count(delivered_to) AS in_flight FROM eventstore.subscription_status
 WHERE subscription = 'sub_end' GROUP BY holder;
SELECT eventstore.ack('sub_end', 'c', (SELECT max(global_position) FROM eventstore.events WHERE stream_id = 'subt-9'));
SELECT stream_version FROM eventstore.append_event('subt-9', NULL, 'Later', '{}');
SELECT eventstore.ack('sub_end', 'c', (SELECT max(global_position) FROM eventstore.events WHERE stream_id = 'subt-9'));
SELECT eventstore.nack('sub_a', 'c1', pg_temp.p(1), interval '-1 second');
SELECT eventstore.create_subscription('sub_a');
SELECT eventstore.create_subscription('x', partitions => 0);
SELECT eventstore.create_subscription('x', partitions => 1025);
SELECT eventstore.create_subscription('x', partition_by => 'tenant');
SELECT eventstore.create_subscription('x', start => 'middle');
SELECT eventstore.create_subscription('x', start => 'end', start_position => 3);
SELECT eventstore.create_subscription('x', start_position => -1);
SELECT eventstore.create_subscription('x', max_attempts => 0);
SELECT eventstore.create_subscription('x', lease => '1 millisecond');
SELECT eventstore.create_subscription('x', categories => ARRAY[NULL]);
SELECT eventstore.create_subscription('');
SELECT eventstore.reset_subscription('sub_a');
SELECT eventstore.reset_subscription('sub_a', 1, now());
SELECT eventstore.replay_parked('sub_a', 1);
SELECT eventstore.drop_subscription('no_such_sub');
SELECT eventstore.parked('no_such_sub');
SELECT count(*) FROM eventstore.subscriptions WHERE name = 'x';
-- poll refuses a transaction snapshot
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT eventstore.poll('sub_a', 'c1', 1);
ROLLBACK;

------------------------------------------------------------------------
-- privileges
------------------------------------------------------------------------
CREATE ROLE regress_sub_a;
CREATE ROLE regress_sub_b;
CREATE ROLE regress_sub_admin;
CREATE ROLE regress_sub_a_member IN ROLE regress_sub_a;
SELECT eventstore.grant_access('regress_sub_a', 'consumer');
SELECT eventstore.grant_access('regress_sub_b', 'consumer');
SELECT eventstore.grant_access('regress_sub_a_member', 'consumer');
SELECT eventstore.grant_access('regress_sub_admin', 'admin');
SET ROLE regress_sub_a;
SELECT eventstore.create_subscription('sub_owned', categories => '{subt}', partitions => 2);
SELECT count(*) > 0 FROM eventstore.poll('sub_owned', 'w1', 100);
SELECT count(*) > 0 AS reads_the_store FROM eventstore.events;  -- a consumer may read the store (0.6.0)
RESET ROLE;
SELECT owner::text FROM eventstore.subscriptions WHERE name = 'sub_owned';
-- another consumer role: nothing
SET ROLE regress_sub_b;
SELECT eventstore.poll('sub_owned', 'w2', 1);
SELECT eventstore.ack('sub_owned', 'w1', pg_temp.p(1));
SELECT eventstore.nack('sub_owned', 'w1', pg_temp.p(1));
SELECT eventstore.reset_subscription('sub_owned', 0);
SELECT eventstore.alter_subscription('sub_owned', max_attempts => 9);
SELECT eventstore.drop_subscription('sub_owned');
SELECT eventstore.parked('sub_owned');
SELECT eventstore.replay_parked('sub_owned');
SELECT count(*) FROM eventstore.subscription_status WHERE subscription = 'sub_owned';
SELECT count(*) FROM eventstore._subscription_take('sub_owned', 'w1', 1, 'regress_sub_a'::regrole::oid);
SELECT count(*) FROM eventstore.subscription_partitions;
RESET ROLE;
-- a member of the owning role, and an admin, may
SET ROLE regress_sub_a_member;
SELECT count(*) FROM eventstore.subscription_status WHERE subscription = 'sub_owned';
SELECT eventstore.alter_subscription('sub_owned', max_attempts => 9);
RESET ROLE;
SET ROLE regress_sub_admin;
SELECT count(*) FROM eventstore.subscription_status WHERE subscription IN ('sub_owned', 'sub_a');
SELECT eventstore.reset_subscription('sub_owned', 0);
SELECT eventstore.drop_subscription('sub_owned');
RESET ROLE;
SELECT count(*) FROM eventstore.subscription_partitions WHERE subscription = 'sub_owned';

------------------------------------------------------------------------
-- upcasters: poll delivers events as the reads do (the store's upcasters,
-- applied to the delivered events); filters and partitions see the stored
-- event
------------------------------------------------------------------------
CREATE FUNCTION pg_temp.sub_up(e eventstore.events) RETURNS eventstore.events LANGUAGE plpgsql AS $$
BEGIN
    e.event_type := 'UpV2';
    e.data := e.data || '{"upcast": true}';
    e.metadata := coalesce(e.metadata, '{}') || '{"v": 2}';
    RETURN e;
END $$;
SELECT eventstore.register_upcaster('UpV1', 'pg_temp.sub_up(eventstore.events)');
SELECT eventstore.create_store('sub_up_store');
SELECT count(*) FROM (
    SELECT eventstore.append_event('subup-1', NULL, 'UpV1', '{"n": 1}'),
           eventstore.append_event('subup-1', NULL, 'Other', '{"n": 2}'),
           eventstore.append_event('subup-2', NULL, 'UpV1', '{"n": 3}', store => 'sub_up_store')) x;
SELECT eventstore.create_subscription('sub_up', categories => '{subup}', event_types => '{UpV1,Other}', partitions => 1);
CREATE TEMP TABLE up_got AS SELECT * FROM eventstore.poll('sub_up', 'c1', 10);
SELECT stream_version, event_type, data, metadata FROM up_got ORDER BY global_position;
-- exactly what read_category returns
SELECT (SELECT array_agg(ROW(g.event_type, g.data, g.metadata) ORDER BY g.global_position) FROM up_got g)
     = (SELECT array_agg(ROW(r.event_type, r.data, r.metadata) ORDER BY r.global_position)
          FROM eventstore.read_category('subup') r) AS same_as_read;
-- acks are by position, as stored
SELECT eventstore.ack('sub_up', 'c1', max(global_position)) FROM up_got;
SELECT count(*) FROM eventstore.poll('sub_up', 'c1', 10);
-- a filter on the upcast type matches nothing: filters see the stored type
SELECT eventstore.create_subscription('sub_up_v2', categories => '{subup}', event_types => '{UpV2}');
SELECT count(*) FROM eventstore.poll('sub_up_v2', 'c1', 10);
-- another store: its own upcasters, not the default store's
SELECT eventstore.create_subscription('sub_up_other', store => 'sub_up_store', partitions => 1);
SELECT event_type, data FROM eventstore.poll('sub_up_other', 'c1', 10);
SELECT eventstore.reset_subscription('sub_up_other', 0);
SELECT eventstore.register_upcaster('UpV1', 'pg_temp.sub_up(eventstore.events)', store => 'sub_up_store');
SELECT event_type, data FROM eventstore.poll('sub_up_other', 'c1', 10);
SELECT eventstore.unregister_upcaster('UpV1');
SELECT eventstore.drop_store('sub_up_store');
DROP FUNCTION pg_temp.sub_up(eventstore.events);

------------------------------------------------------------------------
-- ack of many positions: each as ack(position) would, in one statement
------------------------------------------------------------------------
SELECT eventstore.create_subscription('sub_many', categories => '{subt}', partitions => 4);
CREATE TEMP TABLE many_got AS SELECT * FROM eventstore.poll('sub_many', 'c1', 100);
SELECT count(*) AS delivered, count(DISTINCT partition) AS runs FROM many_got;
-- all or nothing: a position not delivered, another consumer, NULLs
SELECT eventstore.ack_many('sub_many', 'c1', (SELECT array_agg(global_position) FROM many_got) || 999999999::bigint);
SELECT eventstore.ack_many('sub_many', 'c2', (SELECT array_agg(global_position) FROM many_got));
SELECT eventstore.ack_many('sub_many', 'c1', NULL::bigint[]);
SELECT eventstore.ack_many('sub_many', 'c1', ARRAY[pg_temp.p(1), NULL]);
SELECT eventstore.ack_many('sub_none', 'c1', '{}'::bigint[]);
SELECT count(*) FILTER (WHERE delivered_to IS NOT NULL) AS in_flight, max(checkpoint) = 0 AS none_acked
  FROM eventstore.subscription_partitions WHERE subscription = 'sub_many';
-- nothing: a no-op
SELECT eventstore.ack_many('sub_many', 'c1', '{}'::bigint[]);
-- every delivered position, in any order, twice: each run is done
SELECT eventstore.ack_many('sub_many', 'c1', (SELECT array_agg(global_position ORDER BY global_position DESC) FROM many_got)
                                        || (SELECT array_agg(global_position) FROM many_got));
SELECT bool_and(x.checkpoint = (SELECT max(g.global_position) FROM many_got g WHERE g.partition = x.partition))
           AS at_run_ends,
       count(*) FILTER (WHERE x.delivered_to IS NOT NULL) AS in_flight
  FROM eventstore.subscription_partitions x WHERE x.subscription = 'sub_many';
SELECT count(*) FROM eventstore.poll('sub_many', 'c1', 100);
-- all but the last event of each run: the checkpoints move to the acked
-- positions, the runs stay in flight (nothing delivered until they are done)
SELECT eventstore.reset_subscription('sub_many', 0);
TRUNCATE many_got;
INSERT INTO many_got SELECT * FROM eventstore.poll('sub_many', 'c1', 100);
SELECT eventstore.ack_many('sub_many', 'c1', (SELECT array_agg(g.global_position) FROM many_got g
                                               WHERE g.global_position < (SELECT max(h.global_position) FROM many_got h
                                                                           WHERE h.partition = g.partition)));
SELECT count(*) FILTER (WHERE x.checkpoint = (SELECT max(g.global_position) FROM many_got g
                                               WHERE g.partition = x.partition
                                                 AND g.global_position < x.delivered_to)) AS at_acked,
       count(*) FILTER (WHERE x.delivered_to = (SELECT max(g.global_position) FROM many_got g
                                                 WHERE g.partition = x.partition)) AS in_flight
  FROM eventstore.subscription_partitions x WHERE x.subscription = 'sub_many';
SELECT count(*) FROM eventstore.poll('sub_many', 'c1', 100);
-- a position acked before (a no-op) with the rest: each as ack would
SELECT eventstore.ack_many('sub_many', 'c1', (SELECT array_agg(global_position) FROM many_got));
SELECT count(*) FILTER (WHERE delivered_to IS NOT NULL) AS in_flight FROM eventstore.subscription_partitions
 WHERE subscription = 'sub_many';
-- a failed event retried: acking its run deletes its retry, as ack does
SELECT eventstore.reset_subscription('sub_many', 0);
TRUNCATE many_got;
INSERT INTO many_got SELECT * FROM eventstore.poll('sub_many', 'c1', 100);
SELECT eventstore.nack('sub_many', 'c1', min(global_position), interval '0') FROM many_got;
-- the failed run again (the other runs are still in flight), then all of them
SELECT count(*) FILTER (WHERE attempt = 2) AS retried, count(DISTINCT partition) AS runs
  FROM eventstore.poll('sub_many', 'c1', 100);
SELECT eventstore.ack_many('sub_many', 'c1', (SELECT array_agg(global_position) FROM many_got));
SELECT (SELECT count(*) FROM eventstore.subscription_retries WHERE subscription = 'sub_many') AS retries,
       (SELECT count(*) FROM eventstore.subscription_partitions
         WHERE subscription = 'sub_many' AND delivered_to IS NOT NULL) AS in_flight;
-- poll renews the lease of every partition it holds: those it delivers from
-- (in the delivering statement) and the others, to one time
SELECT eventstore.reset_subscription('sub_many', 0);
CREATE TEMP TABLE many_lease AS
    SELECT partition, lease_until FROM eventstore.subscription_partitions WHERE subscription = 'sub_many';
SELECT count(*) FROM (SELECT pg_sleep(0.01)) z;
SELECT count(*) AS delivered FROM eventstore.poll('sub_many', 'c1', 1);
SELECT count(*) FILTER (WHERE x.lease_until > l.lease_until) AS renewed, count(*) AS held,
       count(DISTINCT x.lease_until) AS leases, count(*) FILTER (WHERE x.delivered_to IS NOT NULL) AS delivering
  FROM eventstore.subscription_partitions x JOIN many_lease l USING (partition)
 WHERE x.subscription = 'sub_many' AND x.holder = 'c1';

------------------------------------------------------------------------
-- poll's lease step and ack_many on their common path (C): a consumer that
-- keeps the partitions it holds, acking the runs it was sent
------------------------------------------------------------------------
SELECT eventstore.create_subscription('sub_fast', categories => '{subt}', partitions => 4);
SELECT count(*) > 0 AS delivered FROM eventstore.poll('sub_fast', 'c1', 100);
-- the next polls and ack_many run no PL/pgSQL
BEGIN;
SET LOCAL track_functions = 'pl';
SELECT count(*) AS in_flight_not_sent FROM eventstore.poll('sub_fast', 'c1', 100);
SELECT eventstore.ack_many('sub_fast', 'c1', ARRAY(SELECT x.delivered_to FROM eventstore.subscription_partitions x
                                                    WHERE x.subscription = 'sub_fast' AND x.delivered_to IS NOT NULL));
SELECT count(*) AS in_flight FROM eventstore.subscription_partitions
 WHERE subscription = 'sub_fast' AND delivered_to IS NOT NULL;
SELECT count(*) AS delivered FROM eventstore.poll('sub_fast', 'c1', 100);
SELECT count(*) AS plpgsql_calls FROM pg_stat_xact_user_functions WHERE schemaname = 'eventstore';
COMMIT;
-- a run not acked within the lease comes again to its holder
SELECT eventstore.reset_subscription('sub_fast', 0);
CREATE TEMP TABLE fast_got AS SELECT * FROM eventstore.poll('sub_fast', 'c1', 100);
SELECT count(*) AS in_flight_not_sent FROM eventstore.poll('sub_fast', 'c1', 100);
UPDATE eventstore.subscription_partitions SET delivered_at = delivered_at - interval '1 hour'
 WHERE subscription = 'sub_fast' AND delivered_to IS NOT NULL;
SELECT array_agg(global_position ORDER BY global_position) = (SELECT array_agg(global_position ORDER BY global_position)
                                                               FROM fast_got) AS sent_again,
       bool_and(attempt = 1) AS first_attempts
  FROM eventstore.poll('sub_fast', 'c1', 100);
-- a consumer gone for ten leases is forgotten by the next poll of another
INSERT INTO eventstore.subscription_consumers VALUES ('sub_fast', 'c_gone', now() - interval '1 hour');
SELECT count(*) FROM eventstore.poll('sub_fast', 'c1', 0);
SELECT consumer FROM eventstore.subscription_consumers WHERE subscription = 'sub_fast' ORDER BY 1;
-- three consumers: c1 keeps its runs in flight beyond its share, then
-- releases two of its four partitions; shares 2, 1, 1 (by name), kept at
-- each next poll, never a partition twice
SELECT eventstore.ack_many('sub_fast', 'c1', ARRAY(SELECT global_position FROM fast_got));
SELECT eventstore.reset_subscription('sub_fast', 0);
SELECT count(*) > 0 AS delivered FROM eventstore.poll('sub_fast', 'c1', 100);
SELECT count(*) FROM eventstore.poll('sub_fast', 'c2', 100);
SELECT count(*) FROM eventstore.poll('sub_fast', 'c3', 100);
SELECT count(*) FROM eventstore.poll('sub_fast', 'c1', 100);
SELECT holder, count(*) FROM eventstore.subscription_partitions WHERE subscription = 'sub_fast' GROUP BY 1 ORDER BY 1;
SELECT eventstore.ack_many('sub_fast', 'c1', ARRAY(SELECT x.delivered_to FROM eventstore.subscription_partitions x
                                                    WHERE x.subscription = 'sub_fast' AND x.delivered_to IS NOT NULL));
SELECT count(*) FROM eventstore.poll('sub_fast', 'c1', 0);
SELECT count(*) FROM eventstore.poll('sub_fast', 'c2', 0);
SELECT count(*) FROM eventstore.poll('sub_fast', 'c3', 0);
SELECT count(*) FROM eventstore.poll('sub_fast', 'c1', 0);
SELECT count(*) FROM eventstore.poll('sub_fast', 'c2', 0);
SELECT count(*) FROM eventstore.poll('sub_fast', 'c3', 0);
SELECT holder, count(*) FROM eventstore.subscription_partitions WHERE subscription = 'sub_fast' GROUP BY 1 ORDER BY 1;
SELECT count(*) AS overlaps FROM eventstore.subscription_leases a JOIN eventstore.subscription_leases b
    ON a.subscription = b.subscription AND a.partition = b.partition AND a.acquired_at < b.acquired_at
 WHERE a.subscription = 'sub_fast' AND (a.ended_at IS NULL OR a.ended_at > b.acquired_at);
-- ack_many of runs of c1's partitions by c3: refused, nothing acked
SELECT eventstore.reset_subscription('sub_fast', 0);
TRUNCATE fast_got;
INSERT INTO fast_got SELECT * FROM eventstore.poll('sub_fast', 'c1', 100);
SELECT count(DISTINCT partition) AS c1_runs FROM fast_got;
SELECT eventstore.ack_many('sub_fast', 'c3', ARRAY(SELECT global_position FROM fast_got));
SELECT count(*) AS in_flight FROM eventstore.subscription_partitions
 WHERE subscription = 'sub_fast' AND delivered_to IS NOT NULL;
SELECT eventstore.ack_many('sub_fast', 'c1', ARRAY(SELECT global_position FROM fast_got));
SELECT count(*) AS in_flight FROM eventstore.subscription_partitions
 WHERE subscription = 'sub_fast' AND delivered_to IS NOT NULL;
DROP TABLE fast_got;

------------------------------------------------------------------------
-- the lease history keeps the last 100 holdings of each partition
------------------------------------------------------------------------
SELECT eventstore.create_subscription('sub_lease', categories => '{subt}', partitions => 2);
-- 105 takeovers of both partitions, each by a new consumer (the holder's
-- lease made to expire and the group forgotten first)
DO $$
BEGIN
    FOR i IN 1..105 LOOP
        UPDATE eventstore.subscription_partitions SET lease_until = clock_timestamp() - interval '1 second'
         WHERE subscription = 'sub_lease' AND holder IS NOT NULL;
        DELETE FROM eventstore.subscription_consumers WHERE subscription = 'sub_lease';
        PERFORM count(*) FROM eventstore.poll('sub_lease', 'k' || lpad(i::text, 3, '0'), 0);
    END LOOP;
END $$;
SELECT partition, count(*) AS holdings, min(consumer) AS oldest_kept, max(consumer) AS newest,
       count(*) FILTER (WHERE ended_at IS NULL) AS open, bool_and(consumer >= 'k006') AS older_gone
  FROM eventstore.subscription_leases WHERE subscription = 'sub_lease' GROUP BY partition ORDER BY partition;
-- other subscriptions' histories are untouched
SELECT count(*) > 0 AS sub_a_history_kept FROM eventstore.subscription_leases WHERE subscription = 'sub_a';

-- drop removes everything of a subscription
SELECT eventstore.drop_subscription(name) FROM eventstore.subscriptions ORDER BY name;
SELECT (SELECT count(*) FROM eventstore.subscription_partitions) + (SELECT count(*) FROM eventstore.subscription_consumers)
     + (SELECT count(*) FROM eventstore.subscription_retries) + (SELECT count(*) FROM eventstore.subscription_parked)
     + (SELECT count(*) FROM eventstore.subscription_leases) AS rows_left;
SELECT eventstore.poll('sub_a', 'c1', 1);
DROP OWNED BY regress_sub_a, regress_sub_b, regress_sub_admin, regress_sub_a_member;
DROP ROLE regress_sub_a, regress_sub_b, regress_sub_admin, regress_sub_a_member;
DROP EXTENSION eventstore;
