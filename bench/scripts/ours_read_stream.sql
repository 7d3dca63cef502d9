SELECT * FROM eventstore.read_stream('reader-1');
