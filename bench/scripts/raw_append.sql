INSERT INTO raw_events (global_position, stream_id, stream_version, event_id, event_type, data)
SELECT p.p, 'bench-' || :run || '-' || :client_id, p.p, gen_random_uuid(), 'Appended', '{"amount": 42, "note": "a typical small event"}'
  FROM (SELECT nextval('raw_position_seq') AS p) p;
