-- Bad input, every function of schema eventstore.  Each call either succeeds
-- with the correct result or fails with one specific SQLSTATE (never XX000
-- or P0001), and the store is the same afterwards.  Inputs: NULLs, empty
-- strings, 1 MB strings, JSON of the wrong shape, negative and overflowing
-- numbers, SQL-looking and unicode ids, names and channels, unknown names.
--
-- The list of functions is checked against pg_proc: a new function makes
-- this file fail until it is added here (with its bad inputs).
--
BEGIN;
SELECT plan(683);

------------------------------------------------------------------------
-- Helpers
------------------------------------------------------------------------
-- Every input tried: which function, and whether an error was expected.
CREATE TEMP TABLE bi_tried (fn name NOT NULL, want text NOT NULL);

-- try(sqls): run the statements in a subtransaction that is always rolled
-- back; 'ok <first column of the first row of the last one>' (<null> for
-- NULL or no row), or 'error <SQLSTATE>: <message>'.
CREATE FUNCTION pg_temp.try(VARIADIC sqls text[]) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    stmt text;
    r text;
BEGIN
    BEGIN
        FOREACH stmt IN ARRAY sqls LOOP
            EXECUTE stmt INTO r;
        END LOOP;
        RAISE EXCEPTION USING ERRCODE = 'ZZ999';
    EXCEPTION
        WHEN SQLSTATE 'ZZ999' THEN RETURN 'ok ' || coalesce(r, '<null>');
        WHEN OTHERS THEN RETURN 'error ' || SQLSTATE || ': ' || SQLERRM;
    END;
END $$;

-- x(fn, what, want, sqls): one input.  want is 'ok <value>' (compared
-- exactly) or 'error <SQLSTATE>' (the code compared exactly).
CREATE FUNCTION pg_temp.x(fn name, what text, want text, VARIADIC sqls text[]) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    have text := pg_temp.try(VARIADIC sqls);
    cmp text := CASE WHEN want LIKE 'error %' THEN left(have, 11) ELSE have END;
    res text;
BEGIN
    INSERT INTO bi_tried VALUES (fn, want);
    res := is(cmp, want, fn || ': ' || what || ' -> '
                         || left(regexp_replace(want, '[[:space:]]+', ' ', 'g'), 60));
    IF cmp IS DISTINCT FROM want THEN
        res := res || E'\n' || diag('    got: ' || left(have, 300));
    END IF;
    RETURN res;
END $$;

-- The state of the store: row counts, the registries and every stream's version.
CREATE FUNCTION pg_temp.store_state() RETURNS text LANGUAGE sql AS $$
    SELECT concat_ws(' ',
        'events=' || (SELECT count(*) FROM eventstore.events),
        'outbox=' || (SELECT count(*) FROM eventstore.outbox),
        'published_up_to=' || (SELECT last_published_id FROM eventstore.relay_state),
        'projections=' || (SELECT count(*) FROM eventstore.projections),
        'routes=' || (SELECT count(*) FROM eventstore.routes),
        'consumers=' || (SELECT count(*) FROM eventstore.consumers),
        'upcasters=' || (SELECT count(*) FROM eventstore.upcasters),
        'snapshots=' || (SELECT count(*) FROM eventstore.snapshots),
        'policies=' || (SELECT count(*) FROM eventstore.snapshot_policies),
        'versions=' || md5((SELECT coalesce(string_agg(stream_id || ':' || v, ',' ORDER BY stream_id), '')
                              FROM (SELECT stream_id, max(stream_version) AS v FROM eventstore.events
                                     GROUP BY stream_id) s)),
        'registries=' || md5(concat(
            (SELECT string_agg(p::text, ',' ORDER BY p.name) FROM eventstore.projections p),
            (SELECT string_agg(r::text, ',' ORDER BY r.channel) FROM eventstore.routes r),
            (SELECT string_agg(u::text, ',' ORDER BY u.event_type) FROM eventstore.upcasters u),
            (SELECT string_agg(s::text, ',' ORDER BY s.snapshot_type) FROM eventstore.snapshot_policies s),
            (SELECT string_agg(s::text, ',' ORDER BY s.stream_id, s.snapshot_type, s.stream_version)
               FROM eventstore.snapshots s))))
$$;

-- SQL-looking, unicode and otherwise awkward strings (all shorter than 64 bytes).
CREATE TEMP TABLE bi_nasty (s text NOT NULL);
INSERT INTO bi_nasty VALUES
    ($s$'); DROP TABLE eventstore.events; --$s$),
    ($s$x' OR '1'='1$s$),
    ($s$$$; SELECT pg_sleep(10); $$$s$),
    ($s$back\slash\\-1$s$),
    ($s$"quoted"-ident$s$),
    ($s$semi;colon-2$s$),
    ('ストリーム-3'),
    ('événement-ß-🔥'),
    ('שלום-עולם'),
    (E'zero\u200Bwidth-4'),
    (E'tab\tand\nnewline-5'),
    ('%_*-wildcards'),
    ('-leading-dash'),
    ('   '),
    ('pg_catalog.events');

------------------------------------------------------------------------
-- The store before: a stream, a projection, a route, an upcaster, a
-- snapshot and a snapshot policy, so every function has something to hit.
------------------------------------------------------------------------
CREATE FUNCTION bi_noop(e eventstore.events) RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION bi_reset() RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION bi_reducer(s jsonb, e eventstore.events) RETURNS jsonb LANGUAGE sql
    AS $$ SELECT jsonb_build_object('n', coalesce((s->>'n')::int, 0) + 1) $$;
CREATE FUNCTION bi_up(e eventstore.events) RETURNS eventstore.events LANGUAGE plpgsql
    AS $$ BEGIN e.event_type := 'BiV2'; RETURN e; END $$;
CREATE FUNCTION bi_wrong(x integer) RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION bi_setof(e eventstore.events) RETURNS SETOF integer LANGUAGE sql AS $$ SELECT 1 $$;
CREATE PROCEDURE bi_proc(e eventstore.events) LANGUAGE sql AS $$ SELECT $$;
CREATE ROLE es_tap_bi_role;
CREATE ROLE "es_tap_bi""; DROP ROLE postgres; --";

SELECT lives_ok($$
    SELECT eventstore.append('bi-1', 0, ARRAY[
        eventstore.event('BiA', '{"n": 1}', NULL, 'b1000000-0000-4000-8000-000000000001'),
        eventstore.event('BiV1', '{"n": 2}', '{"m": true}', 'b1000000-0000-4000-8000-000000000002')]);
    SELECT eventstore.register_projection('bi_proj', 'bi_noop(eventstore.events)', ARRAY['BiA'], 'bi_reset()');
    SELECT eventstore.add_route('bi_chan', ARRAY['BiA']);
    SELECT eventstore.register_upcaster('BiV1', 'bi_up(eventstore.events)');
    SELECT eventstore.save_snapshot('bi-1', 1, '{"n": 1}', 'bi_snap');
    SELECT eventstore.set_snapshot_policy('bi_policy', 'bi_reducer(jsonb, eventstore.events)', 1000,
                                          '{}', ARRAY['bi']);
$$, 'set-up: a stream bi-1 at version 2, projection, route, upcaster, snapshot, policy');
CREATE TEMP TABLE bi_before AS SELECT pg_temp.store_state() AS state;

------------------------------------------------------------------------
-- The functions under test are exactly the functions of the schema
------------------------------------------------------------------------
SELECT is(ARRAY(SELECT s FROM (SELECT p.oid::regprocedure::text AS s FROM pg_proc p
                                WHERE p.pronamespace = 'eventstore'::regnamespace) f
                 ORDER BY s COLLATE "C"),
          ARRAY[
    'eventstore._channel_arg(text)',
    'eventstore._check_consumer(text,text,bigint,text)',
    'eventstore._consumer_ack(text,text,bigint,oid)',
    'eventstore._consumer_check_owner(text,text,oid)',
    'eventstore._consumer_may(oid,oid)',
    'eventstore._consumer_poll(text,text,integer,oid)',
    'eventstore._consumer_status(oid)',
    'eventstore._count_arg(integer)',
    'eventstore._drop_consumer(text,text,oid)',
    'eventstore._event_size(jsonb,text,jsonb)',
    'eventstore._horizon_status()',
    'eventstore._lifecycle_active(regclass)',
    'eventstore._log_horizon()',
    'eventstore._outbox_data(jsonb,regclass)',
    'eventstore._outbox_event(regclass,bigint)',
    'eventstore._outbox_shown(regclass,text,bigint,timestamp with time zone)',
    'eventstore._registry_changed()',
    'eventstore._relay_state_merge()',
    'eventstore._relay_wakeup()',
    'eventstore._stats()',
    'eventstore._store_adopt(regclass)',
    'eventstore._store_arg(regclass)',
    'eventstore._store_dropped()',
    'eventstore._store_has(regclass,text)',
    'eventstore._store_local(regclass)',
    'eventstore._stream_arg(text)',
    'eventstore._subscription_ack(text,text,bigint,oid)',
    'eventstore._subscription_ack_many(text,text,bigint[],oid)',
    'eventstore._subscription_alter(text,text[],text[],integer,interval,interval,oid)',
    'eventstore._subscription_arg(text,text)',
    'eventstore._subscription_backlog(eventstore.subscriptions,integer,bigint,bigint)',
    'eventstore._subscription_check(text[],text[],integer,interval,interval)',
    'eventstore._subscription_create(text,text[],text[],text,bigint,timestamp with time zone,text,integer,integer,interval,interval,regclass,oid)',
    'eventstore._subscription_delivered(eventstore.subscriptions,text,bigint)',
    'eventstore._subscription_drop(text,oid)',
    'eventstore._subscription_get(text,oid,boolean)',
    'eventstore._subscription_key(text,text,jsonb,bigint)',
    'eventstore._subscription_list_parked(text,oid)',
    'eventstore._subscription_nack(text,text,bigint,interval,text,oid)',
    'eventstore._subscription_partition(text,integer)',
    'eventstore._subscription_replay(text,bigint,oid)',
    'eventstore._subscription_reset(text,bigint,timestamp with time zone,oid)',
    'eventstore._subscription_start(text,bigint,timestamp with time zone,regclass)',
    'eventstore._subscription_state(oid)',
    'eventstore._subscription_take(text,text,integer,oid)',
    'eventstore._subscription_wake(bigint,bigint,text[],bigint[])',
    'eventstore._time_arg(timestamp with time zone)',
    'eventstore._upcast(eventstore.events)',
    'eventstore._upcast(eventstore.events,regclass)',
    'eventstore._upcasting()',
    'eventstore._version_floor(regclass,text)',
    'eventstore._visible(regclass,text,bigint,timestamp with time zone)',
    'eventstore.ack(text,text,bigint)',
    'eventstore.ack_many(text,text,bigint[])',
    'eventstore.add_route(text,text[],text[],boolean,regclass)',
    'eventstore.aggregate(text,regprocedure,jsonb,bigint,timestamp with time zone,text,regclass)',
    'eventstore.alter_subscription(text,text[],text[],integer,interval,interval)',
    'eventstore.append(text,bigint,eventstore.new_event[],jsonb,regclass)',
    'eventstore.append_event(text,bigint,text,jsonb,jsonb,uuid,text[],jsonb,regclass)',
    'eventstore.category(text)',
    'eventstore.consumer_ack(text,text,bigint)',
    'eventstore.consumer_poll(text,text,integer)',
    'eventstore.consumer_status()',
    'eventstore.create_store(text)',
    'eventstore.create_subscription(text,text[],text[],text,bigint,timestamp with time zone,text,integer,integer,interval,interval,regclass)',
    'eventstore.decrypt(jsonb,regclass)',
    'eventstore.delete_stream(text,bigint,boolean,text,regclass)',
    'eventstore.disable_projection(text)',
    'eventstore.distribute(regclass)',
    'eventstore.drop_consumer(text,text)',
    'eventstore.drop_store(regclass)',
    'eventstore.drop_subscription(text)',
    'eventstore.enable_projection(text)',
    'eventstore.encrypt(text,jsonb,regclass)',
    'eventstore.enqueue(text,jsonb,jsonb)',
    'eventstore.event(text,jsonb,jsonb,uuid,text[])',
    'eventstore.forget(text,text,regclass)',
    'eventstore.grant_access(regrole,text,regclass)',
    'eventstore.import_events(regclass,regclass)',
    'eventstore.load_snapshot(text,text,bigint,regclass)',
    'eventstore.nack(text,text,bigint,interval,text)',
    'eventstore.parked(text)',
    'eventstore.poll(text,text,integer)',
    'eventstore.purge(integer,regclass)',
    'eventstore.read_all(bigint,integer,regclass)',
    'eventstore.read_all_until(timestamp with time zone,bigint,integer,regclass)',
    'eventstore.read_category(text,bigint,integer,regclass)',
    'eventstore.read_node(bigint,integer,regclass)',
    'eventstore.read_query(jsonb,bigint,integer,regclass)',
    'eventstore.read_stream(text,bigint,integer,regclass)',
    'eventstore.read_stream_backwards(text,bigint,integer,regclass)',
    'eventstore.read_stream_until(text,timestamp with time zone,bigint,integer,regclass)',
    'eventstore.rebuild_projection(text)',
    'eventstore.refuse_change()',
    'eventstore.register_projection(text,regprocedure,text[],regprocedure,regclass)',
    'eventstore.register_upcaster(text,regprocedure,regclass)',
    'eventstore.relay_once(integer)',
    'eventstore.relay_status()',
    'eventstore.remove_route(text)',
    'eventstore.remove_snapshot_policy(text,regclass)',
    'eventstore.replay_parked(text,bigint)',
    'eventstore.reset_subscription(text,bigint,timestamp with time zone)',
    'eventstore.save_snapshot(text,bigint,jsonb,text,regclass)',
    'eventstore.set_category_metadata(text,interval,bigint,bigint,text,regclass)',
    'eventstore.set_snapshot_policy(text,regprocedure,bigint,jsonb,text[],regclass)',
    'eventstore.set_stream_metadata(text,interval,bigint,bigint,text,regclass)',
    'eventstore.stats_reset()',
    'eventstore.stream_metadata(text,regclass)',
    'eventstore.stream_version(text,regclass)',
    'eventstore.stream_version_at(text,timestamp with time zone,regclass)',
    'eventstore.subscription_channel(text)',
    'eventstore.subscription_status()',
    'eventstore.unregister_projection(text)',
    'eventstore.unregister_upcaster(text,regclass)'],
          'the functions of schema eventstore are exactly the 116 swept here (add a new one below)');

------------------------------------------------------------------------
-- append(stream_id, expected_version, events)
------------------------------------------------------------------------
SELECT pg_temp.x('append', 'NULL stream_id', 'error 22004',
    $$SELECT eventstore.append(NULL, 0, ARRAY[eventstore.event('T', '{}')])$$);
SELECT pg_temp.x('append', 'empty stream_id', 'error 22023',
    $$SELECT eventstore.append('', 0, ARRAY[eventstore.event('T', '{}')])$$);
SELECT pg_temp.x('append', 'stream_id of 1025 bytes', 'error 22001',
    $$SELECT eventstore.append(repeat('s', 1025), 0, ARRAY[eventstore.event('T', '{}')])$$);
SELECT pg_temp.x('append', 'stream_id of 1 MB', 'error 22001',
    $$SELECT eventstore.append(repeat('s', 1048576), 0, ARRAY[eventstore.event('T', '{}')])$$);
SELECT pg_temp.x('append', 'stream_id of 513 two-byte characters (1026 bytes)', 'error 22001',
    $$SELECT eventstore.append(repeat('é', 513), 0, ARRAY[eventstore.event('T', '{}')])$$);
SELECT pg_temp.x('append', 'stream_id of 512 two-byte characters (1024 bytes) is accepted', 'ok 1',
    $$SELECT stream_version FROM eventstore.append(repeat('é', 512), 0, ARRAY[eventstore.event('T', '{}')])$$,
    $$SELECT count(*) FROM eventstore.read_stream(repeat('é', 512))$$);
SELECT pg_temp.x('append', 'NULL events', 'error 22004',
    $$SELECT eventstore.append('bi-2', 0, NULL)$$);
SELECT pg_temp.x('append', 'empty events array', 'error 22023',
    $$SELECT eventstore.append('bi-2', 0, '{}')$$);
SELECT pg_temp.x('append', 'a NULL event', 'error 22004',
    $$SELECT eventstore.append('bi-2', 0, ARRAY[eventstore.event('T', '{}'), NULL])$$);
SELECT pg_temp.x('append', 'NULL event_type', 'error 22004',
    $$SELECT eventstore.append('bi-2', 0, ARRAY[eventstore.event(NULL, '{}')])$$);
SELECT pg_temp.x('append', 'empty event_type', 'error 22023',
    $$SELECT eventstore.append('bi-2', 0, ARRAY[eventstore.event('', '{}')])$$);
SELECT pg_temp.x('append', 'NULL data', 'error 22004',
    $$SELECT eventstore.append('bi-2', 0, ARRAY[eventstore.event('T', NULL)])$$);
SELECT pg_temp.x('append', 'metadata a JSON array', 'error 22023',
    $$SELECT eventstore.append('bi-2', 0, ARRAY[eventstore.event('T', '{}', '[1, 2]')])$$);
SELECT pg_temp.x('append', 'metadata a JSON string', 'error 22023',
    $$SELECT eventstore.append('bi-2', 0, ARRAY[eventstore.event('T', '{}', '"meta"')])$$);
SELECT pg_temp.x('append', 'metadata a JSON number', 'error 22023',
    $$SELECT eventstore.append('bi-2', 0, ARRAY[eventstore.event('T', '{}', '42')])$$);
SELECT pg_temp.x('append', 'metadata JSON null', 'error 22023',
    $$SELECT eventstore.append('bi-2', 0, ARRAY[eventstore.event('T', '{}', 'null')])$$);
SELECT pg_temp.x('append', 'metadata of the second event an array', 'error 22023',
    $$SELECT eventstore.append('bi-2', 0, ARRAY[eventstore.event('T', '{}'), eventstore.event('T', '{}', '[]')])$$);
SELECT pg_temp.x('append', 'data a JSON array is stored as given', 'ok [1, "two", null]',
    $$SELECT eventstore.append('bi-2', 0, ARRAY[eventstore.event('T', '[1, "two", null]')])$$,
    $$SELECT data::text FROM eventstore.read_stream('bi-2')$$);
SELECT pg_temp.x('append', 'data a JSON scalar is stored as given', 'ok "scalar"',
    $$SELECT eventstore.append('bi-2', 0, ARRAY[eventstore.event('T', '"scalar"')])$$,
    $$SELECT data::text FROM eventstore.read_stream('bi-2')$$);
SELECT pg_temp.x('append', 'data JSON null is stored as JSON null', 'ok null',
    $$SELECT eventstore.append('bi-2', 0, ARRAY[eventstore.event('T', 'null')])$$,
    $$SELECT data::text FROM eventstore.read_stream('bi-2')$$);
SELECT pg_temp.x('append', 'expected_version -2', 'error 22023',
    $$SELECT eventstore.append('bi-2', -2, ARRAY[eventstore.event('T', '{}')])$$);
SELECT pg_temp.x('append', 'expected_version -9223372036854775808', 'error 22023',
    $$SELECT eventstore.append('bi-2', '-9223372036854775808'::bigint, ARRAY[eventstore.event('T', '{}')])$$);
SELECT pg_temp.x('append', 'expected_version 9223372036854775807', 'error ES409',
    $$SELECT eventstore.append('bi-1', 9223372036854775807, ARRAY[eventstore.event('T', '{}')])$$);
SELECT pg_temp.x('append', 'expected_version 9223372036854775808 (overflows bigint)', 'error 22003',
    $$SELECT eventstore.append('bi-1', '9223372036854775808'::bigint, ARRAY[eventstore.event('T', '{}')])$$);
SELECT pg_temp.x('append', 'expected_version -1 for a stream that does not exist', 'error ES409',
    $$SELECT eventstore.append('bi-2', -1, ARRAY[eventstore.event('T', '{}')])$$);
SELECT pg_temp.x('append', 'expected_version 0 for an existing stream', 'error ES409',
    $$SELECT eventstore.append('bi-1', 0, ARRAY[eventstore.event('T', '{}')])$$);
SELECT pg_temp.x('append', 'a two-dimensional events array', 'error 2202E',
    $$SELECT eventstore.append('bi-2', 0, ARRAY[[eventstore.event('T', '{}')], [eventstore.event('T', '{}')]])$$);
SELECT pg_temp.x('append', 'an events array with lower bound 0 is one event', 'ok 1',
    $$SELECT stream_version FROM eventstore.append('bi-2', 0, '[0:0]={"(T,{},,,)"}'::eventstore.new_event[])$$);
SELECT pg_temp.x('append', 'one event id twice in the call', 'error 23505',
    $$SELECT eventstore.append('bi-2', 0, ARRAY[
        eventstore.event('T', '{}', NULL, 'b2000000-0000-4000-8000-000000000001'),
        eventstore.event('T', '{}', NULL, 'b2000000-0000-4000-8000-000000000001')])$$);
SELECT pg_temp.x('append', 'ids that only partly exist in the stream', 'error 23505',
    $$SELECT eventstore.append('bi-1', NULL, ARRAY[
        eventstore.event('T', '{}', NULL, 'b1000000-0000-4000-8000-000000000002'),
        eventstore.event('T', '{}', NULL, 'b2000000-0000-4000-8000-000000000009')])$$);
SELECT pg_temp.x('append', 'an exact retry with a stale expected version returns the original result', 'ok 2',
    $$SELECT stream_version FROM eventstore.append('bi-1', 0, ARRAY[
        eventstore.event('BiA', '{"n": 1}', NULL, 'b1000000-0000-4000-8000-000000000001'),
        eventstore.event('BiV1', '{"n": 2}', '{"m": true}', 'b1000000-0000-4000-8000-000000000002')])$$);
SELECT pg_temp.x('append', 'an event of 1 MB of data', 'error 54000',
    $$SELECT eventstore.append('bi-2', 0, ARRAY[eventstore.event('T', to_jsonb(repeat('d', 1048576)))])$$);
SELECT pg_temp.x('append', 'an event type of 1 MB', 'error 54000',
    $$SELECT eventstore.append('bi-2', 0, ARRAY[eventstore.event(repeat('t', 1048576), '{}')])$$);
SELECT pg_temp.x('append', 'metadata of 1 MB', 'error 54000',
    $$SELECT eventstore.append('bi-2', 0, ARRAY[eventstore.event('T', '{}', jsonb_build_object('m', repeat('m', 1048576)))])$$);
SELECT pg_temp.x('append', 'malformed JSON data', 'error 22P02',
    $$SELECT eventstore.append('bi-2', 0, ARRAY[eventstore.event('T', '{"unterminated": ')])$$);
SELECT pg_temp.x('append', 'malformed event id', 'error 22P02',
    $$SELECT eventstore.append('bi-2', 0, ARRAY[eventstore.event('T', '{}', NULL, 'not-a-uuid')])$$);
-- SQL-looking and unicode stream ids are stored exactly, in their category
SELECT pg_temp.x('append', 'stream id ' || to_json(s)::text || ' is stored exactly',
    'ok ' || s || '|' || split_part(s, '-', 1) || '|1|1',
    format($$SELECT eventstore.append(%L, 0, ARRAY[eventstore.event('T', '{}')])$$, s),
    format($$SELECT e.stream_id || '|' || eventstore.category(e.stream_id) || '|' || e.stream_version
                    || '|' || eventstore.stream_version(%1$L)
               FROM eventstore.read_stream(%1$L) e$$, s))
  FROM bi_nasty;
SELECT pg_temp.x('append', 'SQL-looking event type and metadata keys are stored exactly', 'ok true',
    format($q$SELECT eventstore.append('bi-2', 0, ARRAY[eventstore.event(%L, '{}', %L)])$q$, t, m),
    format($q$SELECT event_type = %L AND metadata = %L::jsonb FROM eventstore.read_stream('bi-2')$q$, t, m))
  FROM (VALUES ($t$'); DELETE FROM eventstore.events; --$t$,
                $j${"'; --": "$$", "\\": "\\u0000-free", "ключ": [{"a": null}]}$j$)) v(t, m);
SELECT pg_temp.x('append', 'a SQL-looking correlation id is recorded as a plain string',
    $$ok {"correlation_id": "x\"}'; DROP TABLE t; --"}$$,
    $$SELECT set_config('eventstore.correlation_id', $c$x"}'; DROP TABLE t; --$c$, true)$$,
    $$SELECT eventstore.append('bi-2', 0, ARRAY[eventstore.event('T', '{}')])$$,
    $$SELECT metadata::text FROM eventstore.read_stream('bi-2')$$);

------------------------------------------------------------------------
-- append_event(stream_id, expected_version, event_type, data, metadata, event_id)
------------------------------------------------------------------------
SELECT pg_temp.x('append_event', 'NULL stream_id', 'error 22004',
    $$SELECT eventstore.append_event(NULL, 0, 'T', '{}')$$);
SELECT pg_temp.x('append_event', 'empty stream_id', 'error 22023',
    $$SELECT eventstore.append_event('', 0, 'T', '{}')$$);
SELECT pg_temp.x('append_event', 'stream_id of 1 MB', 'error 22001',
    $$SELECT eventstore.append_event(repeat('s', 1048576), 0, 'T', '{}')$$);
SELECT pg_temp.x('append_event', 'NULL event_type', 'error 22004',
    $$SELECT eventstore.append_event('bi-2', 0, NULL, '{}')$$);
SELECT pg_temp.x('append_event', 'empty event_type', 'error 22023',
    $$SELECT eventstore.append_event('bi-2', 0, '', '{}')$$);
SELECT pg_temp.x('append_event', 'NULL data', 'error 22004',
    $$SELECT eventstore.append_event('bi-2', 0, 'T', NULL)$$);
SELECT pg_temp.x('append_event', 'metadata a JSON array', 'error 22023',
    $$SELECT eventstore.append_event('bi-2', 0, 'T', '{}', '[{"a": 1}]')$$);
SELECT pg_temp.x('append_event', 'metadata JSON true', 'error 22023',
    $$SELECT eventstore.append_event('bi-2', 0, 'T', '{}', 'true')$$);
SELECT pg_temp.x('append_event', 'expected_version -2', 'error 22023',
    $$SELECT eventstore.append_event('bi-2', -2, 'T', '{}')$$);
SELECT pg_temp.x('append_event', 'expected_version 9223372036854775807', 'error ES409',
    $$SELECT eventstore.append_event('bi-2', 9223372036854775807, 'T', '{}')$$);
SELECT pg_temp.x('append_event', 'data of 1 MB', 'error 54000',
    $$SELECT eventstore.append_event('bi-2', 0, 'T', to_jsonb(repeat('d', 1048576)))$$);
SELECT pg_temp.x('append_event', 'event type of 1 MB', 'error 54000',
    $$SELECT eventstore.append_event('bi-2', 0, repeat('t', 1048576), '{}')$$);
SELECT pg_temp.x('append_event', 'an event id of another stream is a new event here', 'ok 1',
    $$SELECT stream_version FROM eventstore.append_event('bi-2', 0, 'T', '{}', NULL, 'b1000000-0000-4000-8000-000000000001')$$);
SELECT pg_temp.x('append_event', 'a stored event id is a retry: the original version, nothing written', 'ok 1|2',
    $$SELECT stream_version FROM eventstore.append_event('bi-1', 0, 'Other', '{"x": 1}', NULL, 'b1000000-0000-4000-8000-000000000001')$$,
    $$SELECT (SELECT stream_version FROM eventstore.append_event('bi-1', 0, 'Other', '{"x": 1}', NULL,
                                                                 'b1000000-0000-4000-8000-000000000001'))
             || '|' || eventstore.stream_version('bi-1')$$);
SELECT pg_temp.x('append_event', 'stream id ' || to_json(s)::text || ' is stored exactly', 'ok ' || s,
    format($$SELECT eventstore.append_event(%L, NULL, 'T', '{}')$$, s),
    format($$SELECT stream_id FROM eventstore.read_stream(%L)$$, s))
  FROM bi_nasty WHERE s IN ($s$'); DROP TABLE eventstore.events; --$s$, 'ストリーム-3', '   ');

------------------------------------------------------------------------
-- event(event_type, data, metadata, event_id): a constructor, no checks
------------------------------------------------------------------------
SELECT pg_temp.x('event', 'all NULL', 'ok (,,,,)', $$SELECT eventstore.event(NULL, NULL)::text$$);
SELECT pg_temp.x('event', 'empty type, scalar data, array metadata', 'ok ("",1,[],,)',
    $$SELECT eventstore.event('', '1', '[]')::text$$);
SELECT pg_temp.x('event', 'a 1 MB type is kept whole', 'ok 1048576',
    $$SELECT length((eventstore.event(repeat('t', 1048576), '{}')).event_type)$$);
SELECT pg_temp.x('event', 'malformed event id', 'error 22P02',
    $$SELECT eventstore.event('T', '{}', NULL, 'b1000000-0000-4000-8000-00000000000g')$$);

------------------------------------------------------------------------
-- read_stream, read_stream_backwards, read_stream_until
------------------------------------------------------------------------
SELECT pg_temp.x(fn, 'NULL stream_id', 'error 22004', format($$SELECT count(*) FROM eventstore.%s(NULL)$$, fn))
  FROM unnest(ARRAY['read_stream', 'read_stream_backwards']::name[]) fn;
SELECT pg_temp.x(fn, 'empty stream_id', 'error 22023', format($$SELECT count(*) FROM eventstore.%s('')$$, fn))
  FROM unnest(ARRAY['read_stream', 'read_stream_backwards']::name[]) fn;
SELECT pg_temp.x(fn, 'stream_id of 1 MB', 'error 22001',
    format($$SELECT count(*) FROM eventstore.%s(repeat('s', 1048576))$$, fn))
  FROM unnest(ARRAY['read_stream', 'read_stream_backwards']::name[]) fn;
SELECT pg_temp.x(fn, 'max_count -1', 'error 22023', format($$SELECT count(*) FROM eventstore.%s('bi-1', NULL, -1)$$, fn))
  FROM unnest(ARRAY['read_stream', 'read_stream_backwards']::name[]) fn;
SELECT pg_temp.x(fn, 'max_count -2147483648', 'error 22023',
    format($$SELECT count(*) FROM eventstore.%s('bi-1', NULL, '-2147483648'::integer)$$, fn))
  FROM unnest(ARRAY['read_stream', 'read_stream_backwards']::name[]) fn;
SELECT pg_temp.x(fn, 'max_count 2147483648 (overflows integer)', 'error 22003',
    format($$SELECT count(*) FROM eventstore.%s('bi-1', NULL, '2147483648'::integer)$$, fn))
  FROM unnest(ARRAY['read_stream', 'read_stream_backwards']::name[]) fn;
SELECT pg_temp.x('read_stream', 'from_version -9223372036854775808, max_count 2147483647: all, upcast', 'ok 1:BiA,2:BiV2',
    $$SELECT string_agg(stream_version || ':' || event_type, ',' ORDER BY stream_version)
        FROM eventstore.read_stream('bi-1', '-9223372036854775808'::bigint, 2147483647)$$);
SELECT pg_temp.x('read_stream', 'from_version 9223372036854775807: nothing', 'ok 0',
    $$SELECT count(*) FROM eventstore.read_stream('bi-1', 9223372036854775807)$$);
SELECT pg_temp.x('read_stream', 'max_count 0: nothing', 'ok 0',
    $$SELECT count(*) FROM eventstore.read_stream('bi-1', 1, 0)$$);
SELECT pg_temp.x('read_stream_backwards', 'from_version -1: nothing', 'ok 0',
    $$SELECT count(*) FROM eventstore.read_stream_backwards('bi-1', -1)$$);
SELECT pg_temp.x('read_stream_backwards', 'from_version 9223372036854775807: all, descending', 'ok 2,1',
    $$SELECT string_agg(stream_version::text, ',') FROM eventstore.read_stream_backwards('bi-1', 9223372036854775807)$$);
SELECT pg_temp.x(fn, 'SQL-looking stream id ' || to_json(s)::text || ' reads nothing', 'ok 0',
    format($$SELECT count(*) FROM eventstore.%s(%L)$$, fn, s))
  FROM bi_nasty, unnest(ARRAY['read_stream', 'read_stream_backwards']::name[]) fn
 WHERE s IN ($s$x' OR '1'='1$s$, $s$'); DROP TABLE eventstore.events; --$s$, '%_*-wildcards');
SELECT pg_temp.x('read_stream_until', 'NULL stream_id', 'error 22004',
    $$SELECT count(*) FROM eventstore.read_stream_until(NULL, now())$$);
SELECT pg_temp.x('read_stream_until', 'empty stream_id', 'error 22023',
    $$SELECT count(*) FROM eventstore.read_stream_until('', now())$$);
SELECT pg_temp.x('read_stream_until', 'NULL until_time', 'error 22004',
    $$SELECT count(*) FROM eventstore.read_stream_until('bi-1', NULL)$$);
SELECT pg_temp.x('read_stream_until', 'max_count -1', 'error 22023',
    $$SELECT count(*) FROM eventstore.read_stream_until('bi-1', now(), 1, -1)$$);
SELECT pg_temp.x('read_stream_until', 'until infinity: all', 'ok 2',
    $$SELECT count(*) FROM eventstore.read_stream_until('bi-1', 'infinity')$$);
SELECT pg_temp.x('read_stream_until', 'until -infinity: nothing', 'ok 0',
    $$SELECT count(*) FROM eventstore.read_stream_until('bi-1', '-infinity')$$);
SELECT pg_temp.x('read_stream_until', 'malformed time', 'error 22007',
    $$SELECT count(*) FROM eventstore.read_stream_until('bi-1', 'yesterday-ish')$$);
SELECT pg_temp.x('read_stream_until', 'a table that is not a store', 'error 42809',
    $$SELECT count(*) FROM eventstore.read_stream_until('bi-1', now(), store => 'pg_catalog.pg_class')$$);

------------------------------------------------------------------------
-- read_query(query, after_position, max_count); tags and conditions of append
------------------------------------------------------------------------
SELECT pg_temp.x('read_query', 'NULL query', 'error 22004', $$SELECT count(*) FROM eventstore.read_query(NULL)$$);
SELECT pg_temp.x('read_query', 'a JSON array', 'error 22023', $$SELECT count(*) FROM eventstore.read_query('[]')$$);
SELECT pg_temp.x('read_query', 'a JSON number', 'error 22023', $$SELECT count(*) FROM eventstore.read_query('1')$$);
SELECT pg_temp.x('read_query', 'JSON null', 'error 22023', $$SELECT count(*) FROM eventstore.read_query('null')$$);
SELECT pg_temp.x('read_query', 'unknown key', 'error 22023', $$SELECT count(*) FROM eventstore.read_query('{"itemz": []}')$$);
SELECT pg_temp.x('read_query', 'items not an array', 'error 22023', $$SELECT count(*) FROM eventstore.read_query('{"items": "x"}')$$);
SELECT pg_temp.x('read_query', 'an item not an object', 'error 22023', $$SELECT count(*) FROM eventstore.read_query('{"items": [[]]}')$$);
SELECT pg_temp.x('read_query', 'an unknown item key', 'error 22023', $$SELECT count(*) FROM eventstore.read_query('{"items": [{"tag": ["a"]}]}')$$);
SELECT pg_temp.x('read_query', 'a non-string tag', 'error 22023', $$SELECT count(*) FROM eventstore.read_query('{"items": [{"tags": [true]}]}')$$);
SELECT pg_temp.x('read_query', 'a nested array of tags', 'error 22023', $$SELECT count(*) FROM eventstore.read_query('{"items": [{"tags": [["a"]]}]}')$$);
SELECT pg_temp.x('read_query', 'an empty tag', 'error 22023', $$SELECT count(*) FROM eventstore.read_query('{"items": [{"tags": [""]}]}')$$);
SELECT pg_temp.x('read_query', 'empty types', 'error 22023', $$SELECT count(*) FROM eventstore.read_query('{"items": [{"types": []}]}')$$);
SELECT pg_temp.x('read_query', '10,000 items', 'error 54000',
    $$SELECT count(*) FROM eventstore.read_query(jsonb_build_object('items', (SELECT jsonb_agg('{}'::jsonb) FROM generate_series(1, 10000))))$$);
SELECT pg_temp.x('read_query', '101 types in an item', 'error 54000',
    $$SELECT count(*) FROM eventstore.read_query(jsonb_build_object('items', jsonb_build_array(jsonb_build_object('types', (SELECT jsonb_agg('t' || i) FROM generate_series(1, 101) i)))))$$);
SELECT pg_temp.x('read_query', 'a 257-byte tag', 'error 22001',
    $$SELECT count(*) FROM eventstore.read_query(jsonb_build_object('items', jsonb_build_array(jsonb_build_object('tags', jsonb_build_array(repeat('x', 257))))))$$);
SELECT pg_temp.x('read_query', 'max_count -1', 'error 22023', $$SELECT count(*) FROM eventstore.read_query('{}', 0, -1)$$);
SELECT pg_temp.x('read_query', 'NULL store', 'error 22004', $$SELECT count(*) FROM eventstore.read_query('{}', 0, 1, NULL)$$);
SELECT pg_temp.x('read_query', 'a store that is a plain table', 'error 42809',
    $$SELECT count(*) FROM eventstore.read_query('{}', 0, 1, 'bi_nasty')$$);
SELECT pg_temp.x('read_query', 'a quote and a backslash in a tag: no match, no error', 'ok 0',
    $$SELECT count(*) FROM eventstore.read_query('{"items": [{"tags": ["a''b\\c"], "types": ["x''); DROP TABLE t; --"]}]}')$$);
SELECT pg_temp.x('read_query', 'after_position 9223372036854775807: nothing', 'ok 0',
    $$SELECT count(*) FROM eventstore.read_query('{}', 9223372036854775807)$$);
SELECT pg_temp.x('append_event', 'a NULL tag', 'error 22004', $$SELECT eventstore.append_event('bi-q', NULL, 'T', '{}', tags => ARRAY[NULL::text])$$);
SELECT pg_temp.x('append_event', 'an empty tag', 'error 22023', $$SELECT eventstore.append_event('bi-q', NULL, 'T', '{}', tags => ARRAY[''])$$);
SELECT pg_temp.x('append_event', '65 tags', 'error 54000',
    $$SELECT eventstore.append_event('bi-q', NULL, 'T', '{}', tags => (SELECT array_agg('t' || i) FROM generate_series(1, 65) i))$$);
SELECT pg_temp.x('append_event', 'a 257-byte tag', 'error 22001', $$SELECT eventstore.append_event('bi-q', NULL, 'T', '{}', tags => ARRAY[repeat('x', 257)])$$);
SELECT pg_temp.x('append_event', 'a two-dimensional tags array', 'error 2202E', $$SELECT eventstore.append_event('bi-q', NULL, 'T', '{}', tags => '{{a},{b}}')$$);
SELECT pg_temp.x('append_event', 'condition a JSON string', 'error 22023', $$SELECT eventstore.append_event('bi-q', NULL, 'T', '{}', condition => '"x"')$$);
SELECT pg_temp.x('append_event', 'condition without its query', 'error 22023', $$SELECT eventstore.append_event('bi-q', NULL, 'T', '{}', condition => '{"after": 0}')$$);
SELECT pg_temp.x('append_event', 'condition with an unknown key', 'error 22023',
    $$SELECT eventstore.append_event('bi-q', NULL, 'T', '{}', condition => '{"fail_if_events_match": {}, "afterr": 0}')$$);
SELECT pg_temp.x('append_event', 'condition after -1', 'error 22023',
    $$SELECT eventstore.append_event('bi-q', NULL, 'T', '{}', condition => '{"fail_if_events_match": {}, "after": -1}')$$);
SELECT pg_temp.x('append_event', 'condition after 2^63', 'error 22023',
    $$SELECT eventstore.append_event('bi-q', NULL, 'T', '{}', condition => '{"fail_if_events_match": {}, "after": 9223372036854775808}')$$);
SELECT pg_temp.x('append_event', 'condition after beyond the horizon', 'error 22023',
    $$SELECT eventstore.append_event('bi-q', NULL, 'T', '{}', condition => '{"fail_if_events_match": {}, "after": 9223372036854775807}')$$);
SELECT pg_temp.x('append_event', 'condition: the match-all query, no after, on a store with events', 'error ES412',
    $$SELECT eventstore.append_event('bi-q', NULL, 'T', '{}', condition => '{"fail_if_events_match": {}}')$$);
SELECT pg_temp.x('append', 'condition with 10,000 items', 'error 54000',
    $$SELECT eventstore.append('bi-q', NULL, ARRAY[eventstore.event('T', '{}')],
        jsonb_build_object('fail_if_events_match', jsonb_build_object('items', (SELECT jsonb_agg('{}'::jsonb) FROM generate_series(1, 10000)))))$$);
SELECT pg_temp.x('append', 'a NULL tag in the second event', 'error 22004',
    $$SELECT eventstore.append('bi-q', NULL, ARRAY[eventstore.event('T', '{}'), eventstore.event('T', '{}', tags => ARRAY['a', NULL])])$$);

------------------------------------------------------------------------
-- read_all, read_all_until, read_category
------------------------------------------------------------------------
SELECT pg_temp.x('read_all', 'max_count -1', 'error 22023', $$SELECT count(*) FROM eventstore.read_all(0, -1)$$);
SELECT pg_temp.x('read_all', 'max_count -2147483648', 'error 22023',
    $$SELECT count(*) FROM eventstore.read_all(0, '-2147483648'::integer)$$);
-- (this transaction's own appends are in flight: read_all stops before them)
SELECT pg_temp.x('read_all', 'NULL after_position and max_count: everything before this transaction''s appends', 'ok true',
    $$SELECT count(*) = (SELECT count(*) FROM eventstore.events WHERE global_position <
                           (SELECT min(global_position) FROM eventstore.events WHERE stream_id = 'bi-1'))
        FROM eventstore.read_all(NULL, NULL)$$);
SELECT pg_temp.x('read_all', 'after_position -9223372036854775808: from the start', 'ok true',
    $$SELECT count(*) = (SELECT count(*) FROM eventstore.events WHERE global_position <
                           (SELECT min(global_position) FROM eventstore.events WHERE stream_id = 'bi-1'))
        FROM eventstore.read_all('-9223372036854775808'::bigint, 2147483647)$$);
SELECT pg_temp.x('read_all', 'after_position 9223372036854775807: nothing', 'ok 0',
    $$SELECT count(*) FROM eventstore.read_all(9223372036854775807)$$);
SELECT pg_temp.x('read_all', 'max_count 0: nothing', 'ok 0', $$SELECT count(*) FROM eventstore.read_all(0, 0)$$);
SELECT pg_temp.x('read_all_until', 'NULL until_time', 'error 22004', $$SELECT count(*) FROM eventstore.read_all_until(NULL)$$);
SELECT pg_temp.x('read_all_until', 'max_count -1', 'error 22023',
    $$SELECT count(*) FROM eventstore.read_all_until(now(), 0, -1)$$);
SELECT pg_temp.x('read_all_until', 'until -infinity: nothing', 'ok 0',
    $$SELECT count(*) FROM eventstore.read_all_until('-infinity', 0, NULL)$$);
SELECT pg_temp.x('read_all_until', 'until infinity, after 9223372036854775807: nothing', 'ok 0',
    $$SELECT count(*) FROM eventstore.read_all_until('infinity', 9223372036854775807)$$);
SELECT pg_temp.x('read_all_until', 'NULL store', 'error 22004',
    $$SELECT count(*) FROM eventstore.read_all_until('infinity', 0, 10, NULL)$$);
SELECT pg_temp.x('read_all_until', 'a table that is not a store', 'error 42809',
    $$SELECT count(*) FROM eventstore.read_all_until('infinity', 0, 10, 'pg_catalog.pg_class')$$);
SELECT pg_temp.x('read_category', 'NULL category', 'error 22004', $$SELECT count(*) FROM eventstore.read_category(NULL)$$);
SELECT pg_temp.x('read_category', 'empty category', 'error 22023', $$SELECT count(*) FROM eventstore.read_category('')$$);
SELECT pg_temp.x('read_category', 'max_count -1', 'error 22023', $$SELECT count(*) FROM eventstore.read_category('bi', 0, -1)$$);
SELECT pg_temp.x('read_category', 'a category of 1 MB: nothing', 'ok 0',
    $$SELECT count(*) FROM eventstore.read_category(repeat('c', 1048576))$$);
SELECT pg_temp.x('read_category', 'an unknown category: nothing', 'ok 0',
    $$SELECT count(*) FROM eventstore.read_category('no_such_category')$$);
SELECT pg_temp.x('read_category', 'LIKE wildcards are not wildcards', 'ok 0',
    $$SELECT count(*) FROM eventstore.read_category('b_')$$);
SELECT pg_temp.x('read_category', 'a % category matches nothing', 'ok 0',
    $$SELECT count(*) FROM eventstore.read_category('%')$$);
SELECT pg_temp.x('read_category', 'SQL-looking category ' || to_json(s)::text || ' matches nothing', 'ok 0',
    format($$SELECT count(*) FROM eventstore.read_category(%L)$$, s))
  FROM bi_nasty WHERE s IN ($s$x' OR '1'='1$s$, $s$'); DROP TABLE eventstore.events; --$s$);
SELECT pg_temp.x('read_category', 'the category bi: nothing, this transaction''s appends are in flight', 'ok <null>',
    $$SELECT string_agg(stream_id || ':' || event_type, ',' ORDER BY global_position)
        FROM eventstore.read_category('bi', -1, 2147483647)$$);

------------------------------------------------------------------------
-- stream_version, stream_version_at, category (SQL, STRICT where no check)
------------------------------------------------------------------------
SELECT pg_temp.x('stream_version', 'NULL: NULL (strict)', 'ok <null>', $$SELECT eventstore.stream_version(NULL)$$);
SELECT pg_temp.x('stream_version', 'empty: 0', 'ok 0', $$SELECT eventstore.stream_version('')$$);
SELECT pg_temp.x('stream_version', '1 MB: 0', 'ok 0', $$SELECT eventstore.stream_version(repeat('s', 1048576))$$);
SELECT pg_temp.x('stream_version', 'SQL-looking: 0', 'ok 0', $$SELECT eventstore.stream_version($s$bi-1' OR '1'='1$s$)$$);
SELECT pg_temp.x('stream_version', 'bi-1: 2', 'ok 2', $$SELECT eventstore.stream_version('bi-1')$$);
SELECT pg_temp.x('stream_version_at', 'NULL stream_id', 'error 22004', $$SELECT eventstore.stream_version_at(NULL, now())$$);
SELECT pg_temp.x('stream_version_at', 'empty stream_id', 'error 22023', $$SELECT eventstore.stream_version_at('', now())$$);
SELECT pg_temp.x('stream_version_at', 'NULL time', 'error 22004', $$SELECT eventstore.stream_version_at('bi-1', NULL)$$);
SELECT pg_temp.x('stream_version_at', 'stream_id of 1 MB', 'error 22001',
    $$SELECT eventstore.stream_version_at(repeat('s', 1048576), now())$$);
SELECT pg_temp.x('stream_version_at', '-infinity: 0', 'ok 0', $$SELECT eventstore.stream_version_at('bi-1', '-infinity')$$);
SELECT pg_temp.x('stream_version_at', 'infinity: 2', 'ok 2', $$SELECT eventstore.stream_version_at('bi-1', 'infinity')$$);
SELECT pg_temp.x('stream_version_at', 'NULL store', 'error 22004', $$SELECT eventstore.stream_version_at('bi-1', now(), NULL)$$);
SELECT pg_temp.x('stream_version_at', 'a table that is not a store', 'error 42809',
    $$SELECT eventstore.stream_version_at('bi-1', now(), 'pg_catalog.pg_class')$$);
SELECT pg_temp.x('category', 'NULL: NULL (strict)', 'ok <null>', $$SELECT eventstore.category(NULL)$$);
SELECT pg_temp.x('category', 'empty: empty', 'ok ', $$SELECT eventstore.category('')$$);
SELECT pg_temp.x('category', 'leading dash: empty', 'ok ', $$SELECT eventstore.category('-x-y')$$);
SELECT pg_temp.x('category', 'no dash: itself', 'ok ストリーム', $$SELECT eventstore.category('ストリーム')$$);
SELECT pg_temp.x('category', '1 MB without a dash: itself', 'ok 1048576',
    $$SELECT length(eventstore.category(repeat('c', 1048576)))$$);

------------------------------------------------------------------------
-- The argument checkers (_stream_arg, _count_arg, _channel_arg, _time_arg)
------------------------------------------------------------------------
SELECT pg_temp.x('_stream_arg', 'NULL', 'error 22004', $$SELECT eventstore._stream_arg(NULL)$$);
SELECT pg_temp.x('_stream_arg', 'empty', 'error 22023', $$SELECT eventstore._stream_arg('')$$);
SELECT pg_temp.x('_stream_arg', '1 MB', 'error 22001', $$SELECT eventstore._stream_arg(repeat('s', 1048576))$$);
SELECT pg_temp.x('_stream_arg', 'SQL-looking: itself', $$ok x' OR '1'='1$$, $$SELECT eventstore._stream_arg($s$x' OR '1'='1$s$)$$);
SELECT pg_temp.x('_count_arg', 'NULL: NULL (no limit)', 'ok <null>', $$SELECT eventstore._count_arg(NULL)$$);
SELECT pg_temp.x('_count_arg', '-1', 'error 22023', $$SELECT eventstore._count_arg(-1)$$);
SELECT pg_temp.x('_count_arg', '-2147483648', 'error 22023', $$SELECT eventstore._count_arg('-2147483648'::integer)$$);
SELECT pg_temp.x('_count_arg', '2147483647: itself', 'ok 2147483647', $$SELECT eventstore._count_arg(2147483647)$$);
SELECT pg_temp.x('_channel_arg', 'NULL', 'error 22004', $$SELECT eventstore._channel_arg(NULL)$$);
SELECT pg_temp.x('_channel_arg', 'empty', 'error 22023', $$SELECT eventstore._channel_arg('')$$);
SELECT pg_temp.x('_channel_arg', '64 bytes', 'error 42622', $$SELECT eventstore._channel_arg(repeat('c', 64))$$);
SELECT pg_temp.x('_channel_arg', '32 two-byte characters (64 bytes)', 'error 42622', $$SELECT eventstore._channel_arg(repeat('é', 32))$$);
SELECT pg_temp.x('_channel_arg', '1 MB', 'error 42622', $$SELECT eventstore._channel_arg(repeat('c', 1048576))$$);
SELECT pg_temp.x('_channel_arg', '63 bytes: itself', 'ok 63', $$SELECT octet_length(eventstore._channel_arg(repeat('c', 63)))$$);
SELECT pg_temp.x('_time_arg', 'NULL', 'error 22004', $$SELECT eventstore._time_arg(NULL)$$);
SELECT pg_temp.x('_time_arg', 'infinity: itself', 'ok infinity', $$SELECT eventstore._time_arg('infinity')$$);
SELECT pg_temp.x('_time_arg', '-infinity: itself', 'ok -infinity', $$SELECT eventstore._time_arg('-infinity')$$);
SELECT pg_temp.x('_event_size', 'NULL data', 'ok <null>', $$SELECT eventstore._event_size(NULL, 'T', NULL)$$);
SELECT pg_temp.x('_event_size', 'empty object, empty type, no metadata', 'ok 8', $$SELECT eventstore._event_size('{}', '', NULL)$$);
SELECT pg_temp.x('_event_size', 'a compressible 1 MB value counts in full', 'ok true',
    $$SELECT eventstore._event_size(jsonb_build_object('x', repeat('x', 1048576)), 'T', '{}') > 1048576$$);

------------------------------------------------------------------------
-- import_events(source); every call is rolled back by try()
------------------------------------------------------------------------
SELECT pg_temp.x('import_events', 'NULL source', 'error 22004', $$SELECT eventstore.import_events(NULL)$$);
SELECT pg_temp.x('import_events', 'OID 0', 'error 42P01', $$SELECT eventstore.import_events(0)$$);
SELECT pg_temp.x('import_events', 'eventstore.events itself', 'error 22023', $$SELECT eventstore.import_events('eventstore.events')$$);
SELECT pg_temp.x('import_events', 'a table without the columns', 'error 42703', $$SELECT eventstore.import_events('bi_nasty')$$);
SELECT pg_temp.x('import_events', 'NULL store', 'error 22004', $$SELECT eventstore.import_events('bi_nasty', NULL)$$);
SELECT pg_temp.x('import_events', 'a store that is a plain table', 'error 42809', $$SELECT eventstore.import_events('bi_nasty', 'bi_nasty')$$);
SELECT pg_temp.x('import_events', 'store OID 0', 'error 42P01', $$SELECT eventstore.import_events('bi_nasty', 0)$$);
-- the sources, made here: try() runs only statements that return a row
CREATE TEMP TABLE bi_st_long (LIKE eventstore.import_row);
INSERT INTO bi_st_long VALUES (1, repeat('s', 1048576), 1, 'T', '{}', NULL, now(), NULL);
CREATE TEMP TABLE bi_st_v1 (LIKE eventstore.import_row);
INSERT INTO bi_st_v1 VALUES (1, 'bi-1', 1, 'T', '{}', NULL, now(), NULL);
CREATE TEMP TABLE bi_st_nasty (LIKE eventstore.import_row);
INSERT INTO bi_st_nasty SELECT row_number() OVER (), s, 1, 'T', '{}', NULL, now(), NULL FROM bi_nasty;
CREATE TEMP TABLE "bi""; DROP TABLE eventstore.events; --" (LIKE eventstore.import_row);
-- values stored compressed: measured and read in full
CREATE TEMP TABLE bi_st_big (LIKE eventstore.import_row);
INSERT INTO bi_st_big VALUES (1, 'bi-big-1', 1, 'T', jsonb_build_object('x', repeat('x', 1048576)), NULL, now(), NULL);
CREATE TEMP TABLE bi_st_md (LIKE eventstore.import_row);
INSERT INTO bi_st_md VALUES (1, 'bi-md-1', 1, 'T', '{}', jsonb_build_array(repeat('x', 100000)), now(), NULL);
SELECT pg_temp.x('import_events', 'a stream id of 1 MB', 'error 22001', $$SELECT eventstore.import_events('bi_st_long')$$);
SELECT pg_temp.x('import_events', 'version 1 of stream bi-1, which is at 2', 'error ES409',
    $$SELECT eventstore.import_events('bi_st_v1')$$);
SELECT pg_temp.x('import_events', 'SQL-looking stream ids: imported as they are', 'ok 15',
    $$SELECT eventstore.import_events('bi_st_nasty')$$,
    $$SELECT count(*) FROM eventstore.events e JOIN bi_nasty n ON n.s = e.stream_id$$);
SELECT pg_temp.x('import_events', 'a compressible 1 MB event counts in full', 'error 54000',
    $$SELECT eventstore.import_events('bi_st_big')$$);
SELECT pg_temp.x('import_events', 'compressed metadata that is an array', 'error 22023',
    $$SELECT eventstore.import_events('bi_st_md')$$);
SELECT pg_temp.x('import_events', 'a SQL-looking source name', 'ok 0',
    $$SELECT eventstore.import_events('"bi""; DROP TABLE eventstore.events; --"')$$);

------------------------------------------------------------------------
-- Projections: register, unregister, enable, disable, rebuild
------------------------------------------------------------------------
SELECT pg_temp.x('register_projection', 'NULL name', 'error 22004',
    $$SELECT eventstore.register_projection(NULL, 'bi_noop(eventstore.events)')$$);
SELECT pg_temp.x('register_projection', 'empty name', 'error 22023',
    $$SELECT eventstore.register_projection('', 'bi_noop(eventstore.events)')$$);
SELECT pg_temp.x('register_projection', 'NULL handler', 'error 22004',
    $$SELECT eventstore.register_projection('bi_p2', NULL)$$);
SELECT pg_temp.x('register_projection', 'a taken name', 'error 42710',
    $$SELECT eventstore.register_projection('bi_proj', 'bi_noop(eventstore.events)')$$);
SELECT pg_temp.x('register_projection', 'a handler of another signature', 'error 42P13',
    $$SELECT eventstore.register_projection('bi_p2', 'bi_wrong(integer)')$$);
SELECT pg_temp.x('register_projection', 'a handler returning a set', 'error 42P13',
    $$SELECT eventstore.register_projection('bi_p2', 'bi_setof(eventstore.events)')$$);
SELECT pg_temp.x('register_projection', 'a procedure as handler', 'error 42809',
    $$SELECT eventstore.register_projection('bi_p2', 'bi_proc(eventstore.events)')$$);
SELECT pg_temp.x('register_projection', 'an aggregate as handler', 'error 42809',
    $$SELECT eventstore.register_projection('bi_p2', 'pg_catalog.max(bigint)')$$);
SELECT pg_temp.x('register_projection', 'a handler that does not exist', 'error 42883',
    $$SELECT eventstore.register_projection('bi_p2', 'no_such_handler(eventstore.events)')$$);
SELECT pg_temp.x('register_projection', 'handler OID 0', 'error 42883',
    $$SELECT eventstore.register_projection('bi_p2', 0::regprocedure)$$);
SELECT pg_temp.x('register_projection', 'a reset handler taking arguments', 'error 42P13',
    $$SELECT eventstore.register_projection('bi_p2', 'bi_noop(eventstore.events)', NULL, 'bi_wrong(integer)')$$);
SELECT pg_temp.x('register_projection', 'empty event_types', 'error 22023',
    $$SELECT eventstore.register_projection('bi_p2', 'bi_noop(eventstore.events)', '{}')$$);
SELECT pg_temp.x('register_projection', 'event_types with a NULL', 'error 22004',
    $$SELECT eventstore.register_projection('bi_p2', 'bi_noop(eventstore.events)', ARRAY['A', NULL])$$);
SELECT pg_temp.x('register_projection', 'NULL store', 'error 22004',
    $$SELECT eventstore.register_projection('bi_p2', 'bi_noop(eventstore.events)', store => NULL)$$);
SELECT pg_temp.x('register_projection', 'a table that is not a store', 'error 42809',
    $$SELECT eventstore.register_projection('bi_p2', 'bi_noop(eventstore.events)', store => 'pg_catalog.pg_class')$$);
SELECT pg_temp.x('register_projection', 'a name of 1 MB of random text exceeds the index row limit', 'error 54000',
    $$SELECT eventstore.register_projection(string_agg(md5(g::text), ''), 'bi_noop(eventstore.events)')
        FROM generate_series(1, 32768) g$$);
SELECT pg_temp.x('register_projection', 'SQL-looking name ' || to_json(s)::text || ' is registered exactly', 'ok ' || s,
    format($$SELECT eventstore.register_projection(%L, 'bi_noop(eventstore.events)', ARRAY[%1$L])$$, s),
    format($$SELECT name FROM eventstore.projections WHERE event_types = ARRAY[%L]$$, s))
  FROM bi_nasty WHERE s IN ($s$'); DROP TABLE eventstore.events; --$s$, $s$$$; SELECT pg_sleep(10); $$$s$, 'événement-ß-🔥');
SELECT pg_temp.x(fn, 'NULL name', 'error 22004', format($$SELECT eventstore.%s(NULL)$$, fn))
  FROM unnest(ARRAY['unregister_projection', 'enable_projection', 'disable_projection', 'rebuild_projection']::name[]) fn;
SELECT pg_temp.x(fn, 'empty name', 'error 22023', format($$SELECT eventstore.%s('')$$, fn))
  FROM unnest(ARRAY['unregister_projection', 'enable_projection', 'disable_projection', 'rebuild_projection']::name[]) fn;
SELECT pg_temp.x(fn, 'an unknown name', 'error 42704', format($$SELECT eventstore.%s('no_such_projection')$$, fn))
  FROM unnest(ARRAY['unregister_projection', 'enable_projection', 'disable_projection', 'rebuild_projection']::name[]) fn;
SELECT pg_temp.x(fn, 'a SQL-looking unknown name', 'error 42704', format($$SELECT eventstore.%s(%L)$$, fn, $s$bi_proj' OR '1'='1$s$))
  FROM unnest(ARRAY['unregister_projection', 'enable_projection', 'disable_projection', 'rebuild_projection']::name[]) fn;
SELECT pg_temp.x(fn, 'a name of 1 MB', 'error 42704', format($$SELECT eventstore.%s(repeat('p', 1048576))$$, fn))
  FROM unnest(ARRAY['unregister_projection', 'enable_projection', 'disable_projection', 'rebuild_projection']::name[]) fn;
SELECT pg_temp.x('disable_projection', 'bi_proj: disabled', 'ok false',
    $$SELECT eventstore.disable_projection('bi_proj')$$,
    $$SELECT enabled::text FROM eventstore.projections WHERE name = 'bi_proj'$$);
SELECT pg_temp.x('enable_projection', 'bi_proj twice: enabled', 'ok true',
    $$SELECT eventstore.enable_projection('bi_proj')$$, $$SELECT eventstore.enable_projection('bi_proj')$$,
    $$SELECT enabled::text FROM eventstore.projections WHERE name = 'bi_proj'$$);
SELECT pg_temp.x('rebuild_projection', 'bi_proj: replays its events', 'ok true',
    $$SELECT eventstore.rebuild_projection('bi_proj')
             = (SELECT count(*) FROM eventstore.events WHERE event_type = 'BiA')$$);
SELECT pg_temp.x('unregister_projection', 'bi_proj: gone', 'ok 0',
    $$SELECT eventstore.unregister_projection('bi_proj')$$,
    $$SELECT count(*) FROM eventstore.projections WHERE name = 'bi_proj'$$);

------------------------------------------------------------------------
-- Routes, enqueue, relay_once, relay_status, _relay_wakeup
------------------------------------------------------------------------
SELECT pg_temp.x('add_route', 'NULL channel', 'error 22004', $$SELECT eventstore.add_route(NULL)$$);
SELECT pg_temp.x('add_route', 'empty channel', 'error 22023', $$SELECT eventstore.add_route('')$$);
SELECT pg_temp.x('add_route', 'channel of 64 bytes', 'error 42622', $$SELECT eventstore.add_route(repeat('c', 64))$$);
SELECT pg_temp.x('add_route', 'channel of 32 two-byte characters', 'error 42622', $$SELECT eventstore.add_route(repeat('ß', 32))$$);
SELECT pg_temp.x('add_route', 'channel of 1 MB', 'error 42622', $$SELECT eventstore.add_route(repeat('c', 1048576))$$);
SELECT pg_temp.x('add_route', 'a taken channel', 'error 42710', $$SELECT eventstore.add_route('bi_chan')$$);
SELECT pg_temp.x('add_route', 'empty event_types', 'error 22023', $$SELECT eventstore.add_route('bi_c2', '{}')$$);
SELECT pg_temp.x('add_route', 'event_types with a NULL', 'error 22004', $$SELECT eventstore.add_route('bi_c2', ARRAY[NULL::text])$$);
SELECT pg_temp.x('add_route', 'empty categories', 'error 22023', $$SELECT eventstore.add_route('bi_c2', NULL, '{}')$$);
SELECT pg_temp.x('add_route', 'categories with a NULL', 'error 22004', $$SELECT eventstore.add_route('bi_c2', NULL, ARRAY['a', NULL])$$);
SELECT pg_temp.x('add_route', 'NULL with_data', 'error 22004', $$SELECT eventstore.add_route('bi_c2', with_data => NULL)$$);
SELECT pg_temp.x('add_route', 'NULL store', 'error 22004', $$SELECT eventstore.add_route('bi_c2', store => NULL)$$);
SELECT pg_temp.x('add_route', 'a store that is a plain table', 'error 42809',
    $$SELECT eventstore.add_route('bi_c2', store => 'bi_nasty')$$);
SELECT pg_temp.x('add_route', 'channel of 63 bytes', 'ok 63',
    $$SELECT eventstore.add_route(repeat('c', 63))$$,
    $$SELECT octet_length(channel) FROM eventstore.routes WHERE channel LIKE 'ccc%'$$);
SELECT pg_temp.x('add_route', 'SQL-looking channel ' || to_json(s)::text || ' is routed to exactly',
    'ok ' || s || '|' || s,
    format($$SELECT eventstore.add_route(%L, NULL, ARRAY['bi'])$$, s),
    $$SELECT eventstore.append_event('bi-1', NULL, 'T', '{}')$$,
    format($$SELECT r.channel || '|' || o.channel FROM eventstore.routes r
               JOIN eventstore.outbox o ON o.channel = r.channel
              WHERE r.channel = %L$$, s))
  FROM bi_nasty;
SELECT pg_temp.x('remove_route', 'NULL channel', 'error 22004', $$SELECT eventstore.remove_route(NULL)$$);
SELECT pg_temp.x('remove_route', 'empty channel', 'error 22023', $$SELECT eventstore.remove_route('')$$);
SELECT pg_temp.x('remove_route', 'channel of 1 MB', 'error 42622', $$SELECT eventstore.remove_route(repeat('c', 1048576))$$);
SELECT pg_temp.x('remove_route', 'an unknown channel', 'error 42704', $$SELECT eventstore.remove_route('no_such_channel')$$);
SELECT pg_temp.x('remove_route', 'a SQL-looking unknown channel', 'error 42704',
    $$SELECT eventstore.remove_route($s$bi_chan' OR '1'='1$s$)$$);
SELECT pg_temp.x('remove_route', 'bi_chan: gone', 'ok 0',
    $$SELECT eventstore.remove_route('bi_chan')$$, $$SELECT count(*) FROM eventstore.routes WHERE channel = 'bi_chan'$$);
SELECT pg_temp.x('enqueue', 'NULL channel', 'error 22004', $$SELECT eventstore.enqueue(NULL, '{}')$$);
SELECT pg_temp.x('enqueue', 'empty channel', 'error 22023', $$SELECT eventstore.enqueue('', '{}')$$);
SELECT pg_temp.x('enqueue', 'channel of 64 bytes', 'error 42622', $$SELECT eventstore.enqueue(repeat('c', 64), '{}')$$);
SELECT pg_temp.x('enqueue', 'NULL payload', 'error 22004', $$SELECT eventstore.enqueue('bi_chan', NULL)$$);
SELECT pg_temp.x('enqueue', 'payload of 1 MB', 'error 54000', $$SELECT eventstore.enqueue('bi_chan', to_jsonb(repeat('p', 1048576)))$$);
SELECT pg_temp.x('enqueue', 'headers of 1 MB', 'error 54000',
    $$SELECT eventstore.enqueue('bi_chan', '{}', jsonb_build_object('h', repeat('h', 1048576)))$$);
SELECT pg_temp.x('enqueue', 'scalar payload, array headers, SQL-looking channel: stored as given',
    $$ok x' OR '1'='1|"p"|[1, 2]$$,
    $$SELECT eventstore.enqueue($s$x' OR '1'='1$s$, '"p"', '[1, 2]')$$,
    $$SELECT channel || '|' || payload::text || '|' || headers::text FROM eventstore.outbox
       WHERE id = (SELECT max(id) FROM eventstore.outbox)$$);
SELECT pg_temp.x('relay_once', 'max_count 0', 'error 22023', $$SELECT eventstore.relay_once(0)$$);
SELECT pg_temp.x('relay_once', 'max_count -1', 'error 22023', $$SELECT eventstore.relay_once(-1)$$);
SELECT pg_temp.x('relay_once', 'max_count -2147483648', 'error 22023', $$SELECT eventstore.relay_once('-2147483648'::integer)$$);
SELECT pg_temp.x('relay_once', 'max_count 2147483647: publishes nothing of this open transaction', 'ok true',
    $$SELECT eventstore.relay_once(2147483647) >= 0
             AND NOT EXISTS (SELECT FROM eventstore.outbox o JOIN eventstore.events e USING (global_position)
                              WHERE e.stream_id = 'bi-1' AND o.published_at IS NOT NULL)$$);
SELECT pg_temp.x('relay_status', 'one row for this database', 'ok 1',
    $$SELECT count(*) FROM eventstore.relay_status() WHERE database = current_database()$$);
SELECT pg_temp.x('_relay_wakeup', 'returns', 'ok ', $$SELECT eventstore._relay_wakeup()$$);

------------------------------------------------------------------------
-- Durable consumers
------------------------------------------------------------------------
SELECT pg_temp.x('consumer_poll', 'NULL consumer', 'error 22023', $$SELECT count(*) FROM eventstore.consumer_poll(NULL, 'bi_chan')$$);
SELECT pg_temp.x('consumer_poll', 'empty consumer', 'error 22023', $$SELECT count(*) FROM eventstore.consumer_poll('', 'bi_chan')$$);
SELECT pg_temp.x('consumer_poll', 'NULL channel', 'error 22004', $$SELECT count(*) FROM eventstore.consumer_poll('bi_k', NULL)$$);
SELECT pg_temp.x('consumer_poll', 'empty channel', 'error 22023', $$SELECT count(*) FROM eventstore.consumer_poll('bi_k', '')$$);
SELECT pg_temp.x('consumer_poll', 'channel of 64 bytes', 'error 42622',
    $$SELECT count(*) FROM eventstore.consumer_poll('bi_k', repeat('c', 64))$$);
SELECT pg_temp.x('consumer_poll', 'max_count -1', 'error 22023', $$SELECT count(*) FROM eventstore.consumer_poll('bi_k', 'bi_chan', -1)$$);
SELECT pg_temp.x('consumer_poll', 'max_count NULL', 'error 22023', $$SELECT count(*) FROM eventstore.consumer_poll('bi_k', 'bi_chan', NULL)$$);
SELECT pg_temp.x('consumer_poll', 'an unknown channel: nothing', 'ok 0',
    $$SELECT count(*) FROM eventstore.consumer_poll('bi_k', 'no_such_channel')$$);
SELECT pg_temp.x('consumer_poll', 'SQL-looking consumer and channel: nothing', 'ok 0',
    $$SELECT count(*) FROM eventstore.consumer_poll($s$k' OR '1'='1$s$, $s$c' OR '1'='1$s$, 2147483647)$$);
SELECT pg_temp.x('consumer_poll', 'a consumer name of 1 MB: nothing', 'ok 0',
    $$SELECT count(*) FROM eventstore.consumer_poll(repeat('k', 1048576), 'bi_chan')$$);
SELECT pg_temp.x('consumer_ack', 'NULL consumer', 'error 22023', $$SELECT eventstore.consumer_ack(NULL, 'bi_chan', 1)$$);
SELECT pg_temp.x('consumer_ack', 'empty consumer', 'error 22023', $$SELECT eventstore.consumer_ack('', 'bi_chan', 1)$$);
SELECT pg_temp.x('consumer_ack', 'NULL channel', 'error 22004', $$SELECT eventstore.consumer_ack('bi_k', NULL, 1)$$);
SELECT pg_temp.x('consumer_ack', 'empty channel', 'error 22023', $$SELECT eventstore.consumer_ack('bi_k', '', 1)$$);
SELECT pg_temp.x('consumer_ack', 'channel of 1 MB', 'error 42622', $$SELECT eventstore.consumer_ack('bi_k', repeat('c', 1048576), 1)$$);
SELECT pg_temp.x('consumer_ack', 'NULL id', 'error 22023', $$SELECT eventstore.consumer_ack('bi_k', 'bi_chan', NULL)$$);
SELECT pg_temp.x('consumer_ack', 'id 0', 'error 22023', $$SELECT eventstore.consumer_ack('bi_k', 'bi_chan', 0)$$);
SELECT pg_temp.x('consumer_ack', 'id -9223372036854775808', 'error 22023',
    $$SELECT eventstore.consumer_ack('bi_k', 'bi_chan', '-9223372036854775808'::bigint)$$);
SELECT pg_temp.x('consumer_ack', 'id 9223372036854775807, never published', 'error 22023',
    $$SELECT eventstore.consumer_ack('bi_k', 'bi_chan', 9223372036854775807)$$);
SELECT pg_temp.x('consumer_ack', 'an unknown channel, an id past the relay', 'error 22023',
    $$SELECT eventstore.consumer_ack('bi_k', 'no_such_channel', (SELECT last_published_id + 1 FROM eventstore.relay_state))$$);
SELECT pg_temp.x('consumer_ack', 'SQL-looking consumer and channel, an id past the relay', 'error 22023',
    $$SELECT eventstore.consumer_ack($s$k'); DELETE FROM eventstore.consumers; --$s$, $s$c' OR '1'='1$s$,
                                     (SELECT last_published_id + 1 FROM eventstore.relay_state))$$);
SELECT pg_temp.x('_check_consumer', 'NULL consumer', 'error 22023', $$SELECT eventstore._check_consumer(NULL, 'c', 1, 'id')$$);
SELECT pg_temp.x('_check_consumer', 'NULL channel', 'error 22004', $$SELECT eventstore._check_consumer('k', NULL, 1, 'id')$$);
SELECT pg_temp.x('_check_consumer', 'channel of 1 MB', 'error 42622', $$SELECT eventstore._check_consumer('k', repeat('c', 1048576), 1, 'id')$$);
SELECT pg_temp.x('_check_consumer', 'id 0', 'error 22023', $$SELECT eventstore._check_consumer('k', 'c', 0, 'id')$$);
SELECT pg_temp.x('_check_consumer', 'max_count -1', 'error 22023', $$SELECT eventstore._check_consumer('k', 'c', -1, 'max_count')$$);
SELECT pg_temp.x('_check_consumer', 'max_count 0', 'ok ', $$SELECT eventstore._check_consumer('k', 'c', 0, 'max_count')$$);
SELECT pg_temp.x('drop_consumer', 'NULL consumer', 'error 22023', $$SELECT eventstore.drop_consumer(NULL, 'bi_chan')$$);
SELECT pg_temp.x('drop_consumer', 'empty consumer', 'error 22023', $$SELECT eventstore.drop_consumer('', 'bi_chan')$$);
SELECT pg_temp.x('drop_consumer', 'NULL channel', 'error 22004', $$SELECT eventstore.drop_consumer('bi_k', NULL)$$);
SELECT pg_temp.x('drop_consumer', 'channel of 1 MB', 'error 42622', $$SELECT eventstore.drop_consumer('bi_k', repeat('c', 1048576))$$);
SELECT pg_temp.x('drop_consumer', 'an unknown consumer', 'error 42704', $$SELECT eventstore.drop_consumer('bi_no_such_k', 'bi_chan')$$);
SELECT pg_temp.x('drop_consumer', 'SQL-looking consumer and channel', 'error 42704',
    $$SELECT eventstore.drop_consumer($s$k'); DELETE FROM eventstore.consumers; --$s$, $s$c' OR '1'='1$s$)$$);
SELECT pg_temp.x('consumer_status', 'a superuser sees every checkpoint', 'ok true',
    $$SELECT count(*) = (SELECT count(*) FROM eventstore.consumers) FROM eventstore.consumer_status()$$);
SELECT pg_temp.x('consumer_status', 'the view shows the same', 'ok true',
    $$SELECT count(*) = (SELECT count(*) FROM eventstore.consumers) FROM eventstore.consumer_status$$);
SELECT pg_temp.x('consumer_status', 'behind is never negative', 'ok 0',
    $$SELECT count(*) FROM eventstore.consumer_status WHERE behind < 0$$);
-- The bodies behind the consumer functions (owner only; the caller is an argument)
SELECT pg_temp.x('_consumer_poll', 'NULL consumer', 'error 22023', $$SELECT count(*) FROM eventstore._consumer_poll(NULL, 'c', 1, 10)$$);
SELECT pg_temp.x('_consumer_poll', 'NULL max_count', 'error 22023', $$SELECT count(*) FROM eventstore._consumer_poll('k', 'c', NULL, 10)$$);
SELECT pg_temp.x('_consumer_poll', 'an unknown channel: nothing', 'ok 0', $$SELECT count(*) FROM eventstore._consumer_poll('k', 'bi_no_such_chan', 5, 10)$$);
SELECT pg_temp.x('_consumer_ack', 'id 0', 'error 22023', $$SELECT eventstore._consumer_ack('k', 'c', 0, 10)$$);
SELECT pg_temp.x('_consumer_ack', 'NULL consumer', 'error 22023', $$SELECT eventstore._consumer_ack(NULL, 'c', 1, 10)$$);
SELECT pg_temp.x('_consumer_ack', 'an id past the relay', 'error 22023',
    $$SELECT eventstore._consumer_ack('k', 'c', (SELECT last_published_id + 1 FROM eventstore.relay_state), 10)$$);
SELECT pg_temp.x('_drop_consumer', 'NULL channel', 'error 22004', $$SELECT eventstore._drop_consumer('k', NULL, 10)$$);
SELECT pg_temp.x('_drop_consumer', 'empty consumer', 'error 22023', $$SELECT eventstore._drop_consumer('', 'c', 10)$$);
SELECT pg_temp.x('_drop_consumer', 'an unknown consumer', 'error 42704', $$SELECT eventstore._drop_consumer('bi_no_such_k', 'c', 10)$$);
SELECT pg_temp.x('_consumer_check_owner', 'no such checkpoint: anyone may', 'ok ',
    $$SELECT eventstore._consumer_check_owner('bi_no_such_k', 'c', 0)$$);
SELECT pg_temp.x('_consumer_check_owner', 'NULL consumer: no checkpoint', 'ok ',
    $$SELECT eventstore._consumer_check_owner(NULL, 'c', 10)$$);
SELECT pg_temp.x('_consumer_check_owner', 'another role''s checkpoint', 'error 42501',
    $$INSERT INTO eventstore.consumers (consumer, channel, owner) VALUES ('bi_owned', 'c', 'es_tap_bi_role') RETURNING 1$$,
    $$SELECT eventstore._consumer_check_owner('bi_owned', 'c', 'pg_monitor'::regrole)$$);
SELECT pg_temp.x('_consumer_may', 'no owner: anyone', 'ok true', $$SELECT eventstore._consumer_may(NULL, 0)$$);
SELECT pg_temp.x('_consumer_may', 'another role''s checkpoint: no', 'ok false',
    $$SELECT eventstore._consumer_may('es_tap_bi_role'::regrole, 'pg_monitor'::regrole)$$);
SELECT pg_temp.x('_consumer_may', 'a superuser: yes', 'ok true', $$SELECT eventstore._consumer_may('es_tap_bi_role'::regrole, 10)$$);
SELECT pg_temp.x('_consumer_status', 'a NULL caller sees no owned checkpoint', 'ok 0',
    $$SELECT count(*) FROM eventstore._consumer_status(NULL::oid) WHERE owner IS NOT NULL$$);
SELECT pg_temp.x('_consumer_status', 'a superuser sees every checkpoint', 'ok true',
    $$SELECT count(*) = (SELECT count(*) FROM eventstore.consumers) FROM eventstore._consumer_status(10)$$);
SELECT pg_temp.x('_consumer_status', 'an unknown role sees no owned checkpoint', 'ok 0',
    $$SELECT count(*) FROM eventstore._consumer_status(4294967295) WHERE owner IS NOT NULL$$);

------------------------------------------------------------------------
-- grant_access(role, access)
------------------------------------------------------------------------
SELECT pg_temp.x('grant_access', 'NULL role', 'error 22004', $$SELECT eventstore.grant_access(NULL, 'reader')$$);
SELECT pg_temp.x('grant_access', 'NULL access', 'error 22004', $$SELECT eventstore.grant_access('es_tap_bi_role', NULL)$$);
SELECT pg_temp.x('grant_access', 'empty access', 'error 22023', $$SELECT eventstore.grant_access('es_tap_bi_role', '')$$);
SELECT pg_temp.x('grant_access', 'access Admin (case matters)', 'error 22023', $$SELECT eventstore.grant_access('es_tap_bi_role', 'Admin')$$);
SELECT pg_temp.x('grant_access', 'access superuser', 'error 22023', $$SELECT eventstore.grant_access('es_tap_bi_role', 'superuser')$$);
SELECT pg_temp.x('grant_access', 'SQL-looking access', 'error 22023',
    $$SELECT eventstore.grant_access('es_tap_bi_role', $a$reader TO PUBLIC; GRANT ALL ON eventstore.events TO PUBLIC; --$a$)$$);
SELECT pg_temp.x('grant_access', 'an access of 1 MB', 'error 22023', $$SELECT eventstore.grant_access('es_tap_bi_role', repeat('a', 1048576))$$);
SELECT pg_temp.x('grant_access', 'an unknown role name', 'error 42704', $$SELECT eventstore.grant_access('es_tap_no_such_role', 'reader')$$);
SELECT pg_temp.x('grant_access', 'role PUBLIC', 'error 42704', $$SELECT eventstore.grant_access('public', 'reader')$$);
SELECT pg_temp.x('grant_access', 'role OID 0 (no such role)', 'error 42704', $$SELECT eventstore.grant_access(0::regrole, 'reader')$$);
SELECT pg_temp.x('grant_access', 'an OID that is no role', 'error 42704', $$SELECT eventstore.grant_access(4294967295::oid::regrole, 'reader')$$);
SELECT pg_temp.x('grant_access', 'a role named like SQL gets exactly reader rights', 'ok true|false|false',
    $$SELECT eventstore.grant_access('"es_tap_bi""; DROP ROLE postgres; --"', 'reader')$$,
    $$SELECT has_table_privilege('es_tap_bi"; DROP ROLE postgres; --', 'eventstore.events', 'SELECT')
             || '|' || has_function_privilege('es_tap_bi"; DROP ROLE postgres; --',
                                              'eventstore.append(text, bigint, eventstore.new_event[], jsonb, regclass)', 'EXECUTE')
             || '|' || has_table_privilege('es_tap_bi_role', 'eventstore.events', 'SELECT')$$);

------------------------------------------------------------------------
-- Upcasters: _upcast, _upcasting, register_upcaster, unregister_upcaster
------------------------------------------------------------------------
SELECT pg_temp.x('_upcasting', 'an upcaster is registered', 'ok true', $$SELECT eventstore._upcasting()$$);
SELECT pg_temp.x('_upcast', 'NULL: NULL (strict)', 'ok <null>', $$SELECT eventstore._upcast(NULL)$$);
SELECT pg_temp.x('_upcast', 'a row of a type without upcaster: unchanged', 'ok (1,s,1,b3000000-0000-4000-8000-000000000001,Other,{},,infinity,{})',
    $$SELECT eventstore._upcast(ROW(1, 's', 1, 'b3000000-0000-4000-8000-000000000001', 'Other', '{}', NULL, 'infinity', '{}')::eventstore.events)::text$$);
SELECT pg_temp.x('_upcast', 'a row of an upcast type: upcast', 'ok BiV2',
    $$SELECT (eventstore._upcast(ROW(1, 's', 1, 'b3000000-0000-4000-8000-000000000001', 'BiV1', '{}', NULL, 'infinity', '{}')::eventstore.events)).event_type$$);
SELECT pg_temp.x('_upcast', 'a row of an upcast type with a NULL event_type', 'error 22004',
    $$SELECT eventstore._upcast(ROW(1, 's', 1, 'b3000000-0000-4000-8000-000000000001', NULL, '{}', NULL, 'infinity', '{}')::eventstore.events)$$);
SELECT pg_temp.x('_upcast', 'a row with NULL data', 'error 22004',
    $$SELECT eventstore._upcast(ROW(1, 's', 1, 'b3000000-0000-4000-8000-000000000001', 'BiV1', NULL, NULL, 'infinity', '{}')::eventstore.events)$$);
SELECT pg_temp.x('_upcast', 'a row with a NULL position (no identity to keep)', 'error 22000',
    $$SELECT eventstore._upcast(ROW(NULL, 's', 1, 'b3000000-0000-4000-8000-000000000001', 'BiV1', '{}', NULL, 'infinity', '{}')::eventstore.events)$$);
SELECT pg_temp.x('_upcast', 'with the default store: its upcasters', 'ok BiV2',
    $$SELECT (eventstore._upcast(ROW(1, 's', 1, 'b3000000-0000-4000-8000-000000000001', 'BiV1', '{}', NULL, 'infinity', '{}')::eventstore.events,
                                 'eventstore.events')).event_type$$);
SELECT pg_temp.x('_upcast', 'NULL store', 'error 22004',
    $$SELECT eventstore._upcast(ROW(1, 's', 1, 'b3000000-0000-4000-8000-000000000001', 'BiV1', '{}', NULL, 'infinity', '{}')::eventstore.events, NULL)$$);
SELECT pg_temp.x('_upcast', 'a table that is not a store', 'error 42809',
    $$SELECT eventstore._upcast(ROW(1, 's', 1, 'b3000000-0000-4000-8000-000000000001', 'BiV1', '{}', NULL, 'infinity', '{}')::eventstore.events,
                                'pg_catalog.pg_class')$$);
SELECT pg_temp.x('register_upcaster', 'NULL event_type', 'error 22004', $$SELECT eventstore.register_upcaster(NULL, 'bi_up(eventstore.events)')$$);
SELECT pg_temp.x('register_upcaster', 'empty event_type', 'error 22023', $$SELECT eventstore.register_upcaster('', 'bi_up(eventstore.events)')$$);
SELECT pg_temp.x('register_upcaster', 'NULL handler', 'error 22004', $$SELECT eventstore.register_upcaster('BiX', NULL)$$);
SELECT pg_temp.x('register_upcaster', 'a handler of another signature', 'error 42P13',
    $$SELECT eventstore.register_upcaster('BiX', 'bi_noop(eventstore.events)')$$);
SELECT pg_temp.x('register_upcaster', 'a handler that does not exist', 'error 42883',
    $$SELECT eventstore.register_upcaster('BiX', 'no_such_upcaster(eventstore.events)')$$);
SELECT pg_temp.x('register_upcaster', 'a type that has one', 'error 42710',
    $$SELECT eventstore.register_upcaster('BiV1', 'bi_up(eventstore.events)')$$);
SELECT pg_temp.x('register_upcaster', 'NULL store', 'error 22004',
    $$SELECT eventstore.register_upcaster('BiX', 'bi_up(eventstore.events)', NULL)$$);
SELECT pg_temp.x('register_upcaster', 'a table that is not a store', 'error 42809',
    $$SELECT eventstore.register_upcaster('BiX', 'bi_up(eventstore.events)', 'pg_catalog.pg_class')$$);
SELECT pg_temp.x('register_upcaster', 'SQL-looking event type: registered exactly', $$ok x' OR '1'='1$$,
    $$SELECT eventstore.register_upcaster($s$x' OR '1'='1$s$, 'bi_up(eventstore.events)')$$,
    $$SELECT event_type FROM eventstore.upcasters WHERE event_type LIKE 'x%'$$);
SELECT pg_temp.x('unregister_upcaster', 'NULL', 'error 22004', $$SELECT eventstore.unregister_upcaster(NULL)$$);
SELECT pg_temp.x('unregister_upcaster', 'empty', 'error 22023', $$SELECT eventstore.unregister_upcaster('')$$);
SELECT pg_temp.x('unregister_upcaster', 'an unknown type', 'error 42704', $$SELECT eventstore.unregister_upcaster('NoSuchType')$$);
SELECT pg_temp.x('unregister_upcaster', 'NULL store', 'error 22004', $$SELECT eventstore.unregister_upcaster('BiV1', NULL)$$);
SELECT pg_temp.x('unregister_upcaster', 'a table that is not a store', 'error 42809',
    $$SELECT eventstore.unregister_upcaster('BiV1', 'pg_catalog.pg_class')$$);
SELECT pg_temp.x('unregister_upcaster', 'a SQL-looking unknown type', 'error 42704',
    $$SELECT eventstore.unregister_upcaster($s$BiV1' OR '1'='1$s$)$$);
SELECT pg_temp.x('unregister_upcaster', 'BiV1: reads see the stored type again', 'ok false|BiV1',
    $$SELECT eventstore.unregister_upcaster('BiV1')$$,
    $$SELECT eventstore._upcasting() || '|' || (SELECT event_type FROM eventstore.read_stream('bi-1', 2))$$);

------------------------------------------------------------------------
-- Snapshots and aggregates
------------------------------------------------------------------------
SELECT pg_temp.x('save_snapshot', 'NULL stream_id', 'error 22004', $$SELECT eventstore.save_snapshot(NULL, 1, '{}')$$);
SELECT pg_temp.x('save_snapshot', 'empty stream_id', 'error 22023', $$SELECT eventstore.save_snapshot('', 1, '{}')$$);
SELECT pg_temp.x('save_snapshot', 'stream_id of 1 MB', 'error 22001', $$SELECT eventstore.save_snapshot(repeat('s', 1048576), 1, '{}')$$);
SELECT pg_temp.x('save_snapshot', 'NULL stream_version', 'error 22004', $$SELECT eventstore.save_snapshot('bi-1', NULL, '{}')$$);
SELECT pg_temp.x('save_snapshot', 'NULL state', 'error 22004', $$SELECT eventstore.save_snapshot('bi-1', 1, NULL)$$);
SELECT pg_temp.x('save_snapshot', 'NULL snapshot_type', 'error 22004', $$SELECT eventstore.save_snapshot('bi-1', 1, '{}', NULL)$$);
SELECT pg_temp.x('save_snapshot', 'empty snapshot_type', 'error 22023', $$SELECT eventstore.save_snapshot('bi-1', 1, '{}', '')$$);
SELECT pg_temp.x('save_snapshot', 'NULL store', 'error 22004', $$SELECT eventstore.save_snapshot('bi-1', 1, '{}', 'x', NULL)$$);
SELECT pg_temp.x('save_snapshot', 'a table that is not a store', 'error 42809',
    $$SELECT eventstore.save_snapshot('bi-1', 1, '{}', 'x', 'pg_catalog.pg_class')$$);
SELECT pg_temp.x('save_snapshot', 'version 0', 'error 22023', $$SELECT eventstore.save_snapshot('bi-1', 0, '{}')$$);
SELECT pg_temp.x('save_snapshot', 'version -1', 'error 22023', $$SELECT eventstore.save_snapshot('bi-1', -1, '{}')$$);
SELECT pg_temp.x('save_snapshot', 'version 9223372036854775807', 'error 22023', $$SELECT eventstore.save_snapshot('bi-1', 9223372036854775807, '{}')$$);
SELECT pg_temp.x('save_snapshot', 'a stream that does not exist', 'error 22023',
    $$SELECT eventstore.save_snapshot($s$bi-1' OR '1'='1$s$, 1, '{}')$$);
SELECT pg_temp.x('save_snapshot', 'a state that is a JSON array is kept', 'ok [1, 2]',
    $$SELECT eventstore.save_snapshot('bi-1', 2, '[1, 2]', 'bi_arr')$$,
    $$SELECT state::text FROM eventstore.load_snapshot('bi-1', 'bi_arr')$$);
SELECT pg_temp.x('load_snapshot', 'NULL stream_id', 'error 22004', $$SELECT count(*) FROM eventstore.load_snapshot(NULL)$$);
SELECT pg_temp.x('load_snapshot', 'empty stream_id', 'error 22023', $$SELECT count(*) FROM eventstore.load_snapshot('')$$);
SELECT pg_temp.x('load_snapshot', 'NULL snapshot_type: nothing', 'ok 0', $$SELECT count(*) FROM eventstore.load_snapshot('bi-1', NULL)$$);
SELECT pg_temp.x('load_snapshot', 'NULL store', 'error 22004',
    $$SELECT count(*) FROM eventstore.load_snapshot('bi-1', 'bi_snap', NULL, NULL)$$);
SELECT pg_temp.x('load_snapshot', 'a table that is not a store', 'error 42809',
    $$SELECT count(*) FROM eventstore.load_snapshot('bi-1', 'bi_snap', NULL, 'pg_catalog.pg_class')$$);
SELECT pg_temp.x('load_snapshot', 'an unknown snapshot_type: nothing', 'ok 0',
    $$SELECT count(*) FROM eventstore.load_snapshot('bi-1', $s$bi_snap' OR '1'='1$s$)$$);
SELECT pg_temp.x('load_snapshot', 'max_version -9223372036854775808: nothing', 'ok 0',
    $$SELECT count(*) FROM eventstore.load_snapshot('bi-1', 'bi_snap', '-9223372036854775808'::bigint)$$);
SELECT pg_temp.x('load_snapshot', 'bi_snap: version 1', 'ok 1', $$SELECT stream_version FROM eventstore.load_snapshot('bi-1', 'bi_snap')$$);
SELECT pg_temp.x('aggregate', 'NULL stream_id', 'error 22004', $$SELECT eventstore.aggregate(NULL, 'bi_reducer(jsonb, eventstore.events)')$$);
SELECT pg_temp.x('aggregate', 'empty stream_id', 'error 22023', $$SELECT eventstore.aggregate('', 'bi_reducer(jsonb, eventstore.events)')$$);
SELECT pg_temp.x('aggregate', 'NULL reducer', 'error 22004', $$SELECT eventstore.aggregate('bi-1', NULL)$$);
SELECT pg_temp.x('aggregate', 'a reducer of another signature', 'error 42P13', $$SELECT eventstore.aggregate('bi-1', 'bi_noop(eventstore.events)')$$);
SELECT pg_temp.x('aggregate', 'reducer OID 0', 'error 42883', $$SELECT eventstore.aggregate('bi-1', 0::regprocedure)$$);
SELECT pg_temp.x('aggregate', 'NULL store', 'error 22004',
    $$SELECT eventstore.aggregate('bi-1', 'bi_reducer(jsonb, eventstore.events)', store => NULL)$$);
SELECT pg_temp.x('aggregate', 'a table that is not a store', 'error 42809',
    $$SELECT eventstore.aggregate('bi-1', 'bi_reducer(jsonb, eventstore.events)', store => 'pg_catalog.pg_class')$$);
SELECT pg_temp.x('aggregate', 'until_version -1', 'error 22023',
    $$SELECT eventstore.aggregate('bi-1', 'bi_reducer(jsonb, eventstore.events)', '{}', -1)$$);
SELECT pg_temp.x('aggregate', 'empty snapshot_type', 'error 22023',
    $$SELECT eventstore.aggregate('bi-1', 'bi_reducer(jsonb, eventstore.events)', snapshot_type => '')$$);
SELECT pg_temp.x('aggregate', 'NULL initial, until_version 9223372036854775807: every event', 'ok {"n": 2}',
    $$SELECT eventstore.aggregate('bi-1', 'bi_reducer(jsonb, eventstore.events)', NULL, 9223372036854775807)::text$$);
SELECT pg_temp.x('aggregate', 'until_version 0: the initial state', 'ok [0]',
    $$SELECT eventstore.aggregate('bi-1', 'bi_reducer(jsonb, eventstore.events)', '[0]', 0)::text$$);
SELECT pg_temp.x('aggregate', 'until -infinity: the initial state', 'ok "init"',
    $$SELECT eventstore.aggregate('bi-1', 'bi_reducer(jsonb, eventstore.events)', '"init"', until_time => '-infinity')::text$$);
SELECT pg_temp.x('aggregate', 'an unknown snapshot_type: folded from the start', 'ok {"n": 2}',
    $$SELECT eventstore.aggregate('bi-1', 'bi_reducer(jsonb, eventstore.events)', snapshot_type => $s$x' OR '1'='1$s$)::text$$);
SELECT pg_temp.x('aggregate', 'a stream that does not exist: the initial state', 'ok {}',
    $$SELECT eventstore.aggregate($s$'); DROP TABLE eventstore.events; --$s$, 'bi_reducer(jsonb, eventstore.events)')::text$$);
SELECT pg_temp.x('set_snapshot_policy', 'NULL snapshot_type', 'error 22004',
    $$SELECT eventstore.set_snapshot_policy(NULL, 'bi_reducer(jsonb, eventstore.events)', 10)$$);
SELECT pg_temp.x('set_snapshot_policy', 'empty snapshot_type', 'error 22023',
    $$SELECT eventstore.set_snapshot_policy('', 'bi_reducer(jsonb, eventstore.events)', 10)$$);
SELECT pg_temp.x('set_snapshot_policy', 'NULL reducer', 'error 22004', $$SELECT eventstore.set_snapshot_policy('bi_p2', NULL, 10)$$);
SELECT pg_temp.x('set_snapshot_policy', 'NULL store', 'error 22004',
    $$SELECT eventstore.set_snapshot_policy('bi_p2', 'bi_reducer(jsonb, eventstore.events)', 10, store => NULL)$$);
SELECT pg_temp.x('set_snapshot_policy', 'a table that is not a store', 'error 42809',
    $$SELECT eventstore.set_snapshot_policy('bi_p2', 'bi_reducer(jsonb, eventstore.events)', 10, store => 'pg_catalog.pg_class')$$);
SELECT pg_temp.x('set_snapshot_policy', 'NULL every', 'error 22004',
    $$SELECT eventstore.set_snapshot_policy('bi_p2', 'bi_reducer(jsonb, eventstore.events)', NULL)$$);
SELECT pg_temp.x('set_snapshot_policy', 'every 0', 'error 22023',
    $$SELECT eventstore.set_snapshot_policy('bi_p2', 'bi_reducer(jsonb, eventstore.events)', 0)$$);
SELECT pg_temp.x('set_snapshot_policy', 'every -9223372036854775808', 'error 22023',
    $$SELECT eventstore.set_snapshot_policy('bi_p2', 'bi_reducer(jsonb, eventstore.events)', '-9223372036854775808'::bigint)$$);
SELECT pg_temp.x('set_snapshot_policy', 'a reducer of another signature', 'error 42P13',
    $$SELECT eventstore.set_snapshot_policy('bi_p2', 'bi_up(eventstore.events)', 10)$$);
SELECT pg_temp.x('set_snapshot_policy', 'empty categories', 'error 22023',
    $$SELECT eventstore.set_snapshot_policy('bi_p2', 'bi_reducer(jsonb, eventstore.events)', 10, '{}', '{}')$$);
SELECT pg_temp.x('set_snapshot_policy', 'categories with a NULL', 'error 22004',
    $$SELECT eventstore.set_snapshot_policy('bi_p2', 'bi_reducer(jsonb, eventstore.events)', 10, '{}', ARRAY[NULL::text])$$);
SELECT pg_temp.x('set_snapshot_policy', 'every 9223372036854775807, scalar initial: set', 'ok 9223372036854775807|"s"',
    $$SELECT eventstore.set_snapshot_policy('bi_p2', 'bi_reducer(jsonb, eventstore.events)', 9223372036854775807, '"s"')$$,
    $$SELECT every || '|' || initial::text FROM eventstore.snapshot_policies WHERE snapshot_type = 'bi_p2'$$);
SELECT pg_temp.x('remove_snapshot_policy', 'NULL', 'error 22004', $$SELECT eventstore.remove_snapshot_policy(NULL)$$);
SELECT pg_temp.x('remove_snapshot_policy', 'empty', 'error 22023', $$SELECT eventstore.remove_snapshot_policy('')$$);
SELECT pg_temp.x('remove_snapshot_policy', 'an unknown type', 'error 42704', $$SELECT eventstore.remove_snapshot_policy('no_such_policy')$$);
SELECT pg_temp.x('remove_snapshot_policy', 'NULL store', 'error 22004', $$SELECT eventstore.remove_snapshot_policy('bi_policy', NULL)$$);
SELECT pg_temp.x('remove_snapshot_policy', 'a table that is not a store', 'error 42809',
    $$SELECT eventstore.remove_snapshot_policy('bi_policy', 'pg_catalog.pg_class')$$);
SELECT pg_temp.x('remove_snapshot_policy', 'a SQL-looking unknown type', 'error 42704',
    $$SELECT eventstore.remove_snapshot_policy($s$bi_policy' OR '1'='1$s$)$$);
SELECT pg_temp.x('remove_snapshot_policy', 'bi_policy: gone', 'ok 0',
    $$SELECT eventstore.remove_snapshot_policy('bi_policy')$$,
    $$SELECT count(*) FROM eventstore.snapshot_policies WHERE snapshot_type = 'bi_policy'$$);

------------------------------------------------------------------------
-- Subscriptions (one subscription bi_sub over category bi, made and
-- dropped inside each try, so the store is unchanged)
------------------------------------------------------------------------
SELECT pg_temp.x('create_subscription', 'NULL name', 'error 22004', $$SELECT eventstore.create_subscription(NULL)$$);
SELECT pg_temp.x('create_subscription', 'empty name', 'error 22023', $$SELECT eventstore.create_subscription('')$$);
SELECT pg_temp.x('create_subscription', 'NULL store', 'error 22004',
    $$SELECT eventstore.create_subscription('bi_sub', store => NULL)$$);
SELECT pg_temp.x('create_subscription', 'a store that is a plain table', 'error 42809',
    $$SELECT eventstore.create_subscription('bi_sub', store => 'bi_nasty')$$);
SELECT pg_temp.x('create_subscription', 'name of 1 MB', 'error 22023',
    $$SELECT eventstore.create_subscription(repeat('s', 1048576))$$);
SELECT pg_temp.x('create_subscription', 'partitions NULL', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub', partitions => NULL)$$);
SELECT pg_temp.x('create_subscription', 'partitions -1', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub', partitions => -1)$$);
SELECT pg_temp.x('create_subscription', 'backoff NULL', 'error 22004',
    $$SELECT eventstore.create_subscription('bi_sub', backoff => NULL)$$);
SELECT pg_temp.x('create_subscription', 'lease of 10 years', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub', lease => '10 years')$$);
SELECT pg_temp.x('create_subscription', 'start_time -infinity', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub', start_time => '-infinity')$$);
SELECT pg_temp.x('create_subscription', 'SQL-looking name and categories: made', 'ok 1',
    $$SELECT eventstore.create_subscription($s$x'); DROP TABLE eventstore.events; --$s$,
                                            categories => (SELECT array_agg(s) FROM bi_nasty))$$,
    $$SELECT count(*) FROM eventstore.subscriptions$$);
SELECT pg_temp.x('alter_subscription', 'unknown', 'error 42704', $$SELECT eventstore.alter_subscription('bi_none')$$);
SELECT pg_temp.x('alter_subscription', 'NULL name', 'error 22004', $$SELECT eventstore.alter_subscription(NULL)$$);
SELECT pg_temp.x('alter_subscription', 'max_attempts 0', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore.alter_subscription('bi_sub', max_attempts => 0)$$);
SELECT pg_temp.x('alter_subscription', 'event_types with NULL', 'error 22004',
    $$SELECT eventstore.create_subscription('bi_sub')$$,
    $$SELECT eventstore.alter_subscription('bi_sub', event_types => ARRAY['a', NULL])$$);
SELECT pg_temp.x('drop_subscription', 'unknown', 'error 42704', $$SELECT eventstore.drop_subscription('bi_none')$$);
SELECT pg_temp.x('drop_subscription', 'NULL', 'error 22004', $$SELECT eventstore.drop_subscription(NULL)$$);
SELECT pg_temp.x('drop_subscription', 'SQL-looking name', 'error 42704',
    $$SELECT eventstore.drop_subscription($s$x' OR '1'='1$s$)$$);
SELECT pg_temp.x('reset_subscription', 'unknown', 'error 42704', $$SELECT eventstore.reset_subscription('bi_none', 0)$$);
SELECT pg_temp.x('reset_subscription', 'neither position nor time', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore.reset_subscription('bi_sub')$$);
SELECT pg_temp.x('reset_subscription', 'negative position', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore.reset_subscription('bi_sub', -5)$$);
SELECT pg_temp.x('poll', 'unknown subscription', 'error 42704', $$SELECT count(*) FROM eventstore.poll('bi_none', 'c')$$);
SELECT pg_temp.x('poll', 'NULL consumer', 'error 22004',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT count(*) FROM eventstore.poll('bi_sub', NULL)$$);
SELECT pg_temp.x('poll', 'consumer of 1 MB', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub')$$,
    $$SELECT count(*) FROM eventstore.poll('bi_sub', repeat('c', 1048576))$$);
SELECT pg_temp.x('poll', 'max_count -1', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT count(*) FROM eventstore.poll('bi_sub', 'c', -1)$$);
SELECT pg_temp.x('poll', 'SQL-looking consumer: nothing (bi-1 is this transaction''s, above the horizon)', 'ok 0',
    $$SELECT eventstore.create_subscription('bi_sub', categories => ARRAY['bi'])$$,
    $$SELECT count(*) FROM eventstore.poll('bi_sub', $s$c'); DROP TABLE eventstore.events; --$s$, 2147483647)$$);
SELECT pg_temp.x('ack', 'unknown subscription', 'error 42704', $$SELECT eventstore.ack('bi_none', 'c', 1)$$);
SELECT pg_temp.x('ack_many', 'unknown subscription', 'error 42704', $$SELECT eventstore.ack_many('bi_none', 'c', '{1}')$$);
SELECT pg_temp.x('ack_many', 'NULL positions', 'error 22004',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore.ack_many('bi_sub', 'c', NULL)$$);
SELECT pg_temp.x('ack_many', 'a NULL position', 'error 22004',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore.ack_many('bi_sub', 'c', '{1,NULL}')$$);
SELECT pg_temp.x('ack_many', 'two dimensions', 'error 2202E',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore.ack_many('bi_sub', 'c', '{{1},{2}}')$$);
SELECT pg_temp.x('ack_many', 'a position never delivered', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore.ack_many('bi_sub', 'c', '{1}')$$);
SELECT pg_temp.x('ack_many', 'none: a no-op', 'ok ',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore.ack_many('bi_sub', 'c', '{}')$$);
SELECT pg_temp.x('ack', 'untyped arguments resolve to the one ack (ack_many has its own name)', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore.ack('bi_sub', 'c', '0')$$);
SELECT pg_temp.x('ack', 'NULL position', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore.ack('bi_sub', 'c', NULL)$$);
SELECT pg_temp.x('ack', 'a position never delivered', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub', categories => ARRAY['bi'])$$,
    $$SELECT eventstore.ack('bi_sub', 'c', 9223372036854775807)$$);
SELECT pg_temp.x('ack', 'by a consumer that holds nothing', 'error 42501',
    $$SELECT eventstore.create_subscription('bi_sub', categories => ARRAY['bi'])$$,
    $$SELECT count(*) FROM eventstore.poll('bi_sub', 'c1')$$,
    $$SELECT eventstore.ack('bi_sub', 'c2', (SELECT max(global_position) FROM eventstore.events WHERE stream_id = 'bi-1'))$$);
SELECT pg_temp.x('ack', 'by the holder, of an event above the horizon (never delivered)', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub', categories => ARRAY['bi'])$$,
    $$SELECT count(*) FROM eventstore.poll('bi_sub', 'c1')$$,
    $$SELECT eventstore.ack('bi_sub', 'c1', (SELECT max(global_position) FROM eventstore.events WHERE stream_id = 'bi-1'))$$);
SELECT pg_temp.x('nack', 'unknown subscription', 'error 42704', $$SELECT eventstore.nack('bi_none', 'c', 1)$$);
SELECT pg_temp.x('nack', 'retry_after of a year', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore.nack('bi_sub', 'c', 1, '1 year')$$);
SELECT pg_temp.x('nack', 'empty consumer', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore.nack('bi_sub', '', 1)$$);
SELECT pg_temp.x('parked', 'unknown', 'error 42704', $$SELECT count(*) FROM eventstore.parked('bi_none')$$);
SELECT pg_temp.x('parked', 'NULL', 'error 22004', $$SELECT count(*) FROM eventstore.parked(NULL)$$);
SELECT pg_temp.x('parked', 'none yet', 'ok 0',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT count(*) FROM eventstore.parked('bi_sub')$$);
SELECT pg_temp.x('replay_parked', 'unknown', 'error 42704', $$SELECT eventstore.replay_parked('bi_none')$$);
SELECT pg_temp.x('replay_parked', 'a position not parked', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore.replay_parked('bi_sub', 1)$$);
SELECT pg_temp.x('replay_parked', 'all, none parked', 'ok ',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore.replay_parked('bi_sub')$$);
SELECT pg_temp.x('subscription_status', 'one row per partition', 'ok 3',
    $$SELECT eventstore.create_subscription('bi_sub', partitions => 3)$$,
    $$SELECT count(*) FROM eventstore.subscription_status() WHERE subscription = 'bi_sub'$$);
SELECT pg_temp.x('_log_horizon', 'below this transaction''s own events', 'ok true',
    $$SELECT eventstore._log_horizon() < (SELECT min(global_position) FROM eventstore.events WHERE stream_id = 'bi-1')$$);
SELECT pg_temp.x('subscription_channel', 'NULL', 'ok <null>', $$SELECT eventstore.subscription_channel(NULL)$$);
SELECT pg_temp.x('subscription_channel', 'mixed case, kept', 'ok eventstore_sub_Mail Er',
    $$SELECT eventstore.subscription_channel('Mail Er')$$);
SELECT pg_temp.x('subscription_channel', '200 characters of 2 bytes: hashed, within a channel''s 63 bytes', 'ok 47',
    $$SELECT octet_length(eventstore.subscription_channel(repeat('é', 200)))$$);
-- the owner-only bodies (a superuser may call them)
SELECT pg_temp.x('_subscription_wake', 'NULL range: none', 'ok 0', $$SELECT eventstore._subscription_wake(NULL, NULL)$$);
SELECT pg_temp.x('_subscription_wake', 'empty range: none', 'ok 0',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore._subscription_wake(5, 5)$$);
SELECT pg_temp.x('_subscription_wake', 'a jump past 10,000 positions: every subscription', 'ok 1',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore._subscription_wake(0, 20000)$$);
SELECT pg_temp.x('_subscription_arg', 'NULL', 'error 22004', $$SELECT eventstore._subscription_arg(NULL, 'x')$$);
SELECT pg_temp.x('_subscription_arg', 'empty', 'error 22023', $$SELECT eventstore._subscription_arg('', 'x')$$);
SELECT pg_temp.x('_subscription_arg', 'unicode', 'ok ストリーム-3', $$SELECT eventstore._subscription_arg('ストリーム-3', 'x')$$);
SELECT pg_temp.x('_subscription_partition', 'NULL key', 'ok <null>', $$SELECT eventstore._subscription_partition(NULL, 4)$$);
SELECT pg_temp.x('_subscription_partition', 'zero partitions', 'error 22012', $$SELECT eventstore._subscription_partition('k', 0)$$);
SELECT pg_temp.x('_subscription_partition', 'in range', 'ok true',
    $$SELECT bool_and(eventstore._subscription_partition(s, 7) BETWEEN 0 AND 6) FROM bi_nasty$$);
SELECT pg_temp.x('_subscription_key', 'unknown kind: the position', 'ok 5', $$SELECT eventstore._subscription_key('x', 's', NULL, 5)$$);
SELECT pg_temp.x('_subscription_key', 'correlation of non-object metadata: the stream', 'ok s',
    $$SELECT eventstore._subscription_key('correlation', 's', '[1]', 5)$$);
SELECT pg_temp.x('_subscription_key', 'NULL kind: the position', 'ok 5', $$SELECT eventstore._subscription_key(NULL, 's', NULL, 5)$$);
SELECT pg_temp.x('_subscription_check', 'negative backoff', 'error 22023',
    $$SELECT eventstore._subscription_check(NULL, NULL, 1, '-1 s', '1 s')$$);
SELECT pg_temp.x('_subscription_check', 'max_attempts 1001', 'error 22023',
    $$SELECT eventstore._subscription_check(NULL, NULL, 1001, '1 s', '1 s')$$);
SELECT pg_temp.x('_subscription_check', 'all NULL: nothing to check', 'ok ',
    $$SELECT eventstore._subscription_check(NULL, NULL, NULL, NULL, NULL)$$);
SELECT pg_temp.x('_subscription_start', 'two starts', 'error 22023', $$SELECT eventstore._subscription_start('end', 1, NULL, 'eventstore.events')$$);
SELECT pg_temp.x('_subscription_start', 'unknown start', 'error 22023', $$SELECT eventstore._subscription_start('now', NULL, NULL, 'eventstore.events')$$);
SELECT pg_temp.x('_subscription_start', 'nothing: the beginning', 'ok 0', $$SELECT eventstore._subscription_start(NULL, NULL, NULL, 'eventstore.events')$$);
SELECT pg_temp.x('_subscription_start', 'end of a store that is a plain table', 'error 42809',
    $$SELECT eventstore._subscription_start('end', NULL, NULL, 'bi_nasty')$$);
SELECT pg_temp.x('_subscription_get', 'unknown', 'error 42704', $$SELECT eventstore._subscription_get('bi_none', 10)$$);
SELECT pg_temp.x('_subscription_get', 'NULL caller', 'error 42501',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore._subscription_get('bi_sub', NULL)$$);
SELECT pg_temp.x('_subscription_get', 'a role without rights', 'error 42501',
    $$SELECT eventstore.create_subscription('bi_sub')$$,
    $$SELECT eventstore._subscription_get('bi_sub', 'es_tap_bi_role'::regrole::oid)$$);
SELECT pg_temp.x('_subscription_create', 'NULL caller', 'error 22004',
    $$SELECT eventstore._subscription_create('bi_sub', NULL, NULL, NULL, NULL, NULL, 'stream', 4, 5, '1 s', '1 s', 'eventstore.events', NULL)$$);
SELECT pg_temp.x('_subscription_create', 'NULL store', 'error 22004',
    $$SELECT eventstore._subscription_create('bi_sub', NULL, NULL, NULL, NULL, NULL, 'stream', 4, 5, '1 s', '1 s', NULL, 10)$$);
SELECT pg_temp.x('_subscription_create', 'NULL partition_by', 'error 22023',
    $$SELECT eventstore._subscription_create('bi_sub', NULL, NULL, NULL, NULL, NULL, NULL, 4, 5, '1 s', '1 s', 'eventstore.events', 10)$$);
SELECT pg_temp.x('_subscription_create', 'NULL max_attempts', 'error 22004',
    $$SELECT eventstore._subscription_create('bi_sub', NULL, NULL, NULL, NULL, NULL, 'none', 4, NULL, '1 s', '1 s', 'eventstore.events', 10)$$);
SELECT pg_temp.x('_subscription_backlog', 'NULL subscription: nothing behind', 'ok 0',
    $$SELECT n FROM eventstore._subscription_backlog((SELECT s FROM eventstore.subscriptions s WHERE false), 0, 0, 10)$$);
SELECT pg_temp.x('_subscription_backlog', 'a subscription of the default store', 'ok 0',
    $$SELECT eventstore.create_subscription('bi_sub', start => 'end')$$,
    $$SELECT b.n FROM eventstore.subscriptions s, eventstore._subscription_backlog(s, 0, 9223372036854775807, 10) b
       WHERE s.name = 'bi_sub'$$);
SELECT pg_temp.x('_subscription_backlog', 'NULL checkpoint: nothing', 'ok 0',
    $$SELECT eventstore.create_subscription('bi_sub')$$,
    $$SELECT b.n FROM eventstore.subscriptions s, eventstore._subscription_backlog(s, 0, NULL, 10) b
       WHERE s.name = 'bi_sub'$$);
SELECT pg_temp.x('_outbox_event', 'NULL store: nothing', 'ok 0', $$SELECT count(*) FROM eventstore._outbox_event(NULL, 1)$$);
SELECT pg_temp.x('_outbox_event', 'NULL position: nothing', 'ok 0', $$SELECT count(*) FROM eventstore._outbox_event('eventstore.events', NULL)$$);
SELECT pg_temp.x('_outbox_event', 'OID 0: nothing', 'ok 0', $$SELECT count(*) FROM eventstore._outbox_event(0, 1)$$);
SELECT pg_temp.x('_outbox_event', 'a plain table', 'error 42809', $$SELECT count(*) FROM eventstore._outbox_event('bi_nasty', 1)$$);
SELECT pg_temp.x('_outbox_data', 'NULL data: NULL', 'ok true', $$SELECT eventstore._outbox_data(NULL, 'eventstore.events') IS NULL$$);
SELECT pg_temp.x('_outbox_data', 'NULL store: as it is', 'ok {"a": 1}', $$SELECT eventstore._outbox_data('{"a": 1}', NULL)$$);
SELECT pg_temp.x('_outbox_data', 'OID 0: as it is', 'ok {"a": 1}', $$SELECT eventstore._outbox_data('{"a": 1}', 0)$$);
SELECT pg_temp.x('_outbox_data', 'a plain table', 'error 42809', $$SELECT eventstore._outbox_data('{"a": 1}', 'bi_nasty')$$);
SELECT pg_temp.x('_outbox_shown', 'NULL store: shown', 'ok true', $$SELECT eventstore._outbox_shown(NULL, 'bi-1', 1, now())$$);
SELECT pg_temp.x('_outbox_shown', 'NULL stream (a message): shown', 'ok true', $$SELECT eventstore._outbox_shown('eventstore.events', NULL, NULL, NULL)$$);
SELECT pg_temp.x('_outbox_shown', 'OID 0: shown', 'ok true', $$SELECT eventstore._outbox_shown(0, 'bi-1', 1, now())$$);
SELECT pg_temp.x('_outbox_shown', 'bi-1 version 1: shown', 'ok true', $$SELECT eventstore._outbox_shown('eventstore.events', 'bi-1', 1, now())$$);
SELECT pg_temp.x('_subscription_alter', 'unknown', 'error 42704', $$SELECT eventstore._subscription_alter('bi_none', NULL, NULL, NULL, NULL, NULL, 10)$$);
SELECT pg_temp.x('_subscription_alter', 'NULL caller', 'error 42501',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore._subscription_alter('bi_sub', NULL, NULL, NULL, NULL, NULL, NULL)$$);
SELECT pg_temp.x('_subscription_alter', 'lease of 1 ms', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore._subscription_alter('bi_sub', NULL, NULL, NULL, NULL, '1 ms', 10)$$);
SELECT pg_temp.x('_subscription_drop', 'unknown', 'error 42704', $$SELECT eventstore._subscription_drop('bi_none', 10)$$);
SELECT pg_temp.x('_subscription_drop', 'NULL', 'error 22004', $$SELECT eventstore._subscription_drop(NULL, 10)$$);
SELECT pg_temp.x('_subscription_drop', 'NULL caller', 'error 42501',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore._subscription_drop('bi_sub', NULL)$$);
SELECT pg_temp.x('_subscription_reset', 'unknown', 'error 42704', $$SELECT eventstore._subscription_reset('bi_none', 0, NULL, 10)$$);
SELECT pg_temp.x('_subscription_reset', 'both', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore._subscription_reset('bi_sub', 0, now(), 10)$$);
SELECT pg_temp.x('_subscription_reset', 'time infinity', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore._subscription_reset('bi_sub', NULL, 'infinity', 10)$$);
SELECT pg_temp.x('_subscription_take', 'unknown', 'error 42704', $$SELECT count(*) FROM eventstore._subscription_take('bi_none', 'c', 1, 10)$$);
SELECT pg_temp.x('_subscription_take', 'NULL max_count', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT count(*) FROM eventstore._subscription_take('bi_sub', 'c', NULL, 10)$$);
SELECT pg_temp.x('_subscription_take', 'a role without rights', 'error 42501',
    $$SELECT eventstore.create_subscription('bi_sub')$$,
    $$SELECT count(*) FROM eventstore._subscription_take('bi_sub', 'c', 1, 'es_tap_bi_role'::regrole::oid)$$);
SELECT pg_temp.x('_subscription_delivered', 'NULL subscription row', 'error 22004',
    $$SELECT eventstore._subscription_delivered(NULL, 'c', 1)$$);
SELECT pg_temp.x('_subscription_delivered', 'NULL consumer', 'error 22004',
    $$SELECT eventstore._subscription_delivered(NULL, NULL, 1)$$);
SELECT pg_temp.x('_subscription_delivered', 'position 0', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub')$$,
    $$SELECT eventstore._subscription_delivered((SELECT s FROM eventstore.subscriptions s WHERE name = 'bi_sub'), 'c', 0)$$);
SELECT pg_temp.x('_subscription_ack', 'unknown', 'error 42704', $$SELECT eventstore._subscription_ack('bi_none', 'c', 1, 10)$$);
SELECT pg_temp.x('_subscription_ack', 'negative position', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore._subscription_ack('bi_sub', 'c', -1, 10)$$);
SELECT pg_temp.x('_subscription_ack', 'NULL caller', 'error 42501',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore._subscription_ack('bi_sub', 'c', 1, NULL)$$);
SELECT pg_temp.x('_subscription_ack_many', 'unknown', 'error 42704', $$SELECT eventstore._subscription_ack_many('bi_none', 'c', '{1}', 10)$$);
SELECT pg_temp.x('_subscription_ack_many', 'negative position', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore._subscription_ack_many('bi_sub', 'c', '{-1}', 10)$$);
SELECT pg_temp.x('_subscription_ack_many', 'NULL caller', 'error 42501',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore._subscription_ack_many('bi_sub', 'c', '{1}', NULL)$$);
SELECT pg_temp.x('_subscription_nack', 'unknown', 'error 42704', $$SELECT eventstore._subscription_nack('bi_none', 'c', 1, NULL, NULL, 10)$$);
SELECT pg_temp.x('_subscription_nack', 'negative retry_after', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore._subscription_nack('bi_sub', 'c', 1, '-1 s', NULL, 10)$$);
SELECT pg_temp.x('_subscription_nack', 'a position never delivered', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore._subscription_nack('bi_sub', 'c', 9223372036854775807, NULL, 'x', 10)$$);
SELECT pg_temp.x('_subscription_list_parked', 'unknown', 'error 42704', $$SELECT count(*) FROM eventstore._subscription_list_parked('bi_none', 10)$$);
SELECT pg_temp.x('_subscription_list_parked', 'NULL', 'error 22004', $$SELECT count(*) FROM eventstore._subscription_list_parked(NULL, 10)$$);
SELECT pg_temp.x('_subscription_list_parked', 'a role without rights', 'error 42501',
    $$SELECT eventstore.create_subscription('bi_sub')$$,
    $$SELECT count(*) FROM eventstore._subscription_list_parked('bi_sub', 'es_tap_bi_role'::regrole::oid)$$);
SELECT pg_temp.x('_subscription_replay', 'unknown', 'error 42704', $$SELECT eventstore._subscription_replay('bi_none', NULL, 10)$$);
SELECT pg_temp.x('_subscription_replay', 'NULL', 'error 22004', $$SELECT eventstore._subscription_replay(NULL, NULL, 10)$$);
SELECT pg_temp.x('_subscription_replay', 'position not parked', 'error 22023',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT eventstore._subscription_replay('bi_sub', -1, 10)$$);
SELECT pg_temp.x('_subscription_state', 'NULL caller: nothing', 'ok 0',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT count(*) FROM eventstore._subscription_state(NULL)$$);
SELECT pg_temp.x('_subscription_state', 'a role without rights: nothing', 'ok 0',
    $$SELECT eventstore.create_subscription('bi_sub')$$,
    $$SELECT count(*) FROM eventstore._subscription_state('es_tap_bi_role'::regrole::oid)$$);
SELECT pg_temp.x('_subscription_state', 'an unknown role oid: nothing', 'ok 0',
    $$SELECT eventstore.create_subscription('bi_sub')$$, $$SELECT count(*) FROM eventstore._subscription_state(0)$$);

------------------------------------------------------------------------
-- Observability (no arguments; the library is preloaded here)
------------------------------------------------------------------------
SELECT pg_temp.x('_stats', 'kinds are store, category, projection', 'ok 0',
    $$SELECT count(*) FILTER (WHERE kind NOT IN ('s', 'c', 'p')) FROM eventstore._stats()$$);
SELECT pg_temp.x('_horizon_status', 'one row per counter', 'ok outbox,position',
    $$SELECT string_agg(counter, ',' ORDER BY counter) FROM eventstore._horizon_status()$$);
SELECT pg_temp.x('stats_reset', 'clears this database', 'ok 0',
    $$SELECT eventstore.stats_reset()$$,
    $$SELECT count(*) FROM eventstore.stats WHERE database = current_database()$$);

------------------------------------------------------------------------
-- Stores: create_store, drop_store, _store_arg, _store_has,
-- and the store argument of append and the reads
------------------------------------------------------------------------
CREATE TABLE public.bi_not_store (a int);
SELECT pg_temp.x('create_store', 'NULL name', 'error 22004', $$SELECT eventstore.create_store(NULL)$$);
SELECT pg_temp.x('create_store', 'empty name', 'error 22023', $$SELECT eventstore.create_store('')$$);
SELECT pg_temp.x('create_store', 'three-part name', 'error 42602', $$SELECT eventstore.create_store('a.b.c')$$);
SELECT pg_temp.x('create_store', 'an unknown schema', 'error 3F000', $$SELECT eventstore.create_store('bi_no_schema.events')$$);
SELECT pg_temp.x('create_store', 'an existing table of another type', 'error 42P07', $$SELECT eventstore.create_store('public.bi_not_store')$$);
SELECT pg_temp.x('drop_store', 'NULL', 'error 22004', $$SELECT eventstore.drop_store(NULL)$$);
SELECT pg_temp.x('drop_store', 'the default store', 'error 0A000', $$SELECT eventstore.drop_store('eventstore.events')$$);
SELECT pg_temp.x('drop_store', 'a table that is not a store', 'error 42809', $$SELECT eventstore.drop_store('public.bi_not_store')$$);
SELECT pg_temp.x('drop_store', 'an unknown table', 'error 42P01', $$SELECT eventstore.drop_store('public.bi_nowhere')$$);
SELECT pg_temp.x('_store_arg', 'NULL', 'error 22004', $$SELECT eventstore._store_arg(NULL)$$);
SELECT pg_temp.x('_store_arg', 'the default store', 'ok eventstore.events', $$SELECT eventstore._store_arg('eventstore.events')::text$$);
SELECT pg_temp.x('_store_arg', 'an OID that is no relation', 'error 42P01', $$SELECT eventstore._store_arg(4294967295::oid::regclass)$$);
SELECT pg_temp.x('_store_arg', 'a sequence', 'error 42809', $$SELECT eventstore._store_arg('eventstore.events_global_position_seq')$$);
SELECT pg_temp.x('_store_has', 'NULL store', 'ok false', $$SELECT eventstore._store_has(NULL, 'version_key')$$);
SELECT pg_temp.x('_store_has', 'an unknown check', 'ok <null>', $$SELECT eventstore._store_has('eventstore.events', 'nothing')$$);
SELECT pg_temp.x('_store_has', 'the default store has its key', 'ok true', $$SELECT eventstore._store_has('eventstore.events', 'version_key')$$);
SELECT pg_temp.x('_store_dropped', 'called directly', 'error 0A000', $$SELECT eventstore._store_dropped()$$);
SELECT pg_temp.x('_store_local', 'NULL', 'ok <null>', $$SELECT eventstore._store_local(NULL)$$);
SELECT pg_temp.x('_store_local', 'a store that is not distributed: its name', 'ok eventstore.events', $$SELECT eventstore._store_local('eventstore.events')$$);
SELECT pg_temp.x('_store_local', 'a table that is not a store', 'error 42809', $$SELECT eventstore._store_local('public.bi_not_store')$$);
SELECT pg_temp.x('append', 'NULL store', 'error 22004',
    $$SELECT eventstore.append('bi-9', 0, ARRAY[eventstore.event('T', '{}')], store => NULL)$$);
SELECT pg_temp.x('append_event', 'a table that is not a store', 'error 42809',
    $$SELECT eventstore.append_event('bi-9', 0, 'T', '{}', store => 'public.bi_not_store')$$);
SELECT pg_temp.x('read_all', 'NULL store', 'error 22004', $$SELECT * FROM eventstore.read_all(0, 1, NULL)$$);
SELECT pg_temp.x('read_category', 'a table that is not a store', 'error 42809', $$SELECT * FROM eventstore.read_category('bi', 0, 1, 'public.bi_not_store')$$);
SELECT pg_temp.x('read_stream', 'a table that is not a store', 'error 42809', $$SELECT * FROM eventstore.read_stream('bi-1', store => 'public.bi_not_store')$$);
SELECT pg_temp.x('stream_version', 'a table that is not a store', 'error 42809', $$SELECT eventstore.stream_version('bi-1', 'public.bi_not_store')$$);
SELECT pg_temp.x('_store_adopt', 'NULL', 'error 22004', $$SELECT eventstore._store_adopt(NULL)$$);
SELECT pg_temp.x('_store_adopt', 'a table that is not a store', 'error 42809', $$SELECT eventstore._store_adopt('public.bi_not_store')$$);
SELECT pg_temp.x('_store_adopt', 'the default store: the sequence is already past its events', 'ok true',
    $$SELECT eventstore._store_adopt('eventstore.events') >= (SELECT max(global_position) FROM eventstore.events)$$);
DROP TABLE public.bi_not_store;
SELECT pg_temp.x('distribute', 'NULL', 'error 22004', $$SELECT eventstore.distribute(NULL)$$);
SELECT pg_temp.x('distribute', 'a table that is not a store', 'error 42809', $$SELECT eventstore.distribute('pg_catalog.pg_class')$$);
SELECT pg_temp.x('distribute', 'without the citus extension', 'error 55000', $$SELECT eventstore.distribute()$$);
SELECT pg_temp.x('read_node', 'without Citus: the store, the same rows as read_all', 'ok true',
    $$SELECT array_agg(global_position ORDER BY global_position) IS NOT DISTINCT FROM (SELECT array_agg(global_position ORDER BY global_position) FROM eventstore.read_all(0, NULL))
        FROM eventstore.read_node(0, NULL)$$);
SELECT pg_temp.x('read_node', 'negative max_count', 'error 22023', $$SELECT count(*) FROM eventstore.read_node(0, -1)$$);
SELECT pg_temp.x('read_node', 'NULL store', 'error 22004', $$SELECT count(*) FROM eventstore.read_node(0, 1, NULL)$$);
SELECT pg_temp.x('read_node', 'a table that is not a store', 'error 42809', $$SELECT count(*) FROM eventstore.read_node(0, 1, 'pg_catalog.pg_class')$$);

------------------------------------------------------------------------
-- Lifecycle: set_stream_metadata, set_category_metadata, stream_metadata,
-- delete_stream, purge, _lifecycle_active, _visible, _version_floor
------------------------------------------------------------------------
CREATE TABLE public.bi_not_store2 (a int);
SELECT pg_temp.x('set_stream_metadata', 'NULL stream_id', 'error 22004', $$SELECT eventstore.set_stream_metadata(NULL, max_count => 1)$$);
SELECT pg_temp.x('set_stream_metadata', 'empty stream_id', 'error 22023', $$SELECT eventstore.set_stream_metadata('', max_count => 1)$$);
SELECT pg_temp.x('set_stream_metadata', 'stream_id of 1 MB', 'error 22001', $$SELECT eventstore.set_stream_metadata(repeat('s', 1048576), max_count => 1)$$);
SELECT pg_temp.x('set_stream_metadata', 'max_count 0', 'error 22023', $$SELECT eventstore.set_stream_metadata('bi-1', max_count => 0)$$);
SELECT pg_temp.x('set_stream_metadata', 'truncate_before -1', 'error 22023', $$SELECT eventstore.set_stream_metadata('bi-1', truncate_before => -1)$$);
SELECT pg_temp.x('set_stream_metadata', 'max_age 0', 'error 22023', $$SELECT eventstore.set_stream_metadata('bi-1', max_age => '0')$$);
SELECT pg_temp.x('set_stream_metadata', 'max_age malformed', 'error 22007', $$SELECT eventstore.set_stream_metadata('bi-1', max_age => 'soon')$$);
SELECT pg_temp.x('set_stream_metadata', 'NULL store', 'error 22004', $$SELECT eventstore.set_stream_metadata('bi-1', max_count => 1, store => NULL)$$);
SELECT pg_temp.x('set_stream_metadata', 'a table that is not a store', 'error 42809', $$SELECT eventstore.set_stream_metadata('bi-1', max_count => 1, store => 'public.bi_not_store2')$$);
SELECT pg_temp.x('set_stream_metadata', 'max_count 1 hides version 1 of bi-1', 'ok 2',
    $$SELECT eventstore.set_stream_metadata('bi-1', max_count => 1)$$,
    $$SELECT string_agg(stream_version::text, ',') FROM eventstore.read_stream('bi-1')$$);
SELECT pg_temp.x('set_stream_metadata', 'SQL-looking stream_id and reason', 'ok 1',
    $$SELECT eventstore.set_stream_metadata($s$bi-1' OR '1'='1$s$, truncate_before => 5, reason => $r$'); DROP TABLE eventstore.events; --$r$)$$,
    $$SELECT count(*) FROM eventstore.lifecycle_log WHERE reason LIKE '%DROP TABLE%'$$);
SELECT pg_temp.x('set_category_metadata', 'NULL category', 'error 22004', $$SELECT eventstore.set_category_metadata(NULL, max_count => 1)$$);
SELECT pg_temp.x('set_category_metadata', 'empty category', 'error 22023', $$SELECT eventstore.set_category_metadata('', max_count => 1)$$);
SELECT pg_temp.x('set_category_metadata', 'a category with a dash', 'error 22023', $$SELECT eventstore.set_category_metadata('bi-1', max_count => 1)$$);
SELECT pg_temp.x('set_category_metadata', 'max_count -5', 'error 22023', $$SELECT eventstore.set_category_metadata('bi', max_count => -5)$$);
SELECT pg_temp.x('set_category_metadata', 'truncate_before 3 hides all of bi-1', 'ok <null>',
    $$SELECT eventstore.set_category_metadata('bi', truncate_before => 3)$$,
    $$SELECT string_agg(stream_version::text, ',') FROM eventstore.read_stream('bi-1')$$);
SELECT pg_temp.x('stream_metadata', 'NULL stream_id', 'error 22004', $$SELECT * FROM eventstore.stream_metadata(NULL)$$);
SELECT pg_temp.x('stream_metadata', 'empty stream_id', 'error 22023', $$SELECT * FROM eventstore.stream_metadata('')$$);
SELECT pg_temp.x('stream_metadata', 'NULL store', 'error 22004', $$SELECT * FROM eventstore.stream_metadata('bi-1', NULL)$$);
SELECT pg_temp.x('stream_metadata', 'bi-1 without metadata', 'ok 1', $$SELECT first_version FROM eventstore.stream_metadata('bi-1')$$);
SELECT pg_temp.x('delete_stream', 'NULL stream_id', 'error 22004', $$SELECT eventstore.delete_stream(NULL, NULL)$$);
SELECT pg_temp.x('delete_stream', 'empty stream_id', 'error 22023', $$SELECT eventstore.delete_stream('', NULL)$$);
SELECT pg_temp.x('delete_stream', 'expected_version -2', 'error 22023', $$SELECT eventstore.delete_stream('bi-1', -2)$$);
SELECT pg_temp.x('delete_stream', 'a wrong expected version', 'error ES409', $$SELECT eventstore.delete_stream('bi-1', 7)$$);
SELECT pg_temp.x('delete_stream', 'NULL hard', 'error 22004', $$SELECT eventstore.delete_stream('bi-1', 2, NULL)$$);
SELECT pg_temp.x('delete_stream', 'NULL store', 'error 22004', $$SELECT eventstore.delete_stream('bi-1', 2, store => NULL)$$);
SELECT pg_temp.x('delete_stream', 'a table that is not a store', 'error 42809', $$SELECT eventstore.delete_stream('bi-1', 2, store => 'public.bi_not_store2')$$);
SELECT pg_temp.x('delete_stream', 'bi-1 at 2: gone from reads, version kept', 'ok 2',
    $$SELECT eventstore.delete_stream('bi-1', 2)$$,
    $$SELECT count(*) FROM eventstore.read_stream('bi-1')$$,
    $$SELECT eventstore.stream_version('bi-1')$$);
SELECT pg_temp.x('delete_stream', 'hard, then an append: ES410', 'error ES410',
    $$SELECT eventstore.delete_stream('bi-1', NULL, true)$$,
    $$SELECT eventstore.append_event('bi-1', NULL, 'T', '{}')$$);
SELECT pg_temp.x('purge', 'NULL max_count', 'error 22004', $$SELECT eventstore.purge(NULL)$$);
SELECT pg_temp.x('purge', 'max_count 0', 'error 22023', $$SELECT eventstore.purge(0)$$);
SELECT pg_temp.x('purge', 'max_count -1', 'error 22023', $$SELECT eventstore.purge(-1)$$);
SELECT pg_temp.x('purge', 'NULL store', 'error 22004', $$SELECT eventstore.purge(1, NULL)$$);
SELECT pg_temp.x('purge', 'nothing hidden: 0', 'ok 0', $$SELECT eventstore.purge()$$);
SELECT pg_temp.x('purge', 'after a deletion: 2', 'ok 2', $$SELECT eventstore.delete_stream('bi-1', 2)$$, $$SELECT eventstore.purge()$$);
SELECT pg_temp.x('_lifecycle_active', 'NULL: NULL (strict)', 'ok <null>', $$SELECT eventstore._lifecycle_active(NULL)$$);
SELECT pg_temp.x('_lifecycle_active', 'the default store: false', 'ok false', $$SELECT eventstore._lifecycle_active('eventstore.events')$$);
SELECT pg_temp.x('_lifecycle_active', 'an OID that is no relation: false', 'ok false', $$SELECT eventstore._lifecycle_active(4294967295::oid::regclass)$$);
SELECT pg_temp.x('_visible', 'NULL store', 'error 22004', $$SELECT eventstore._visible(NULL, 'bi-1', 1, now())$$);
SELECT pg_temp.x('_visible', 'NULL version', 'error 22004', $$SELECT eventstore._visible('eventstore.events', 'bi-1', NULL, now())$$);
SELECT pg_temp.x('_visible', 'a table that is not a store', 'error 42809', $$SELECT eventstore._visible('public.bi_not_store2', 'bi-1', 1, now())$$);
SELECT pg_temp.x('_visible', 'bi-1 version 1: true', 'ok true', $$SELECT eventstore._visible('eventstore.events', 'bi-1', 1, now())$$);
SELECT pg_temp.x('_version_floor', 'NULL: NULL (strict)', 'ok <null>', $$SELECT eventstore._version_floor(NULL, 'bi-1')$$);
SELECT pg_temp.x('_version_floor', 'a table that is not a store', 'error 42809', $$SELECT eventstore._version_floor('public.bi_not_store2', 'bi-1')$$);
SELECT pg_temp.x('_version_floor', 'bi-1 without metadata: 0', 'ok 0', $$SELECT eventstore._version_floor('eventstore.events', 'bi-1')$$);
SELECT pg_temp.x('encrypt', 'NULL subject', 'error 22004', $$SELECT eventstore.encrypt(NULL, '"x"')$$);
SELECT pg_temp.x('encrypt', 'empty subject', 'error 22023', $$SELECT eventstore.encrypt('', '"x"')$$);
SELECT pg_temp.x('encrypt', 'subject of 1 MB', 'error 22001', $$SELECT eventstore.encrypt(repeat('s', 1048576), '"x"')$$);
SELECT pg_temp.x('encrypt', 'NULL value: NULL', 'ok <null>', $$SELECT eventstore.encrypt('bi-subject', NULL)$$);
SELECT pg_temp.x('encrypt', 'NULL store', 'error 22004', $$SELECT eventstore.encrypt('bi-subject', '"x"', NULL)$$);
SELECT pg_temp.x('encrypt', 'a table that is not a store', 'error 42809', $$SELECT eventstore.encrypt('bi-subject', '"x"', 'public.bi_not_store2')$$);
SELECT pg_temp.x('decrypt', 'NULL: NULL', 'ok <null>', $$SELECT eventstore.decrypt(NULL)$$);
SELECT pg_temp.x('decrypt', 'no envelope: unchanged', 'ok {"a": [1, {"$es_enc": 2}]}', $$SELECT eventstore.decrypt('{"a": [1, {"$es_enc": 2}]}')::text$$);
SELECT pg_temp.x('decrypt', 'an envelope of an unknown key: the marker', 'ok {"$es_forgotten": true}',
    $$SELECT eventstore.decrypt('{"$es_enc": {"k": "00000000-0000-4000-8000-000000000000", "c": "AA=="}}')::text$$);
SELECT pg_temp.x('decrypt', 'a key id that is no UUID: unchanged', 'ok {"$es_enc": {"c": "", "k": "x"}}',
    $$SELECT eventstore.decrypt('{"$es_enc": {"k": "x", "c": ""}}')::text$$);
SELECT pg_temp.x('decrypt', 'a table that is not a store', 'error 42809', $$SELECT eventstore.decrypt('{}', 'public.bi_not_store2')$$);
SELECT pg_temp.x('forget', 'NULL subject', 'error 22004', $$SELECT eventstore.forget(NULL)$$);
SELECT pg_temp.x('forget', 'empty subject', 'error 22023', $$SELECT eventstore.forget('')$$);
SELECT pg_temp.x('forget', 'NULL store', 'error 22004', $$SELECT eventstore.forget('bi-subject', NULL, NULL)$$);
SELECT pg_temp.x('forget', 'an unknown subject: false', 'ok false', $$SELECT eventstore.forget($s$bi' OR '1'='1$s$)$$);
DROP TABLE public.bi_not_store2;

------------------------------------------------------------------------
-- Trigger functions called directly
------------------------------------------------------------------------
SELECT pg_temp.x('refuse_change', 'called directly', 'error 39P01', $$SELECT eventstore.refuse_change()$$);
SELECT pg_temp.x('_registry_changed', 'called directly', 'error 39P01', $$SELECT eventstore._registry_changed()$$);
SELECT pg_temp.x('_relay_state_merge', 'called directly', 'error 0A000', $$SELECT eventstore._relay_state_merge()$$);

------------------------------------------------------------------------
-- Every function was tried; the store is unchanged
------------------------------------------------------------------------
SELECT is(ARRAY(SELECT p.proname::text FROM pg_proc p WHERE p.pronamespace = 'eventstore'::regnamespace
                EXCEPT SELECT fn::text FROM bi_tried ORDER BY 1),
          '{}'::text[], 'every function of schema eventstore was given inputs');
SELECT is(ARRAY(SELECT fn::text FROM bi_tried GROUP BY fn
                HAVING count(*) < CASE WHEN fn IN ('refuse_change', '_registry_changed', '_relay_state_merge', 'relay_status', '_store_dropped',
                                                   '_relay_wakeup', '_upcasting', '_stats',
                                                   '_horizon_status', 'stats_reset', '_log_horizon',
                                                   'subscription_status') THEN 1 ELSE 3 END
                ORDER BY 1),
          '{}'::text[], 'every function that takes arguments was given at least three inputs');
SELECT is(pg_temp.store_state(), (SELECT state FROM bi_before),
          'the store is unchanged: events, outbox, registries, snapshots, consumers, stream versions');
SELECT diag(format('bad inputs tried: %s on %s functions (%s expected to fail with a specific SQLSTATE, %s expected to succeed with a checked result)',
                   count(*), count(DISTINCT fn), count(*) FILTER (WHERE want LIKE 'error %'),
                   count(*) FILTER (WHERE want NOT LIKE 'error %')))
  FROM bi_tried;

SELECT * FROM finish();
ROLLBACK;
