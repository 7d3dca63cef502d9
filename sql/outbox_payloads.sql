--
-- outbox_payloads: what goes into the outbox and out through NOTIFY.
--   - routes with with_data => false publish ids only: no event data, no
--     stream id or type, no message payload or headers, whatever the size;
--   - enqueue measures the real (detoasted) size of a message against
--     eventstore.max_event_size, not the size of a compressed or toasted datum.
--
-- Like outbox.sql, the relay worker is kept away from this database (it would
-- publish before relay_once does), and notifications this session LISTENs to
-- are printed through a filter that replaces the sender's PID.
--
\set VERBOSITY terse

CREATE FUNCTION pg_temp.wait_no_worker() RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    stable int := 0;
BEGIN
    FOR i IN 0..400 LOOP
        IF i % 10 = 0 THEN
            PERFORM pg_reload_conf();
        END IF;
        PERFORM pg_stat_clear_snapshot();
        IF EXISTS (SELECT FROM pg_stat_activity a
                    WHERE a.backend_type = 'eventstore relay'
                      AND a.datname = current_database()) THEN
            stable := 0;
        ELSE
            stable := stable + 1;
            IF stable >= 5 THEN
                RETURN true;
            END IF;
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN false;
END $$;

ALTER SYSTEM SET eventstore.relay_databases = 'eventstore_outbox_test_no_such_db';
SELECT pg_temp.wait_no_worker() AS no_worker;

SET client_min_messages = warning;
DROP EXTENSION IF EXISTS eventstore CASCADE;
RESET client_min_messages;
CREATE EXTENSION eventstore;

CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

------------------------------------------------------------------------
-- enqueue: the size of the message, not of its toasted datum
------------------------------------------------------------------------
-- A payload read from a table arrives toasted (here compressed, 200 kB of
-- one character compresses to a few kB, and stored out of line): it is over
-- a 64 kB limit and must be refused like the same payload built in memory.
CREATE TEMP TABLE big_payload (j jsonb);
INSERT INTO big_payload VALUES (jsonb_build_object('p', repeat('x', 200000)));
SELECT pg_column_size(j) < 65536 AS stored_small, octet_length(j::text) > 65536 AS really_large
  FROM big_payload;
SET eventstore.max_event_size = '64kB';
SELECT pg_temp.try($$SELECT eventstore.enqueue('sized', j) FROM big_payload$$) AS from_table;
SELECT pg_temp.try($$SELECT eventstore.enqueue('sized', '{}', j) FROM big_payload$$) AS headers_from_table;
SELECT pg_temp.try($$SELECT eventstore.enqueue('sized', jsonb_build_object('p', repeat('x', 200000)))$$)
       AS in_memory;
-- under the limit it is accepted, from a table too
UPDATE big_payload SET j = jsonb_build_object('p', repeat('x', 60000));
SELECT pg_temp.try($$SELECT eventstore.enqueue('sized', j) FROM big_payload$$) AS under_limit;
RESET eventstore.max_event_size;
SELECT count(*) AS sized_rows FROM eventstore.outbox WHERE channel = 'sized';

------------------------------------------------------------------------
-- Routes that publish ids only
------------------------------------------------------------------------
SELECT pg_temp.try($$SELECT eventstore.add_route('r', with_data => NULL)$$);
SELECT eventstore.add_route('plain', categories => ARRAY['acct']);
SELECT eventstore.add_route('idsonly', categories => ARRAY['acct'], with_data => false);
SELECT channel, event_types, categories, with_data FROM eventstore.routes ORDER BY channel;
-- remove and add again keeps the choice of the new route
SELECT eventstore.remove_route('idsonly');
SELECT eventstore.add_route('idsonly', categories => ARRAY['acct'], with_data => false);

LISTEN plain;
LISTEN idsonly;
SELECT global_position FROM eventstore.append_event('acct-1', NULL, 'Opened', '{"owner": "alice", "ssn": "123"}',
                                                    NULL, '00000000-0000-4000-8000-000000000001');
-- a large event: the plain route omits the data; the ids-only route sends
-- the same ids-only payload as for a small one
SELECT global_position FROM eventstore.append_event('acct-1', 1, 'Blob', jsonb_build_object('blob', repeat('x', 9000)),
                                                    NULL, '00000000-0000-4000-8000-000000000002');
-- a huge event type: ids only on both
SELECT global_position FROM eventstore.append_event('acct-1', 2, repeat('T', 8100), '{}',
                                                    NULL, '00000000-0000-4000-8000-000000000003');
-- a plain message on an ids-only channel is published without its payload
-- and headers too
SELECT eventstore.enqueue('idsonly', '{"secret": 1}', '{"h": "v"}') AS id;
SELECT eventstore.enqueue('plain', '{"public": 1}', '{"h": "v"}') AS id;
SELECT id, channel, global_position, with_data FROM eventstore.outbox WHERE channel <> 'sized' ORDER BY id;
\o | perl -0777 -pe 's/ PID \d+\./ PID N./g; s/([xT])\1{20,}/"<".length($&)." $1>"/ge'
SELECT eventstore.relay_once() AS published;
\o
-- the durable API still returns the full messages (privilege-checked)
SELECT id, octet_length(message->>'data') AS data_bytes, message->'payload' AS payload,
       message ? 'data_omitted' AS omitted
  FROM eventstore.consumer_poll('reader', 'idsonly') ORDER BY id;

-- the choice is taken when the row is written: rows written while the route
-- was ids-only stay ids-only after the route is replaced by one with data
SELECT global_position FROM eventstore.append_event('acct-2', NULL, 'Opened', '{"owner": "bob"}',
                                                    NULL, '00000000-0000-4000-8000-000000000004');
SELECT eventstore.remove_route('idsonly');
SELECT eventstore.add_route('idsonly', categories => ARRAY['acct']);
SELECT global_position FROM eventstore.append_event('acct-2', 1, 'Renamed', '{"owner": "bobby"}',
                                                    NULL, '00000000-0000-4000-8000-000000000005');
\o | perl -0777 -pe 's/ PID \d+\./ PID N./g; s/([xT])\1{20,}/"<".length($&)." $1>"/ge'
SELECT eventstore.relay_once() AS published;
\o

------------------------------------------------------------------------
-- The lifecycle: an event hidden (stream metadata) before the relay
-- publishes it is not published at all, nor shown by outbox_messages;
-- in data, the envelopes of forgotten keys go as the marker, those of live
-- keys sealed (ciphertext and key id filtered below: they are random)
------------------------------------------------------------------------
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
RESET client_min_messages;
UNLISTEN *;
SELECT eventstore.add_route('lc', categories => ARRAY['lc', 'pt']);
SELECT eventstore.create_store('public.op_lc');
SELECT eventstore.add_route('lc_store', categories => ARRAY['lc'], store => 'public.op_lc');
LISTEN lc;
LISTEN lc_store;
SELECT global_position FROM eventstore.append_event('lc-1', NULL, 'E', '{"n": 1}', NULL, '00000000-0000-4000-8000-000000000101');
SELECT global_position FROM eventstore.append_event('lc-1', NULL, 'E', '{"n": 2}', NULL, '00000000-0000-4000-8000-000000000102');
SELECT global_position FROM eventstore.append_event('lc-1', NULL, 'E', '{"n": 3}', NULL, '00000000-0000-4000-8000-000000000103');
SELECT global_position FROM eventstore.append_event('pt-1', 0, 'Admitted',
    jsonb_build_object('ward', 'B', 'name', eventstore.encrypt('person-1', '"Jane Roe"')), NULL, '00000000-0000-4000-8000-000000000104');
SELECT global_position FROM eventstore.append_event('pt-2', 0, 'Admitted',
    jsonb_build_object('ward', 'C', 'name', eventstore.encrypt('person-2', '"John Doe"')), NULL, '00000000-0000-4000-8000-000000000105');
SELECT global_position FROM eventstore.append_event('lc-1', NULL, 'E', '{"n": 1}', NULL, '00000000-0000-4000-8000-000000000106', store => 'public.op_lc');
SELECT global_position FROM eventstore.append_event('lc-1', NULL, 'E', '{"n": 2}', NULL, '00000000-0000-4000-8000-000000000107', store => 'public.op_lc');
SELECT eventstore.set_stream_metadata('lc-1', max_count => 1);
SELECT eventstore.set_stream_metadata('lc-1', truncate_before => 2, store => 'public.op_lc');
SELECT eventstore.forget('person-1');
-- outbox_messages: the hidden events' rows are not shown
SELECT id, message->>'stream_id' AS stream_id, message->'stream_version' AS version,
       regexp_replace(message->>'data', '"c": "[^"]*", "k": "[^"]*"', '"c": "<c>", "k": "<k>"') AS data
  FROM eventstore.outbox_messages WHERE channel IN ('lc', 'lc_store') ORDER BY id;
-- the relay publishes the same
\o | perl -0777 -pe 's/ PID \d+\./ PID N./g; s/"c": "[^"]*"/"c": "<c>"/g; s/"k": "[0-9a-f-]{36}"/"k": "<k>"/g'
SELECT eventstore.relay_once() AS published;
\o
SELECT count(*) AS unpublished FROM eventstore.outbox WHERE channel IN ('lc', 'lc_store') AND published_at IS NULL;
-- published, then hidden or forgotten: a consumer that reads later gets
-- what reads return then
SELECT eventstore.set_stream_metadata('lc-1', truncate_before => 4);
SELECT eventstore.forget('person-2');
SELECT id, message->>'stream_id' AS stream_id, message->'stream_version' AS version, message->'data' AS data
  FROM eventstore.consumer_poll('lc_reader', 'lc') ORDER BY id;
SELECT eventstore.drop_store('public.op_lc');

------------------------------------------------------------------------
-- Clean up
------------------------------------------------------------------------
UNLISTEN *;
DROP EXTENSION eventstore;
DROP EXTENSION pgcrypto;
ALTER SYSTEM RESET eventstore.relay_databases;
SELECT pg_reload_conf();
