SELECT plpgsql_append('batch-' || :run || '-' || :client_id, NULL, (e).event_type, (e).data) FROM (SELECT unnest(evs) AS e FROM bench_batch) b;
