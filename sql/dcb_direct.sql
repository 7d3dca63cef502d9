--
-- dcb_direct: read_query and the condition of a conditional append read a
-- query whose items all have tags straight from the store's tags index
-- (src/dcb.c, "direct scans"; README "Consistency across streams (DCB)",
-- Cost), other queries with SQL.  Both must give exactly what the SQL
-- definition of a query gives: checked here against a reference written in
-- SQL, for many queries, positions and limits, in two stores, and with the
-- tags index missing or partial on another predicate (not usable: SQL).
--
DROP EXTENSION IF EXISTS eventstore CASCADE;
CREATE EXTENSION eventstore;
\set VERBOSITY terse

-- The reference: the matching positions above after, first n, by SQL alone.
CREATE FUNCTION pg_temp.ref(store regclass, q jsonb, after bigint, n int) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    r bigint[];
BEGIN
    EXECUTE format($q$
        SELECT coalesce(array_agg(global_position ORDER BY global_position), '{}') FROM (
          SELECT e.global_position FROM %s e
           WHERE e.global_position > $2 AND (coalesce(jsonb_array_length($1->'items'), 0) = 0 OR EXISTS (
                 SELECT 1 FROM jsonb_array_elements($1->'items') it
                  WHERE (NOT it ? 'types' OR e.event_type IN (SELECT jsonb_array_elements_text(it->'types')))
                    AND (NOT it ? 'tags' OR e.tags @> ARRAY(SELECT jsonb_array_elements_text(it->'tags')))))
           ORDER BY e.global_position LIMIT $3) x$q$, store)
      INTO r USING q, after, n;
    RETURN r;
END $$;

-- read_query's positions.
CREATE FUNCTION pg_temp.got(store regclass, q jsonb, after bigint, n int) RETURNS bigint[]
LANGUAGE sql AS $$
    SELECT coalesce(array_agg(global_position), '{}') FROM eventstore.read_query(q, after, n, store)
$$;

-- The condition's verdict: the first conflicting position (ES412's detail),
-- or 0 when the append would pass; rolled back either way.
CREATE FUNCTION pg_temp.first_conflict(store regclass, q jsonb, after bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    d text;
BEGIN
    PERFORM eventstore.append_event('check-1', NULL, 'Z', '{}', tags => ARRAY['k:1'],
        condition => jsonb_build_object('fail_if_events_match', q, 'after', after), store => store);
    RAISE EXCEPTION 'passed' USING ERRCODE = 'P0001';
EXCEPTION
    WHEN SQLSTATE 'ES412' THEN
        GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
        RETURN substring(d FROM 'position (\d+)')::bigint;
    WHEN SQLSTATE 'P0001' THEN
        RETURN 0;
END $$;

-- 600 events of types A, B, C; tags k:0..6 and m:0..4, x on every other
-- one, none on every 11th; and a store of its own with the same events.
CREATE SCHEMA dcb_direct;
SELECT eventstore.create_store('dcb_direct.events');
CREATE FUNCTION pg_temp.fill(store regclass) RETURNS void LANGUAGE sql AS $$
    SELECT eventstore.append('s-' || b, NULL,
        (SELECT array_agg(eventstore.event((ARRAY['A', 'B', 'C'])[i % 3 + 1], jsonb_build_object('i', i),
                  tags => CASE WHEN i % 11 = 0 THEN NULL
                               WHEN i % 2 = 0 THEN ARRAY['k:' || i % 7, 'm:' || i % 5, 'x']
                               ELSE ARRAY['m:' || i % 5, 'k:' || i % 7] END) ORDER BY i)
           FROM generate_series(b * 100, b * 100 + 99) i), store => store)
      FROM generate_series(0, 5) b;
$$;
SELECT pg_temp.fill('eventstore.events');
SELECT pg_temp.fill('dcb_direct.events');

CREATE TEMP TABLE queries (q jsonb);
INSERT INTO queries VALUES
    ('{"items": [{"tags": ["k:1"]}]}'),
    ('{"items": [{"types": ["A"], "tags": ["k:1"]}]}'),
    ('{"items": [{"types": ["A", "C"], "tags": ["k:2", "m:3"]}]}'),
    ('{"items": [{"types": ["B"], "tags": ["k:1"]}, {"tags": ["m:4", "x"]}]}'),
    ('{"items": [{"tags": ["k:1", "m:1"]}, {"tags": ["m:1", "k:1"]}]}'),
    ('{"items": [{"types": ["A"], "tags": ["x"]}, {"types": ["B"], "tags": ["x"]}, {"types": ["C"], "tags": ["k:0"]}]}'),
    ('{"items": [{"types": ["Nothing"], "tags": ["k:1"]}]}'),
    ('{"items": [{"tags": ["nobody"]}]}'),
    ('{"items": [{"tags": ["k:3"]}, {"types": ["A"]}]}'),   -- an item without tags: SQL
    ('{}');
CREATE TEMP TABLE cases AS
SELECT s.store, q.q, a.k, n.n
  FROM (VALUES ('eventstore.events'::regclass), ('dcb_direct.events')) s(store),
       queries q, (VALUES (0), (1), (100), (399), (599), (600)) a(k), (VALUES (1000), (7), (1), (0)) n(n);
-- Positions counted from each store's first event (as filled).
CREATE TEMP TABLE bases AS
SELECT 'eventstore.events'::regclass AS store, min(global_position) - 1 AS b FROM eventstore.events
UNION ALL
SELECT 'dcb_direct.events', min(global_position) - 1 FROM dcb_direct.events;
CREATE FUNCTION pg_temp.base(store regclass) RETURNS bigint LANGUAGE sql AS $$
    SELECT b FROM bases WHERE bases.store = $1
$$;

------------------------------------------------------------------------
-- read_query and the condition agree with the reference
------------------------------------------------------------------------
SELECT count(*) AS cases,
       count(*) FILTER (WHERE pg_temp.got(store, q, pg_temp.base(store) + k, n)
                            = pg_temp.ref(store, q, pg_temp.base(store) + k, n)) AS read_query_same
  FROM cases;
SELECT count(*) AS checks,
       count(*) FILTER (WHERE pg_temp.first_conflict(store, q, pg_temp.base(store) + k)
                            = coalesce((pg_temp.ref(store, q, pg_temp.base(store) + k, 1))[1], 0)) AS condition_same,
       count(*) FILTER (WHERE pg_temp.first_conflict(store, q, pg_temp.base(store) + k) > 0) AS conflicts
  FROM cases WHERE n = 1000;
-- The direct scans ran (their memory context exists once one has).
SELECT count(*) AS direct_scan_context FROM pg_backend_memory_contexts WHERE name = 'eventstore direct scan';
-- The rows themselves, not only their positions, as the SELECT returns them.
SELECT (SELECT array_agg(r::text ORDER BY r.global_position) FROM eventstore.read_query('{"items": [{"tags": ["k:4", "x"]}]}', 0, 10) r)
     = (SELECT array_agg(e::text ORDER BY e.global_position) FROM (SELECT * FROM eventstore.events e
         WHERE e.tags @> ARRAY['x', 'k:4'] ORDER BY e.global_position LIMIT 10) e) AS same_rows;

-- The condition sees this transaction's own events, and a rolled-back
-- event is gone.
BEGIN;
SELECT stream_version FROM eventstore.append_event('own-1', NULL, 'Own', '{}', tags => ARRAY['own']);
SELECT pg_temp.first_conflict('eventstore.events', '{"items": [{"types": ["Own"], "tags": ["own"]}]}', 0) > 0 AS sees_own;
ROLLBACK;
SELECT pg_temp.first_conflict('eventstore.events', '{"items": [{"types": ["Own"], "tags": ["own"]}]}', 0) AS after_rollback;

------------------------------------------------------------------------
-- Heap order is not position order once space is reused (a purge deletes
-- events; new ones fill the freed space of early pages): the matches are
-- sorted by position.  Here the deletion goes round the store's triggers.
------------------------------------------------------------------------
ALTER TABLE dcb_direct.events DISABLE TRIGGER USER;
DELETE FROM dcb_direct.events WHERE global_position < pg_temp.base('dcb_direct.events') + 300;
DO $$
DECLARE
    t name;
BEGIN
    FOR t IN SELECT tgname FROM pg_trigger WHERE tgrelid = 'dcb_direct.events'::regclass AND NOT tgisinternal LOOP
        EXECUTE format('ALTER TABLE dcb_direct.events ENABLE ALWAYS TRIGGER %I', t);
    END LOOP;
END $$;
VACUUM dcb_direct.events;
SELECT eventstore.append('late-1', NULL,
    (SELECT array_agg(eventstore.event('A', '{}', tags => ARRAY['k:1', 'x']) ORDER BY i) FROM generate_series(1, 50) i),
    store => 'dcb_direct.events') IS NOT NULL AS appended;
SELECT (SELECT min(ctid) FROM dcb_direct.events WHERE stream_id = 'late-1')
     < (SELECT max(ctid) FROM dcb_direct.events WHERE stream_id <> 'late-1') AS late_events_in_early_pages;
SELECT count(*) FILTER (WHERE pg_temp.got(store, q, pg_temp.base(store) + k, n)
                            = pg_temp.ref(store, q, pg_temp.base(store) + k, n)) AS reused_space_same,
       count(*) FILTER (WHERE n = 1000 AND pg_temp.first_conflict(store, q, pg_temp.base(store) + k)
                            = coalesce((pg_temp.ref(store, q, pg_temp.base(store) + k, 1))[1], 0)) AS reused_space_condition_same
  FROM cases WHERE store = 'dcb_direct.events'::regclass;

------------------------------------------------------------------------
-- Indexes: without its tags index, or with only a GIN index partial on
-- another predicate, a store is read with SQL; a plain GIN index serves.
------------------------------------------------------------------------
SELECT indexrelid::regclass AS tags_index FROM pg_index
 WHERE indrelid = 'dcb_direct.events'::regclass AND pg_get_indexdef(indexrelid) ~ 'gin'
\gset
DROP INDEX :tags_index;
SELECT count(*) FILTER (WHERE pg_temp.got(store, q, pg_temp.base(store) + k, n)
                            = pg_temp.ref(store, q, pg_temp.base(store) + k, n)) AS no_index_same
  FROM cases WHERE store = 'dcb_direct.events'::regclass AND n = 1000;
CREATE INDEX partial_tags ON dcb_direct.events USING gin (tags) WHERE event_type = 'A';
SELECT count(*) FILTER (WHERE pg_temp.got(store, q, pg_temp.base(store) + k, n)
                            = pg_temp.ref(store, q, pg_temp.base(store) + k, n)) AS other_partial_same,
       count(*) FILTER (WHERE pg_temp.first_conflict(store, q, pg_temp.base(store) + k)
                            = coalesce((pg_temp.ref(store, q, pg_temp.base(store) + k, 1))[1], 0)) AS other_partial_condition_same
  FROM cases WHERE store = 'dcb_direct.events'::regclass AND n = 1000;
DROP INDEX dcb_direct.partial_tags;
CREATE INDEX full_tags ON dcb_direct.events USING gin (tags);
SELECT count(*) FILTER (WHERE pg_temp.got(store, q, pg_temp.base(store) + k, n)
                            = pg_temp.ref(store, q, pg_temp.base(store) + k, n)) AS full_index_same
  FROM cases WHERE store = 'dcb_direct.events'::regclass AND n = 1000;

-- A tag on many events with a small max_count goes to the planner; the
-- same rows.
SELECT pg_temp.got('eventstore.events', '{"items": [{"tags": ["x"]}]}', 0, 3)
     = pg_temp.ref('eventstore.events', '{"items": [{"tags": ["x"]}]}', 0, 3) AS planner_same;

DROP SCHEMA dcb_direct CASCADE;
