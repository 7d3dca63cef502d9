-- eventstore 0.4.0 -> 0.5.0: hardening (issue 10).
\echo Use "ALTER EXTENSION eventstore UPDATE TO '0.5.0'" to load this file. \quit

-- == Append, horizon and reads =============================================

-- == Registries and handlers ===============================================

-- Registered handlers run as the role that owned them when they were
-- registered (handler_owner / reducer_owner), like SECURITY DEFINER
-- functions, and a handler re-resolved from its stored name is used only
-- while that role still owns it.  Existing rows: the current owner of the
-- function the stored name resolves to, or, for a handler that does not
-- resolve (dropped), the extension's owner.
ALTER TABLE eventstore.projections ADD COLUMN handler_owner pg_catalog.regrole;
UPDATE eventstore.projections p SET handler_owner = coalesce(
    (SELECT f.proowner FROM pg_catalog.pg_proc f
      WHERE f.oid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure(p.handler)::pg_catalog.oid),
    (SELECT x.extowner FROM pg_catalog.pg_extension x
      WHERE x.extname OPERATOR(pg_catalog.=) 'eventstore'))::pg_catalog.regrole;
ALTER TABLE eventstore.projections ALTER COLUMN handler_owner SET NOT NULL;
COMMENT ON COLUMN eventstore.projections.handler_owner IS
    'The role the handler and reset handler run as: their owner when registered. A function of the stored name owned by another role is not used.';

ALTER TABLE eventstore.upcasters ADD COLUMN handler_owner pg_catalog.regrole;
UPDATE eventstore.upcasters u SET handler_owner = coalesce(
    (SELECT f.proowner FROM pg_catalog.pg_proc f
      WHERE f.oid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure(u.handler)::pg_catalog.oid),
    (SELECT x.extowner FROM pg_catalog.pg_extension x
      WHERE x.extname OPERATOR(pg_catalog.=) 'eventstore'))::pg_catalog.regrole;
ALTER TABLE eventstore.upcasters ALTER COLUMN handler_owner SET NOT NULL;
COMMENT ON COLUMN eventstore.upcasters.handler_owner IS
    'The role the upcaster runs as: its owner when registered. A function of the stored name owned by another role is not used.';

ALTER TABLE eventstore.snapshot_policies ADD COLUMN reducer_owner pg_catalog.regrole;
UPDATE eventstore.snapshot_policies p SET reducer_owner = coalesce(
    (SELECT f.proowner FROM pg_catalog.pg_proc f
      WHERE f.oid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure(p.reducer)::pg_catalog.oid),
    (SELECT x.extowner FROM pg_catalog.pg_extension x
      WHERE x.extname OPERATOR(pg_catalog.=) 'eventstore'))::pg_catalog.regrole;
ALTER TABLE eventstore.snapshot_policies ALTER COLUMN reducer_owner SET NOT NULL;
COMMENT ON COLUMN eventstore.snapshot_policies.reducer_owner IS
    'The role the reducer runs as: its owner when the policy was set. A function of the stored name owned by another role is not used.';

-- == Snapshots and folds ===================================================

-- == Relay, dump and restore ===============================================

-- == Consumers, routes and enqueue =========================================

-- == Immutability ==========================================================
