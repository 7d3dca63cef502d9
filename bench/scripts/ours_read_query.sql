\set shard random(0, 9)
SELECT * FROM eventstore.read_query(jsonb_build_object('items', jsonb_build_array(jsonb_build_object('types', '["Tagged"]'::jsonb, 'tags', jsonb_build_array('shard:' || :shard)))), 0, 1000);
