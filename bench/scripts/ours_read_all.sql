\set start random(0, 98000)
SELECT * FROM eventstore.read_all(:start, 1000);
