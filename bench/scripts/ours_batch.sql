SELECT eventstore.append('batch-' || :client_id, NULL, (SELECT evs FROM bench_batch));
