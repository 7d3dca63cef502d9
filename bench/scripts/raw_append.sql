INSERT INTO raw_events (global_position, stream_id, stream_version, event_id, event_type, data)
VALUES (nextval('raw_position_seq'), 'bench-' || :client_id, nextval('raw_version_seq'), gen_random_uuid(), 'Appended', '{"amount": 42, "note": "a typical small event"}');
