--
-- append: eventstore.append() and eventstore.append_event(), their results,
-- versions and positions, generated event ids, transactions.
--
CREATE EXTENSION IF NOT EXISTS eventstore;
\set VERBOSITY terse

-- try(sql): run sql; 'ok', or the SQLSTATE and message of the error it raised.
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- Positions are shown relative to the sequence as this file found it.
SELECT coalesce(pg_sequence_last_value('eventstore.events_global_position_seq'), 0) AS base \gset

------------------------------------------------------------------------
-- append_event: one event; the result is the new version and its position
------------------------------------------------------------------------
SELECT stream_version, global_position - :base AS pos
  FROM eventstore.append_event('order-1', 0, 'OrderPlaced', '{"total": 10}');
SELECT stream_version, global_position - :base AS pos
  FROM eventstore.append_event('order-1', 1, 'OrderPaid', '{}', '{"user": "ada"}');
-- named arguments, defaults for metadata and event_id
SELECT stream_version, global_position - :base AS pos
  FROM eventstore.append_event(stream_id => 'order-1', expected_version => 2,
                               event_type => 'OrderShipped', data => '{"carrier": "post"}');
-- the result is one row of two columns
SELECT r FROM eventstore.append_event('order-2', NULL, 'OrderPlaced', '{}') AS r;
SELECT (eventstore.append_event('order-2', NULL, 'OrderCancelled', '{}')).stream_version;

------------------------------------------------------------------------
-- append: a batch; the result carries the last event's version and position,
-- the events get consecutive versions and increasing positions
------------------------------------------------------------------------
SELECT stream_version, global_position - :base AS pos
  FROM eventstore.append('cart-1', 0, ARRAY[
           eventstore.event('CartOpened', '{}'),
           eventstore.event('ItemAdded', '{"sku": "a"}'),
           eventstore.event('ItemAdded', '{"sku": "b"}', '{"via": "app"}')]);
SELECT stream_version, global_position - :base AS pos, event_type, data, metadata
  FROM eventstore.read_stream('cart-1');
-- a one-element batch, and new_event built with a row constructor (five
-- fields from 0.5.0 on: tags last)
SELECT stream_version, global_position - :base AS pos
  FROM eventstore.append('cart-1', 3, ARRAY[ROW('ItemRemoved', '{"sku": "a"}', NULL, NULL, NULL)::eventstore.new_event]);
-- an array with a lower bound other than 1 is fine
SELECT stream_version, global_position - :base AS pos
  FROM eventstore.append('cart-1', 4,
           '[0:1]={"(CartClosed,{},,,)","(CartArchived,{},,,)"}'::eventstore.new_event[]);
SELECT stream_version, event_type FROM eventstore.read_stream('cart-1', 4);

-- Appending to one stream does not change another.
SELECT eventstore.stream_version('order-1') AS order_1,
       eventstore.stream_version('order-2') AS order_2,
       eventstore.stream_version('cart-1') AS cart_1;

-- Positions increase across streams in append order.
SELECT stream_id, stream_version,
       global_position > lag(global_position) OVER (ORDER BY global_position) AS increasing
  FROM eventstore.events
 WHERE global_position > :base
 ORDER BY global_position;

------------------------------------------------------------------------
-- Event ids: kept when given, generated (random, version 4) when NULL
------------------------------------------------------------------------
SELECT stream_version FROM eventstore.append_event('ids-1', 0, 'T', '{}', NULL,
                                                   'a0000000-0000-4000-8000-000000000001');
SELECT stream_version FROM eventstore.append('ids-1', 1, ARRAY[
           eventstore.event('T', '{}', NULL, 'a0000000-0000-4000-8000-000000000002'),
           eventstore.event('T', '{}'),
           eventstore.event('T', '{}'),
           eventstore.event('T', '{}', NULL, 'a0000000-0000-4000-8000-000000000005')]);
SELECT stream_version,
       CASE WHEN event_id::text LIKE 'a0000000-%' THEN event_id::text ELSE 'generated' END AS id
  FROM eventstore.read_stream('ids-1');
-- generated ids are version 4, variant 10xx, and all different
SELECT count(*) AS generated,
       count(DISTINCT event_id) AS distinct_ids,
       bool_and(substr(event_id::text, 15, 1) = '4') AS version_4,
       bool_and(substr(event_id::text, 20, 1) IN ('8', '9', 'a', 'b')) AS variant_rfc4122
  FROM eventstore.read_stream('ids-1')
 WHERE event_id::text NOT LIKE 'a0000000-%';
-- so an append without ids is not idempotent: repeating it appends again
SELECT stream_version FROM eventstore.append_event('ids-2', NULL, 'T', '{}');
SELECT stream_version FROM eventstore.append_event('ids-2', NULL, 'T', '{}');
-- the same event id may be used in different streams
SELECT stream_version FROM eventstore.append_event('ids-3', 0, 'T', '{}', NULL,
                                                   'a0000000-0000-4000-8000-000000000001');
SELECT stream_id, stream_version FROM eventstore.events
 WHERE event_id = 'a0000000-0000-4000-8000-000000000001' ORDER BY stream_id;

------------------------------------------------------------------------
-- Data and metadata are stored as given: any JSON data, object metadata
------------------------------------------------------------------------
SELECT stream_version FROM eventstore.append('json-1', 0, ARRAY[
           eventstore.event('Scalar', '42'),
           eventstore.event('Array', '[1, "two", null]'),
           eventstore.event('Null', 'null'),
           eventstore.event('Nested', '{"a": {"b": [1, {"c": "ü\"\\"}]}}', '{"k": {"n": 1}}'),
           eventstore.event('Empty', '{}', '{}')]);
SELECT stream_version, event_type, data, metadata FROM eventstore.read_stream('json-1');
-- stream ids and event types are arbitrary text (up to the limits)
SELECT stream_version FROM eventstore.append_event('Ünïcode stream/with spaces', 0, 'Type with spaces ✓', '{}');
SELECT stream_id, event_type FROM eventstore.read_stream('Ünïcode stream/with spaces');
-- stream ids are case sensitive
SELECT eventstore.stream_version('ORDER-1') AS upper_case_is_another_stream;

------------------------------------------------------------------------
-- Transactions: appends are part of the caller's transaction
------------------------------------------------------------------------
-- Several appends, to one or more streams, commit together ...
BEGIN;
SELECT stream_version FROM eventstore.append_event('tx-a', 0, 'A1', '{}');
SELECT stream_version FROM eventstore.append_event('tx-b', 0, 'B1', '{}');
SELECT stream_version FROM eventstore.append_event('tx-a', 1, 'A2', '{}');
-- the transaction sees its own appends
SELECT eventstore.stream_version('tx-a') AS tx_a, eventstore.stream_version('tx-b') AS tx_b;
COMMIT;
SELECT stream_id, stream_version, event_type FROM eventstore.events
 WHERE stream_id IN ('tx-a', 'tx-b') ORDER BY global_position;

-- ... or roll back together, leaving nothing but a gap in the positions.
SELECT coalesce(pg_sequence_last_value('eventstore.events_global_position_seq'), 0) AS before_rollback \gset
BEGIN;
SELECT stream_version FROM eventstore.append_event('tx-a', 2, 'A3', '{}');
SELECT stream_version FROM eventstore.append_event('tx-c', 0, 'C1', '{}');
ROLLBACK;
SELECT eventstore.stream_version('tx-a') AS tx_a, eventstore.stream_version('tx-c') AS tx_c;
SELECT stream_version, global_position - :before_rollback AS pos_after_gap
  FROM eventstore.append_event('tx-a', 2, 'A3', '{}');

-- A savepoint rolled back undoes the appends made after it.
BEGIN;
SELECT stream_version FROM eventstore.append_event('tx-d', 0, 'D1', '{}');
SAVEPOINT s;
SELECT stream_version FROM eventstore.append_event('tx-d', 1, 'D2', '{}');
ROLLBACK TO SAVEPOINT s;
SELECT stream_version FROM eventstore.append_event('tx-d', 1, 'D2 again', '{}');
COMMIT;
SELECT stream_version, event_type FROM eventstore.read_stream('tx-d');

-- A failed append inside a caught error leaves the transaction usable.
BEGIN;
SELECT pg_temp.try($$SELECT eventstore.append_event('tx-e', 5, 'E', '{}')$$);
SELECT stream_version FROM eventstore.append_event('tx-e', 0, 'E1', '{}');
COMMIT;
SELECT eventstore.stream_version('tx-e');

-- Appending inside a REPEATABLE READ or SERIALIZABLE transaction works the same.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT stream_version FROM eventstore.append_event('tx-f', 0, 'F1', '{}');
SELECT stream_version FROM eventstore.append_event('tx-f', 1, 'F2', '{}');
COMMIT;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT stream_version FROM eventstore.append_event('tx-f', 2, 'F3', '{}');
COMMIT;
SELECT stream_version, event_type FROM eventstore.read_stream('tx-f');

------------------------------------------------------------------------
-- Clean up
------------------------------------------------------------------------
DROP EXTENSION eventstore;
DROP SCHEMA eventstore;
