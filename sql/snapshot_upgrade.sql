-- Upgrading 0.4.0 -> 0.5.0 with snapshots in place (issue 10, item 10):
-- 0.4.0 did not record who wrote a snapshot, so existing rows become
-- by_policy = false.  For a type that has a policy they are not built on
-- (they could be forgeries); for a type without one they still are.
-- Runs in a database of its own, created and dropped here.
SELECT current_database() AS regress_db \gset
CREATE DATABASE es_snapshot_upgrade;
\c es_snapshot_upgrade
SET client_min_messages = warning;
CREATE EXTENSION eventstore VERSION '0.4.0';
-- written as 0.4.0 left them (straight into the tables: no 0.4.0 function
-- runs against the 0.5.0 library)
INSERT INTO eventstore.events (global_position, stream_id, stream_version, event_id, event_type, data)
SELECT nextval('eventstore.events_global_position_seq'), 'up-1', v, gen_random_uuid(), 'Up', '{}'
  FROM generate_series(1, 3) v;
INSERT INTO eventstore.snapshots (stream_id, snapshot_type, stream_version, state)
VALUES ('up-1', 'up_policy', 2, '["forged?"]'), ('up-1', 'up_manual', 2, '["by hand"]');
CREATE FUNCTION public.up_list(s jsonb, e eventstore.events) RETURNS jsonb LANGUAGE sql
    AS $$ SELECT s || to_jsonb((e).stream_version) $$;
INSERT INTO eventstore.snapshot_policies (snapshot_type, reducer, every, initial)
VALUES ('up_policy', 'public.up_list(jsonb,eventstore.events)', 2, '[]');

ALTER EXTENSION eventstore UPDATE TO '0.5.0';
SELECT extversion FROM pg_extension WHERE extname = 'eventstore';
SELECT snapshot_type, stream_version, state, by_policy FROM eventstore.snapshots ORDER BY 1;
-- the policy's type: the old row is not used; without a policy: it is
SELECT count(*) AS usable_policy_rows FROM eventstore.load_snapshot('up-1', 'up_policy');
SELECT eventstore.aggregate('up-1', 'public.up_list(jsonb, eventstore.events)', '[]',
                            snapshot_type => 'up_policy') AS policy_type_fold;
SELECT stream_version, state FROM eventstore.load_snapshot('up-1', 'up_manual');
SELECT eventstore.aggregate('up-1', 'public.up_list(jsonb, eventstore.events)', '[]',
                            snapshot_type => 'up_manual') AS manual_type_fold;
-- the policy's next snapshot is its own and is used
SELECT stream_version FROM eventstore.append_event('up-1', 3, 'Up', '{}');
SELECT snapshot_type, stream_version, state, by_policy FROM eventstore.snapshots
 WHERE snapshot_type = 'up_policy' ORDER BY stream_version;
SELECT stream_version, state FROM eventstore.load_snapshot('up-1', 'up_policy');

\c :regress_db
DROP DATABASE es_snapshot_upgrade WITH (FORCE);
