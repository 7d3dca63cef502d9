-- The eventstore demo: append, a conflict, reads.
CREATE EXTENSION eventstore;

-- Open an account: expected version 0 means "this stream must not exist yet".
SELECT * FROM eventstore.append('account-42', 0, ARRAY[
    eventstore.event('AccountOpened', '{"owner": "Ada"}'),
    eventstore.event('Deposited', '{"amount": 100}')]);

-- Another writer that read the stream at version 1 loses the race:
-- SQLSTATE ES409, nothing written.
\set VERBOSITY verbose
SELECT * FROM eventstore.append_event('account-42', 1, 'Withdrawn', '{"amount": 30}');

\set VERBOSITY default
-- With the right expected version it goes through.
SELECT * FROM eventstore.append_event('account-42', 2, 'Withdrawn', '{"amount": 30}');
SELECT * FROM eventstore.append_event('account-7', NULL, 'AccountOpened', '{"owner": "Grace"}');

-- Reads: one stream, its current version, the category, the global log.
SELECT stream_version, event_type, data FROM eventstore.read_stream('account-42');
SELECT eventstore.stream_version('account-42') AS version;
SELECT global_position, stream_id, event_type FROM eventstore.read_category('account');
SELECT global_position, stream_id, stream_version, event_type FROM eventstore.read_all(0, 10);

-- Events are immutable.
DELETE FROM eventstore.events;
