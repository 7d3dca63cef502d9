--
-- prepare: a transaction that appended cannot be prepared for two-phase
-- commit (SQLSTATE ES001); the transaction is rolled back, and nothing of it
-- stays in flight.  Transactions that did not append prepare as usual.
-- (The test cluster runs with max_prepared_transactions > 0.)
--
CREATE EXTENSION IF NOT EXISTS eventstore;
\set VERBOSITY terse

SELECT coalesce(pg_sequence_last_value('eventstore.events_global_position_seq'), 0) AS base \gset

------------------------------------------------------------------------
-- PREPARE TRANSACTION after an append: ES001
------------------------------------------------------------------------
BEGIN;
SELECT stream_version FROM eventstore.append_event('prepare-1', 0, 'T', '{}');
\set VERBOSITY default
PREPARE TRANSACTION 'regress_es_prepare_1';
\set VERBOSITY terse
-- the transaction was rolled back: nothing written, nothing prepared
SELECT eventstore.stream_version('prepare-1') AS version;
SELECT count(*) AS prepared FROM pg_prepared_xacts WHERE gid LIKE 'regress_es_%';

-- The same with append and a batch, shown with its SQLSTATE.
BEGIN;
SELECT stream_version FROM eventstore.append('prepare-1', 0, ARRAY[
           eventstore.event('T', '{}'), eventstore.event('T', '{}')]);
\set VERBOSITY sqlstate
PREPARE TRANSACTION 'regress_es_prepare_2';
\set VERBOSITY terse
SELECT eventstore.stream_version('prepare-1') AS version;

-- Also when the append is followed by other work.
CREATE TABLE prepare_side (n int);
BEGIN;
SELECT stream_version FROM eventstore.append_event('prepare-2', 0, 'T', '{}');
INSERT INTO prepare_side VALUES (1);
PREPARE TRANSACTION 'regress_es_prepare_3';
SELECT count(*) AS side_rows FROM prepare_side;
SELECT count(*) AS prepared FROM pg_prepared_xacts WHERE gid LIKE 'regress_es_%';

------------------------------------------------------------------------
-- After the refusal the session appends and reads normally: the refused
-- transaction's position no longer holds readers back
------------------------------------------------------------------------
SELECT stream_version FROM eventstore.append_event('prepare-1', 0, 'AfterRefusal', '{}');
SELECT stream_id, event_type FROM eventstore.read_all(:base);
SELECT stream_id, event_type FROM eventstore.read_category('prepare');

------------------------------------------------------------------------
-- Transactions that did not append can be prepared
------------------------------------------------------------------------
BEGIN;
SELECT count(*) AS events FROM eventstore.read_stream('prepare-1');
SELECT count(*) AS events FROM eventstore.read_all(:base);
INSERT INTO prepare_side VALUES (2);
PREPARE TRANSACTION 'regress_es_prepare_4';
SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'regress_es_%';
COMMIT PREPARED 'regress_es_prepare_4';
SELECT n FROM prepare_side;

-- An append that failed its version check took no position: the transaction
-- (continued after a savepoint) can be prepared.
BEGIN;
SAVEPOINT s;
SELECT stream_version FROM eventstore.append_event('prepare-1', 0, 'Conflict', '{}');
ROLLBACK TO SAVEPOINT s;
INSERT INTO prepare_side VALUES (3);
PREPARE TRANSACTION 'regress_es_prepare_5';
ROLLBACK PREPARED 'regress_es_prepare_5';
SELECT count(*) AS prepared FROM pg_prepared_xacts WHERE gid LIKE 'regress_es_%';

------------------------------------------------------------------------
-- An idempotent retry writes nothing, takes no position and keeps no lock
-- on its stream: its transaction can be prepared, and the prepared
-- transaction does not block the stream.  (Before 0.5.0 the retry kept the
-- stream lock, PREPARE kept it until COMMIT PREPARED, and the append below
-- waited: lock_timeout bounds that wait, 55P03.)
------------------------------------------------------------------------
SELECT stream_version FROM eventstore.append_event('prepare-3', 0, 'T', '{}', NULL,
           'aaaaaaaa-0000-4000-8000-000000000001');
BEGIN;
SELECT stream_version FROM eventstore.append_event('prepare-3', 0, 'T', '{}', NULL,
           'aaaaaaaa-0000-4000-8000-000000000001');
INSERT INTO prepare_side VALUES (4);
PREPARE TRANSACTION 'regress_es_prepare_6';
SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'regress_es_%';
SET lock_timeout = '2s';
SELECT stream_version FROM eventstore.append_event('prepare-3', 1, 'T', '{}');
RESET lock_timeout;
COMMIT PREPARED 'regress_es_prepare_6';
SELECT stream_version, event_type FROM eventstore.read_stream('prepare-3');

-- A retry after an append to the same stream in the same transaction: the
-- append's lock and position remain, so PREPARE is refused.
BEGIN;
SELECT stream_version FROM eventstore.append_event('prepare-3', 2, 'T', '{}', NULL,
           'aaaaaaaa-0000-4000-8000-000000000003');
SELECT stream_version FROM eventstore.append_event('prepare-3', 2, 'T', '{}', NULL,
           'aaaaaaaa-0000-4000-8000-000000000003');
\set VERBOSITY sqlstate
PREPARE TRANSACTION 'regress_es_prepare_7';
\set VERBOSITY terse
SELECT eventstore.stream_version('prepare-3') AS version;

-- A later append in the same session is not affected by the prepared ones.
SELECT stream_version FROM eventstore.append_event('prepare-1', 1, 'Last', '{}');
SELECT stream_version, event_type FROM eventstore.read_stream('prepare-1');
SELECT stream_id, event_type FROM eventstore.read_all(:base);

------------------------------------------------------------------------
-- Clean up
------------------------------------------------------------------------
-- (should a PREPARE above have succeeded, roll it back so nothing hangs)
SELECT format('ROLLBACK PREPARED %L', gid) FROM pg_prepared_xacts WHERE gid LIKE 'regress_es_%' \gexec
DROP TABLE prepare_side;
DROP EXTENSION eventstore;
DROP SCHEMA eventstore;
