-- Benchmark schema: eventstore plus the baselines, in one database.
CREATE EXTENSION IF NOT EXISTS eventstore;

-- raw: a one-row INSERT into a plain table with the same columns, constraints
-- and indexes as eventstore.events, the position from ONE sequence (also used
-- as the version, so (stream_id, stream_version) stays unique).
CREATE SEQUENCE raw_position_seq CACHE 1;
CREATE TABLE raw_events (LIKE eventstore.events INCLUDING ALL);

-- plpgsql: the append a user would write by hand, same semantics.
CREATE TABLE plpgsql_events (LIKE eventstore.events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
CREATE SEQUENCE plpgsql_position_seq CACHE 1;
CREATE FUNCTION plpgsql_append(p_stream text, p_expected bigint, p_type text, p_data jsonb,
                               OUT stream_version bigint, OUT global_position bigint)
LANGUAGE plpgsql AS $$
DECLARE cur bigint;
BEGIN
    SELECT coalesce(max(e.stream_version), 0) INTO cur FROM plpgsql_events e WHERE e.stream_id = p_stream;
    IF p_expected IS NOT NULL AND cur <> p_expected THEN
        RAISE EXCEPTION 'wrong expected version' USING ERRCODE = 'ES409';
    END IF;
    stream_version := cur + 1;
    global_position := nextval('plpgsql_position_seq');
    INSERT INTO plpgsql_events (global_position, stream_id, stream_version, event_id, event_type, data)
    VALUES (global_position, p_stream, stream_version, gen_random_uuid(), p_type, p_data);
END $$;

-- A 100-event batch, built once.
CREATE TABLE bench_batch AS
SELECT array_agg(eventstore.event('Batched', jsonb_build_object('n', i, 'payload', repeat('x', 100)))) AS evs
  FROM generate_series(1, 100) i;

-- Hot stream: try an exact-version append, report success or conflict.
CREATE FUNCTION try_append_ours(p_stream text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM eventstore.append_event(p_stream, eventstore.stream_version(p_stream), 'Hot', '{"n": 1}');
    RETURN true;
EXCEPTION WHEN SQLSTATE 'ES409' THEN
    RETURN false;
END $$;
CREATE FUNCTION try_append_plpgsql(p_stream text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM plpgsql_append(p_stream,
        (SELECT coalesce(max(e.stream_version), 0) FROM plpgsql_events e WHERE e.stream_id = p_stream),
        'Hot', '{"n": 1}');
    RETURN true;
EXCEPTION WHEN SQLSTATE 'ES409' OR unique_violation THEN
    RETURN false;
END $$;
CREATE TABLE hot_results (variant text, ok boolean);

-- Projection case: a read model of one row per stream, upserted.
CREATE TABLE proj_counts (stream_id text PRIMARY KEY, n bigint NOT NULL);
CREATE FUNCTION proj_count(e eventstore.events) RETURNS void LANGUAGE sql AS $$
    INSERT INTO proj_counts VALUES (e.stream_id, 1)
    ON CONFLICT (stream_id) DO UPDATE SET n = proj_counts.n + 1
$$;
SELECT eventstore.register_projection('bench_count', 'proj_count(eventstore.events)', ARRAY['Projected']);

-- Read cases: one 1,000-event stream and a 100,000-event log, in both stores.
SELECT eventstore.append('reader-1', 0,
       (SELECT array_agg(eventstore.event('Read', jsonb_build_object('n', i))) FROM generate_series(1, 1000) i));
INSERT INTO raw_events (global_position, stream_id, stream_version, event_id, event_type, data)
SELECT nextval('raw_position_seq'), 'reader-1', i, gen_random_uuid(), 'Read', jsonb_build_object('n', i)
  FROM generate_series(1, 1000) i;
DO $$
BEGIN
    FOR s IN 1..99 LOOP
        PERFORM eventstore.append('log-' || s, 0,
            (SELECT array_agg(eventstore.event('Log', jsonb_build_object('n', i))) FROM generate_series(1, 1000) i));
    END LOOP;
END $$;
INSERT INTO raw_events (global_position, stream_id, stream_version, event_id, event_type, data)
SELECT nextval('raw_position_seq'), 'log-' || (i / 1000), i % 1000 + 1, gen_random_uuid(), 'Log', jsonb_build_object('n', i)
  FROM generate_series(1000, 99999) i;
VACUUM ANALYZE;

-- Relay cases: our route, and a hand-written outbox.
SELECT eventstore.add_route('bench_relay', ARRAY['Relayed']);
CREATE TABLE hand_events (id bigserial PRIMARY KEY, stream_id text NOT NULL, data jsonb NOT NULL,
                          created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE hand_outbox (id bigint PRIMARY KEY);

-- Aggregate case: a 10,050-event stream, snapshotted every 100 events by a policy.
CREATE FUNCTION bench_reducer(state jsonb, e eventstore.events) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('n', COALESCE((state->>'n')::bigint, 0) + 1,
                              'sum', COALESCE((state->>'sum')::bigint, 0) + (e.data->>'n')::bigint)
$$;
SELECT eventstore.set_snapshot_policy('bench', 'bench_reducer(jsonb, eventstore.events)', 100,
                                      categories => ARRAY['agg']);
DO $$
BEGIN
    FOR b IN 0..99 LOOP
        PERFORM eventstore.append('agg-1', NULL,
            (SELECT array_agg(eventstore.event('Counted', jsonb_build_object('n', b * 100 + i)))
               FROM generate_series(1, 100) i));
    END LOOP;
    PERFORM eventstore.append('agg-1', NULL,
        (SELECT array_agg(eventstore.event('Counted', jsonb_build_object('n', 10000 + i)))
           FROM generate_series(1, 50) i));
END $$;

-- DCB: 10,000 tagged events, 1,000 per tag shard:0 .. shard:9 (read_query).
SELECT eventstore.append('tagged-1', 0,
       (SELECT array_agg(eventstore.event('Tagged', jsonb_build_object('n', i), tags => ARRAY['shard:' || (i % 10)]))
          FROM generate_series(1, 10000) i));
ANALYZE eventstore.events;

-- Stores: a named store, and 100 more (bench_stores.s1 .. s100), all made
-- with create_store, for "append to a named store" and "append, 100 stores".
CREATE SCHEMA bench_store;
SELECT eventstore.create_store('bench_store.events');
CREATE SCHEMA bench_stores;
SELECT count(eventstore.create_store('bench_stores.s' || i)) FROM generate_series(1, 100) i;
-- and their raw baseline: 100 tables like raw_events, a sequence each
-- (bench/run.sh writes the script that inserts into a random one of them).
CREATE SCHEMA raw100;
DO $$
BEGIN
    FOR i IN 1 .. 100 LOOP
        EXECUTE format('CREATE TABLE raw100.t%s (LIKE eventstore.events INCLUDING ALL)', i);
        EXECUTE format('CREATE SEQUENCE raw100.seq%s CACHE 1', i);
    END LOOP;
END $$;

-- Lifecycle: two stores of their own for the encryption case (keys in one
-- store switch that store's reads to the decrypting plan; the default store
-- stays as it is), and pgcrypto.
CREATE EXTENSION IF NOT EXISTS pgcrypto;
SELECT eventstore.create_store('public.bench_secure');
SELECT eventstore.create_store('public.bench_plain');
