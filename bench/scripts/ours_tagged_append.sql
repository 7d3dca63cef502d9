SELECT eventstore.append_event('dcb-tagged-' || :run || '-' || :client_id, NULL, 'Appended', '{"amount": 42, "note": "a typical small event"}', tags => ARRAY['client:' || :client_id]);
