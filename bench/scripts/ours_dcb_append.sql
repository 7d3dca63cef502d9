\set k random(1, 1000000000)
SELECT eventstore.append_event('dcb-' || :client_id, NULL, 'Appended', '{"amount": 42, "note": "a typical small event"}', tags => ARRAY['client:' || :client_id], condition => jsonb_build_object('fail_if_events_match', jsonb_build_object('items', jsonb_build_array(jsonb_build_object('types', '["Appended"]'::jsonb, 'tags', jsonb_build_array('key:' || :k))))));
