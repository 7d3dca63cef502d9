--
-- read_category plans each call for its category: a rare category uses the
-- (category, position) index every time.  Before 0.5.0 the read was a
-- generic plan after five calls, which walked the position index and
-- filtered by category: the whole log for a rare category (make
-- bench-scale: 2 reads/s at 10^6 events).  Heap tuples fetched through
-- indexes in this transaction (pg_stat_xact_user_tables) show which.
--
CREATE EXTENSION IF NOT EXISTS eventstore;
SET client_min_messages = warning;
CREATE TEMP TABLE cp_staging (LIKE eventstore.import_row);
INSERT INTO cp_staging
SELECT g, 'cpcommon' || (g % 2) || '-' || (g % 500), g / 500 + 1, 'T', '{}', NULL, now(), NULL
  FROM generate_series(0, 19999) g;
INSERT INTO cp_staging
SELECT 20000 + g, 'cprare-' || g, 1, 'T', '{}', NULL, now(), NULL FROM generate_series(1, 3) g;
SELECT eventstore.import_events('cp_staging') AS imported;
ANALYZE eventstore.events;

BEGIN;
DO $$
BEGIN
    FOR i IN 1 .. 10 LOOP           -- ten calls: past the plan cache's five custom plans
        IF (SELECT count(*) FROM eventstore.read_category('cprare', 0, 100)) <> 3 THEN
            RAISE EXCEPTION 'read % returned the wrong events', i;
        END IF;
    END LOOP;
END $$;
-- 10 reads of 3 events each: a few dozen tuples, not 10 x 20,000
SELECT idx_tup_fetch < 1000 AS rare_reads_use_the_category_index
  FROM pg_stat_xact_user_tables WHERE relid = 'eventstore.events'::regclass;
COMMIT;
-- a common category still reads in position order
SELECT count(*) AS common_events, bool_and(stream_id LIKE 'cpcommon1-%') AS only_that_category
  FROM eventstore.read_category('cpcommon1', 0, 100);

-- A category whose events are all at the end of the log (a burst of 2,000
-- events, about 9% of it), read from position 0 after ANALYZE.  Written as
-- "category = $1 ... ORDER BY position", the planner walked the position
-- index filtering by category (the category looks common, so it expected
-- matches early): 20,000 tuples fetched per read before the burst's first.
SELECT count(*) AS burst_appends
  FROM generate_series(1, 20) s,
       LATERAL eventstore.append('cpburst-' || s, 0,
           (SELECT array_agg(eventstore.event('B', '{}')) FROM generate_series(1, 100))) a;
ANALYZE eventstore.events;
BEGIN;
DO $$
BEGIN
    FOR i IN 1 .. 10 LOOP
        IF (SELECT count(*) FROM eventstore.read_category('cpburst', 0, 100)) <> 100 THEN
            RAISE EXCEPTION 'read % returned the wrong events', i;
        END IF;
    END LOOP;
END $$;
-- 10 reads of 100 events: about a thousand tuples, not 10 x 20,000
SELECT idx_tup_fetch < 5000 AS burst_reads_use_the_category_index
  FROM pg_stat_xact_user_tables WHERE relid = 'eventstore.events'::regclass;
COMMIT;
SELECT pg_catalog.array_agg(global_position ORDER BY global_position) = pg_catalog.array_agg(global_position) AS in_position_order,
       count(*) AS n, min(stream_version) AS first_version
  FROM eventstore.read_category('cpburst', 0, 100);

DROP EXTENSION eventstore;
DROP SCHEMA IF EXISTS eventstore;
