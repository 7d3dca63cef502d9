/*
 * relay_bench.c
 *		Commit-to-notification latency and relay throughput, for eventstore's
 *		relay worker and for a hand-written relay (an outbox table drained by
 *		FOR UPDATE SKIP LOCKED + pg_notify + DELETE in a loop).
 *
 *	relay_bench CONNINFO MODE latency RATE SECONDS
 *	relay_bench CONNINFO MODE throughput COUNT
 *		MODE is "ours" or "hand".  Prints one line of key=value pairs.
 *
 * The hand relay sends what ours sends (id, stream and data, as JSON), so the
 * two do the same work.  It polls every millisecond when idle.
 *
 * Threads, each with its own connection: a listener that timestamps every
 * notification, a writer that appends at a steady rate and timestamps each
 * commit, and (hand mode) the hand-written relay loop.  Latency is the
 * notification's arrival minus the append's commit (the moment the append
 * statement returned), matched by outbox id or global position.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include "libpq-fe.h"

#define MAX_EVENTS 2000000

static const char *conninfo;
static int	hand;
static volatile int stop_relay;
static double *commit_at;		/* by key: when the append committed */
static double *notified_at;		/* by key: when its notification arrived */
static volatile long notified;	/* notifications received */
static long key_base;			/* keys are stored at key - key_base */
static long expected_total;

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static PGconn *
connect_or_die(void)
{
	PGconn	   *c = PQconnectdb(conninfo);

	if (PQstatus(c) != CONNECTION_OK)
	{
		fprintf(stderr, "connection failed: %s", PQerrorMessage(c));
		exit(1);
	}
	return c;
}

static void
exec_or_die(PGconn *c, const char *sql)
{
	PGresult   *r = PQexec(c, sql);

	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
		exit(1);
	}
	PQclear(r);
}

/* The key a notification stands for: our position, or the hand outbox id. */
static long
payload_key(const char *payload)
{
	const char *p;

	if (!hand)
	{
		p = strstr(payload, "\"position\": ");
		return p ? atol(p + 12) : -1;
	}
	p = strstr(payload, "\"id\": ");
	return p ? atol(p + 6) : -1;
}

static void *
listener(void *arg)
{
	PGconn	   *c = connect_or_die();
	int			sock = PQsocket(c);

	(void) arg;
	exec_or_die(c, hand ? "LISTEN bench_hand" : "LISTEN bench_relay");
	while (notified < expected_total)
	{
		fd_set		fds;
		struct timeval tv = {0, 100000};
		PGnotify   *n;

		FD_ZERO(&fds);
		FD_SET(sock, &fds);
		if (select(sock + 1, &fds, NULL, NULL, &tv) < 0)
			break;
		PQconsumeInput(c);
		while ((n = PQnotifies(c)) != NULL)
		{
			long		key = payload_key(n->extra);

			key -= key_base;
			if (key >= 0 && key < MAX_EVENTS && notified_at[key] == 0)
				notified_at[key] = now_ms();
			notified++;
			PQfreemem(n);
		}
		if (stop_relay == 2)
			break;
	}
	PQfinish(c);
	return NULL;
}

/* The hand-written relay: drain, notify, delete; poll every millisecond when idle. */
static void *
hand_relay(void *arg)
{
	PGconn	   *c = connect_or_die();

	(void) arg;
	while (!stop_relay)
	{
		PGresult   *r = PQexec(c,
							   "WITH batch AS (DELETE FROM hand_outbox WHERE id IN ("
							   " SELECT id FROM hand_outbox ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED)"
							   " RETURNING id)"
							   " SELECT count(pg_notify('bench_hand', jsonb_build_object('id', e.id,"
							   "   'stream_id', e.stream_id, 'data', e.data)::text))"
							   " FROM (SELECT id FROM batch ORDER BY id) b JOIN hand_events e ON e.id = b.id");

		if (PQresultStatus(r) != PGRES_TUPLES_OK)
		{
			fprintf(stderr, "hand relay: %s", PQerrorMessage(c));
			exit(1);
		}
		if (atol(PQgetvalue(r, 0, 0)) == 0)
			usleep(1000);
		PQclear(r);
	}
	PQfinish(c);
	return NULL;
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
	pthread_t	lt,
				rt;
	PGconn	   *w;
	const char *what;

	if (argc < 5)
	{
		fprintf(stderr, "usage: relay_bench CONNINFO ours|hand latency RATE SECONDS | throughput COUNT\n");
		return 2;
	}
	conninfo = argv[1];
	hand = strcmp(argv[2], "hand") == 0;
	what = argv[3];
	commit_at = calloc(MAX_EVENTS, sizeof(double));
	notified_at = calloc(MAX_EVENTS, sizeof(double));
	w = connect_or_die();
	{
		/* keys (positions or ids) of this run start above the current value */
		PGresult   *r = PQexec(w, hand ? "SELECT last_value FROM hand_events_id_seq"
							   : "SELECT last_value FROM eventstore.events_global_position_seq");

		if (PQresultStatus(r) != PGRES_TUPLES_OK)
		{
			fprintf(stderr, "reading the key base: %s", PQerrorMessage(w));
			return 1;
		}
		key_base = atol(PQgetvalue(r, 0, 0));
		PQclear(r);
	}

	if (strcmp(what, "latency") == 0)
	{
		int			rate = atoi(argv[4]);
		int			secs = argc > 5 ? atoi(argv[5]) : 5;
		long		total = (long) rate * secs;
		double		start,
					interval = 1000.0 / rate;
		double	   *lat = calloc(total, sizeof(double));
		long		nlat = 0,
					sent = 0;
		char		sql[256];

		expected_total = total;
		pthread_create(&lt, NULL, listener, NULL);
		if (hand)
			pthread_create(&rt, NULL, hand_relay, NULL);
		usleep(300000);
		start = now_ms();
		long	   *keys = calloc(total, sizeof(long));

		for (long i = 0; i < total; i++)
		{
			PGresult   *r;
			double		due = start + i * interval;

			while (now_ms() < due)
				usleep(100);
			if (hand)
				snprintf(sql, sizeof(sql),
						 "WITH e AS (INSERT INTO hand_events (stream_id, data) VALUES ('relay-1', '{\"n\": %ld}') RETURNING id)"
						 " INSERT INTO hand_outbox (id) SELECT id FROM e RETURNING id", i);
			else
				snprintf(sql, sizeof(sql),
						 "SELECT global_position FROM eventstore.append_event('relay-1', NULL, 'Relayed', '{\"n\": %ld}')", i);
			r = PQexec(w, sql);
			if (PQresultStatus(r) != PGRES_TUPLES_OK)
			{
				fprintf(stderr, "append: %s", PQerrorMessage(w));
				return 1;
			}
			keys[i] = atol(PQgetvalue(r, 0, 0)) - key_base;
			if (keys[i] >= 0 && keys[i] < MAX_EVENTS)
				commit_at[keys[i]] = now_ms();
			PQclear(r);
			sent++;
		}
		/* give stragglers 5 s */
		for (int t = 0; t < 500 && notified < total; t++)
			usleep(10000);
		stop_relay = 2;
		for (long i = 0; i < sent; i++)
			if (keys[i] >= 0 && keys[i] < MAX_EVENTS && notified_at[keys[i]] > 0)
				lat[nlat++] = notified_at[keys[i]] - commit_at[keys[i]];
		qsort(lat, nlat, sizeof(double), cmp_double);
		printf("mode=%s rate=%d sent=%ld received=%ld p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
			   argv[2], rate, sent, nlat,
			   nlat ? lat[nlat / 2] : -1, nlat ? lat[(long) (nlat * 0.99)] : -1,
			   nlat ? lat[nlat - 1] : -1);
	}
	else
	{
		long		count = atol(argv[4]);
		double		t0,
					t1;
		char		sql[512];

		expected_total = count;
		pthread_create(&lt, NULL, listener, NULL);
		usleep(300000);
		/* write the backlog in one transaction, then time its relay */
		exec_or_die(w, "BEGIN");
		if (hand)
			snprintf(sql, sizeof(sql),
					 "WITH e AS (INSERT INTO hand_events (stream_id, data)"
					 " SELECT 'relay-t', jsonb_build_object('n', i) FROM generate_series(1, %ld) i RETURNING id)"
					 " INSERT INTO hand_outbox (id) SELECT id FROM e", count);
		else
			snprintf(sql, sizeof(sql),
					 "SELECT eventstore.append('relay-t', NULL, (SELECT array_agg(eventstore.event('Relayed',"
					 " jsonb_build_object('n', i))) FROM generate_series(1, %ld) i))", count);
		exec_or_die(w, sql);
		exec_or_die(w, "COMMIT");
		t0 = now_ms();
		if (hand)
			pthread_create(&rt, NULL, hand_relay, NULL);
		while (notified < count && now_ms() - t0 < 120000)
			usleep(1000);
		t1 = now_ms();
		stop_relay = 2;
		printf("mode=%s count=%ld received=%ld seconds=%.3f events_per_s=%.0f\n",
			   argv[2], count, (long) notified, (t1 - t0) / 1000, notified / ((t1 - t0) / 1000));
	}
	stop_relay = 1;
	if (hand)
		pthread_join(rt, NULL);
	pthread_join(lt, NULL);
	PQfinish(w);
	return 0;
}
