--
-- consumers: checkpoints belong to the role that created them.
--   - another consumer role can neither poll, nor move, nor drop them (42501);
--   - an admin (grant_access 'admin') and a superuser can;
--   - a member of the owning role can (it has the owner's privileges);
--   - consumer_status shows each role its checkpoints (an admin all), with
--     the time of the last ack and how many published messages are behind;
--   - drop_consumer removes a stale consumer, so retention can prune again;
--   - a checkpoint from before 0.5.0 (no owner) is taken by the first role
--     that acknowledges it.
--
-- The relay worker is kept away from this database as in outbox.sql, so
-- what relay_once publishes and retention deletes does not depend on timing.
--
\set VERBOSITY terse

CREATE FUNCTION pg_temp.wait_no_worker() RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    stable int := 0;
BEGIN
    FOR i IN 0..400 LOOP
        IF i % 10 = 0 THEN
            PERFORM pg_reload_conf();
        END IF;
        PERFORM pg_stat_clear_snapshot();
        IF EXISTS (SELECT FROM pg_stat_activity a
                    WHERE a.backend_type = 'eventstore relay'
                      AND a.datname = current_database()) THEN
            stable := 0;
        ELSE
            stable := stable + 1;
            IF stable >= 5 THEN
                RETURN true;
            END IF;
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN false;
END $$;

ALTER SYSTEM SET eventstore.relay_databases = 'eventstore_outbox_test_no_such_db';
SELECT pg_temp.wait_no_worker() AS no_worker;

SET client_min_messages = warning;
DROP EXTENSION IF EXISTS eventstore CASCADE;
DROP ROLE IF EXISTS regress_cons_a, regress_cons_b, regress_cons_admin, regress_cons_a_member;
RESET client_min_messages;
CREATE EXTENSION eventstore;

CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.try(text) TO PUBLIC;

CREATE ROLE regress_cons_a;
CREATE ROLE regress_cons_b;
CREATE ROLE regress_cons_admin;
CREATE ROLE regress_cons_a_member IN ROLE regress_cons_a;
SELECT eventstore.grant_access('regress_cons_a', 'consumer');
SELECT eventstore.grant_access('regress_cons_b', 'consumer');
SELECT eventstore.grant_access('regress_cons_admin', 'admin');

-- five published messages on channel jobs (ids 1-5)
SELECT count(eventstore.enqueue('jobs', jsonb_build_object('n', n))) FROM generate_series(1, 5) n;
SELECT eventstore.relay_once() AS published;

------------------------------------------------------------------------
-- The owner: the role whose first ack created the consumer
------------------------------------------------------------------------
SET ROLE regress_cons_a;
SELECT array_agg(id ORDER BY id) AS polled FROM eventstore.consumer_poll('billing', 'jobs');
SELECT eventstore.consumer_ack('billing', 'jobs', 2);
SELECT array_agg(id ORDER BY id) AS polled FROM eventstore.consumer_poll('billing', 'jobs');
RESET ROLE;
SELECT consumer, channel, owner, last_id FROM eventstore.consumers ORDER BY consumer;

------------------------------------------------------------------------
-- Another consumer role: no poll, no ack, no drop
------------------------------------------------------------------------
SET ROLE regress_cons_b;
SELECT pg_temp.try($$SELECT eventstore.consumer_ack('billing', 'jobs', 5)$$) AS ack_other;
SELECT pg_temp.try($$SELECT count(*) FROM eventstore.consumer_poll('billing', 'jobs')$$) AS poll_other;
SELECT pg_temp.try($$SELECT eventstore.drop_consumer('billing', 'jobs')$$) AS drop_other;
-- nor by calling the bodies, which take the caller as an argument
SELECT pg_temp.try(format('SELECT eventstore._consumer_ack(%L, %L, 5, %s)', 'billing', 'jobs',
                          'regress_cons_a'::regrole::oid)) AS forged_ack;
SELECT pg_temp.try($$UPDATE eventstore.consumers SET last_id = 5$$) AS direct_update;
-- its own consumer on the same channel is independent: a ghost that never
-- acknowledges again
SELECT eventstore.consumer_ack('ghost', 'jobs', 1);
-- it sees its own checkpoints only
SELECT consumer, channel, owner, last_id, behind, last_ack_at IS NOT NULL AS acked FROM eventstore.consumer_status;
RESET ROLE;
SELECT consumer, owner, last_id FROM eventstore.consumers ORDER BY consumer;

-- a member of the owning role has its privileges
SET ROLE regress_cons_a_member;
SELECT eventstore.consumer_ack('billing', 'jobs', 3);
RESET ROLE;

------------------------------------------------------------------------
-- consumer_status and drop_consumer
------------------------------------------------------------------------
SET ROLE regress_cons_a;
SELECT consumer, channel, owner, last_id, behind FROM eventstore.consumer_status;
SELECT pg_temp.try($$SELECT eventstore.drop_consumer('ghost', 'jobs')$$) AS drop_other;
SELECT pg_temp.try($$SELECT eventstore.drop_consumer('nobody', 'jobs')$$) AS drop_unknown;
SELECT pg_temp.try($$SELECT eventstore.drop_consumer(NULL, 'jobs')$$) AS drop_null;
SELECT pg_temp.try($$SELECT eventstore.drop_consumer('billing', '')$$) AS drop_empty_channel;
RESET ROLE;

-- the ghost (acked 1) holds back retention: only id 1 can go
SET eventstore.outbox_retention = 0;
SELECT eventstore.consumer_ack('billing', 'jobs', 5) AS superuser_may_ack;
SELECT eventstore.relay_once() AS published;
SELECT array_agg(id ORDER BY id) AS kept FROM eventstore.outbox;

-- the admin sees every checkpoint, and drops the ghost; then retention
-- deletes what billing acknowledged
SET ROLE regress_cons_admin;
SELECT consumer, channel, owner, last_id, behind FROM eventstore.consumer_status;
SELECT eventstore.drop_consumer('ghost', 'jobs');
SELECT count(*) AS admin_polls FROM eventstore.consumer_poll('billing', 'jobs');
RESET ROLE;
SELECT eventstore.relay_once() AS published;
SELECT array_agg(id ORDER BY id) AS kept FROM eventstore.outbox;
RESET eventstore.outbox_retention;

-- the owner drops its own
SET ROLE regress_cons_a;
SELECT eventstore.drop_consumer('billing', 'jobs');
SELECT count(*) AS visible FROM eventstore.consumer_status;
RESET ROLE;
SELECT count(*) AS consumers FROM eventstore.consumers;

------------------------------------------------------------------------
-- Checkpoints from before 0.5.0 have no owner: the first ack takes them
------------------------------------------------------------------------
SELECT eventstore.enqueue('jobs', '{"n": 6}') AS id;
SELECT eventstore.relay_once() AS published;
INSERT INTO eventstore.consumers (consumer, channel, last_id) VALUES ('legacy', 'jobs', 1);
SET ROLE regress_cons_b;
SELECT consumer, owner, last_id FROM eventstore.consumer_status;
SELECT eventstore.consumer_ack('legacy', 'jobs', 6);
RESET ROLE;
SET ROLE regress_cons_a;
SELECT pg_temp.try($$SELECT eventstore.consumer_ack('legacy', 'jobs', 6)$$) AS after_taken;
RESET ROLE;
SELECT consumer, owner, last_id FROM eventstore.consumers ORDER BY consumer;

------------------------------------------------------------------------
-- The upgrade from 0.4.0: checkpoints keep working without an owner until
-- acknowledged; grants follow add_route's new signature and reach the new
-- consumer functions; admins get UPDATE on eventstore.consumers
------------------------------------------------------------------------
DROP EXTENSION eventstore;
CREATE EXTENSION eventstore VERSION '0.4.0';
SELECT eventstore.grant_access('regress_cons_a', 'consumer');
SELECT eventstore.grant_access('regress_cons_admin', 'admin');
SELECT eventstore.enqueue('jobs', '{"n": 1}') AS id;
SELECT eventstore.relay_once() AS published;
SET ROLE regress_cons_a;
SELECT eventstore.consumer_ack('old', 'jobs', 1);
RESET ROLE;
ALTER EXTENSION eventstore UPDATE TO '0.5.0';
SELECT consumer, channel, owner, last_id FROM eventstore.consumers;
SELECT has_function_privilege('regress_cons_admin', 'eventstore.add_route(text, text[], text[], boolean)', 'EXECUTE')
           AS admin_add_route,
       has_function_privilege('regress_cons_a', 'eventstore.drop_consumer(text, text)', 'EXECUTE') AS a_drop,
       has_function_privilege('regress_cons_a', 'eventstore.consumer_status()', 'EXECUTE') AS a_status_fn,
       has_table_privilege('regress_cons_a', 'eventstore.consumer_status', 'SELECT') AS a_status,
       has_table_privilege('regress_cons_a', 'eventstore.consumers', 'UPDATE') AS a_update,
       has_table_privilege('regress_cons_admin', 'eventstore.consumers', 'UPDATE') AS admin_update,
       has_function_privilege('regress_cons_b', 'eventstore.drop_consumer(text, text)', 'EXECUTE') AS b_drop;
SET ROLE regress_cons_a;
SELECT consumer, owner, last_id FROM eventstore.consumer_status;
SELECT eventstore.consumer_ack('old', 'jobs', 1);
SELECT consumer, owner, last_id FROM eventstore.consumer_status;
RESET ROLE;
SET ROLE regress_cons_admin;
SELECT eventstore.add_route('upgraded', with_data => false);
RESET ROLE;
SELECT channel, with_data FROM eventstore.routes;

------------------------------------------------------------------------
-- Clean up
------------------------------------------------------------------------
DROP EXTENSION eventstore;
DROP OWNED BY regress_cons_a, regress_cons_b, regress_cons_admin, regress_cons_a_member;
DROP ROLE regress_cons_a_member, regress_cons_a, regress_cons_b, regress_cons_admin;
ALTER SYSTEM RESET eventstore.relay_databases;
SELECT pg_reload_conf();
