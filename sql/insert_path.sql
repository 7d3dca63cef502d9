-- The append inserts through the executor's insert path (as COPY FROM
-- does), not through an INSERT statement: what an INSERT would do to the
-- table must still happen -- the table's own triggers (row and statement,
-- before and after, transition tables), check constraints, the defaults of
-- columns the user added to the row type.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS eventstore CASCADE;
CREATE EXTENSION eventstore;
\set VERBOSITY terse
CREATE SCHEMA ip;
SELECT eventstore.create_store('ip.events');

CREATE TABLE ip.seen (kind text, stream_id text, stream_version bigint,
                      global_position bigint, n int);

CREATE FUNCTION ip.after_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ip.seen VALUES ('row', NEW.stream_id, NEW.stream_version, NEW.global_position, NULL);
    RETURN NULL;
END $$;
CREATE FUNCTION ip.after_stmt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ip.seen SELECT 'statement', min(stream_id), max(stream_version), NULL, count(*) FROM new_rows;
    RETURN NULL;
END $$;
CREATE FUNCTION ip.before_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.event_type = 'Dropped' THEN RETURN NULL; END IF;
    NEW.data := NEW.data || '{"stamped": true}';
    RETURN NEW;
END $$;
CREATE TRIGGER seen_row AFTER INSERT ON ip.events FOR EACH ROW EXECUTE FUNCTION ip.after_row();
CREATE TRIGGER seen_stmt AFTER INSERT ON ip.events REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ip.after_stmt();
CREATE TRIGGER stamp BEFORE INSERT ON ip.events FOR EACH ROW EXECUTE FUNCTION ip.before_row();

-- one append of three events: three row triggers, one statement trigger
-- whose transition table holds the three rows
SELECT eventstore.append('ip-1', 0, ARRAY[eventstore.event('A', '{}'),
                                          eventstore.event('B', '{}'),
                                          eventstore.event('C', '{}')], store => 'ip.events');
SELECT kind, stream_id, stream_version, n,
       global_position = (SELECT global_position FROM ip.events e
                           WHERE e.stream_id = s.stream_id AND e.stream_version = s.stream_version) AS position_matches
FROM ip.seen s ORDER BY kind, stream_version;
-- the BEFORE ROW trigger's change is what is stored
SELECT stream_version, data FROM ip.events ORDER BY stream_version;

-- a BEFORE ROW trigger that skips an event would leave a hole in the stream:
-- refused (09000), nothing of the append stays
\set VERBOSITY sqlstate
SELECT eventstore.append('ip-1', 3, ARRAY[eventstore.event('D', '{}'),
                                          eventstore.event('Dropped', '{}')], store => 'ip.events');
\set VERBOSITY terse
SELECT eventstore.stream_version('ip-1', store => 'ip.events');

-- a check constraint on the store vetoes an append (23514)
\set VERBOSITY sqlstate
ALTER TABLE ip.events ADD CONSTRAINT no_secrets CHECK (NOT data ? 'password');
SELECT eventstore.append_event('ip-2', NULL, 'Registered', '{"password": "hunter2"}', store => 'ip.events');
\set VERBOSITY terse
SELECT count(*) FROM ip.events WHERE stream_id = 'ip-2';
-- the backend compiles a store's check constraints once (append.c): a
-- constraint replaced by another one (as many as before) applies at once
ALTER TABLE ip.events DROP CONSTRAINT no_secrets;
ALTER TABLE ip.events ADD CONSTRAINT no_tokens CHECK (NOT data ? 'token');
SELECT stream_version FROM eventstore.append_event('ip-2', NULL, 'Registered', '{"password": "hunter2"}', store => 'ip.events');
\set VERBOSITY sqlstate
SELECT eventstore.append_event('ip-2', NULL, 'Registered', '{"token": "t"}', store => 'ip.events');
\set VERBOSITY terse
-- a constraint that calls a user function is compiled by the executor at
-- every append: a function replaced in this session applies at once
CREATE FUNCTION ip.allowed(d jsonb) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT true $$;
ALTER TABLE ip.events DROP CONSTRAINT no_tokens;
ALTER TABLE ip.events ADD CONSTRAINT allowed CHECK (ip.allowed(data));
SELECT stream_version FROM eventstore.append_event('ip-2', NULL, 'Registered', '{"token": "t"}', store => 'ip.events');
CREATE OR REPLACE FUNCTION ip.allowed(d jsonb) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT NOT d ? 'token' $$;
\set VERBOSITY sqlstate
SELECT eventstore.append_event('ip-2', NULL, 'Registered', '{"token": "t"}', store => 'ip.events');
\set VERBOSITY terse
ALTER TABLE ip.events DROP CONSTRAINT allowed;
SELECT stream_version FROM eventstore.append_event('ip-2', NULL, 'Registered', '{"token": "t"}', store => 'ip.events');
SELECT count(*) FROM ip.events WHERE stream_id = 'ip-2';

-- a column added to the row type gets the store's default
ALTER TYPE eventstore.event_store ADD ATTRIBUTE tenant text CASCADE;
ALTER TABLE ip.events ALTER tenant SET DEFAULT 'acme';
SELECT eventstore.append_event('ip-3', NULL, 'Opened', '{}', store => 'ip.events');
SELECT stream_id, tenant FROM ip.events WHERE stream_id = 'ip-3';
SELECT eventstore.append_event('ip-3', NULL, 'Opened', '{}');   -- the default store: no default, NULL
SELECT tenant IS NULL AS no_default FROM eventstore.events WHERE stream_id = 'ip-3';
SELECT event_type, stream_version FROM eventstore.read_stream('ip-3', store => 'ip.events');
ALTER TYPE eventstore.event_store DROP ATTRIBUTE tenant CASCADE;
-- and appends go on once it is dropped again
SELECT eventstore.append_event('ip-3', NULL, 'Closed', '{}', store => 'ip.events');
SELECT event_type, stream_version FROM eventstore.read_stream('ip-3', store => 'ip.events');

-- poll upcasts a replayed parked event into eventstore.events, whose row
-- type now has a dropped attribute after its columns (poll's C delivery
-- once formed the row from its query's columns by position)
CREATE FUNCTION ip.up(e eventstore.events) RETURNS eventstore.events LANGUAGE plpgsql AS $$
BEGIN e.event_type := 'OpenedV2'; e.data := e.data || '{"v": 2}'; RETURN e; END $$;
SELECT eventstore.register_upcaster('Opened', 'ip.up(eventstore.events)', 'ip.events');
SELECT eventstore.create_subscription('ip_sub', event_types => ARRAY['Opened'], max_attempts => 1,
                                      partitions => 1, store => 'ip.events');
SELECT global_position AS ip_pos, event_type, data, attempt FROM eventstore.poll('ip_sub', 'c1', 1) \gset
SELECT :'event_type' AS event_type, :'data' AS data, :'attempt' AS attempt;
SELECT eventstore.nack('ip_sub', 'c1', :ip_pos, reason => 'x');
SELECT count(*) AS parked FROM eventstore.parked('ip_sub');
SELECT eventstore.replay_parked('ip_sub');
SELECT event_type, data, attempt FROM eventstore.poll('ip_sub', 'c1', 1) ORDER BY global_position;
SELECT eventstore.drop_subscription('ip_sub');
SELECT eventstore.unregister_upcaster('Opened', 'ip.events');
DROP FUNCTION ip.up(eventstore.events);

-- import_events() inserts the same way: row triggers per event, one
-- statement trigger whose transition table holds every imported row, the
-- BEFORE ROW trigger's change stored
TRUNCATE ip.seen;
CREATE TABLE ip.staging (LIKE eventstore.import_row);
INSERT INTO ip.staging VALUES (1, 'ip-4', 1, 'A', '{}', NULL, now(), NULL),
                              (2, 'ip-5', 1, 'B', '{}', NULL, now(), NULL),
                              (3, 'ip-4', 2, 'C', '{}', NULL, now(), NULL);
SELECT eventstore.import_events('ip.staging', 'ip.events');
SELECT kind, stream_id, stream_version, n,
       global_position = (SELECT global_position FROM ip.events e
                           WHERE e.stream_id = s.stream_id AND e.stream_version = s.stream_version) AS position_matches
FROM ip.seen s ORDER BY kind, global_position;
SELECT stream_id, stream_version, data FROM ip.events WHERE stream_id IN ('ip-4', 'ip-5') ORDER BY global_position;
-- a BEFORE ROW trigger that skips an imported event is refused (09000), nothing is imported
TRUNCATE ip.staging;
INSERT INTO ip.staging VALUES (1, 'ip-6', 1, 'A', '{}', NULL, now(), NULL),
                              (2, 'ip-6', 2, 'Dropped', '{}', NULL, now(), NULL);
\set VERBOSITY sqlstate
SELECT eventstore.import_events('ip.staging', 'ip.events');
\set VERBOSITY terse
SELECT count(*) FROM ip.events WHERE stream_id = 'ip-6';
-- without a BEFORE ROW trigger, rows are inserted 1,000 at a time: every
-- row's AFTER trigger fires, the transition table holds all 2,500
DROP TRIGGER stamp ON ip.events;
TRUNCATE ip.seen, ip.staging;
INSERT INTO ip.staging SELECT i, 'ip-7', i, 'Bulk', '{}', NULL, now(), NULL FROM generate_series(1, 2500) i;
SELECT eventstore.import_events('ip.staging', 'ip.events');
SELECT kind, count(*), sum(n) AS rows_in_transition_table, count(DISTINCT stream_version) AS versions,
       bool_and(global_position = (SELECT global_position FROM ip.events e
                                    WHERE e.stream_id = s.stream_id AND e.stream_version = s.stream_version)) AS positions_match
FROM ip.seen s GROUP BY kind ORDER BY kind;
CREATE TRIGGER stamp BEFORE INSERT ON ip.events FOR EACH ROW EXECUTE FUNCTION ip.before_row();
DROP TABLE ip.staging;

SELECT eventstore.drop_store('ip.events');
DROP SCHEMA ip CASCADE;
DROP EXTENSION eventstore CASCADE;
