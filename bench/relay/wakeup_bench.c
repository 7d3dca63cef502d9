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
 */
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
				"       wakeup_bench CONNINFO SUB STREAM inflight OTHER\n");
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
