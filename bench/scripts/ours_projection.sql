SELECT eventstore.append_event('proj-' || :run || '-' || :client_id, NULL, 'Projected', '{"amount": 42}');
