-- eventstore 0.4.0 -> 0.5.0: hardening (issue 10).
\echo Use "ALTER EXTENSION eventstore UPDATE TO '0.5.0'" to load this file. \quit

-- == Append, horizon and reads =============================================

-- == Registries and handlers ===============================================

-- == Snapshots and folds ===================================================

-- == Relay, dump and restore ===============================================

-- == Consumers, routes and enqueue =========================================

-- == Immutability ==========================================================
