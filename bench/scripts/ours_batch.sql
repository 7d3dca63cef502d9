SELECT eventstore.append('batch-' || :run || '-' || :client_id, NULL, (SELECT evs FROM bench_batch));
