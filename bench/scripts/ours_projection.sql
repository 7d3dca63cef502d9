SELECT eventstore.append_event('proj-' || :client_id, NULL, 'Projected', '{"amount": 42}');
