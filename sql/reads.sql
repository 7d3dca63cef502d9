--
-- reads: read_stream, read_stream_backwards, read_all, read_category and
-- stream_version; paging with from_version / after_position and max_count;
-- the read horizon seen from a single session (own open appends, gaps).
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
-- Fixture: streams of a few categories, appended interleaved
------------------------------------------------------------------------
SELECT stream_version FROM eventstore.append('acct-1', 0, ARRAY[
           eventstore.event('Opened', '{"n": 1}'), eventstore.event('Deposited', '{"n": 2}')]);
SELECT stream_version FROM eventstore.append_event('other-1', 0, 'Other', '{"n": 3}');
SELECT stream_version FROM eventstore.append_event('acct-2', 0, 'Opened', '{"n": 4}');
SELECT stream_version FROM eventstore.append_event('acct', 0, 'NoDash', '{"n": 5}');
SELECT stream_version FROM eventstore.append_event('acctx-1', 0, 'OtherCategory', '{"n": 6}');
SELECT stream_version FROM eventstore.append('acct-1', 2, ARRAY[
           eventstore.event('Deposited', '{"n": 7}'), eventstore.event('Withdrawn', '{"n": 8}'),
           eventstore.event('Closed', '{"n": 9}')]);
SELECT stream_version FROM eventstore.append_event('Acct-1', 0, 'UpperCase', '{"n": 10}');
SELECT stream_version FROM eventstore.append_event('acct-x-y', 0, 'TwoDashes', '{"n": 11}');
SELECT stream_version FROM eventstore.append_event('acct-2', 1, 'Deposited', '{"n": 12}');
SELECT stream_version FROM eventstore.append_event('a_c-1', 0, 'Underscore', '{"n": 13}');
SELECT stream_version FROM eventstore.append_event('abc-1', 0, 'NotUnderscore', '{"n": 14}');
SELECT stream_version FROM eventstore.append_event('other-1', 1, 'Other', '{"n": 15}');

------------------------------------------------------------------------
-- read_stream(stream_id, from_version = 1, max_count = NULL): ascending
------------------------------------------------------------------------
-- every column of eventstore.events
SELECT global_position - :base AS pos, stream_id, stream_version, event_type, data, metadata,
       event_id IS NOT NULL AS has_id, created_at IS NOT NULL AS has_time
  FROM eventstore.read_stream('acct-1');
SELECT stream_version, event_type FROM eventstore.read_stream('acct-1', 3);
SELECT stream_version, event_type FROM eventstore.read_stream('acct-1', 2, 2);
SELECT stream_version, event_type FROM eventstore.read_stream('acct-1', 5, 10);
SELECT count(*) AS past_the_end FROM eventstore.read_stream('acct-1', 6);
SELECT count(*) AS from_0 FROM eventstore.read_stream('acct-1', 0);
SELECT count(*) AS from_negative FROM eventstore.read_stream('acct-1', -5);
SELECT count(*) AS from_null FROM eventstore.read_stream('acct-1', NULL);
SELECT count(*) AS max_null FROM eventstore.read_stream('acct-1', 1, NULL);
SELECT count(*) AS max_0 FROM eventstore.read_stream('acct-1', 1, 0);
SELECT count(*) AS missing_stream FROM eventstore.read_stream('nope-1');
SELECT count(*) AS empty_stream_id FROM eventstore.read_stream('');
-- only the stream itself, not the other streams of its category
SELECT DISTINCT stream_id FROM eventstore.read_stream('acct');
-- named arguments
SELECT stream_version FROM eventstore.read_stream(stream_id => 'acct-1', max_count => 1);
-- bad input
SELECT pg_temp.try($$SELECT * FROM eventstore.read_stream(NULL)$$);
SELECT pg_temp.try($$SELECT * FROM eventstore.read_stream('acct-1', 1, -1)$$);

------------------------------------------------------------------------
-- read_stream_backwards(stream_id, from_version = NULL, max_count = NULL)
------------------------------------------------------------------------
SELECT stream_version, event_type FROM eventstore.read_stream_backwards('acct-1');
SELECT stream_version, event_type FROM eventstore.read_stream_backwards('acct-1', 3);
SELECT stream_version, event_type FROM eventstore.read_stream_backwards('acct-1', 4, 2);
SELECT stream_version, event_type FROM eventstore.read_stream_backwards('acct-1', NULL, 1);
SELECT count(*) AS from_past_the_end FROM eventstore.read_stream_backwards('acct-1', 100);
SELECT count(*) AS from_0 FROM eventstore.read_stream_backwards('acct-1', 0);
SELECT count(*) AS max_0 FROM eventstore.read_stream_backwards('acct-1', NULL, 0);
SELECT count(*) AS missing_stream FROM eventstore.read_stream_backwards('nope-1');
SELECT pg_temp.try($$SELECT * FROM eventstore.read_stream_backwards(NULL)$$);
SELECT pg_temp.try($$SELECT * FROM eventstore.read_stream_backwards('acct-1', NULL, -1)$$);

------------------------------------------------------------------------
-- stream_version(stream_id): the last version, 0 for a missing stream
------------------------------------------------------------------------
SELECT s, eventstore.stream_version(s)
  FROM unnest(ARRAY['acct-1', 'acct-2', 'acct', 'Acct-1', 'nope-1', '']) AS s;
SELECT eventstore.stream_version(NULL) IS NULL AS null_for_null;

------------------------------------------------------------------------
-- read_all(after_position = 0, max_count = 1000): the log, ascending
------------------------------------------------------------------------
SELECT global_position - :base AS pos, stream_id, stream_version, event_type
  FROM eventstore.read_all(:base);
-- paging: after a position, at most max_count
SELECT global_position - :base AS pos, stream_id FROM eventstore.read_all(:base, 3);
SELECT global_position - :base AS pos, stream_id FROM eventstore.read_all(:base + 3, 3);
SELECT global_position - :base AS pos, stream_id FROM eventstore.read_all(:base + 14, 3);
SELECT count(*) AS after_the_end FROM eventstore.read_all(:base + 15);
SELECT count(*) AS far_after_the_end FROM eventstore.read_all(9223372036854775807);
SELECT count(*) AS max_0 FROM eventstore.read_all(:base, 0);
-- after_position NULL or negative means from the start
SELECT count(*) FILTER (WHERE global_position > :base) AS after_null
  FROM eventstore.read_all(NULL, NULL);
SELECT count(*) FILTER (WHERE global_position > :base) AS after_negative
  FROM eventstore.read_all(-1, NULL);
-- bad input
SELECT pg_temp.try($$SELECT * FROM eventstore.read_all(0, -1)$$);

-- A tail reader that pages with its checkpoint sees every event once, in order.
DO $$
DECLARE
    checkpoint bigint := 0;
    page integer;
    seen bigint := 0;
    last_seen bigint := 0;
    ordered boolean := true;
    r record;
BEGIN
    LOOP
        page := 0;
        FOR r IN SELECT * FROM eventstore.read_all(checkpoint, 4) LOOP
            page := page + 1;
            seen := seen + 1;
            ordered := ordered AND r.global_position > last_seen;
            last_seen := r.global_position;
        END LOOP;
        EXIT WHEN page = 0;
        checkpoint := last_seen;
    END LOOP;
    RAISE NOTICE 'paged: % events, in order: %, all of them: %',
        seen, ordered, seen = (SELECT count(*) FROM eventstore.events);
END $$;

-- max_count defaults to 1000; NULL means no limit.
SELECT stream_version FROM eventstore.append('bulk-1', 0,
           (SELECT array_agg(eventstore.event('Bulk', jsonb_build_object('i', i)) ORDER BY i)
              FROM generate_series(1, 1001) AS i));
SELECT count(*) AS default_max FROM eventstore.read_all(:base);
SELECT count(*) AS unlimited FROM eventstore.read_all(:base, NULL);
SELECT count(*) AS default_max FROM eventstore.read_category('bulk');
SELECT count(*) AS unlimited FROM eventstore.read_category('bulk', 0, NULL);

------------------------------------------------------------------------
-- read_category(category, after_position = 0, max_count = 1000): the streams
-- whose id before the first '-' is category, in position order
------------------------------------------------------------------------
SELECT global_position - :base AS pos, stream_id, stream_version, event_type
  FROM eventstore.read_category('acct', :base);
SELECT global_position - :base AS pos, stream_id FROM eventstore.read_category('acct', :base, 2);
SELECT global_position - :base AS pos, stream_id FROM eventstore.read_category('acct', :base + 4, 2);
SELECT global_position - :base AS pos, stream_id FROM eventstore.read_category('acct', :base + 12);
-- case sensitive, no pattern matching, the category is the part before the first '-'
SELECT stream_id FROM eventstore.read_category('Acct', :base);
SELECT stream_id FROM eventstore.read_category('acctx', :base);
SELECT stream_id FROM eventstore.read_category('a_c', :base);
SELECT count(*) AS acct_1_is_no_category FROM eventstore.read_category('acct-1');
SELECT count(*) AS acc_is_no_category FROM eventstore.read_category('acc');
SELECT count(*) AS unknown FROM eventstore.read_category('nope');
-- the same rows as read_all filtered by eventstore.category()
SELECT (SELECT array_agg(global_position ORDER BY global_position)
          FROM eventstore.read_category('acct', :base, NULL))
     = (SELECT array_agg(global_position ORDER BY global_position)
          FROM eventstore.read_all(:base, NULL) WHERE eventstore.category(stream_id) = 'acct')
       AS same_as_filtered_read_all;
-- bad input
SELECT pg_temp.try($$SELECT * FROM eventstore.read_category(NULL)$$);
SELECT pg_temp.try($$SELECT * FROM eventstore.read_category('')$$);
SELECT pg_temp.try($$SELECT * FROM eventstore.read_category('acct', 0, -1)$$);

------------------------------------------------------------------------
-- The read horizon from one session.  Inside a transaction that appended,
-- read_all and read_category stop before that transaction's first position;
-- read_stream and stream_version see the transaction's own events.
------------------------------------------------------------------------
SELECT coalesce(pg_sequence_last_value('eventstore.events_global_position_seq'), 0) AS committed \gset
BEGIN;
SELECT stream_version FROM eventstore.append_event('horizon-1', 0, 'InFlight', '{}');
SELECT count(*) AS read_all_own FROM eventstore.read_all(:committed);
SELECT count(*) AS read_category_own FROM eventstore.read_category('horizon');
SELECT stream_version, event_type FROM eventstore.read_stream('horizon-1');
SELECT stream_version, event_type FROM eventstore.read_stream_backwards('horizon-1');
SELECT eventstore.stream_version('horizon-1') AS own_version;
-- the events committed before are still readable
SELECT count(*) = (SELECT count(*) FROM eventstore.events WHERE global_position <= :committed)
       AS committed_events_readable
  FROM eventstore.read_all(0, NULL);
COMMIT;
SELECT global_position - :committed AS pos, stream_id, event_type FROM eventstore.read_all(:committed);
SELECT global_position - :committed AS pos, stream_id FROM eventstore.read_category('horizon');

-- A transaction that only reads does not hold anything back.
BEGIN;
SELECT count(*) AS reading FROM eventstore.read_stream('horizon-1');
SELECT global_position - :committed AS pos FROM eventstore.read_all(:committed);
COMMIT;

-- A rolled-back append leaves a gap that readers pass over.
BEGIN;
SELECT stream_version FROM eventstore.append_event('horizon-2', 0, 'RolledBack', '{}');
ROLLBACK;
SELECT stream_version FROM eventstore.append_event('horizon-2', 0, 'Committed', '{}');
SELECT global_position - :committed AS pos, stream_id, event_type FROM eventstore.read_all(:committed);
SELECT global_position - :committed AS pos, stream_id, event_type FROM eventstore.read_category('horizon');

------------------------------------------------------------------------
-- Clean up
------------------------------------------------------------------------
DROP EXTENSION eventstore;
DROP SCHEMA eventstore;
