-- eventstore 0.4.0 -> 0.5.0: hardening (issue 10).
\echo Use "ALTER EXTENSION eventstore UPDATE TO '0.5.0'" to load this file. \quit

-- == Append, horizon and reads =============================================

-- == Registries and handlers ===============================================

-- == Snapshots and folds ===================================================

-- Snapshots of a type that a snapshot policy owns are the policy's alone
-- (issue 10, item 10): by_policy says a policy wrote the row.
-- save_snapshot refuses (42501) a type that has a policy; aggregate(),
-- load_snapshot() and the policies themselves build only on by_policy rows
-- for such a type.  Rows written before 0.5.0 cannot be told apart: they
-- count as not by a policy, so folds of a policy's type ignore them until
-- the policy writes new ones (see README, "Snapshots").
ALTER TABLE eventstore.snapshots ADD COLUMN by_policy boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN eventstore.snapshots.by_policy IS
    'Written by the snapshot policy of its type; for a type that has a policy, only such rows are used.';

CREATE OR REPLACE FUNCTION eventstore.load_snapshot(stream_id text, snapshot_type text DEFAULT 'default',
                                                    max_version bigint DEFAULT NULL)
    RETURNS TABLE (stream_version bigint, state jsonb, created_at timestamptz)
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT s.stream_version, s.state, s.created_at FROM eventstore.snapshots s
         WHERE s.stream_id OPERATOR(pg_catalog.=) eventstore._stream_arg($1)
           AND s.snapshot_type OPERATOR(pg_catalog.=) $2
           AND s.stream_version OPERATOR(pg_catalog.<=) COALESCE($3, 9223372036854775807)
           AND (s.by_policy OR NOT EXISTS (SELECT FROM eventstore.snapshot_policies p
                                            WHERE p.snapshot_type OPERATOR(pg_catalog.=) $2))
         ORDER BY s.stream_version DESC
         LIMIT 1
    $$;

-- == Relay, dump and restore ===============================================

-- == Consumers, routes and enqueue =========================================

-- == Immutability ==========================================================
