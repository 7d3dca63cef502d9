--
-- outbox: routes, the outbox rows an append writes, enqueue, relay_once and
-- the NOTIFY payloads it sends, durable consumers, retention, relay_status.
--
-- The file starts from a fresh extension, so outbox ids and global positions
-- are deterministic (both sequences have CACHE 1), and drops it at the end.
--
-- The relay worker is kept away from this database for the whole file: with
-- the library preloaded it is woken at every commit that writes outbox rows
-- and would publish them before relay_once does, so what relay_once returns
-- would depend on timing.  eventstore.relay_databases is set (ALTER SYSTEM,
-- reload) to a database that does not exist, which makes the worker leave
-- (state "left: not in relay_databases"), and is reset at the end.
--
-- Notifications: this session LISTENs on the channels, so psql prints the
-- notifications that relay_once sends, at its commit.  psql prints the
-- sender's PID with them, so the blocks that print notifications send psql's
-- query output through a filter (\o | perl ...) that replaces the PID with N,
-- and a run of more than 20 x's with its length.
--
\set VERBOSITY terse

-- wait_no_worker(): wait (at most 20 s) until no relay worker is connected
-- to this database, and none for 0.25 s.  It signals a reload again every
-- 0.5 s, in case a worker started just after the first reload (a worker
-- reads the setting at SIGHUP).
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
RESET client_min_messages;
CREATE EXTENSION eventstore;

-- try(sql): run sql; 'ok', or the SQLSTATE and message of the error it raised.
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

------------------------------------------------------------------------
-- Routes: checks on input
------------------------------------------------------------------------
SELECT pg_temp.try($$SELECT eventstore.add_route(NULL)$$);
SELECT pg_temp.try($$SELECT eventstore.add_route('')$$);
-- a NOTIFY channel is shorter than 64 bytes: 64 fails, in bytes not characters
SELECT pg_temp.try(format('SELECT eventstore.add_route(%L)', repeat('c', 64)));
SELECT pg_temp.try(format('SELECT eventstore.add_route(%L)', repeat('é', 32)))
       AS thirty_two_two_byte_chars;
SELECT pg_temp.try($$SELECT eventstore.add_route('r', event_types => '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.add_route('r', categories => '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.add_route('r', event_types => ARRAY['A', NULL])$$);
SELECT pg_temp.try($$SELECT eventstore.add_route('r', categories => ARRAY[NULL]::text[])$$);
-- none of them stored anything
SELECT count(*) AS routes FROM eventstore.routes;

-- 63 bytes is accepted
SELECT pg_temp.try(format('SELECT eventstore.add_route(%L)', repeat('c', 63)));
SELECT pg_temp.try(format('SELECT eventstore.add_route(%L)', repeat('é', 31) || 'c'));
SELECT octet_length(channel) FROM eventstore.routes;
SELECT pg_temp.try(format('SELECT eventstore.remove_route(%L)', repeat('c', 63)));
SELECT pg_temp.try(format('SELECT eventstore.remove_route(%L)', repeat('é', 31) || 'c'));

-- one route per channel
SELECT eventstore.add_route('dup');
SELECT pg_temp.try($$SELECT eventstore.add_route('dup', event_types => ARRAY['X'])$$);
SELECT channel, event_types, categories FROM eventstore.routes;
SELECT eventstore.remove_route('dup');
SELECT pg_temp.try($$SELECT eventstore.remove_route('dup')$$);
SELECT pg_temp.try($$SELECT eventstore.remove_route('never-added')$$);
SELECT pg_temp.try($$SELECT eventstore.remove_route(NULL)$$);
SELECT pg_temp.try($$SELECT eventstore.remove_route('')$$);
SELECT count(*) AS routes FROM eventstore.routes;

------------------------------------------------------------------------
-- No route: appends write no outbox row
------------------------------------------------------------------------
SELECT * FROM eventstore.append_event('account-0', 0, 'Opened', '{}', NULL,
                                      '00000000-0000-4000-8000-000000000000');
SELECT count(*) AS outbox_rows FROM eventstore.outbox;

------------------------------------------------------------------------
-- Routing by event type and by category
------------------------------------------------------------------------
-- accounts:    every event of category 'account'
-- acct_opened: type Opened in category account or savings (both must match)
-- deposits:    type Deposited, any category
-- everything:  every event
SELECT eventstore.add_route('accounts', categories => ARRAY['account']);
SELECT eventstore.add_route('acct_opened', event_types => ARRAY['Opened'],
                            categories => ARRAY['account', 'savings']);
SELECT eventstore.add_route('deposits', event_types => ARRAY['Deposited']);
SELECT eventstore.add_route('everything');
SELECT channel, event_types, categories FROM eventstore.routes ORDER BY channel;

-- two events in one call
SELECT * FROM eventstore.append('account-1', 0, ARRAY[
    eventstore.event('Opened', '{"owner": "ada"}', NULL, '00000000-0000-4000-8000-000000000001'),
    eventstore.event('Deposited', '{"amount": 10}', NULL, '00000000-0000-4000-8000-000000000002')]);
-- the category is the part before the first '-'
SELECT * FROM eventstore.append_event('account-x-2', NULL, 'Deposited', '{"amount": 5}', NULL,
                                      '00000000-0000-4000-8000-000000000003');
-- a stream id without '-' is its own category
SELECT * FROM eventstore.append_event('account', NULL, 'Noted', '{}', NULL,
                                      '00000000-0000-4000-8000-000000000004');
-- category 'accounts' is not 'account'; Deposited matches by type
SELECT * FROM eventstore.append_event('accounts-1', NULL, 'Deposited', '{}', NULL,
                                      '00000000-0000-4000-8000-000000000005');
-- matching is case-sensitive
SELECT * FROM eventstore.append_event('Account-3', NULL, 'deposited', '{}', NULL,
                                      '00000000-0000-4000-8000-000000000006');
SELECT * FROM eventstore.append_event('savings-1', NULL, 'Opened', '{}', NULL,
                                      '00000000-0000-4000-8000-000000000007');
SELECT * FROM eventstore.append_event('order-1', NULL, 'Placed', '{}', NULL,
                                      '00000000-0000-4000-8000-000000000008');

-- the channels each event got, in outbox id order (account-0 came before the routes)
SELECT e.global_position, e.stream_id, e.event_type,
       array_agg(o.channel ORDER BY o.id) FILTER (WHERE o.id IS NOT NULL) AS channels,
       array_agg(o.id ORDER BY o.id) FILTER (WHERE o.id IS NOT NULL) AS outbox_ids
  FROM eventstore.events e
  LEFT JOIN eventstore.outbox o ON o.global_position = e.global_position
 GROUP BY e.global_position, e.stream_id, e.event_type
 ORDER BY e.global_position;
-- at most one row per route per event; ids follow (event, channel) order;
-- nothing published yet; every event row is an event, not a message
SELECT count(*) AS rows,
       count(DISTINCT (channel, global_position)) AS distinct_channel_event,
       bool_and(published_at IS NULL) AS none_published,
       bool_and(payload IS NULL AND headers IS NULL) AS no_payload
  FROM eventstore.outbox;
SELECT bool_and(by_id = by_event) AS ids_in_event_order
  FROM (SELECT row_number() OVER (ORDER BY id) AS by_id,
               row_number() OVER (ORDER BY global_position, channel COLLATE "C") AS by_event
          FROM eventstore.outbox) s;

------------------------------------------------------------------------
-- Outbox rows exist if and only if the events do
------------------------------------------------------------------------
SELECT count(*) AS outbox_rows, max(id) AS max_id FROM eventstore.outbox;

-- rolled back: its rows (visible inside the transaction) go too; the ids
-- it took are a gap
BEGIN;
SELECT * FROM eventstore.append_event('account-9', NULL, 'Deposited', '{}', NULL,
                                      '00000000-0000-4000-8000-000000000009');
SELECT id, channel FROM eventstore.outbox WHERE id > 17 ORDER BY id;
ROLLBACK;
SELECT count(*) AS outbox_rows, max(id) AS max_id FROM eventstore.outbox;

-- a conflict (ES409) writes nothing and takes no id
SELECT pg_temp.try($$SELECT eventstore.append_event('account-1', 1, 'Deposited', '{}')$$);
-- an idempotent retry writes nothing either
SELECT * FROM eventstore.append_event('account-x-2', NULL, 'Deposited', '{"amount": 5}', NULL,
                                      '00000000-0000-4000-8000-000000000003');
SELECT count(*) AS outbox_rows, max(id) AS max_id FROM eventstore.outbox;

-- rolled back to a savepoint: only the part that stayed has rows
BEGIN;
SAVEPOINT sp;
SELECT * FROM eventstore.append_event('order-2', NULL, 'Placed', '{}', NULL,
                                      '00000000-0000-4000-8000-000000000010');
ROLLBACK TO sp;
SELECT * FROM eventstore.append_event('order-3', NULL, 'Placed', '{}', NULL,
                                      '00000000-0000-4000-8000-000000000011');
COMMIT;
SELECT o.id, o.channel, e.stream_id
  FROM eventstore.outbox o JOIN eventstore.events e USING (global_position)
 WHERE o.id > 17 ORDER BY o.id;

-- a removed route takes effect at once
SELECT eventstore.remove_route('everything');
SELECT * FROM eventstore.append_event('order-4', NULL, 'Placed', '{}', NULL,
                                      '00000000-0000-4000-8000-000000000012');
SELECT count(*) AS outbox_rows_of_order_4
  FROM eventstore.outbox o JOIN eventstore.events e USING (global_position)
 WHERE e.stream_id = 'order-4';

------------------------------------------------------------------------
-- enqueue
------------------------------------------------------------------------
SELECT pg_temp.try($$SELECT eventstore.enqueue(NULL, '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.enqueue('mail', NULL)$$);
SELECT pg_temp.try($$SELECT eventstore.enqueue('', '{}')$$);
SELECT pg_temp.try(format('SELECT eventstore.enqueue(%L, %L)', repeat('m', 64), '{}'));
SET eventstore.max_event_size = 1024;
SELECT pg_temp.try($$SELECT eventstore.enqueue('mail', jsonb_build_object('p', repeat('x', 2000)))$$);
SELECT pg_temp.try($$SELECT eventstore.enqueue('mail', '{}', jsonb_build_object('h', repeat('x', 2000)))$$);
RESET eventstore.max_event_size;
SELECT count(*) AS messages FROM eventstore.outbox WHERE global_position IS NULL;

-- ids increase; no route is needed; any JSON value is a payload
SELECT eventstore.enqueue('mail', '{"n": 1}') AS id;
SELECT eventstore.enqueue('mail', '{"n": 2}', '{"h": "v"}') AS id;
SELECT eventstore.enqueue('mail', '42') AS id;
-- rolled back: no row
BEGIN;
SELECT eventstore.enqueue('mail', '{"n": "rolled back"}') AS id;
ROLLBACK;
SELECT id, channel, payload, headers, published_at IS NULL AS pending
  FROM eventstore.outbox WHERE global_position IS NULL ORDER BY id;

------------------------------------------------------------------------
-- relay_once: publishes in id order, marks published_at, sends NOTIFY
------------------------------------------------------------------------
SELECT pg_temp.try($$SELECT eventstore.relay_once(0)$$);
SELECT pg_temp.try($$SELECT eventstore.relay_once(-1)$$);
-- only in READ COMMITTED
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pg_temp.try($$SELECT eventstore.relay_once()$$);
ROLLBACK;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT pg_temp.try($$SELECT eventstore.relay_once()$$);
ROLLBACK;

LISTEN accounts;
LISTEN acct_opened;
LISTEN deposits;
LISTEN everything;
LISTEN mail;
SELECT count(*) AS pending FROM eventstore.outbox WHERE published_at IS NULL;

-- a pass that rolls back publishes nothing: no notification, rows still pending
BEGIN;
SELECT eventstore.relay_once() AS published;
ROLLBACK;
SELECT count(*) AS pending FROM eventstore.outbox WHERE published_at IS NULL;

-- the first three, then the rest, in id order
\o | perl -0777 -pe 's/ PID \d+\./ PID N./g; s/x{21,}/"<".length($&)." x>"/ge'
SELECT eventstore.relay_once(3) AS published;
\o
SELECT id, published_at IS NOT NULL AS published FROM eventstore.outbox WHERE id <= 5 ORDER BY id;
\o | perl -0777 -pe 's/ PID \d+\./ PID N./g; s/x{21,}/"<".length($&)." x>"/ge'
SELECT eventstore.relay_once() AS published;
SELECT eventstore.relay_once() AS published;
\o
SELECT count(*) FILTER (WHERE published_at IS NULL) AS pending,
       count(*) FILTER (WHERE published_at IS NOT NULL) AS published,
       count(DISTINCT published_at) AS passes
  FROM eventstore.outbox;

-- the message of an event row is the event's row, field by field; of a
-- plain message, its payload and headers
SELECT bool_and(m.message = jsonb_build_object(
           'id', o.id, 'channel', o.channel, 'position', e.global_position,
           'stream_id', e.stream_id, 'stream_version', e.stream_version,
           'event_type', e.event_type, 'event_id', e.event_id, 'data', e.data))
       AS event_messages_match, count(*)
  FROM eventstore.outbox_messages m
  JOIN eventstore.outbox o USING (id)
  JOIN eventstore.events e ON e.global_position = o.global_position;
SELECT DISTINCT o.global_position IS NULL AS is_message,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(m.message) k) AS keys
  FROM eventstore.outbox_messages m JOIN eventstore.outbox o USING (id)
 ORDER BY 1;

-- the relay's own open transaction holds its ids back: a row enqueued in the
-- transaction that runs relay_once is not published by it
BEGIN;
SELECT eventstore.enqueue('mail', '{"n": 3}') AS id;
SELECT eventstore.relay_once() AS published;
COMMIT;
\o | perl -0777 -pe 's/ PID \d+\./ PID N./g; s/x{21,}/"<".length($&)." x>"/ge'
SELECT eventstore.relay_once() AS published;
\o

------------------------------------------------------------------------
-- Payloads that do not fit NOTIFY (8000 bytes)
------------------------------------------------------------------------
SELECT eventstore.add_route('big', categories => ARRAY['big']);
LISTEN big;
-- data over 8000 bytes: the notification has no data and "data_omitted": true
SELECT * FROM eventstore.append_event('big-1', NULL, 'Blob', jsonb_build_object('blob', repeat('x', 9000)),
                                      NULL, '00000000-0000-4000-8000-000000000013');
-- even without data the envelope is too large (a huge type): only the ids
-- (outbox id, position) and the channel
SELECT * FROM eventstore.append_event('big-2', NULL, repeat('T', 8100), '{}',
                                      NULL, '00000000-0000-4000-8000-000000000014');
-- messages whose JSON text is 7999 bytes (fits) and 8000 bytes (does not)
SELECT eventstore.enqueue('big', jsonb_build_object('p', repeat('x', n - octet_length(
           jsonb_build_object('id', s.last_value + 1, 'channel', 'big',
                              'payload', jsonb_build_object('p', ''), 'headers', NULL)::text)))) AS id
  FROM eventstore.outbox_id_seq s, (VALUES (7999)) v(n);
SELECT eventstore.enqueue('big', jsonb_build_object('p', repeat('x', n - octet_length(
           jsonb_build_object('id', s.last_value + 1, 'channel', 'big',
                              'payload', jsonb_build_object('p', ''), 'headers', NULL)::text)))) AS id
  FROM eventstore.outbox_id_seq s, (VALUES (8000)) v(n);
-- large headers: payload and headers are both left out
SELECT eventstore.enqueue('big', '{"small": true}', jsonb_build_object('h', repeat('y', 8500))) AS id;
SELECT id, octet_length(message::text) AS message_bytes
  FROM eventstore.outbox_messages WHERE channel = 'big' ORDER BY id;
\o | perl -0777 -pe 's/ PID \d+\./ PID N./g; s/x{21,}/"<".length($&)." x>"/ge'
SELECT eventstore.relay_once() AS published;
\o
-- consumer_poll returns the full messages
SELECT id, octet_length(message::text) AS message_bytes, message ? 'data_omitted' AS omitted,
       octet_length(message->>'event_type') AS type_bytes
  FROM eventstore.consumer_poll('bigreader', 'big') ORDER BY id;

------------------------------------------------------------------------
-- Durable consumers
------------------------------------------------------------------------
SELECT pg_temp.try($$SELECT * FROM eventstore.consumer_poll(NULL, 'mail')$$);
SELECT pg_temp.try($$SELECT * FROM eventstore.consumer_poll('', 'mail')$$);
SELECT pg_temp.try($$SELECT * FROM eventstore.consumer_poll('c1', NULL)$$);
SELECT pg_temp.try($$SELECT * FROM eventstore.consumer_poll('c1', '')$$);
SELECT pg_temp.try(format('SELECT * FROM eventstore.consumer_poll(%L, %L)', 'c1', repeat('m', 64)));
SELECT pg_temp.try($$SELECT * FROM eventstore.consumer_poll('c1', 'mail', -1)$$);
SELECT pg_temp.try($$SELECT * FROM eventstore.consumer_poll('c1', 'mail', NULL)$$);
SELECT count(*) FROM eventstore.consumer_poll('c1', 'mail', 0);

-- a new consumer starts at the oldest message of the channel (mail: 23, 24, 25, 27)
SELECT id, channel, global_position, message, published_at IS NOT NULL AS published
  FROM eventstore.consumer_poll('c1', 'mail');
SELECT id FROM eventstore.consumer_poll('c1', 'mail', 2);
-- polling does not move the checkpoint
SELECT id FROM eventstore.consumer_poll('c1', 'mail', 2);
SELECT eventstore.consumer_ack('c1', 'mail', 24);
SELECT id FROM eventstore.consumer_poll('c1', 'mail');
-- never backwards
SELECT eventstore.consumer_ack('c1', 'mail', 23);
SELECT id FROM eventstore.consumer_poll('c1', 'mail');
SELECT consumer, channel, last_id FROM eventstore.consumers ORDER BY consumer, channel;
-- a second consumer, and the same consumer on another channel, are independent
SELECT id FROM eventstore.consumer_poll('c2', 'mail');
SELECT id, global_position, message->>'stream_id' AS stream_id
  FROM eventstore.consumer_poll('c1', 'deposits');

-- an unpublished message is not returned, and cannot be acknowledged
SELECT eventstore.enqueue('mail', '{"n": 4}') AS id;
SELECT id FROM eventstore.consumer_poll('c2', 'mail');
SELECT pg_temp.try($$SELECT eventstore.consumer_ack('c2', 'mail', 33)$$);
SELECT pg_temp.try($$SELECT eventstore.consumer_ack('c2', 'mail', 1000)$$);
SELECT pg_temp.try($$SELECT eventstore.consumer_ack('c2', 'mail', 0)$$);
SELECT pg_temp.try($$SELECT eventstore.consumer_ack('c2', 'mail', -1)$$);
SELECT pg_temp.try($$SELECT eventstore.consumer_ack('c2', 'mail', NULL)$$);
SELECT pg_temp.try($$SELECT eventstore.consumer_ack(NULL, 'mail', 23)$$);
SELECT pg_temp.try($$SELECT eventstore.consumer_ack('', 'mail', 23)$$);
SELECT pg_temp.try($$SELECT eventstore.consumer_ack('c2', NULL, 23)$$);
SELECT pg_temp.try($$SELECT eventstore.consumer_ack('c2', '', 23)$$);
SELECT consumer, channel, last_id FROM eventstore.consumers ORDER BY consumer, channel;
\o | perl -0777 -pe 's/ PID \d+\./ PID N./g; s/x{21,}/"<".length($&)." x>"/ge'
SELECT eventstore.relay_once() AS published;
\o
SELECT id FROM eventstore.consumer_poll('c2', 'mail');
SELECT eventstore.consumer_ack('c1', 'mail', 33);
SELECT id FROM eventstore.consumer_poll('c1', 'mail');
SELECT eventstore.consumer_ack('c2', 'mail', 25);
SELECT id FROM eventstore.consumer_poll('c2', 'mail');
SELECT consumer, channel, last_id FROM eventstore.consumers ORDER BY consumer, channel;

------------------------------------------------------------------------
-- Retention
------------------------------------------------------------------------
-- only a superuser sets it
CREATE ROLE regress_outbox_user;
SET ROLE regress_outbox_user;
SELECT pg_temp.try($$SET eventstore.outbox_retention = 0$$);
RESET ROLE;
DROP ROLE regress_outbox_user;

-- the default keeps a day: a pass deletes nothing
SELECT count(*) AS outbox_rows FROM eventstore.outbox;
SELECT eventstore.relay_once() AS published;
SELECT count(*) AS outbox_rows FROM eventstore.outbox;

-- mail: c1 acknowledged 33, c2 only 25; deposits (5, 8, 12): c1 acknowledged 8
SELECT eventstore.consumer_ack('c1', 'deposits', 8);
SELECT channel, array_agg(id ORDER BY id) AS ids
  FROM eventstore.outbox GROUP BY channel ORDER BY channel;
-- with retention 0 a pass deletes the published rows that every consumer of
-- their channel acknowledged; a channel without consumers loses them all
SET eventstore.outbox_retention = 0;
SELECT eventstore.relay_once() AS published;
SELECT channel, array_agg(id ORDER BY id) AS ids
  FROM eventstore.outbox GROUP BY channel ORDER BY channel;
-- rows published by a pass are kept by that pass (published_at = now());
-- unpublished rows are never deleted
SELECT eventstore.enqueue('solo', '{"n": 5}') AS id;
BEGIN;
SELECT eventstore.enqueue('solo', '{"n": 6}') AS id;
SAVEPOINT s;
SELECT eventstore.relay_once() AS published;
ROLLBACK TO s;
COMMIT;
SELECT id, published_at IS NOT NULL AS published FROM eventstore.outbox WHERE channel = 'solo' ORDER BY id;
SELECT eventstore.relay_once() AS published;
SELECT id, published_at IS NOT NULL AS published FROM eventstore.outbox WHERE channel = 'solo' ORDER BY id;
SELECT eventstore.relay_once() AS published;
SELECT id FROM eventstore.outbox WHERE channel = 'solo' ORDER BY id;
-- c2 catches up: the rest of mail goes at the next pass
SELECT eventstore.consumer_ack('c2', 'mail', 33);
SELECT eventstore.relay_once() AS published;
SELECT channel, array_agg(id ORDER BY id) AS ids
  FROM eventstore.outbox GROUP BY channel ORDER BY channel;
-- acknowledging again a message that was published, acknowledged by every
-- consumer and deleted is a no-op, not an error (a retried ack)
SELECT pg_temp.try($$SELECT eventstore.consumer_ack('c2', 'mail', 33)$$);
SELECT consumer, channel, last_id FROM eventstore.consumers ORDER BY consumer, channel;
-- a new consumer starts at the oldest retained message
SELECT id FROM eventstore.consumer_poll('c3', 'deposits');
-- -1 keeps everything
SET eventstore.outbox_retention = -1;
SELECT eventstore.consumer_ack('c1', 'deposits', 12);
SELECT eventstore.relay_once() AS published;
SELECT channel, array_agg(id ORDER BY id) AS ids
  FROM eventstore.outbox GROUP BY channel ORDER BY channel;
RESET eventstore.outbox_retention;

------------------------------------------------------------------------
-- relay_status
------------------------------------------------------------------------
-- one row for this database, with no worker (it left, or never started);
-- pending and the age of the oldest pending row are counted for the
-- current database
SELECT count(*) AS rows, bool_and(pid IS NULL) AS no_worker, sum(pending) AS pending,
       bool_and(oldest_pending_age IS NULL) AS no_age
  FROM eventstore.relay_status WHERE database = current_database();
SELECT eventstore.enqueue('mail', '{"n": 7}') AS id;
SELECT eventstore.enqueue('mail', '{"n": 8}') AS id;
SELECT pending, oldest_pending_age >= '0'::interval AS has_age
  FROM eventstore.relay_status WHERE database = current_database();
-- published_total counts what relay_once publishes
SELECT published_total AS before FROM eventstore.relay_status WHERE database = current_database() \gset
\o | perl -0777 -pe 's/ PID \d+\./ PID N./g; s/x{21,}/"<".length($&)." x>"/ge'
SELECT eventstore.relay_once() AS published;
\o
SELECT published_total - :before AS published_since, pending, oldest_pending_age
  FROM eventstore.relay_status WHERE database = current_database();

------------------------------------------------------------------------
-- Subscription wake-ups: a relay pass NOTIFYs the channel of every
-- subscription with events between the log horizon it last published and
-- the new one, at its commit, with the new horizon as payload
------------------------------------------------------------------------
UNLISTEN *;
SELECT eventstore.subscription_channel('mailer') AS channel,
       eventstore.subscription_channel(repeat('x', 48)) = 'eventstore_sub_' || repeat('x', 48) AS short_kept,
       eventstore.subscription_channel(repeat('y', 49)) = 'eventstore_sub_' || md5(repeat('y', 49)) AS long_hashed,
       octet_length(eventstore.subscription_channel(repeat('é', 200))) AS long_bytes;
SELECT eventstore.relay_once() >= 0 AS settled;
SELECT eventstore.create_subscription('wake_orders', categories => '{order}', event_types => '{Placed}');
SELECT eventstore.create_store('wake_store');
SELECT eventstore.create_subscription('wake_other_store', store => 'wake_store');
LISTEN eventstore_sub_wake_orders;
LISTEN eventstore_sub_wake_other_store;
-- a matching event: one notification, payload the new horizon (its position)
SELECT global_position FROM eventstore.append_event('order-9', NULL, 'Placed', '{}');
\o | perl -0777 -pe 's/ PID \d+\./ PID N./g'
SELECT eventstore.relay_once() AS published;
\o
-- another type, another category, another store's subscription: none
SELECT global_position FROM eventstore.append_event('order-9', NULL, 'Shipped', '{}');
SELECT global_position FROM eventstore.append_event('invoice-9', NULL, 'Placed', '{}');
\o | perl -0777 -pe 's/ PID \d+\./ PID N./g'
SELECT eventstore.relay_once() AS published;
\o
-- a rolled-back append: none
BEGIN;
SELECT global_position FROM eventstore.append_event('order-10', NULL, 'Placed', '{}');
ROLLBACK;
\o | perl -0777 -pe 's/ PID \d+\./ PID N./g'
SELECT eventstore.relay_once() AS published;
\o
-- two matching events, and one of the other store, in one pass: one
-- notification per subscription
SELECT global_position FROM eventstore.append_event('order-11', NULL, 'Placed', '{}');
SELECT global_position FROM eventstore.append_event('order-12', NULL, 'Placed', '{}');
SELECT global_position FROM eventstore.append_event('s-1', NULL, 'X', '{}', store => 'wake_store');
\o | perl -0777 -pe 's/ PID \d+\./ PID N./g'
SELECT eventstore.relay_once() AS published;
\o
-- a pass that rolls back notifies nothing; the next one does
SELECT global_position FROM eventstore.append_event('order-13', NULL, 'Placed', '{}');
BEGIN;
SELECT eventstore.relay_once() AS published;
ROLLBACK;
\o | perl -0777 -pe 's/ PID \d+\./ PID N./g'
SELECT eventstore.relay_once() AS published;
\o
UNLISTEN *;
SELECT eventstore.drop_subscription('wake_orders');
SELECT eventstore.drop_store('wake_store');

------------------------------------------------------------------------
-- Clean up: the extension, and the relay worker allowed back
------------------------------------------------------------------------
UNLISTEN *;
DROP EXTENSION eventstore;
ALTER SYSTEM RESET eventstore.relay_databases;
SELECT pg_reload_conf();
