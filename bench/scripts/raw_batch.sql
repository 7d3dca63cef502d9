INSERT INTO raw_events (global_position, stream_id, stream_version, event_id, event_type, data)
SELECT nextval('raw_position_seq'), 'batch-' || :client_id, nextval('raw_version_seq'), gen_random_uuid(), (e).event_type, (e).data
  FROM (SELECT unnest(evs) AS e FROM bench_batch) b;
