-- eventstore 0.6.0 -> 0.7.0
\echo Use "ALTER EXTENSION eventstore UPDATE TO '0.7.0'" to load this file. \quit

-- == Subscriptions ==========================================================

-- == Lifecycle ==============================================================

-- == Consistency across streams (DCB) =======================================

-- == Append path ============================================================
