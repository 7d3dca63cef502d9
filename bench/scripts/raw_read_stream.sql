SELECT * FROM raw_events WHERE stream_id = 'reader-1' AND stream_version >= 1 ORDER BY stream_version;
