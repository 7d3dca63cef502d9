BEGIN;
SELECT eventstore.append_event('hand-' || :run || '-' || :client_id, NULL, 'Unprojected', '{"amount": 42}');
INSERT INTO proj_counts VALUES ('hand-' || :run || '-' || :client_id, 1) ON CONFLICT (stream_id) DO UPDATE SET n = proj_counts.n + 1;
COMMIT;
