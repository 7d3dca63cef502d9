\set shard random(0, 9)
SELECT * FROM eventstore.events e WHERE e.event_type = 'Tagged' AND e.tags @> ARRAY['shard:' || :shard] AND e.tags <> '{}' ORDER BY e.global_position LIMIT 1000;
