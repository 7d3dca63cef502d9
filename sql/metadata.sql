--
-- metadata: eventstore.correlation_id and eventstore.causation_id.  When set
-- (non-empty), each appended event's metadata gets the value under the key
-- correlation_id / causation_id, unless the event's own metadata has the key.
--
CREATE EXTENSION IF NOT EXISTS eventstore;
\set VERBOSITY terse

------------------------------------------------------------------------
-- Neither set: metadata is stored as given, NULL stays NULL
------------------------------------------------------------------------
SHOW eventstore.correlation_id;
SHOW eventstore.causation_id;
SELECT stream_version FROM eventstore.append_event('meta-1', 0, 'T', '{}');
SELECT stream_version FROM eventstore.append_event('meta-1', 1, 'T', '{}', '{"user": "ada"}');
SELECT stream_version, metadata, metadata IS NULL AS is_null FROM eventstore.read_stream('meta-1');

------------------------------------------------------------------------
-- correlation_id set: added to NULL metadata and merged into an object
------------------------------------------------------------------------
SET eventstore.correlation_id = 'req-7f3a';
SELECT stream_version FROM eventstore.append_event('meta-2', 0, 'NoMeta', '{}');
SELECT stream_version FROM eventstore.append_event('meta-2', 1, 'EmptyMeta', '{}', '{}');
SELECT stream_version FROM eventstore.append_event('meta-2', 2, 'UserMeta', '{}', '{"user": "ada"}');
-- the event's own correlation_id wins, whatever its JSON type
SELECT stream_version FROM eventstore.append_event('meta-2', 3, 'OwnCorrelation', '{}',
                                                   '{"correlation_id": "mine", "user": "bob"}');
SELECT stream_version FROM eventstore.append_event('meta-2', 4, 'OwnNullCorrelation', '{}',
                                                   '{"correlation_id": null}');
SELECT stream_version FROM eventstore.append_event('meta-2', 5, 'OwnNumberCorrelation', '{}',
                                                   '{"correlation_id": 17}');
SELECT stream_version, event_type, metadata FROM eventstore.read_stream('meta-2');

------------------------------------------------------------------------
-- Both set: both added, each unless the event has it; every event of a batch
------------------------------------------------------------------------
SET eventstore.causation_id = 'cmd-1';
SELECT stream_version FROM eventstore.append('meta-3', 0, ARRAY[
           eventstore.event('Both', '{}'),
           eventstore.event('OwnCausation', '{}', '{"causation_id": "evt-9"}'),
           eventstore.event('OwnBoth', '{}', '{"causation_id": "c", "correlation_id": "r"}'),
           eventstore.event('Other', '{}', '{"x": [1, 2]}')]);
SELECT stream_version, event_type, metadata FROM eventstore.read_stream('meta-3');

-- causation_id alone
RESET eventstore.correlation_id;
SELECT stream_version FROM eventstore.append_event('meta-4', 0, 'CausationOnly', '{}');
SELECT metadata FROM eventstore.read_stream('meta-4');
RESET eventstore.causation_id;

------------------------------------------------------------------------
-- Values are stored as JSON strings, escaped
------------------------------------------------------------------------
SET eventstore.correlation_id = 'quote " backslash \ tab:	 unicode: ü €';
SELECT stream_version FROM eventstore.append_event('meta-5', 0, 'Escaped', '{}');
SET eventstore.correlation_id = '42';
SELECT stream_version FROM eventstore.append_event('meta-5', 1, 'NumericText', '{}');
SELECT stream_version, metadata, jsonb_typeof(metadata->'correlation_id') AS json_type,
       replace(metadata->>'correlation_id', E'\t', '<TAB>') AS value
  FROM eventstore.read_stream('meta-5');

------------------------------------------------------------------------
-- Empty means unset; SET LOCAL lasts for the transaction only
------------------------------------------------------------------------
SET eventstore.correlation_id = '';
SELECT stream_version FROM eventstore.append_event('meta-6', 0, 'EmptySetting', '{}');
BEGIN;
SET LOCAL eventstore.correlation_id = 'tx-scoped';
SELECT stream_version FROM eventstore.append_event('meta-6', 1, 'InTransaction', '{}');
COMMIT;
SELECT stream_version FROM eventstore.append_event('meta-6', 2, 'AfterTransaction', '{}');
SELECT stream_version, event_type, metadata FROM eventstore.read_stream('meta-6');
RESET eventstore.correlation_id;

-- A function's SET clause sets the id while the function runs, and only then.
CREATE FUNCTION pg_temp.append_with_correlation(s text) RETURNS bigint
    LANGUAGE sql SET eventstore.correlation_id = 'from-function'
    AS $$ SELECT stream_version FROM eventstore.append_event(s, NULL, 'ViaFunction', '{}') $$;
SELECT pg_temp.append_with_correlation('meta-7');
SELECT stream_version FROM eventstore.append_event('meta-7', NULL, 'Direct', '{}');
SELECT stream_version, event_type, metadata FROM eventstore.read_stream('meta-7');

------------------------------------------------------------------------
-- Idempotent retries are recognised by event id, whatever the settings
------------------------------------------------------------------------
SET eventstore.correlation_id = 'first-attempt';
SELECT stream_version FROM eventstore.append_event('meta-8', 0, 'T', '{}', NULL,
                                                   '20000000-0000-4000-8000-000000000001');
SET eventstore.correlation_id = 'second-attempt';
SELECT stream_version FROM eventstore.append_event('meta-8', 0, 'T', '{}', NULL,
                                                   '20000000-0000-4000-8000-000000000001');
SELECT stream_version, metadata FROM eventstore.read_stream('meta-8');
RESET eventstore.correlation_id;

------------------------------------------------------------------------
-- Clean up
------------------------------------------------------------------------
DROP EXTENSION eventstore;
DROP SCHEMA eventstore;
