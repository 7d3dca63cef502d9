SELECT eventstore.append_event('bench-' || :run || '-' || :client_id, NULL, 'Appended', '{"amount": 42, "note": "a typical small event"}', store => 'bench_store.events');
