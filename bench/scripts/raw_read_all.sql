\set start random(0, 98000)
SELECT * FROM raw_events WHERE global_position > :start ORDER BY global_position LIMIT 1000;
