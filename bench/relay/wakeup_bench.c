/*
 * wakeup_bench.c
 *		Commit-to-wake-up latency of a subscription's channel: one connection
 *		LISTENs on eventstore.subscription_channel(SUB), another appends, one
 *		event at a time, to STREAM (autocommit), then waits for the
 *		notification.  The latency is the notification's arrival minus the
 *		moment the append statement returned (its commit).
 *
 *	wakeup_bench CONNINFO SUB STREAM latency COUNT [PAUSE_MS]
 *		Prints "n=... lost=... median_ms=... p99_ms=... max_ms=...".  A wake-up
 *		not received within 2 s counts as lost.  PAUSE_MS (default 10) between
 *		appends lets the relay worker go idle, as a quiet consumer sees it.
 *		Exits 1 if any was lost.
 *
 *	wakeup_bench CONNINFO SUB STREAM inflight OTHER
 *		A third connection appends to OTHER (matching no subscription) in an
 *		open transaction, holding a lower position in flight; then STREAM's
 *		append commits.  No wake-up may come while the lower position is in
 *		flight (poll could not see the event yet); once it commits, the
 *		wake-up must come within 2 s, though that commit matches nothing.
 *		Prints "early=0|1 woken_after_ms=..."; exits 1 unless early=0 and woken.
 *
 *	wakeup_bench CONNINFO SUB STREAM delivery RATE SECS
 *		Commit-to-delivery at a steady rate: a writer thread appends RATE
 *		events a second for SECS seconds to STREAM (autocommit, paced on a
 *		schedule, each carrying its sequence number); the consumer waits
 *		for wake-ups on the channel and on each one polls SUB (consumer
 *		"c1", max_count 1000, again while batches come back full) and acks
 *		the runs with ack_many.  An event's latency is the moment poll
 *		returned it minus the moment its append returned (its commit).
 *		Without a wake-up the consumer polls once a second, so a missed
 *		wake-up shows as a latency near 1 s.  Prints "n=... lost=...
 *		p50_ms=... p99_ms=... max_ms=... appends_per_s=..." (lost: not
 *		delivered within 2 s of the last append; appends_per_s: the rate the
 *		writer kept); exits 1 if any was lost.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include "libpq-fe.h"

static double
clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static PGconn *
open_conn(const char *conninfo)
{
	PGconn	   *c = PQconnectdb(conninfo);

	if (PQstatus(c) != CONNECTION_OK)
	{
		fprintf(stderr, "wakeup_bench: %s", PQerrorMessage(c));
		exit(1);
	}
	return c;
}

/* Run sql with one text parameter (or none); exit on failure. */
static PGresult *
run(PGconn *c, const char *sql, const char *param)
{
	PGresult   *r = PQexecParams(c, sql, param ? 1 : 0, NULL, param ? &param : NULL, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "wakeup_bench: %s: %s", sql, PQerrorMessage(c));
		exit(1);
	}
	return r;
}

/* Run sql with two text parameters; exit on failure. */
static PGresult *
run2(PGconn *c, const char *sql, const char **params)
{
	PGresult   *r = PQexecParams(c, sql, 2, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "wakeup_bench: %s: %s", sql, PQerrorMessage(c));
		exit(1);
	}
	return r;
}

/* Wait up to timeout_ms for a notification on c; true if one came. */
static bool
await_notify(PGconn *c, double timeout_ms)
{
	double		until = clock_ms() + timeout_ms;

	for (;;)
	{
		PGnotify   *n;
		fd_set		fds;
		double		left = until - clock_ms();
		struct timeval tv;

		PQconsumeInput(c);
		if ((n = PQnotifies(c)) != NULL)
		{
			PQfreemem(n);
			while ((n = PQnotifies(c)) != NULL)
				PQfreemem(n);
			return true;
		}
		if (left <= 0)
			return false;
		tv.tv_sec = (long) (left / 1e3);
		tv.tv_usec = (long) ((left - tv.tv_sec * 1e3) * 1e3);
		FD_ZERO(&fds);
		FD_SET(PQsocket(c), &fds);
		(void) select(PQsocket(c) + 1, &fds, NULL, NULL, &tv);
	}
}

/* The delivery mode's writer: appends on a schedule, notes when each returned. */
typedef struct DeliveryWriter
{
	PGconn	   *conn;
	const char *stream;
	int			rate;
	int			count;
	double	   *returned;		/* [seq]: when its append returned, ms */
	volatile bool done;
} DeliveryWriter;

static void *
delivery_writer(void *arg)
{
	DeliveryWriter *w = arg;
	double		start = clock_ms();

	for (int i = 0; i < w->count; i++)
	{
		char		data[64];
		const char *params[2] = {w->stream, data};
		double		due = start + i * 1e3 / w->rate;
		double		now = clock_ms();
		PGresult   *r;

		if (due > now)
			usleep((useconds_t) ((due - now) * 1e3));
		snprintf(data, sizeof(data), "{\"seq\": %d}", i);
		r = PQexecParams(w->conn, "SELECT eventstore.append_event($1, NULL, 'Tick', $2::jsonb)",
						 2, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
		{
			fprintf(stderr, "wakeup_bench: append: %s", PQerrorMessage(w->conn));
			exit(1);
		}
		PQclear(r);
		w->returned[i] = clock_ms();
	}
	w->done = true;
	return NULL;
}

/*
 * One poll of sub by c1 and the ack_many of its runs; notes when each event
 * came; returns the number of rows.
 */
static int
delivery_poll(PGconn *c, const char *sub, double *delivered, int count)
{
	const char *params[2] = {sub, NULL};
	PGresult   *r = PQexecParams(c, "SELECT (p.data OPERATOR(pg_catalog.->>) 'seq')::integer, p.global_position,"
								 " pg_catalog.max(p.global_position) OVER (PARTITION BY p.partition)"
								 " FROM eventstore.poll($1, 'c1', 1000) p",
								 1, NULL, params, NULL, NULL, 0);
	double		now = clock_ms();
	int			n;
	char	   *runs;
	size_t		len = 2;

	if (PQresultStatus(r) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "wakeup_bench: poll: %s", PQerrorMessage(c));
		exit(1);
	}
	n = PQntuples(r);
	if (n == 0)
	{
		PQclear(r);
		return 0;
	}
	runs = malloc(n * 24 + 3);
	strcpy(runs, "{");
	for (int i = 0; i < n; i++)
	{
		int			seq = atoi(PQgetvalue(r, i, 0));

		if (seq >= 0 && seq < count && delivered[seq] == 0)
			delivered[seq] = now;
		/* the run's last position, once per run */
		if (strcmp(PQgetvalue(r, i, 1), PQgetvalue(r, i, 2)) == 0)
			len += sprintf(runs + len - 1, "%s%s", len > 2 ? "," : "", PQgetvalue(r, i, 1));
	}
	strcpy(runs + len - 1, "}");
	PQclear(r);
	params[1] = runs;
	PQclear(run2(c, "SELECT eventstore.ack_many($1, 'c1', $2::bigint[])", params));
	free(runs);
	return n;
}

static int
by_value(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	PGconn	   *listener;
	PGconn	   *writer = NULL;
	PGresult   *r;
	char		listen_sql[256];
	int			count;
	int			pause_ms;
	int			got = 0;
	double	   *lat;

	if (argc < 6)
	{
		fprintf(stderr, "usage: wakeup_bench CONNINFO SUB STREAM latency COUNT [PAUSE_MS]\n"
				"       wakeup_bench CONNINFO SUB STREAM inflight OTHER\n"
				"       wakeup_bench CONNINFO SUB STREAM delivery RATE SECS\n");
		return 2;
	}
	listener = open_conn(argv[1]);
	r = run(listener, "SELECT pg_catalog.format('LISTEN %I', eventstore.subscription_channel($1))", argv[2]);
	snprintf(listen_sql, sizeof(listen_sql), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	PQclear(run(listener, listen_sql, NULL));
	writer = open_conn(argv[1]);

	if (strcmp(argv[4], "inflight") == 0)
	{
		PGconn	   *holder = open_conn(argv[1]);
		bool		early;
		bool		woken;
		double		released;

		PQclear(run(holder, "BEGIN", NULL));
		PQclear(run(holder, "SELECT eventstore.append_event($1, NULL, 'Other', '{}')", argv[5]));
		PQclear(run(writer, "SELECT eventstore.append_event($1, NULL, 'Tick', '{}')", argv[3]));
		early = await_notify(listener, 300);
		PQclear(run(holder, "COMMIT", NULL));
		released = clock_ms();
		woken = await_notify(listener, 2000);
		printf("early=%d woken_after_ms=%.3f\n", early, woken ? clock_ms() - released : -1.0);
		PQfinish(holder);
		return !early && woken ? 0 : 1;
	}
	if (strcmp(argv[4], "delivery") == 0 && argc > 6)
	{
		DeliveryWriter w;
		pthread_t	thread;
		double	   *delivered;
		double		last_append = 0;

		w.conn = writer;
		w.stream = argv[3];
		w.rate = atoi(argv[5]);
		w.count = w.rate * atoi(argv[6]);
		w.returned = calloc(w.count, sizeof(double));
		w.done = false;
		delivered = calloc(w.count, sizeof(double));
		lat = calloc(w.count, sizeof(double));
		/* anything delivered before is not this run's */
		while (delivery_poll(listener, argv[2], delivered, 0) > 0)
			;
		if (pthread_create(&thread, NULL, delivery_writer, &w) != 0)
			return 2;
		for (;;)
		{
			bool		done = w.done;

			if (done && last_append == 0)
				last_append = clock_ms();
			if (done && (got == w.count || clock_ms() - last_append > 2000))
				break;
			(void) await_notify(listener, done ? 100 : 1000);
			while (delivery_poll(listener, argv[2], delivered, w.count) == 1000)
				;
			got = 0;
			for (int i = 0; i < w.count; i++)
				got += delivered[i] != 0;
		}
		pthread_join(thread, NULL);
		got = 0;
		for (int i = 0; i < w.count; i++)
			if (delivered[i] != 0)
				lat[got++] = delivered[i] > w.returned[i] ? delivered[i] - w.returned[i] : 0;
		qsort(lat, got, sizeof(double), by_value);
		if (got == 0)
			printf("n=%d lost=%d\n", w.count, w.count);
		else
			printf("n=%d lost=%d p50_ms=%.3f p99_ms=%.3f max_ms=%.3f appends_per_s=%.0f\n", w.count, w.count - got,
				   lat[got / 2], lat[(int) (got * 0.99) < got ? (int) (got * 0.99) : got - 1], lat[got - 1],
				   w.count > 1 ? (w.count - 1) * 1e3 / (w.returned[w.count - 1] - w.returned[0]) : 0.0);
		return got == w.count ? 0 : 1;
	}
	count = atoi(argv[5]);
	pause_ms = argc > 6 ? atoi(argv[6]) : 10;
	lat = calloc(count, sizeof(double));

	for (int i = 0; i < count; i++)
	{
		double		committed;

		usleep(pause_ms * 1000);
		(void) await_notify(listener, 0);	/* drop anything stale */
		PQclear(run(writer, "SELECT eventstore.append_event($1, NULL, 'Tick', '{}')", argv[3]));
		committed = clock_ms();
		if (await_notify(listener, 2000))
			lat[got++] = clock_ms() - committed;
	}
	qsort(lat, got, sizeof(double), by_value);
	if (got == 0)
		printf("n=%d lost=%d\n", count, count);
	else
		printf("n=%d lost=%d median_ms=%.3f p99_ms=%.3f max_ms=%.3f\n", count, count - got,
			   lat[got / 2], lat[(int) (got * 0.99) < got ? (int) (got * 0.99) : got - 1], lat[got - 1]);
	PQfinish(listener);
	PQfinish(writer);
	return got == count ? 0 : 1;
}
