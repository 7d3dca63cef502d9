SELECT eventstore.append_event('benc-' || :run || '-' || :client_id, NULL, 'Appended', jsonb_build_object('amount', 42, 'note', 'a typical small event'), store => 'public.bench_plain');
