--
-- temporal_prefix: read_all_until returns a prefix of the log.
--
-- created_at is taken when an append locks its stream, before it takes its
-- positions, so a lower position can carry a later time than a higher one
-- (two appends to different streams that overlap).  read_all_until(until,
-- after, max) stops at the first event after `after`, in position order,
-- whose created_at is later than `until`: it never returns an event while
-- leaving out a lower one, so a reader that continues from the last position
-- it got (with read_all or read_all_until) skips nothing.  Before 0.5.0 it
-- filtered on created_at over the whole range and could return position 3
-- without 2.
--
-- The rows are written with a plain INSERT as superuser (UPDATE, DELETE and
-- TRUNCATE are refused; INSERT is not), each at the next position of the
-- sequence, so the out-of-order times do not depend on timing.
--
CREATE EXTENSION IF NOT EXISTS eventstore;
\set VERBOSITY terse

CREATE TEMP TABLE tp_base AS
    SELECT coalesce(pg_sequence_last_value('eventstore.events_global_position_seq'), 0) AS base;
SELECT base FROM tp_base \gset

-- position base+k (k = 1..5) at time 10:00 + minutes[k]:
--   k        1      2      3      4      5
--   time   10:00  10:05  10:03  10:06  10:06
INSERT INTO eventstore.events (global_position, stream_id, stream_version, event_id,
                               event_type, data, created_at)
SELECT nextval('eventstore.events_global_position_seq'), 'tp-' || k, 1, gen_random_uuid(),
       'TpEvent', jsonb_build_object('k', k),
       '2030-01-01 10:00:00+00'::timestamptz + make_interval(mins => m)
  FROM unnest(ARRAY[0, 5, 3, 6, 6]) WITH ORDINALITY AS t(m, k)
 ORDER BY k;

CREATE FUNCTION pg_temp.until(until_time text, after_k int DEFAULT 0, max_count int DEFAULT 1000)
RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg((r.global_position - b.base)::text || ':' || (r.data->>'k'), ' '
                               ORDER BY r.global_position), '(none)')
      FROM pg_temp.tp_base b,
           eventstore.read_all_until((until_time || '+00')::timestamptz, b.base + after_k, max_count) r
$$;

------------------------------------------------------------------------
-- The prefix, for each time
------------------------------------------------------------------------
-- before the first event: nothing
SELECT pg_temp.until('2030-01-01 09:59') AS before_all;
-- 10:04: position 1 only; 3 (10:03) lies behind 2 (10:05) and is not returned
SELECT pg_temp.until('2030-01-01 10:04') AS at_1004;
-- 10:05: 1, 2 and 3
SELECT pg_temp.until('2030-01-01 10:05') AS at_1005;
-- exactly at an event's time counts (<=); 10:06: everything
SELECT pg_temp.until('2030-01-01 10:06') AS at_1006;
SELECT pg_temp.until('infinity') AS at_infinity;

------------------------------------------------------------------------
-- after_position and max_count
------------------------------------------------------------------------
-- continuing after 1 at 10:04: the next event (2) is later, so nothing yet
SELECT pg_temp.until('2030-01-01 10:04', 1) AS after_1_at_1004;
-- after 2 at 10:04: 3 (10:03), then 4 is later
SELECT pg_temp.until('2030-01-01 10:04', 2) AS after_2_at_1004;
SELECT pg_temp.until('2030-01-01 10:05', 0, 2) AS max_2_at_1005;
SELECT pg_temp.until('2030-01-01 10:06', 3, 1) AS after_3_max_1;
SELECT pg_temp.until('2030-01-01 10:06', 0, 0) AS max_0;

------------------------------------------------------------------------
-- A reader paging with read_all_until, then going on with read_all from the
-- last position it got, sees every event once, in order
------------------------------------------------------------------------
CREATE TEMP TABLE tp_seen (pos bigint);
INSERT INTO tp_seen SELECT global_position FROM eventstore.read_all_until('2030-01-01 10:04+00', :base);
INSERT INTO tp_seen SELECT global_position FROM eventstore.read_all((SELECT max(pos) FROM tp_seen));
SELECT string_agg((pos - :base)::text, ' ' ORDER BY pos) AS seen, count(*) = count(DISTINCT pos) AS once
  FROM tp_seen;

------------------------------------------------------------------------
-- The same through an upcaster (which cannot change created_at)
------------------------------------------------------------------------
CREATE FUNCTION tp_up(e eventstore.events) RETURNS eventstore.events LANGUAGE plpgsql AS $$
BEGIN
    e.event_type := 'TpEventV2';
    e.data := e.data || jsonb_build_object('up', true);
    RETURN e;
END $$;
SELECT eventstore.register_upcaster('TpEvent', 'tp_up(eventstore.events)');
SELECT r.global_position - :base AS pos, r.event_type, r.data
  FROM eventstore.read_all_until('2030-01-01 10:04+00', :base) r;
SELECT pg_temp.until('2030-01-01 10:05') AS upcast_at_1005;
SELECT pg_temp.until('2030-01-01 10:04', 2) AS upcast_after_2_at_1004;
SELECT eventstore.unregister_upcaster('TpEvent');

------------------------------------------------------------------------
-- Clean up
------------------------------------------------------------------------
DROP FUNCTION tp_up(eventstore.events);
DROP EXTENSION eventstore;
DROP SCHEMA IF EXISTS eventstore;
