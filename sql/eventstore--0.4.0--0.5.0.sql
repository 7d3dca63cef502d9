-- eventstore 0.4.0 -> 0.5.0: hardening (issue 10).
\echo Use "ALTER EXTENSION eventstore UPDATE TO '0.5.0'" to load this file. \quit

-- == Append, horizon and reads =============================================
-- No SQL changes: the savepoint-safe horizon lock, the LWLock that no longer
-- waits on the sequence's lock, the retry that gives back its stream lock and
-- read_all_until's prefix are all in the library (horizon.c, append.c, read.c).

-- == Registries and handlers ===============================================

-- == Snapshots and folds ===================================================

-- == Relay, dump and restore ===============================================

-- == Consumers, routes and enqueue =========================================

-- == Immutability ==========================================================
