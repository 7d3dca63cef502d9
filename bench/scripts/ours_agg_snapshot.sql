SELECT eventstore.aggregate('agg-1', 'bench_reducer(jsonb, eventstore.events)', snapshot_type => 'bench');
