SELECT plpgsql_append('bench-' || :run || '-' || :client_id, NULL, 'Appended', '{"amount": 42, "note": "a typical small event"}');
