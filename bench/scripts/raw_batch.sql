INSERT INTO raw_events (global_position, stream_id, stream_version, event_id, event_type, data)
SELECT x.p, 'batch-' || :run || '-' || :client_id, x.p, gen_random_uuid(), x.t, x.d
  FROM (SELECT nextval('raw_position_seq') AS p, (e).event_type AS t, (e).data AS d
          FROM (SELECT unnest(evs) AS e FROM bench_batch) b) x;
