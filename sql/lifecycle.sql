--
-- lifecycle: stream metadata (max_age, max_count, truncate_before) per
-- stream and per category, honoured by every read at once and removed
-- physically by purge(); soft delete and recreate (versions continue); hard
-- delete (ES410); the immutability triggers still refuse every DELETE but
-- the purge's; the lifecycle access level; the audit log; derived data.
--
-- a fresh extension: the tests before may leave events behind
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS eventstore CASCADE;
CREATE EXTENSION eventstore;
RESET client_min_messages;
\set VERBOSITY terse

CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- every read path of one stream, as versions: read_stream, backwards,
-- read_all, read_category, read_all_until, read_query, stream_version
CREATE FUNCTION pg_temp.reads(sid text, st regclass DEFAULT 'eventstore.events') RETURNS text
LANGUAGE sql AS $$
    SELECT concat_ws(' | ',
        'fwd ' || coalesce((SELECT string_agg(stream_version::text, ',' ORDER BY stream_version) FROM eventstore.read_stream(sid, store => st)), '-'),
        'back ' || coalesce((SELECT string_agg(stream_version::text, ',') FROM eventstore.read_stream_backwards(sid, store => st)), '-'),
        'all ' || coalesce((SELECT string_agg(stream_version::text, ',' ORDER BY global_position) FROM eventstore.read_all(0, NULL, st) WHERE stream_id = sid), '-'),
        'cat ' || coalesce((SELECT string_agg(stream_version::text, ',' ORDER BY global_position) FROM eventstore.read_category(split_part(sid, '-', 1), 0, NULL, st) WHERE stream_id = sid), '-'),
        'until ' || coalesce((SELECT string_agg(stream_version::text, ',' ORDER BY global_position) FROM eventstore.read_all_until('infinity', 0, NULL) WHERE stream_id = sid AND st = 'eventstore.events'::regclass), '-'),
        'query ' || coalesce((SELECT string_agg(stream_version::text, ',' ORDER BY global_position) FROM eventstore.read_query('{}', 0, NULL, st) WHERE stream_id = sid), '-'),
        'version ' || eventstore.stream_version(sid, st))
$$;

CREATE FUNCTION pg_temp.fill(sid text, n int, st regclass DEFAULT 'eventstore.events') RETURNS void
LANGUAGE sql AS $$
    SELECT eventstore.append(sid, NULL, ARRAY(SELECT eventstore.event('E', jsonb_build_object('n', i)) FROM generate_series(1, n) i), store => st)
$$;

------------------------------------------------------------------------
-- No metadata: every read returns every event
------------------------------------------------------------------------
SELECT pg_temp.fill('acct-1', 5);
SELECT pg_temp.fill('acct-2', 3);
SELECT pg_temp.fill('order-1', 2);
SELECT pg_temp.reads('acct-1');

------------------------------------------------------------------------
-- max_count: the last n versions; every read at once
------------------------------------------------------------------------
SELECT eventstore.set_stream_metadata('acct-1', max_count => 2, reason => 'ticket 1');
SELECT pg_temp.reads('acct-1');
SELECT * FROM eventstore.stream_metadata('acct-1');
-- a read from version 1 starts at the first visible version; max_count of the read still applies
SELECT stream_version FROM eventstore.read_stream('acct-1', 1, 1);
-- appending moves the window
SELECT pg_temp.fill('acct-1', 1);
SELECT pg_temp.reads('acct-1');
-- other streams untouched
SELECT pg_temp.reads('acct-2');

------------------------------------------------------------------------
-- truncate_before, and a category default that a stream's own value overrides
------------------------------------------------------------------------
SELECT eventstore.set_category_metadata('acct', truncate_before => 3);
SELECT pg_temp.reads('acct-2');
SELECT eventstore.set_stream_metadata('acct-2', truncate_before => 2);
SELECT pg_temp.reads('acct-2');
-- acct-1 keeps its own max_count and gets the category's truncate_before
SELECT pg_temp.reads('acct-1');
-- clearing the category default
SELECT eventstore.set_category_metadata('acct');
SELECT pg_temp.reads('acct-2');
SELECT pg_temp.reads('order-1');

------------------------------------------------------------------------
-- max_age: events older than it are hidden (relative to the transaction's start)
------------------------------------------------------------------------
-- (in a store of its own, purged at once, then cleared: the rest of the
-- test does not depend on how long it runs)
SELECT eventstore.create_store('public.lc_aged');
SELECT pg_temp.fill('aged-1', 2, 'public.lc_aged');
SELECT pg_sleep(3);
SELECT pg_temp.fill('aged-1', 1, 'public.lc_aged');
SELECT eventstore.set_stream_metadata('aged-1', max_age => '2 seconds', store => 'public.lc_aged');
SELECT pg_temp.reads('aged-1', 'public.lc_aged');
SELECT eventstore.purge(1000, 'public.lc_aged');
SELECT string_agg(stream_version::text, ',') AS stored FROM public.lc_aged;
SELECT eventstore.set_stream_metadata('aged-1', store => 'public.lc_aged');
SELECT eventstore.drop_store('public.lc_aged');

------------------------------------------------------------------------
-- Purge: the hidden events go physically, in batches; visible ones stay
------------------------------------------------------------------------
SELECT count(*) AS stored_before FROM eventstore.events;
SELECT eventstore.purge(2) AS batch_1;
SELECT eventstore.purge(1000) AS batch_2;
SELECT eventstore.purge(1000) AS nothing_left;
SELECT stream_id, string_agg(stream_version::text, ',' ORDER BY stream_version) AS stored
  FROM eventstore.events GROUP BY stream_id ORDER BY stream_id;
SELECT pg_temp.reads('acct-1');
-- versions keep counting across a purge
SELECT eventstore.append_event('acct-2', 3, 'E', '{"n": 4}');
SELECT pg_temp.reads('acct-2');

------------------------------------------------------------------------
-- Soft delete: gone from reads at once; expected version 0 recreates it,
-- versions continue; -1 (an existing stream) and the old version conflict
-- (stream_version() still reports the version reached)
------------------------------------------------------------------------
SELECT pg_temp.try($$SELECT eventstore.delete_stream('order-1', 5)$$);
SELECT eventstore.delete_stream('order-1', 2, reason => 'ticket 2');
SELECT pg_temp.reads('order-1');
SELECT * FROM eventstore.stream_metadata('order-1');
SELECT pg_temp.try($$SELECT eventstore.append_event('order-1', -1, 'E', '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('order-1', 1, 'E', '{}')$$);
-- the version it had before the deletion conflicts too: a writer that read
-- the stream before it was deleted learns of the deletion
SELECT pg_temp.try($$SELECT eventstore.append_event('order-1', 2, 'E', '{}')$$);
SELECT eventstore.append_event('order-1', 0, 'Reopened', '{}');
SELECT pg_temp.reads('order-1');
-- purged, the deleted events go and the version stays
SELECT eventstore.purge(1000);
SELECT stream_version, event_type FROM eventstore.events WHERE stream_id = 'order-1';
-- delete again, purge everything, then recreate: still continuing
SELECT eventstore.delete_stream('order-1', -1);
SELECT eventstore.purge(1000);
SELECT count(*) AS stored FROM eventstore.events WHERE stream_id = 'order-1';
SELECT eventstore.stream_version('order-1');
SELECT eventstore.append_event('order-1', NULL, 'Again', '{}');
SELECT pg_temp.reads('order-1');

------------------------------------------------------------------------
-- Hard delete: a tombstone; appends refused with ES410 for ever
------------------------------------------------------------------------
SELECT pg_temp.fill('user-42', 3);
SELECT eventstore.delete_stream('user-42', 3, hard => true, reason => 'erasure request 7');
SELECT pg_temp.reads('user-42');
SELECT pg_temp.try($$SELECT eventstore.append_event('user-42', NULL, 'E', '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.append_event('user-42', 0, 'E', '{}')$$);
SELECT pg_temp.try($$SELECT eventstore.delete_stream('user-42', NULL)$$);
SELECT eventstore.purge(1000);
SELECT count(*) AS stored FROM eventstore.events WHERE stream_id = 'user-42';
-- a stream that never existed can be tombstoned (its id reserved)
SELECT eventstore.delete_stream('user-43', NULL, hard => true);
SELECT pg_temp.try($$SELECT eventstore.append_event('user-43', 0, 'E', '{}')$$);

------------------------------------------------------------------------
-- Immutability stays: DELETE, UPDATE, TRUNCATE refused, also for the owner
------------------------------------------------------------------------
SELECT pg_temp.try($$DELETE FROM eventstore.events WHERE stream_id = 'acct-2'$$);
SELECT pg_temp.try($$UPDATE eventstore.events SET data = '{}'$$);
SELECT pg_temp.try($$TRUNCATE eventstore.events$$);
SELECT pg_temp.try($$DELETE FROM eventstore.lifecycle_log$$);
SELECT pg_temp.try($$UPDATE eventstore.lifecycle_log SET reason = 'x'$$);

------------------------------------------------------------------------
-- Derived data: a deleted stream's snapshots go at once; outbox rows,
-- retries and parked events of purged events go with them
------------------------------------------------------------------------
SELECT eventstore.add_route('lc_channel', categories => ARRAY['shop']);
SELECT pg_temp.fill('shop-1', 3);
SELECT eventstore.save_snapshot('shop-1', 2, '{"total": 2}');
SELECT count(*) AS outbox_rows FROM eventstore.outbox WHERE channel = 'lc_channel';
SELECT eventstore.delete_stream('shop-1', 3);
SELECT count(*) AS snapshots FROM eventstore.snapshots WHERE stream_id = 'shop-1';
-- rows not published yet go at once (published ones, if the relay was
-- quicker, stay until the purge)
SELECT count(*) AS unpublished_outbox_rows FROM eventstore.outbox
 WHERE channel = 'lc_channel' AND published_at IS NULL;
SELECT eventstore.purge(1000);
SELECT count(*) AS outbox_rows FROM eventstore.outbox WHERE channel = 'lc_channel';
SELECT eventstore.remove_route('lc_channel');

------------------------------------------------------------------------
-- Crypto-shredding: encrypt under a per-subject key, reads decrypt, forget
-- destroys the key and every read shows the marker
------------------------------------------------------------------------
SELECT pg_temp.try($$SELECT eventstore.encrypt('subject-1', '"x"')$$) AS without_pgcrypto;
CREATE EXTENSION pgcrypto;
SELECT eventstore.append_event('patient-1', 0, 'Admitted', jsonb_build_object(
           'ward', 'B', 'name', eventstore.encrypt('subject-1', '"Jane Roe"'),
           'notes', eventstore.encrypt('subject-1', '{"allergy": "penicillin"}'))) IS NOT NULL AS appended;
SELECT eventstore.append_event('patient-1', 1, 'Moved', jsonb_build_object('ward', 'C')) IS NOT NULL AS appended;
SELECT eventstore.append_event('patient-2', 0, 'Admitted',
           eventstore.encrypt('subject-2', '{"name": "John Doe"}')) IS NOT NULL AS appended;
-- stored: envelopes only
SELECT stream_id, jsonb_path_query_array(data, 'strict $.**."$es_enc".k') <> '[]' AS has_envelope,
       data::text LIKE '%Jane%' OR data::text LIKE '%John%' OR data::text LIKE '%penicillin%' AS plaintext_stored
  FROM eventstore.events WHERE stream_id LIKE 'patient-%' ORDER BY global_position;
-- every read path decrypts
SELECT data FROM eventstore.read_stream('patient-1');
SELECT data FROM eventstore.read_stream_backwards('patient-2');
SELECT stream_id, data FROM eventstore.read_all(0, NULL) WHERE stream_id LIKE 'patient-%';
SELECT stream_id, data FROM eventstore.read_category('patient');
SELECT stream_id, data FROM eventstore.read_query('{"items": [{"types": ["Admitted", "Moved"]}]}') WHERE stream_id LIKE 'patient-%';
CREATE FUNCTION pg_temp.chart(s jsonb, e eventstore.events) RETURNS jsonb LANGUAGE sql AS $$
    SELECT s || (e.data - 'ward') || jsonb_build_object('ward', e.data->'ward') $$;
SELECT eventstore.aggregate('patient-1', 'pg_temp.chart(jsonb, eventstore.events)');
SELECT eventstore.save_snapshot('patient-1', 1, eventstore.aggregate('patient-1', 'pg_temp.chart(jsonb, eventstore.events)', until_version => 1));
SELECT eventstore.save_snapshot('patient-2', 1, '{"name": "John Doe"}');
-- a reader decrypts (SELECT on the store); it cannot encrypt (a writer's right)
CREATE ROLE regress_lc_clerk;
SELECT eventstore.grant_access('regress_lc_clerk', 'reader');
SET ROLE regress_lc_clerk;
SELECT data FROM eventstore.read_stream('patient-2');
SELECT pg_temp.try($$SELECT eventstore.encrypt('subject-3', '"x"')$$);
SELECT pg_temp.try($$SELECT eventstore.forget('subject-1')$$);
SELECT pg_temp.try($$SELECT * FROM eventstore.subject_keys$$);
RESET ROLE;
-- forget: the key goes; every read shows the marker, for ever
SELECT eventstore.forget('subject-1', 'erasure request 8');
SELECT eventstore.forget('subject-1', 'again: nothing to forget');
SELECT data FROM eventstore.read_stream('patient-1');
SELECT stream_id, data FROM eventstore.read_all(0, NULL) WHERE stream_id LIKE 'patient-%';
SELECT stream_id, data FROM eventstore.read_category('patient');
SELECT stream_id, data FROM eventstore.read_query('{"items": [{"types": ["Admitted", "Moved"]}]}') WHERE stream_id LIKE 'patient-%';
SELECT eventstore.aggregate('patient-1', 'pg_temp.chart(jsonb, eventstore.events)');
SELECT eventstore.decrypt(data) FROM eventstore.events WHERE stream_id = 'patient-1' ORDER BY stream_version;
-- the snapshot folded in clear is gone; the other subject's stays
SELECT stream_id FROM eventstore.snapshots WHERE stream_id LIKE 'patient-%' ORDER BY 1;
-- no live tuple holds the key any more, nor the plaintext
SELECT count(*) AS keys_of_subject_1 FROM eventstore.subject_keys WHERE subject = 'subject-1';
SELECT count(*) FILTER (WHERE key IS NULL) AS forgotten, count(*) FILTER (WHERE key IS NOT NULL) AS live
  FROM eventstore.subject_keys;
SELECT count(*) AS plaintext_tuples FROM eventstore.events e WHERE e::text ~ 'Jane|penicillin';
SELECT count(*) AS plaintext_snapshots FROM eventstore.snapshots s WHERE s::text ~ 'Jane|penicillin';
-- a new key for the same subject does not open the old envelopes
SELECT eventstore.append_event('patient-1', 2, 'Note', eventstore.encrypt('subject-1', '"new"')) IS NOT NULL AS appended;
SELECT data FROM eventstore.read_stream('patient-1');
SELECT action, stream_hash = sha256(convert_to('subject-1', 'UTF8')) AS is_subject_1, reason
  FROM eventstore.lifecycle_log WHERE action = 'forget' ORDER BY id;
SELECT pg_temp.try($$SELECT eventstore.encrypt(NULL, '"x"')$$);
SELECT pg_temp.try($$SELECT eventstore.encrypt('', '"x"')$$);
SELECT eventstore.encrypt('subject-9', NULL) IS NULL AS null_stays_null;
SELECT pg_temp.try($$SELECT eventstore.forget(NULL)$$);
SELECT eventstore.decrypt('{"$es_enc": {"k": "not a uuid", "c": ""}}') AS malformed_envelope;
SELECT eventstore.decrypt('[1, {"a": {"$es_enc": 5}}]') AS not_an_envelope;
REVOKE ALL ON SCHEMA public FROM regress_lc_clerk;

------------------------------------------------------------------------
-- A hostile search_path cannot steer the lifecycle's SQL: an "=" that is
-- always true, before pg_catalog, changes nothing
------------------------------------------------------------------------
CREATE SCHEMA lc_evil;
CREATE FUNCTION lc_evil.eq(bigint, bigint) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE FUNCTION lc_evil.eq(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR lc_evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = lc_evil.eq);
CREATE OPERATOR lc_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = lc_evil.eq);
SELECT eventstore.add_route('lc_evil_channel', categories => ARRAY['evil']);
SELECT pg_temp.fill('evil-1', 2);
SELECT pg_temp.fill('evil-2', 2);
SELECT eventstore.save_snapshot('evil-2', 2, '{"kept": true}');
SET search_path = lc_evil, pg_catalog, public;
SELECT eventstore.delete_stream('evil-1', 2);
SELECT eventstore.purge(1000);
RESET search_path;
SELECT stream_id, count(*) AS events FROM eventstore.events WHERE stream_id LIKE 'evil-%' GROUP BY 1 ORDER BY 1;
SELECT count(*) AS outbox_rows_of_evil_2 FROM eventstore.outbox o JOIN eventstore.events e USING (global_position)
 WHERE e.stream_id = 'evil-2';
SELECT stream_id FROM eventstore.snapshots WHERE stream_id LIKE 'evil-%';
SELECT eventstore.remove_route('lc_evil_channel');
DROP SCHEMA lc_evil CASCADE;

------------------------------------------------------------------------
-- Another store: the same rules through the C reads
------------------------------------------------------------------------
SELECT eventstore.create_store('public.lc_store');
SELECT pg_temp.fill('acct-1', 4, 'public.lc_store');
SELECT pg_temp.reads('acct-1', 'public.lc_store');
SELECT eventstore.set_stream_metadata('acct-1', truncate_before => 3, store => 'public.lc_store');
SELECT pg_temp.reads('acct-1', 'public.lc_store');
-- the default store's acct-1 keeps its own metadata only
SELECT pg_temp.reads('acct-1');
SELECT eventstore.delete_stream('acct-1', 4, hard => true, store => 'public.lc_store');
SELECT pg_temp.try($$SELECT eventstore.append_event('acct-1', NULL, 'E', '{}', store => 'public.lc_store')$$);
SELECT eventstore.append_event('acct-1', NULL, 'E', '{}') IS NOT NULL AS default_store_still_appends;

-- a store whose only key is forgotten still shows the marker (it keeps
-- reading through the decrypting plan)
SELECT eventstore.append_event('p-1', 0, 'E', eventstore.encrypt('only', '{"x": 1}', 'public.lc_store'), store => 'public.lc_store') IS NOT NULL AS appended;
SELECT eventstore.forget('only', store => 'public.lc_store');
SELECT eventstore._lifecycle_active('public.lc_store') AS still_active;
SELECT data FROM eventstore.read_stream('p-1', store => 'public.lc_store');

-- physically: the table shrinks after purge and VACUUM
SELECT pg_temp.fill('bulk-1', 2000, 'public.lc_store');
SELECT pg_relation_size('public.lc_store') > 100000 AS big_before;
SELECT eventstore.delete_stream('bulk-1', NULL, hard => true, store => 'public.lc_store');
SELECT eventstore.purge(1500, 'public.lc_store') + eventstore.purge(1500, 'public.lc_store') AS purged;
VACUUM public.lc_store;
SELECT count(*) AS rows_left FROM public.lc_store;
SELECT pg_relation_size('public.lc_store') < 16384 AS small_after;

------------------------------------------------------------------------
-- Privileges: the lifecycle level; writers and readers get 42501
------------------------------------------------------------------------
CREATE ROLE regress_lc_writer;
CREATE ROLE regress_lc_reader;
CREATE ROLE regress_lc_dpo;
SELECT eventstore.grant_access('regress_lc_writer', 'writer');
SELECT eventstore.grant_access('regress_lc_reader', 'reader');
SELECT eventstore.grant_access('regress_lc_dpo', 'lifecycle');
SELECT pg_temp.fill('priv-1', 2);
SET ROLE regress_lc_writer;
SELECT pg_temp.try($$SELECT eventstore.delete_stream('priv-1', NULL)$$);
SELECT pg_temp.try($$SELECT eventstore.set_stream_metadata('priv-1', max_count => 1)$$);
SELECT pg_temp.try($$SELECT eventstore.purge()$$);
SELECT pg_temp.try($$DELETE FROM eventstore.events$$);
RESET ROLE;
SET ROLE regress_lc_reader;
SELECT pg_temp.try($$SELECT eventstore.delete_stream('priv-1', NULL)$$);
SELECT pg_temp.try($$SELECT eventstore.set_category_metadata('priv', max_count => 1)$$);
RESET ROLE;
SET ROLE regress_lc_dpo;
SELECT eventstore.set_stream_metadata('priv-1', max_count => 1);
SELECT eventstore.delete_stream('priv-1', 2, reason => 'as dpo');
-- lifecycle on the default store is not lifecycle on another store
SELECT pg_temp.try($$SELECT eventstore.delete_stream('x-1', NULL, store => 'public.lc_store')$$);
-- DELETE on the table is the right to use the functions, not to DELETE
SELECT pg_temp.try($$DELETE FROM eventstore.events$$);
SELECT eventstore.purge() >= 0 AS purged;
RESET ROLE;
SELECT pg_temp.try($$SELECT eventstore.grant_access('regress_lc_dpo', 'forgetter')$$);

------------------------------------------------------------------------
-- Bad input
------------------------------------------------------------------------
SELECT pg_temp.try($$SELECT eventstore.set_stream_metadata(NULL, max_count => 1)$$);
SELECT pg_temp.try($$SELECT eventstore.set_stream_metadata('', max_count => 1)$$);
SELECT pg_temp.try($$SELECT eventstore.set_stream_metadata('a-1', max_count => 0)$$);
SELECT pg_temp.try($$SELECT eventstore.set_stream_metadata('a-1', truncate_before => -1)$$);
SELECT pg_temp.try($$SELECT eventstore.set_stream_metadata('a-1', max_age => '-1 day')$$);
SELECT pg_temp.try($$SELECT eventstore.set_stream_metadata('a-1', max_count => 1, store => NULL)$$);
SELECT pg_temp.try($$SELECT eventstore.set_stream_metadata('a-1', max_count => 1, store => 'pg_class')$$);
SELECT pg_temp.try($$SELECT eventstore.set_category_metadata('a-b', max_count => 1)$$);
SELECT pg_temp.try($$SELECT eventstore.delete_stream('a-1', -2)$$);
SELECT pg_temp.try($$SELECT eventstore.delete_stream('a-1', NULL, NULL)$$);
SELECT pg_temp.try($$SELECT eventstore.purge(0)$$);
SELECT pg_temp.try($$SELECT eventstore.purge(NULL)$$);

------------------------------------------------------------------------
-- Subscriptions deliver what reads return: nothing hidden, data decrypted
-- or forgotten
------------------------------------------------------------------------
SELECT eventstore.create_subscription('lc_sub', categories => ARRAY['order', 'patient'], partitions => 1);
CREATE TEMP TABLE lc_polled AS SELECT * FROM eventstore.poll('lc_sub', 'c1', 100);
SELECT stream_id, stream_version, event_type, data FROM lc_polled ORDER BY global_position;
-- the same events as the reads
SELECT (SELECT array_agg(global_position ORDER BY global_position) FROM lc_polled)
       IS NOT DISTINCT FROM
       (SELECT array_agg(global_position ORDER BY global_position) FROM eventstore.read_all(0, NULL)
         WHERE eventstore.category(stream_id) IN ('order', 'patient')) AS same_as_read_all;
SELECT eventstore.drop_subscription('lc_sub');
DROP TABLE lc_polled;

------------------------------------------------------------------------
-- The audit log: every change, no stream id in clear
------------------------------------------------------------------------
SELECT actor, store_name, action, stream_hash = sha256(convert_to('user-42', 'UTF8')) AS is_user_42,
       category, from_version, to_version, events, reason
  FROM eventstore.lifecycle_log ORDER BY id;
SELECT count(*) AS ids_in_clear FROM eventstore.lifecycle_log l
 WHERE l::text LIKE '%user-42%' OR l::text LIKE '%acct-1%';

------------------------------------------------------------------------
-- DCB: a condition looks at what read_query returns.  An event hidden by a
-- delete or by stream metadata neither comes back from read_query nor fails
-- a condition (else "read again and decide again" could never succeed: the
-- event that fails it is never read).  A visible one still fails it.
------------------------------------------------------------------------
SELECT stream_version FROM eventstore.append_event('member-1', 0, 'Registered', '{}', tags => ARRAY['name:ann']);
SELECT stream_version FROM eventstore.append_event('member-2', 0, 'Registered', '{}', tags => ARRAY['name:bob']);
SELECT stream_version FROM eventstore.append_event('member-2', 1, 'Renamed', '{}', tags => ARRAY['name:bob']);
SELECT eventstore.delete_stream('member-1', 1);
SELECT eventstore.set_stream_metadata('member-2', max_count => 1);
SELECT count(*) AS ann_read FROM eventstore.read_query('{"items": [{"types": ["Registered"], "tags": ["name:ann"]}]}');
SELECT count(*) AS bob_registered_read FROM eventstore.read_query('{"items": [{"types": ["Registered"], "tags": ["name:bob"]}]}');
SELECT pg_temp.try($$SELECT eventstore.append_event('member-3', 0, 'Registered', '{}', tags => ARRAY['name:ann'],
    condition => '{"fail_if_events_match": {"items": [{"types": ["Registered"], "tags": ["name:ann"]}]}}')$$) AS ann_again;
SELECT pg_temp.try($$SELECT eventstore.append_event('member-4', 0, 'Registered', '{}', tags => ARRAY['name:bob'],
    condition => '{"fail_if_events_match": {"items": [{"types": ["Registered"], "tags": ["name:bob"]}]}}')$$) AS bob_again;
-- visible: member-3's registration, member-2's rename
SELECT pg_temp.try($$SELECT eventstore.append_event('member-5', 0, 'Registered', '{}', tags => ARRAY['name:ann'],
    condition => '{"fail_if_events_match": {"items": [{"types": ["Registered"], "tags": ["name:ann"]}]}}')$$) AS ann_taken;
SELECT pg_temp.try($$SELECT eventstore.append_event('member-6', 0, 'Registered', '{}', tags => ARRAY['name:bob'],
    condition => '{"fail_if_events_match": {"items": [{"tags": ["name:bob"]}]}}')$$) AS bob_renamed;

------------------------------------------------------------------------
-- Clean up
------------------------------------------------------------------------
SELECT eventstore.drop_store('public.lc_store');
DROP FUNCTION pg_temp.reads(text, regclass), pg_temp.fill(text, int, regclass), pg_temp.chart(jsonb, eventstore.events);
SELECT count(*) AS rows_of_dropped_store FROM eventstore.stream_lifecycle WHERE store::oid NOT IN (SELECT oid FROM pg_class);
DROP EXTENSION eventstore;
DROP SCHEMA IF EXISTS eventstore;
DROP EXTENSION pgcrypto;
REVOKE ALL ON SCHEMA public FROM regress_lc_writer, regress_lc_reader, regress_lc_dpo;
DROP ROLE regress_lc_writer, regress_lc_reader, regress_lc_dpo, regress_lc_clerk;
