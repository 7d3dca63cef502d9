/*
 * subscription_lease.c
 *		The common path of a subscription's lease step (poll) and of
 *		ack_many, in C.
 *
 * A consumer draining a backlog polls and acks in a loop: each poll renews
 * the partitions it already holds and each ack_many moves the checkpoints
 * of the runs it was sent.  Both used to be PL/pgSQL (_subscription_take,
 * _subscription_ack_many), about half of a drain's CPU.  Here they are a few
 * statements prepared once per backend (generic plans), the decisions made
 * in C:
 *
 *	es_take_fast		poll's lease step when the consumer keeps what it
 *						holds: nothing to take or release, no retry pending
 *	es_ack_many_fast	ack_many when every position is an event of the
 *						subscription in the run in flight of a partition the
 *						consumer holds, and none of those partitions has a
 *						retry or replay pending
 *
 * Anything else (an argument or a privilege to refuse, a partition to take
 * or release, retries) returns false and the caller runs the SQL function,
 * which does all of it, raises the errors, and stays the one description of
 * the rules.  A fast path writes nothing the SQL function would not also
 * write (the consumer's last_seen), and the row locks it took are the
 * caller's transaction's, which the SQL function's FOR UPDATE [SKIP LOCKED]
 * takes again without waiting.
 *
 * Locks are those of the SQL functions: the partition rows FOR UPDATE (SKIP
 * LOCKED in poll), taken in partition order; the subscription row is read
 * without a lock (the partition rows keep drop_subscription waiting).
 * Called inside an SPI connection, as the extension's owner.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "eventstore.h"

/* A subscription as the fast paths need it (Datums of the SPI result). */
typedef struct EsLeaseSub
{
	Datum		name;
	Oid			store;
	text	   *partition_by;
	int32		partitions;
	Datum		categories;
	bool		categories_null;
	Datum		event_types;
	bool		event_types_null;
	Datum		lease;
} EsLeaseSub;

/* The statements, prepared once per backend. */
enum
{
	LEASE_SUB,					/* the subscription, and may the caller use it */
	LEASE_SEEN,					/* the consumer's last_seen; drop consumers gone */
	LEASE_COUNTS,				/* live consumers, rank, partitions held, retries */
	LEASE_PARTS,				/* the partitions poll may hold, locked */
	ACK_LOCK,					/* the partitions of ack_many's runs, locked */
	ACK_RETRIES,				/* has any of them a retry */
	ACK_MOVE,					/* move their checkpoints */
	LEASE_NPLANS
};

static SPIPlanPtr es_lease_plans[LEASE_NPLANS];

static const char *const es_lease_sql[LEASE_NPLANS] = {
	[LEASE_SUB] =
	"SELECT s.store::pg_catalog.oid, s.partition_by, s.partitions, s.categories, s.event_types, s.lease,"
	"       pg_catalog.pg_has_role($2, s.owner::pg_catalog.oid, 'USAGE')"
	"       OR pg_catalog.has_table_privilege($2, 'eventstore.subscriptions'::pg_catalog.regclass, 'UPDATE')"
	"  FROM eventstore.subscriptions s WHERE s.name OPERATOR(pg_catalog.=) $1",
	/* the consumer's own row is never stale: it is being renewed */
	[LEASE_SEEN] =
	"WITH gone AS (DELETE FROM eventstore.subscription_consumers c"
	"               WHERE c.subscription OPERATOR(pg_catalog.=) $1 AND c.consumer OPERATOR(pg_catalog.<>) $2"
	"                 AND c.last_seen OPERATOR(pg_catalog.<) ($3 OPERATOR(pg_catalog.-) ($4 OPERATOR(pg_catalog.*) 10)))"
	"INSERT INTO eventstore.subscription_consumers AS c (subscription, consumer, last_seen)"
	"VALUES ($1, $2, $3)"
	"ON CONFLICT ON CONSTRAINT subscription_consumers_pkey DO UPDATE SET last_seen = EXCLUDED.last_seen",
	[LEASE_COUNTS] =
	"SELECT pg_catalog.count(*)::pg_catalog.int4,"
	"       (pg_catalog.count(*) FILTER (WHERE c.consumer OPERATOR(pg_catalog.<) $2))::pg_catalog.int4,"
	"       (SELECT pg_catalog.count(*)::pg_catalog.int4 FROM eventstore.subscription_partitions x"
	"         WHERE x.subscription OPERATOR(pg_catalog.=) $1 AND x.holder OPERATOR(pg_catalog.=) $2"
	"           AND x.lease_until OPERATOR(pg_catalog.>=) $3),"
	"       EXISTS (SELECT FROM eventstore.subscription_retries r"
	"                 JOIN eventstore.subscription_partitions x"
	"                   ON x.subscription OPERATOR(pg_catalog.=) r.subscription"
	"                  AND x.partition OPERATOR(pg_catalog.=) r.partition"
	"                WHERE r.subscription OPERATOR(pg_catalog.=) $1)"
	"  FROM eventstore.subscription_consumers c"
	" WHERE c.subscription OPERATOR(pg_catalog.=) $1"
	"   AND c.last_seen OPERATOR(pg_catalog.>=) ($3 OPERATOR(pg_catalog.-) $4)",
	/* as _subscription_take's loop: the partitions held first, then by number */
	[LEASE_PARTS] =
	"SELECT x.partition,"
	"       COALESCE(x.holder OPERATOR(pg_catalog.=) $2 AND x.lease_until OPERATOR(pg_catalog.>=) $3, false),"
	"       x.checkpoint, x.delivered_to IS NULL,"
	"       x.delivered_to IS NULL OR x.delivered_at OPERATOR(pg_catalog.<) ($3 OPERATOR(pg_catalog.-) $4)"
	"  FROM eventstore.subscription_partitions x"
	" WHERE x.subscription OPERATOR(pg_catalog.=) $1"
	"   AND (x.holder OPERATOR(pg_catalog.=) $2 OR x.holder IS NULL OR x.lease_until OPERATOR(pg_catalog.<) $3)"
	" ORDER BY COALESCE(x.holder OPERATOR(pg_catalog.=) $2 AND x.lease_until OPERATOR(pg_catalog.>=) $3, false) DESC,"
	"          x.partition"
	"   FOR UPDATE SKIP LOCKED",
	[ACK_LOCK] =
	"SELECT x.partition,"
	"       COALESCE(x.holder OPERATOR(pg_catalog.=) $3 AND x.lease_until OPERATOR(pg_catalog.>=) $4, false),"
	"       x.checkpoint, x.delivered_to"
	"  FROM eventstore.subscription_partitions x"
	" WHERE x.subscription OPERATOR(pg_catalog.=) $1 AND x.partition OPERATOR(pg_catalog.=) ANY ($2)"
	" ORDER BY x.partition FOR UPDATE",
	/* after the locks, in a snapshot of its own: a nack that held one has committed */
	[ACK_RETRIES] =
	"SELECT EXISTS (SELECT FROM eventstore.subscription_retries t"
	"                WHERE t.subscription OPERATOR(pg_catalog.=) $1"
	"                  AND t.partition OPERATOR(pg_catalog.=) ANY ($2))",
	[ACK_MOVE] =
	"UPDATE eventstore.subscription_partitions x"
	"   SET checkpoint = m.last,"
	"       delivered_to = CASE WHEN m.last OPERATOR(pg_catalog.>=) x.delivered_to THEN NULL ELSE x.delivered_to END,"
	"       delivered_at = CASE WHEN m.last OPERATOR(pg_catalog.>=) x.delivered_to THEN NULL ELSE x.delivered_at END,"
	"       lease_until = $2 OPERATOR(pg_catalog.+) $3"
	"  FROM ROWS FROM (pg_catalog.unnest($4), pg_catalog.unnest($5)) m(part, last)"
	" WHERE x.subscription OPERATOR(pg_catalog.=) $1 AND x.partition OPERATOR(pg_catalog.=) m.part",
};

static const int es_lease_nargs[LEASE_NPLANS] = {
	[LEASE_SUB] = 2,[LEASE_SEEN] = 4,[LEASE_COUNTS] = 4,[LEASE_PARTS] = 4,
	[ACK_LOCK] = 4,[ACK_RETRIES] = 2,[ACK_MOVE] = 5,
};

static const Oid es_lease_types[LEASE_NPLANS][5] = {
	[LEASE_SUB] = {TEXTOID, OIDOID},
	[LEASE_SEEN] = {TEXTOID, TEXTOID, TIMESTAMPTZOID, INTERVALOID},
	[LEASE_COUNTS] = {TEXTOID, TEXTOID, TIMESTAMPTZOID, INTERVALOID},
	[LEASE_PARTS] = {TEXTOID, TEXTOID, TIMESTAMPTZOID, INTERVALOID},
	[ACK_LOCK] = {TEXTOID, INT4ARRAYOID, TEXTOID, TIMESTAMPTZOID},
	[ACK_RETRIES] = {TEXTOID, INT4ARRAYOID},
	[ACK_MOVE] = {TEXTOID, TIMESTAMPTZOID, INTERVALOID, INT4ARRAYOID, INT8ARRAYOID},
};

/* Run statement which with values (none null); its rows are in SPI_tuptable. */
static uint64
es_lease_run(int which, Datum *values, int expected)
{
	int			rc;

	if (es_lease_plans[which] == NULL)
	{
		/* generic plans: each reads a few rows of small tables by key */
		SPIPlanPtr	plan = SPI_prepare_cursor(es_lease_sql[which], es_lease_nargs[which],
											  (Oid *) es_lease_types[which], CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "eventstore: SPI_prepare failed for \"%s\": %s",
				 es_lease_sql[which], SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		es_lease_plans[which] = plan;
	}
	rc = SPI_execute_plan(es_lease_plans[which], values, NULL, false, 0);
	if (rc != expected)
		elog(ERROR, "eventstore: \"%s\" returned %s", es_lease_sql[which], SPI_result_code_string(rc));
	return SPI_processed;
}

static inline Datum
es_lease_col(int row, int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, isnull);
}

/* Whether s is a valid consumer name (as _subscription_arg: 1 to 200 characters). */
static bool
es_lease_name_ok(Datum s)
{
	text	   *t = DatumGetTextPP(s);
	int			len = VARSIZE_ANY_EXHDR(t);

	return len > 0 && (len <= 200 || pg_mbstrlen_with_len(VARDATA_ANY(t), len) <= 200);
}

/*
 * Read subscription name into *sub if it exists and role caller may use it
 * (as _subscription_get, without a lock); false otherwise.
 */
static bool
es_lease_subscription(Datum name, Oid caller, EsLeaseSub *sub)
{
	Datum		values[2] = {name, ObjectIdGetDatum(caller)};
	bool		isnull;

	if (es_lease_run(LEASE_SUB, values, SPI_OK_SELECT) != 1 || !DatumGetBool(es_lease_col(0, 7, &isnull)) || isnull)
		return false;
	sub->name = name;
	sub->store = DatumGetObjectId(es_lease_col(0, 1, &isnull));
	sub->partition_by = DatumGetTextPP(es_lease_col(0, 2, &isnull));
	sub->partitions = DatumGetInt32(es_lease_col(0, 3, &isnull));
	sub->categories = es_lease_col(0, 4, &sub->categories_null);
	sub->event_types = es_lease_col(0, 5, &sub->event_types_null);
	sub->lease = es_lease_col(0, 6, &isnull);
	return true;
}

/*
 * poll's lease step on its common path: consumer holds partitions of
 * subscription name and keeps them all (no partition to take or release),
 * and the subscription has no retry.  Records the consumer, locks and
 * renews what it holds, and fills v and n with what _subscription_take
 * returns (ES_TAKE_NCOLS columns).  False: run _subscription_take instead.
 */
bool
es_take_fast(Datum name, bool name_null, Datum consumer, bool consumer_null, int32 max_count,
			 bool max_count_null, Oid caller, Datum *v, bool *n)
{
	EsLeaseSub	sub;
	Datum		values[4];
	bool		isnull;
	int			live,
				rank,
				held,
				target;
	uint64		nrows;
	Datum	   *cps;
	bool	   *cpnulls;
	int32	   *renew;
	int			nrenew = 0;
	int64		lo = 0;
	bool		any = false;
	int			dims[1];
	int			lbs[1] = {1};
	TimestampTz clock;

	if (name_null || consumer_null || max_count_null || max_count < 0 || !es_lease_name_ok(consumer) ||
		!es_lease_subscription(name, caller, &sub))
		return false;
	clock = GetCurrentTimestamp();	/* clock_timestamp() */
	values[0] = name;
	values[1] = consumer;
	values[2] = TimestampTzGetDatum(clock);
	values[3] = sub.lease;
	(void) es_lease_run(LEASE_SEEN, values, SPI_OK_INSERT);
	if (es_lease_run(LEASE_COUNTS, values, SPI_OK_SELECT) != 1)
		elog(ERROR, "eventstore: counting the consumers of a subscription failed");
	live = DatumGetInt32(es_lease_col(0, 1, &isnull));
	rank = DatumGetInt32(es_lease_col(0, 2, &isnull));
	held = DatumGetInt32(es_lease_col(0, 3, &isnull));
	if (DatumGetBool(es_lease_col(0, 4, &isnull)) || live < 1)
		return false;			/* retries: which partitions wait, which replay */
	target = sub.partitions / live + (rank < sub.partitions % live ? 1 : 0);

	nrows = es_lease_run(LEASE_PARTS, values, SPI_OK_SELECT);
	cps = palloc(sizeof(Datum) * sub.partitions);
	cpnulls = palloc(sizeof(bool) * sub.partitions);
	renew = palloc(sizeof(int32) * Max(nrows, 1));
	for (int p = 0; p < sub.partitions; p++)
	{
		cps[p] = (Datum) 0;
		cpnulls[p] = true;
	}
	for (uint64 i = 0; i < nrows; i++)
	{
		int32		part = DatumGetInt32(es_lease_col(i, 1, &isnull));
		bool		mine = DatumGetBool(es_lease_col(i, 2, &isnull));
		int64		checkpoint = DatumGetInt64(es_lease_col(i, 3, &isnull));
		bool		idle = DatumGetBool(es_lease_col(i, 4, &isnull));
		bool		deliverable = DatumGetBool(es_lease_col(i, 5, &isnull));

		if (!mine)
		{
			if (held >= target)
				continue;		/* free or expired, but the share is full */
			return false;		/* to take */
		}
		if (held > target && idle)
			return false;		/* to release */
		if (part < 0 || part >= sub.partitions)
			elog(ERROR, "eventstore: partition %d of a subscription of %d partitions", part, sub.partitions);
		renew[nrenew++] = part;
		if (deliverable)
		{
			cps[part] = Int64GetDatum(checkpoint);
			cpnulls[part] = false;
			if (!any || checkpoint < lo)
				lo = checkpoint;
			any = true;
		}
	}

	memset(n, 0, sizeof(bool) * ES_TAKE_NCOLS);
	v[0] = ObjectIdGetDatum(sub.store);
	v[1] = name;
	v[2] = PointerGetDatum(sub.partition_by);
	v[3] = Int32GetDatum(sub.partitions);
	v[4] = sub.categories;
	n[4] = sub.categories_null;
	v[5] = sub.event_types;
	n[5] = sub.event_types_null;
	v[6] = sub.lease;
	v[7] = TimestampTzGetDatum(clock);
	dims[0] = sub.partitions;
	v[8] = PointerGetDatum(construct_md_array(cps, cpnulls, 1, dims, lbs, INT8OID, 8,
											  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	v[9] = PointerGetDatum(construct_empty_array(INT4OID));
	v[10] = BoolGetDatum(false);
	v[11] = Int64GetDatum(lo);
	n[11] = !any || max_count == 0;
	{
		Datum	   *r = palloc(sizeof(Datum) * Max(nrenew, 1));

		for (int i = 0; i < nrenew; i++)
			r[i] = Int32GetDatum(renew[i]);
		v[12] = PointerGetDatum(construct_array(r, nrenew, INT4OID, 4, true, TYPALIGN_INT));
	}
	return true;
}

static int
es_lease_cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * ack_many(name, consumer, positions) on its common path: every position
 * an event of the subscription in the run in flight of a partition the
 * consumer holds (after its checkpoint, at or below delivered_to), none of
 * those partitions with a retry or replay pending.  Acking them one by one
 * would leave each partition's checkpoint at its highest position, the run
 * done when that is the run's last: one UPDATE does that.  False (nothing
 * written): run _subscription_ack_many instead.
 */
bool
es_ack_many_fast(Datum name, bool name_null, Datum consumer, bool consumer_null, Datum positions,
				 bool positions_null, Oid caller)
{
	EsLeaseSub	sub;
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *elemnulls;
	int			nelems;
	int64	   *sorted;
	int			ndistinct = 0;
	EsStore    *st;
	char	  **categories;
	char	  **types;
	int			ncategories,
				ntypes;
	char		partition_by;
	int64	   *first,
			   *last;
	Datum	   *parts,
			   *lasts;
	int			nruns = 0;
	ArrayType  *partarr;
	Datum		values[5];
	bool		isnull;
	uint64		nrows;
	TimestampTz clock;

	if (name_null || consumer_null || positions_null)
		return false;
	arr = DatumGetArrayTypeP(positions);
	if (ARR_NDIM(arr) != 1 || array_contains_nulls(arr) || !es_lease_name_ok(consumer) ||
		!es_lease_subscription(name, caller, &sub))
		return false;
	deconstruct_array(arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &elemnulls, &nelems);
	if (nelems == 0)
		return true;			/* nothing to ack */
	sorted = palloc(sizeof(int64) * nelems);
	for (int i = 0; i < nelems; i++)
		sorted[i] = DatumGetInt64(elems[i]);
	qsort(sorted, nelems, sizeof(int64), es_lease_cmp_int64);
	for (int i = 0; i < nelems; i++)
		if (ndistinct == 0 || sorted[ndistinct - 1] != sorted[i])
			sorted[ndistinct++] = sorted[i];

	/* the events, each of the subscription, and the run of each partition */
	st = es_store(sub.store);
	values[0] = positions;
	nrows = SPI_execute_plan(es_subscription_events_plan(st), values, NULL, false, 0) == SPI_OK_SELECT
		? SPI_processed : 0;
	if (nrows != (uint64) ndistinct)
		return false;			/* none, or some are not events of the store */
	ncategories = es_copy_text_array(sub.categories, sub.categories_null, CurrentMemoryContext, &categories);
	ntypes = es_copy_text_array(sub.event_types, sub.event_types_null, CurrentMemoryContext, &types);
	partition_by = es_subscription_partition_by(sub.partition_by);
	first = palloc0(sizeof(int64) * sub.partitions);
	last = palloc0(sizeof(int64) * sub.partitions);
	for (uint64 i = 0; i < nrows; i++)
	{
		int64		pos = DatumGetInt64(es_lease_col(i, 1, &isnull));
		text	   *sid = DatumGetTextPP(es_lease_col(i, 2, &isnull));
		text	   *type = DatumGetTextPP(es_lease_col(i, 3, &isnull));
		bool		metanull;
		Datum		meta = es_lease_col(i, 4, &metanull);
		const char *dash = memchr(VARDATA_ANY(sid), '-', VARSIZE_ANY_EXHDR(sid));
		int			catlen = dash ? (int) (dash - VARDATA_ANY(sid)) : (int) VARSIZE_ANY_EXHDR(sid);
		int			part;

		if (!es_in_list(categories, ncategories, VARDATA_ANY(sid), catlen) ||
			!es_in_list(types, ntypes, VARDATA_ANY(type), VARSIZE_ANY_EXHDR(type)))
			return false;		/* not an event of the subscription */
		part = es_subscription_partition(partition_by, sub.partitions, pos, PointerGetDatum(sid), meta, metanull);
		if (first[part] == 0 || pos < first[part])
			first[part] = pos;
		last[part] = Max(last[part], pos);
	}
	parts = palloc(sizeof(Datum) * sub.partitions);
	lasts = palloc(sizeof(Datum) * sub.partitions);
	for (int p = 0; p < sub.partitions; p++)
		if (last[p] != 0)
		{
			parts[nruns] = Int32GetDatum(p);
			lasts[nruns++] = Int64GetDatum(last[p]);
		}
	partarr = construct_array(parts, nruns, INT4OID, 4, true, TYPALIGN_INT);

	/* lock the partitions, as ack does, then look at them */
	clock = GetCurrentTimestamp();
	values[0] = name;
	values[1] = PointerGetDatum(partarr);
	values[2] = consumer;
	values[3] = TimestampTzGetDatum(clock);
	if (es_lease_run(ACK_LOCK, values, SPI_OK_SELECT) != (uint64) nruns)
		return false;
	for (int i = 0; i < nruns; i++)
	{
		int32		part = DatumGetInt32(es_lease_col(i, 1, &isnull));
		bool		holds = DatumGetBool(es_lease_col(i, 2, &isnull));
		int64		checkpoint = DatumGetInt64(es_lease_col(i, 3, &isnull));
		bool		idle;
		int64		delivered_to = DatumGetInt64(es_lease_col(i, 4, &idle));

		if (part < 0 || part >= sub.partitions || last[part] == 0)
			return false;
		if (!holds || idle || first[part] <= checkpoint || last[part] > delivered_to)
			return false;		/* not held, or not the run in flight: ack says why */
	}
	if (es_lease_run(ACK_RETRIES, values, SPI_OK_SELECT) != 1 || DatumGetBool(es_lease_col(0, 1, &isnull)))
		return false;			/* a retry to delete, or a replay */

	values[1] = TimestampTzGetDatum(clock);
	values[2] = sub.lease;
	values[3] = PointerGetDatum(partarr);
	values[4] = PointerGetDatum(construct_array(lasts, nruns, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (es_lease_run(ACK_MOVE, values, SPI_OK_UPDATE) != (uint64) nruns)
		elog(ERROR, "eventstore: moving the checkpoints of ack_many updated another number of partitions than %d",
			 nruns);
	return true;
}
